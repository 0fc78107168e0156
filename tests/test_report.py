"""The visual report: a self-contained HTML page with the expected figures and tables, for a bucket set,
a dataset, and (delegated) a training run."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from prefcurate.cli import app
from prefcurate.errors import ConfigError
from prefcurate.explore.page import write_report
from prefcurate.explore.report import load_report_data, spearman
from prefcurate.store import Store

from .helpers import rich_store

pytest.importorskip("matplotlib")
runner = CliRunner()
PNG = re.compile(r"<figure id='([\w-]+)'><img alt='[^']*' src='data:image/png;base64,([A-Za-z0-9+/=]+)'>")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return rich_store(tmp_path_factory.mktemp("report") / "store")


def figures(text: str) -> dict[str, bytes]:
    return {fid: base64.b64decode(b64) for fid, b64 in PNG.findall(text)}


def test_spearman_with_ties() -> None:
    # ties take their average rank: ranks [3.5, 1, 3.5, 2] against [1, 2, 3, 4] give rho = -0.2108
    assert spearman(np.array([3.0, 1.0, 3.0, 2.0]), np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(
        -0.2108, abs=1e-4
    )
    x = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    assert spearman(x, np.array([10.0, 20.0, 30.0, 40.0, 1.0])) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    assert spearman(np.array([1.0, 2.0]), np.array([2.0, 1.0])) is None  # too few pairs
    stats = pytest.importorskip("scipy.stats")  # the reference implementation agrees, ties included
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 6, 200).astype(float), rng.normal(size=200)
    b[::7] = np.nan
    ok = ~np.isnan(b)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a[ok], b[ok]).statistic, abs=1e-12)


def test_bucket_set_report_has_every_figure_and_table(store: Store, tmp_path: Path) -> None:
    out = write_report(store, "uf-cur", tmp_path / "r" / "report.html")
    text = out.read_text()
    figs = figures(text)
    assert list(figs) == [
        "signal-histograms",
        "signal-scatter",
        "signal-correlation",
        "sources",
        "length-bias",
        "signal-ecdf",
        "source-accuracy",
        "length-value",
    ]
    for png in figs.values():
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    assert "src='http" not in text and "<script" not in text  # self-contained
    assert "<h1>prefcurate report: bucket set buckets/uf-cur/v1</h1>" in text
    assert (
        "strategy <b>quantile</b> by <b>score_gap_v1__gap</b>, easy = high; bucket 0 is the easiest." in text
    )
    # the buckets table from the manifest, the drops table from the pairs and bucket manifests
    m = store.get("buckets", "uf-cur").manifest
    b0 = m["buckets"][0]
    assert f'<tr><td>0</td><td>21</td><td class="l">{b0["label"]}</td>' in text
    drops = re.search(r'<table id="drops">(.*?)</table>', text).group(1)
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", drops)
    assert cells == [
        "pairs v1 (build)",
        "tie",
        "5",
        "pairs v1 (build)",
        "empty_text",
        "1",
        "uf-cur v1 (partition)",
        "holdout",
        "9",
        "uf-cur v1 (partition)",
        "null_signal",
        "0",
    ]
    # score gap against log-prob margin, with their rank correlation in the title
    data = load_report_data(store, "uf-cur")
    rho = spearman(
        np.asarray(data.rows.column("score_gap_v1__gap").to_pylist(), dtype=float),
        np.asarray(data.rows.column("logprob_margin_v1__margin").to_pylist(), dtype=float),
    )
    assert data.rows.num_rows == 63 and 0.9 < rho < 1.0
    assert "<h2>score_gap_v1__gap against logprob_margin_v1__margin</h2>" in text


def test_dataset_report_groups_by_source(store: Store, tmp_path: Path) -> None:
    text = write_report(store, "uf", tmp_path / "uf.html").read_text()
    assert list(figures(text)) == [
        "signal-histograms",
        "signal-scatter",
        "signal-correlation",
        "sources",
        "length-bias",
        "signal-ecdf",
        "source-accuracy",
        "length-value",
    ]
    assert "<h1>prefcurate report: dataset pairs/uf/v1</h1>" in text and "<h2>Buckets</h2>" not in text
    assert (
        "72 pairs; inputs: pairs/uf/v1, scores/uf/logprob_margin_v1/v1, scores/uf/reward_margin_v1/v1, scores/uf/score_gap_v1/v1"
        in text
    )
    data = load_report_data(store, "uf")
    assert data.bucket_ref is None and data.rows.num_rows == 72


def test_report_cli_and_errors(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "cli.html"
    res = runner.invoke(
        app, ["report", "uf-cur", "--out", str(out), "--store", str(store.root)], catch_exceptions=False
    )
    assert res.exit_code == 0
    assert res.stdout == f"Wrote {out} ({out.stat().st_size:,} bytes)\n"
    with pytest.raises(
        ConfigError, match=r"^'nope' is neither a dataset nor a bucket set in store .* \(have: uf, uf-cur\)$"
    ):
        write_report(store, "nope", tmp_path / "x.html")
    # a training run folder is handed to the trainers' run report
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    res = runner.invoke(app, ["report", str(run), "--out", str(tmp_path / "run.html")])
    assert res.exit_code == 1
    assert (
        res.stderr
        == f"Error: {run} is not a finished training run (no metrics.parquet; see `prefcurate train`)\n"
    )


def test_small_sample_panels_accuracy_intervals_and_examples(store: Store, tmp_path: Path) -> None:
    from prefcurate.explore.panels import wilson
    from prefcurate.explore.stats import accuracy

    text = write_report(store, "uf-cur", tmp_path / "r.html").read_text()
    # Wilson intervals match `prefcurate stats accuracy` (the SQL), and the caption gives the counts
    table = accuracy(store, "uf", "logprob_margin_v1__correct").to_pylist()
    for row in table:
        n = row["correct"] + row["wrong"] + row["ties"]
        assert wilson(row["correct"], n) == pytest.approx((row["ci_low"], row["ci_high"]), abs=1e-9)
    caption = re.search(r"id='source-accuracy'.*?<figcaption>(.*?)</figcaption>", text, re.S).group(1)
    assert "logprob_margin_v1__correct alpha: " in caption and "reward_margin_v1__correct" in caption
    # a few example pairs per bucket, easiest first, with their texts
    examples = re.search(r"<table id='examples'>(.*?)</table>", text, re.S).group(1)
    first = store.get("buckets", "uf-cur").read().to_pylist()[0]
    assert examples.count("<tr><td>0</td>") == 2 and examples.count("<tr><td>2</td>") == 2
    assert " ".join(first["rejected"].split()) in examples  # whitespace folded for the table


def test_a_length_ordering_is_called_one(tmp_path: Path) -> None:
    """A signal that is the length difference itself: the report says the curriculum is a length ordering."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from prefcurate.bucket.partition import PartitionSpec, partition

    from .helpers import make_pairs, publish_dataset, publish_signal

    store = Store(tmp_path / "s")
    pairs = make_pairs()
    publish_dataset(store, pairs)
    diff = pc.subtract(pc.utf8_length(pairs.column("chosen")), pc.utf8_length(pairs.column("rejected")))
    publish_signal(
        store,
        "uf",
        "len_v1",
        pa.table({"pair_id": pairs.column("pair_id"), "len_v1__d": diff.cast(pa.float64())}),
    )
    partition(store, PartitionSpec("uf", "by-len", by="len_v1__d", buckets=3))
    text = write_report(store, "by-len", tmp_path / "r.html").read_text()
    caption = re.search(r"id='length-value'.*?<figcaption>(.*?)</figcaption>", text, re.S).group(1)
    assert "Warning: len_v1__d has a rank correlation of +1.00 with the length difference" in caption
    assert "mostly a length ordering" in caption


def test_the_bucket_report_renders_in_chromium(store: Store, tmp_path: Path) -> None:
    """What a browser shows: every panel's image decodes and fills the page (no blank or broken images)."""
    from .helpers import chromium_screenshot

    page = write_report(store, "uf-cur", tmp_path / "r.html")
    pixels = chromium_screenshot(page, tmp_path / "r.png", height=2400)
    ink = (pixels[..., :3].mean(axis=2) < 0.9).mean(axis=1)  # share of non-white pixels per screen row
    assert (ink > 0.02).sum() > 800  # ~1,050 rendered; ~600 with the images broken (text and tables only)
