"""`prefcurate report` for a dataset or bucket set: the figures of `report` plus the `panels`, in one page."""

from __future__ import annotations

from pathlib import Path

from prefcurate.explore import panels
from prefcurate.explore.report import _Figures, load_report_data, render_html
from prefcurate.store import Store


def write_report(store: Store, target: str, out_html: str | Path) -> Path:
    """Render a dataset's or bucket set's report into `out_html`; returns the path written."""
    data = load_report_data(store, target)
    figs = _Figures(data)
    figs.histograms()
    figs.scatter()
    figs.sources()
    figs.lengths()
    panels.ecdf(figs)
    panels.source_accuracy(figs)
    panels.length_vs_value(figs)
    out_html = Path(out_html)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    out_html.write_text(render_html(data, figs.items, panels.examples_html(figs, store)), encoding="utf-8")
    return out_html
