"""The `eval` section of a run's report: the `eval compare` table of RUN_DIR/evals/<suite>/<stage>/
result folders and one plot per suite and metric across stages (value with its 95% interval)."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .compare import compare


def eval_rows(run_dir: Path, n_resamples: int = 2000) -> list[dict[str, Any]]:
    """Compare rows of every suite evaluated in the run (empty when `eval run` has not run)."""
    rows: list[dict[str, Any]] = []
    for suite_dir in sorted(p for p in (run_dir / "evals").glob("*") if p.is_dir()):
        if any(suite_dir.glob("*/summary.json")):
            rows.extend(compare([suite_dir], n_resamples=n_resamples))
    return rows


def eval_section(run_dir: Path, plt: Any, png: Callable[[Any], str]) -> str:
    """HTML: the table and the plots (empty string when the run has no evaluations)."""
    rows = eval_rows(run_dir)
    if not rows:
        return ""
    cells = "".join(
        f"<tr><td>{html.escape(r['suite'])}</td><td>{html.escape(r['stage'])}</td><td>{r['step']}</td>"
        f"<td>{html.escape(r['metric'])}</td><td>{r['n']}</td><td>{r['value']:.3f}</td>"
        f"<td>[{r['ci_low']:.3f}, {r['ci_high']:.3f}]</td></tr>"
        for r in sorted(rows, key=lambda r: (r["suite"], r["metric"], r["step"] or 0))
    )
    images = []
    for suite, metric in sorted({(r["suite"], r["metric"]) for r in rows}):
        sel = sorted(
            (r for r in rows if r["suite"] == suite and r["metric"] == metric), key=lambda r: r["step"] or 0
        )
        fig, ax = plt.subplots(figsize=(6, 3.2))
        steps = [r["step"] or 0 for r in sel]
        values = [r["value"] for r in sel]
        err = [
            [v - r["ci_low"] for v, r in zip(values, sel, strict=True)],
            [r["ci_high"] - v for v, r in zip(values, sel, strict=True)],
        ]
        ax.errorbar(steps, values, yerr=err, marker="o", capsize=3)
        for s, r in zip(steps, sel, strict=True):
            ax.annotate(r["stage"], (s, r["value"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xlabel("global step")
        ax.set_title(f"{suite}: {metric} with 95% bootstrap interval", fontsize=10)
        ax.grid(alpha=0.3)
        images.append(
            f"<img alt='{html.escape(suite)} {html.escape(metric)}' src='data:image/png;base64,{png(fig)}'>"
        )
        plt.close(fig)
    return (
        "<h2>Outcome evaluation (eval run)</h2><table><tr><th>suite</th><th>stage</th><th>step</th><th>metric</th>"
        f"<th>problems</th><th>value</th><th>95% CI</th></tr>{cells}</table>" + "".join(images)
    )
