"""Hostile and broken input: every case gives one `Error:` line on stderr, exit code 1, no
traceback, nothing published and nothing written outside the store (table-driven)."""

from __future__ import annotations

import errno
import gzip
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prefcurate.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
GOOD = {"prompt": "Say hi.", "chosen": "Hi!", "rejected": "No."}
CODE = {
    "prompt": "def add(a, b):\n",
    "completions": ["    return a + b\n", "    return a - b\n"],
    "tests": ["assert add(1, 2) == 3"],
}


def jsonl(*rows: dict | bytes) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


def nested(depth: int) -> bytes:
    return json.dumps(GOOD)[:-1].encode() + b', "x": ' + b"[" * depth + b"]" * depth + b"}"


def write(name: str, data: bytes) -> Callable[[Path], list[str]]:
    """A case that writes `data` to `name` and builds pairs from it."""

    def setup(tmp: Path) -> list[str]:
        (tmp / name).write_bytes(data)
        return ["build", "pairs", str(tmp / name)]

    return setup


def code_file(data: bytes, *extra: str) -> Callable[[Path], list[str]]:
    def setup(tmp: Path) -> list[str]:
        (tmp / "samples.jsonl").write_bytes(data)
        return ["build", "code", str(tmp / "samples.jsonl"), "--input-format", "generic", *extra]

    return setup


def truncated_gz(tmp: Path) -> list[str]:
    whole = gzip.compress(jsonl(*[GOOD] * 200))
    (tmp / "cut.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    return ["build", "pairs", str(tmp / "cut.jsonl.gz")]


def good_file(tmp: Path) -> Path:
    (tmp / "good.jsonl").write_bytes(jsonl(GOOD))
    return tmp / "good.jsonl"


CASES: list[tuple[str, Callable[[Path], list[str]], str]] = [
    # (case, setup returning CLI args (the store is added), expected message after "Error: ")
    (
        "non_utf8_pairs",
        write("bad.jsonl", jsonl(GOOD, b'{"prompt": "a", "chosen": "b\xff", "rejected": "c"}')),
        "{tmp}/bad.jsonl:2: not UTF-8 text (byte 0xff at column 29)",
    ),
    (
        "non_utf8_json_document",
        write("bad.json", b'[{"prompt": "a\xfe", "chosen": "b", "rejected": "c"}]'),
        "{tmp}/bad.json:1: not UTF-8 text (byte 0xfe)",
    ),
    (
        "non_utf8_code",
        code_file(jsonl(CODE, b'{"prompt": "x\xff"}'), "--name", "c"),
        "{tmp}/samples.jsonl:2: not UTF-8 text (byte 0xff at column 14)",
    ),
    ("truncated_gz", truncated_gz, "{tmp}/cut.jsonl.gz: truncated file (the compressed stream ends early)"),
    (
        "plain_text_named_gz",
        write("plain.jsonl.gz", jsonl(GOOD)),
        "{tmp}/plain.jsonl.gz: not a gzip file, though named .gz",
    ),
    (
        "lone_surrogate",
        write("sur.jsonl", jsonl(GOOD, b'{"prompt": "a\\ud800", "chosen": "b", "rejected": "c"}')),
        "{tmp}/sur.jsonl:2: invalid Unicode: lone surrogate escape '\\ud800' (not representable as UTF-8 text)",
    ),
    (
        "lone_surrogate_json_document",
        write("sur.json", b'[{"prompt": "a", "chosen": "b\\udfff", "rejected": "c"}]'),
        "{tmp}/sur.json: row 0: invalid Unicode: lone surrogate escape '\\udfff' (not representable as UTF-8 text)",
    ),
    (
        "nested_100k_json_document",
        write("deep.json", b"[" * 100_000 + b"]" * 100_000),
        "{tmp}/deep.json: JSON nested too deeply to read",
    ),
    (
        "name_300_chars",
        lambda tmp: ["build", "pairs", str(good_file(tmp)), "--name", "a" * 300],
        "invalid dataset name 'aaaaaaaaaaaaaaaaaaaa'...: 300 characters (at most 100)",
    ),
    (
        "name_traversal_pairs",
        lambda tmp: ["build", "pairs", str(good_file(tmp)), "--name", "../../x"],
        "invalid dataset name '../../x': use letters, digits, '.', '_' or '-', starting with a letter or digit",
    ),
    (
        "name_traversal_code",
        code_file(jsonl(CODE), "--name", "../../x"),
        "invalid dataset name '../../x': use letters, digits, '.', '_' or '-', starting with a letter or digit",
    ),
    (
        "info_traversal",
        lambda tmp: ["info", "../../other/pairs/victim"],
        "invalid signal name '../../other/pairs/victim': expected <dataset>/<signal>",
    ),
    (
        "info_traversal_one_part",
        lambda tmp: ["info", ".."],
        "invalid dataset name '..': use letters, digits, '.', '_' or '-', starting with a letter or digit",
    ),
    (
        "partition_traversal",
        lambda tmp: ["partition", "..", "--name", "b", "--by", "score_gap_v1__gap", "--buckets", "2"],
        "invalid dataset name '..': use letters, digits, '.', '_' or '-', starting with a letter or digit",
    ),
    (
        "score_traversal",
        lambda tmp: ["score", "..", "--by", "score-gap"],
        "invalid dataset name '..': use letters, digits, '.', '_' or '-', starting with a letter or digit",
    ),
]


def run(tmp_path: Path, args: list[str], store: Path | None = None):
    store = store or tmp_path / "store"
    return runner.invoke(app, [*args, "--store", str(store)]), store


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("case,setup,expected", CASES, ids=[c[0] for c in CASES])
def test_hostile_input(tmp_path: Path, case: str, setup, expected: str) -> None:
    work = tmp_path / "w"
    work.mkdir()
    args = setup(work)
    before = files_under(tmp_path)
    result, store = run(tmp_path, args)
    assert result.exit_code == 1, result.output
    assert result.stderr == "Error: " + expected.format(tmp=work) + "\n"
    assert "Traceback" not in result.output
    assert not (store / "pairs").exists() and not (store / "scores").exists()  # nothing published
    assert not (store / ".work").exists()  # no test ran, no work file was written
    outside = {p for p in files_under(tmp_path) - before if not p.startswith("store")}
    assert outside == set()  # nothing written outside the store


@pytest.mark.parametrize("depth", [10_000, 30_000, 100_000])
def test_deeply_nested_line_fails_cleanly_in_a_contained_process(tmp_path: Path, depth: int) -> None:
    # pyarrow.json hangs at ~10,000 levels and crashes (SIGSEGV) at ~30,000: run the CLI in a child
    # process so a regression fails this test instead of killing the test session.
    path = tmp_path / "deep.jsonl"
    path.write_bytes(jsonl(GOOD) + nested(depth) + b"\n")
    proc = subprocess.run(
        [sys.executable, "-m", "prefcurate", "build", "pairs", str(path), "--store", str(tmp_path / "s")],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert proc.stderr == f"Error: {path}:2: JSON nested too deeply to read\n"
    assert not (tmp_path / "s" / "pairs").exists()


@pytest.mark.parametrize("limit", [None, 100_000], ids=["whole-file", "streamed-with-limit"])
def test_a_deep_line_after_many_blocks_is_caught_before_the_parser(tmp_path: Path, limit: int | None) -> None:
    # The nesting guard checks each block on its way into pyarrow.json, which parses earlier blocks in
    # parallel meanwhile: a deep line well past the first blocks must still never reach the parser.
    path = tmp_path / "deep_late.jsonl"
    filler = jsonl(GOOD | {"chosen": "x" * 2000})
    rows = 12 * (1 << 20) // len(filler)  # ~12 MB: three 4 MB blocks before the deep line
    path.write_bytes(filler * rows + nested(30_000) + b"\n")
    extra = ["--limit", str(limit)] if limit else []
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "prefcurate",
            "build",
            "pairs",
            str(path),
            "--store",
            str(tmp_path / "s"),
            *extra,
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert proc.stderr == f"Error: {path}:{rows + 1}: JSON nested too deeply to read\n"


def test_moderate_nesting_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "ok.jsonl"
    path.write_bytes(nested(600) + b"\n")  # over the fast-path bound, within Python's parser
    result, store = run(tmp_path, ["build", "pairs", str(path)])
    assert result.exit_code == 0, result.output
    assert "1 pairs from 1 rows" in result.stdout


def test_store_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    for args in (["build", "pairs", str(good_file(tmp_path))], ["ls"], ["sql", "overview"]):
        result, _ = run(tmp_path, args, tmp_path / "afile")
        assert result.exit_code == 1
        assert result.stderr == f"Error: --store {tmp_path / 'afile'} is a file, not a store folder\n"
    assert (tmp_path / "afile").read_text() == "x"


def test_read_only_store_and_full_disk_keep_the_earlier_version(tmp_path: Path, monkeypatch) -> None:
    good = good_file(tmp_path)
    result, store = run(tmp_path, ["build", "pairs", str(good), "--name", "d"])
    assert result.exit_code == 0
    before = {p: p.read_bytes() for p in (store / "pairs").rglob("*") if p.is_file()}
    import pyarrow.parquet

    real = pyarrow.parquet.write_table
    for code, why in ((errno.ENOSPC, "No space left on device"), (errno.EROFS, "Read-only file system")):

        def failing(*a, _code=code, **kw):
            raise OSError(_code, os.strerror(_code))

        monkeypatch.setattr(pyarrow.parquet, "write_table", failing)
        result, _ = run(tmp_path, ["build", "pairs", str(good), "--name", "d", "--force"])
        assert result.exit_code == 1, result.output
        assert result.stderr == f"Error: cannot write to store {store}: {why}; nothing was published\n"
        monkeypatch.setattr(pyarrow.parquet, "write_table", real)
        after = {p: p.read_bytes() for p in (store / "pairs").rglob("*") if p.is_file()}
        assert after == before  # v1 intact, no v2
        assert not any((store / ".tmp").iterdir())
    assert before  # the first build wrote files


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root ignores file permissions, so chmod cannot make a read-only store"
)
def test_really_read_only_store(tmp_path: Path) -> None:
    good = good_file(tmp_path)
    result, store = run(tmp_path, ["build", "pairs", str(good), "--name", "d"])
    os.chmod(store, 0o555)
    try:
        result, _ = run(tmp_path, ["build", "pairs", str(good), "--name", "d", "--force"])
        assert result.exit_code == 1
        assert result.stderr.startswith(f"Error: cannot write to store {store}: Permission denied")
    finally:
        os.chmod(store, 0o755)
