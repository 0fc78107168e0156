"""Bad input to `build pairs` / `build ultrafeedback`: one line naming file, line and field,
exit code 1, no traceback, nothing published."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prefcurate.cli import app

runner = CliRunner()
GOOD = {"prompt": "Say hi.", "chosen": "Hi!", "rejected": "No."}


def uf_row(**over) -> dict:
    row = {
        "source": "sharegpt",
        "instruction": "Say hi.",
        "completions": [
            {"model": "m1", "response": "Hi!", "overall_score": 8.0},
            {"model": "m2", "response": "No.", "overall_score": 2.0},
        ],
    }
    row.update(over)
    return row


def lines(*objs) -> str:
    return "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs)


def run_cli(tmp_path: Path, *args: str):
    store = tmp_path / "store"
    result = runner.invoke(app, [*args, "--store", str(store)])
    return result, store


def assert_one_line_error(result, store: Path, expected: str) -> None:
    assert result.exit_code == 1
    assert result.stderr == f"Error: {expected}\n"
    assert "Traceback" not in result.output
    assert not (store / "pairs").exists()  # nothing published
    assert not any((store / ".tmp").glob("*")) if (store / ".tmp").exists() else True


def assert_bad_choice(result, store: Path, expected: str) -> None:
    assert result.exit_code == 2
    assert expected in " ".join(result.stderr.replace("│", " ").split())
    assert "Traceback" not in result.output
    assert not (store / "pairs").exists()


CASES = [
    # (file name, content, command, expected message after "<path>")
    (
        "malformed.jsonl",
        lines(GOOD, '{"prompt": "a", "chosen": "b",'),
        "pairs",
        ":2: malformed JSON (Expecting property name enclosed in double quotes at column 31)",
    ),
    ("not_object.jsonl", lines(GOOD, "[1, 2]"), "pairs", ":2: expected a JSON object per line, got list"),
    (
        "wrong_type.jsonl",
        lines(GOOD, GOOD, {**GOOD, "chosen": ["Hi!"]}),
        "pairs",
        ":3: field 'chosen': expected string (as in earlier rows), got list",
    ),
    (
        "wrong_type_all.jsonl",
        lines({**GOOD, "rejected": 5}),
        "pairs",
        ":1: field 'rejected': expected a string, got int",
    ),
    (
        "missing_field.jsonl",
        lines(GOOD, "", {"prompt": "a", "chosen": "b"}),
        "pairs",
        ":3: field 'rejected': missing required field",
    ),
    (
        "no_rejected_col.jsonl",
        lines({"prompt": "a", "chosen": "b"}),
        "pairs",
        ": field 'rejected': missing required field",
    ),
    (
        "no_prompt.jsonl",
        lines({"chosen": "b", "rejected": "c"}),
        "pairs",
        ": field 'prompt': missing required field (flat format needs a prompt column)",
    ),
    ("empty.jsonl", "", "pairs", ": empty file: no rows"),
    ("blank.jsonl", "\n\n", "pairs", ": empty file: no rows"),
    (
        "data.tsv",
        "prompt\tchosen\trejected\n",
        "pairs",
        ": unknown file format (accepted: .jsonl.gz, .ndjson.gz, .json.gz, .csv.gz, .jsonl, .ndjson, .json, .parquet, .csv)",
    ),
    ("data.csv", "prompt,chosen,rejected\n", "pairs", ": empty file: no rows"),
    ("bad_array.json", '[{"prompt": "a"}, 3]', "pairs", ": row 1: expected an object, got number"),
    (
        "bad_doc.json",
        '{"prompt": "a",\n "chosen": }',
        "pairs",
        ":2: malformed JSON (Expecting value at column 12)",
    ),
    (
        "hh_bad.jsonl",
        lines({"chosen": "\n\nHuman: hi\n\nAssistant: yo", "rejected": "just text"}),
        "pairs",
        ":1: field 'rejected': not a Human/Assistant transcript (expected '\\n\\nHuman: ...\\n\\nAssistant: ...')",
    ),
    (
        "uf_no_instruction.jsonl",
        lines(uf_row(), {k: v for k, v in uf_row().items() if k != "instruction"}),
        "ultrafeedback",
        ":2: field 'instruction': missing required field",
    ),
    (
        "uf_instruction_type.jsonl",
        lines(uf_row(instruction=7)),
        "ultrafeedback",
        ":1: field 'instruction': expected a string, got int64",
    ),
    (
        "uf_score_type.jsonl",
        lines(uf_row(), uf_row(completions=[{"model": "m", "response": "x", "overall_score": [1]}])),
        "ultrafeedback",
        ":2: field 'completions[].overall_score': expected number (as in earlier rows), got list",
    ),
    (
        "uf_no_response.jsonl",
        lines(uf_row(completions=[{"model": "m", "overall_score": 1.0}])),
        "ultrafeedback",
        ":1: field 'completions[].response': missing required field",
    ),
    (
        "uf_completions_type.jsonl",
        lines(uf_row(completions="oops")),
        "ultrafeedback",
        ":1: field 'completions': expected a list of objects, got string",
    ),
]


@pytest.mark.parametrize("name,content,command,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_file(tmp_path, name, content, command, expected):
    path = tmp_path / name
    path.write_text(content)
    args = (
        ["build", "pairs", str(path)]
        if command == "pairs"
        else ["build", "ultrafeedback", "--from", str(path)]
    )
    result, store = run_cli(tmp_path, *args)
    assert_one_line_error(result, store, f"{path}{expected}")


def test_bad_line_in_gz_and_folder(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.jsonl").write_text(lines(GOOD))
    with gzip.open(folder / "b.jsonl.gz", "wt") as fh:
        fh.write(lines(GOOD, GOOD, "{oops"))
    result, store = run_cli(tmp_path, "build", "pairs", str(folder))
    assert_one_line_error(
        result,
        store,
        f"{folder / 'b.jsonl.gz'}:3: malformed JSON (Expecting property name enclosed in double quotes at column 2)",
    )


def test_missing_path_and_bad_options(tmp_path):
    result, store = run_cli(tmp_path, "build", "pairs", str(tmp_path / "nope.jsonl"))
    assert_one_line_error(
        result, store, f"{tmp_path / 'nope.jsonl'}: no such file or folder (nor a hub id like owner/name)"
    )
    good = tmp_path / "good.jsonl"
    good.write_text(lines(GOOD))
    # Choices are checked by the command line before any work: exit 2, the choices listed.
    result, store = run_cli(tmp_path, "build", "pairs", str(good), "--input-format", "csv")
    assert_bad_choice(result, store, "'csv' is not one of 'auto', 'flat', 'conversational', 'hh-rlhf'")
    result, store = run_cli(tmp_path, "build", "pairs", str(good), "--chosen-score-col", "score")
    assert_one_line_error(result, store, f"{good}: field 'score': missing column named by an option")
    result, store = run_cli(tmp_path, "build", "ultrafeedback", "--from", str(good), "--pairing", "random")
    assert_bad_choice(
        result,
        store,
        "'random' is not one of 'top-vs-rest', 'best-vs-worst', 'best-vs-random', 'all-ordered'",
    )


def test_unusable_rows_are_counted_not_fatal(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        lines(GOOD, {**GOOD, "chosen": "  "}, {**GOOD, "rejected": "Hi!"}, {**GOOD, "prompt": ""})
    )
    result, store = run_cli(tmp_path, "build", "pairs", str(path))
    assert result.exit_code == 0, result.output
    assert "1 pairs from 4 rows" in result.stdout
    assert "empty_prompt=1, empty_text=1, identical_text=1" in result.stdout
