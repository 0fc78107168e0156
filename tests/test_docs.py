"""docs/cli.md is generated from the Typer app; it must match the code (run `make docs` to refresh)."""

from __future__ import annotations

from pathlib import Path

from prefcurate.cli.docs import render_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_cli_reference_is_current() -> None:
    assert (DOCS / "cli.md").read_text() == render_markdown(), "docs/cli.md is stale: run `make docs`"


def test_reference_lists_every_command_and_its_choices() -> None:
    text = render_markdown()
    for command in ("build pairs", "score", "partition", "export", "train", "sandbox run", "stats accuracy"):
        assert f"`prefcurate {command}`" in text
    assert "`quantile` \\| `percentiles` \\| `thresholds` \\| `source` \\| `random`" in text
    assert "`--layout`" in text and "`--input-format`" in text
