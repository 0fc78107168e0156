"""The report for training runs: several real runs (tiny model, a few steps) overlaid on one page with
stage boundaries, learning rate and grad norm, held-out accuracy with intervals, the eval table
against the first run, and the warning that a small held-out set cannot tell runs apart."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("matplotlib")

import trainers  # noqa: E402
from prefcurate.cli import app  # noqa: E402
from trainers.overlay import HALF_WIDTH_WARN, holdout_warning  # noqa: E402

TOPICS = ["rivers", "bread", "chess", "owls", "tides", "glass", "maps", "bees"]
FIGURE = re.compile(r"<figure id='([\w-]+)'><img alt='[^']*' src='data:image/png;base64,([A-Za-z0-9+/=]+)'>")


def pairs(start: int, n: int) -> pa.Table:
    rows = []
    for i in range(start, start + n):
        topic = TOPICS[i % len(TOPICS)]
        rows.append(
            {
                "pair_id": f"pair-{i:03d}",
                "prompt_id": f"prompt-{i:03d}",
                "source": "test",
                "prompt": [{"role": "user", "content": f"One fact about {topic} ({i})?"}],
                "chosen": [{"role": "assistant", "content": f"A true fact about {topic}."}],
                "rejected": [{"role": "assistant", "content": f"{topic} no idea " * (1 + i % 3)}],
            }
        )
    return pa.Table.from_pylist(rows)


def write_eval(folder: Path, run: str, stage: str, step: int, solved: list[int]) -> None:
    """An `eval run` stage folder in the format `eval code` writes (summary.json + tasks.jsonl)."""
    folder.mkdir(parents=True)
    tags = {"arm": run, "stage": stage, "step": step}
    (folder / "summary.json").write_text(json.dumps({"suite": "humaneval", "tags": tags}))
    (folder / "tasks.jsonl").write_text(
        "".join(json.dumps({"task_id": f"T/{i}", "n": 1, "c": c}) + "\n" for i, c in enumerate(solved))
    )


@pytest.fixture(scope="module")
def runs(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    buckets = [pairs(0, 4), pairs(4, 4)]
    shuffled = [pa.concat_tables([buckets[0].slice(0, 2), buckets[1].slice(0, 2)]), buckets[0].slice(2, 2)]
    shuffled[1] = pa.concat_tables([shuffled[1], buckets[1].slice(2, 2)])
    common = dict(
        model=tiny_model,
        learning_rate=5e-3,
        batch_size=2,
        max_length=48,
        dtype="fp32",
        publish=False,
        order="sequential",
        holdout=pairs(20, 6),
    )
    out = []
    for name, schedule, data in (
        ("curriculum", "curriculum", buckets),
        ("random", "curriculum", shuffled),
        ("plain", "plain", buckets),
    ):
        trainers.run(data, root / name, schedule=schedule, **common)  # type: ignore[arg-type]
        out.append(root / name)
    # curriculum solves 2 tasks the plain run misses at the same global step
    write_eval(
        root / "curriculum" / "evals" / "humaneval" / "stage-2", "curriculum", "stage-2", 4, [1, 1, 1, 0]
    )
    write_eval(root / "plain" / "evals" / "humaneval" / "stage-1", "plain", "stage-1", 4, [1, 0, 0, 0])
    return out


def test_runs_overlaid_with_stages_optimizer_holdout_and_evals(runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "runs.html"
    res = CliRunner().invoke(app, ["report", *map(str, runs), "--out", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert res.stdout == f"Wrote {out} (3 training runs overlaid)\n"
    text = out.read_text()
    figures = dict(FIGURE.findall(text))
    assert list(figures) == ["run-steps", "run-optimizer", "run-holdout"]
    for b64 in figures.values():
        assert base64.b64decode(b64).startswith(b"\x89PNG") and len(b64) > 10_000
    assert "<script" not in text and "src='http" not in text
    # one table row per run, with the held-out accuracy of the last stage and its Wilson interval
    table = re.search(r"<table id='runs'>(.*?)</table>", text, re.S).group(1)
    assert [re.findall(r"<td class='l'>([^<]*)</td>", row)[:2] for row in table.split("</tr>")[1:-1]] == [
        ["curriculum", "curriculum"],
        ["random", "curriculum"],
        ["plain", "plain"],
    ]
    final = pq.read_table(runs[0] / "metrics.parquet").to_pylist()[-1]
    assert final["kind"] == "eval" and f"{final['holdout_accuracy']:.4g}" in table
    # the logged learning rate and grad norm are what the optimizer panel draws: present every step
    steps = [r for r in pq.read_table(runs[2] / "metrics.parquet").to_pylist() if r["kind"] == "step"]
    assert steps and all(r["learning_rate"] is not None and r["grad_norm"] is not None for r in steps)
    # 6 held-out pairs: the page says they cannot tell the runs apart
    assert text.count("class='warn holdout-warning'") == 1
    assert "Held-out set too small to tell anything: with 6 pairs" in text
    # the eval table compares each run with the first one at the same global step
    evals = re.search(r"<table id='evals'>(.*?)</table>", text, re.S).group(1)
    rows = [re.findall(r"<td class='[^']*'>([^<]*)</td>", r) for r in evals.split("</tr>")[1:-1]]
    assert [(r[1], r[2], r[3], r[6]) for r in rows] == [
        ("curriculum", "stage-2", "4", "0.750"),
        ("plain", "stage-1", "4", "0.250"),
    ]
    assert rows[1][8].startswith("-0.500") and rows[1][10].startswith("cannot tell")
    assert "Some suites have only 4 problems" in text


def test_one_run_report_has_the_optimizer_panel_and_warning(runs: list[Path], tmp_path: Path) -> None:
    page = trainers.write_run_report(runs[0], tmp_path / "one.html").read_text()
    assert page.count("data:image/png;base64,") == 4  # steps, optimizer, held-out, eval plot
    assert "Learning rate and grad norm" in page and "Held-out set too small" in page


def test_holdout_warning_threshold_and_mixed_targets(runs: list[Path], tmp_path: Path) -> None:
    assert "with 100 pairs" in holdout_warning(100)
    assert holdout_warning(400) == ""  # Wilson half-width at 50% is 0.0488 <= 0.05
    assert HALF_WIDTH_WARN == 0.05 and "No held-out pairs" in holdout_warning(0)
    res = CliRunner().invoke(app, ["report", str(runs[0]), "uf", "--out", str(tmp_path / "x.html")])
    assert res.exit_code == 1
    assert res.stderr == (
        "Error: several targets are overlaid only as training runs; not a run folder (no run.json): uf\n"
    )


def test_the_runs_page_renders_in_chromium(runs: list[Path], tmp_path: Path) -> None:
    """What a browser shows: the images decode and fill the page (not a blank or broken page)."""
    from .helpers import chromium_screenshot

    page = trainers.write_runs_report(runs, tmp_path / "runs.html")
    pixels = chromium_screenshot(page, tmp_path / "runs.png")
    assert pixels.shape[:2] == (1600, 1280)
    ink = (pixels[..., :3].mean(axis=2) < 0.9).mean(axis=1)  # share of non-white pixels per screen row
    assert (ink > 0.02).sum() > 600  # rows of plots, axes and text: not an empty or broken page
    warning = (abs(pixels[..., 0] - 1.0) < 0.02) & (abs(pixels[..., 2] - 0.84) < 0.03)  # the #fff4d6 box
    assert warning[:300].sum() > 10_000  # the held-out warning box is drawn near the top
