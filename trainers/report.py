"""`write_run_report(run_dir, out_html)`: one self-contained HTML page (PNG plots embedded as base64)
for a training run: loss, implicit rewards, margins and reward accuracy per step with stage
boundaries, learning rate and grad norm per step, the per-stage held-out accuracy and mean gamma (with a
warning when the held-out set is too small to tell anything), and the `eval run` results."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from prefcurate.errors import PrefcurateError
from prefcurate.extras import require

from .overlay import OPTIMIZER_PANELS, RunData, holdout_warning, step_figure
from .overlay import png as _png


def _stage_lines(ax: Any, steps: list[dict[str, Any]]) -> None:
    seen: dict[int, int] = {}
    for row in steps:
        seen.setdefault(row["stage"], row["global_step"])
    for stage, first in sorted(seen.items()):
        if stage > 1:
            ax.axvline(first - 0.5, color="0.6", linestyle="--", linewidth=1)
        ax.text(
            first,
            1.0,
            f" stage {stage}",
            transform=ax.get_xaxis_transform(),
            va="top",
            fontsize=8,
            color="0.35",
        )


def write_run_report(run_dir: str | Path, out_html: str | Path) -> Path:
    """Render RUN_DIR's metrics into `out_html`; returns the path written."""
    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.parquet"
    if not metrics_path.is_file():
        raise PrefcurateError(
            f"{run_dir} is not a finished training run (no metrics.parquet; see `prefcurate train`)"
        )
    matplotlib = require("matplotlib", "the run report")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    rows = pq.read_table(metrics_path).to_pylist()
    steps = [r for r in rows if r["kind"] == "step"]
    evals = [r for r in rows if r["kind"] == "eval"]
    images: list[tuple[str, str]] = []

    panels = [
        ("loss", "DPO loss", [("loss", "loss")]),
        (
            "rewards",
            "implicit rewards (beta * log-ratio)",
            [("rewards_chosen", "chosen"), ("rewards_rejected", "rejected")],
        ),
        ("margins", "reward margin (chosen - rejected)", [("rewards_margins", "margin")]),
        (
            "accuracy",
            "reward accuracy (share of pairs with chosen > rejected)",
            [("rewards_accuracies", "accuracy")],
        ),
    ]
    if steps:
        fig, axes = plt.subplots(2, 2, figsize=(11, 6.5), sharex=True)
        x = [r["global_step"] for r in steps]
        for ax, (_, title, series) in zip(axes.flat, panels, strict=True):
            for column, label in series:
                ax.plot(
                    x,
                    [r[column] for r in steps],
                    marker="o" if len(x) < 40 else None,
                    markersize=3,
                    linewidth=1.2,
                    label=label,
                )
            ax.set_title(title, fontsize=10)
            ax.grid(alpha=0.3)
            _stage_lines(ax, steps)
            if len(series) > 1:
                ax.legend(fontsize=8)
        for ax in axes[1]:
            ax.set_xlabel("optimizer step (whole run)")
        fig.suptitle(
            f"training: {meta.get('name', run_dir.name)} ({meta.get('config', {}).get('schedule', '?')})"
        )
        images.append(("Per-step training metrics", _png(fig)))
        plt.close(fig)
    if steps:  # learning rate and grad norm as TRL logged them (the overlay report draws the same panel)
        this = RunData(run_dir, str(meta.get("name", run_dir.name)), "", meta, steps, evals)
        fig = step_figure(plt, [this], OPTIMIZER_PANELS)
        images.append(("Learning rate and grad norm", _png(fig)))
        plt.close(fig)
    if evals:
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
        stages = [r["stage"] for r in evals]
        axes[0].plot(stages, [r["holdout_gamma"] for r in evals], marker="o")
        axes[0].set_title("held-out mean gamma = log pi(y_w|x) - log pi(y_l|x)", fontsize=10)
        acc = [(r["stage"], r["holdout_accuracy"]) for r in evals if r["holdout_accuracy"] is not None]
        axes[1].plot([a for a, _ in acc], [b for _, b in acc], marker="o", color="tab:green")
        axes[1].axhline(0.5, color="0.6", linestyle="--", linewidth=1)
        axes[1].set_ylim(-0.02, 1.02)
        axes[1].set_title("held-out implicit-reward accuracy vs the starting model", fontsize=10)
        for ax in axes:
            ax.set_xlabel("stage (0 = starting model)")
            ax.set_xticks(stages)
            ax.grid(alpha=0.3)
        images.append(("Per-stage held-out evaluation", _png(fig)))
        plt.close(fig)

    stage_rows = meta.get("stages", [])
    table = "".join(
        f"<tr><td>{s['stage']}</td><td>{html.escape(','.join(map(str, s['buckets'])))}</td><td>{s['pairs']}</td>"
        f"<td>{s['steps']}</td><td>{html.escape(s['reference'])}</td><td>{html.escape(s['ref_logps'])}</td>"
        f"<td>{_fmt(s.get('final_loss'))}</td><td>{_fmt(s.get('holdout_accuracy'))}</td><td>{_fmt(s.get('holdout_gamma'))}</td></tr>"
        for s in stage_rows
    )
    config = html.escape(json.dumps(meta.get("config", {}), indent=1))
    body = "".join(
        f"<h2>{html.escape(t)}</h2><img alt='{html.escape(t)}' src='data:image/png;base64,{b}'>"
        for t, b in images
    )
    from prefcurate.evaluate.report import eval_section  # `eval run` results, when there are any

    warning = holdout_warning(int(meta.get("holdout", {}).get("pairs") or 0))
    if warning:
        body = f"<p class='warn holdout-warning'>{html.escape(warning)}</p>" + body

    body += eval_section(run_dir, plt, _png)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>run {html.escape(meta.get("name", run_dir.name))}</title>
<style>body{{font-family:sans-serif;max-width:1150px;margin:2em auto;color:#222}} img{{max-width:100%}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}} pre{{background:#f6f6f6;padding:8px}} .warn{{background:#fff4d6;border-left:4px solid #e0a800;padding:6px 10px}}</style>
</head><body><h1>Training run {html.escape(meta.get("name", run_dir.name))}</h1>
<p>schedule <b>{html.escape(str(meta.get("config", {}).get("schedule")))}</b>, buckets from {html.escape(str(meta.get("buckets_source")))},
held-out pairs: {html.escape(str(meta.get("holdout", {}).get("pairs")))}; starting model mean gamma {_fmt(meta.get("start_gamma"))}</p>
<table><tr><th>stage</th><th>buckets</th><th>pairs</th><th>steps</th><th>reference</th><th>ref log-probs</th><th>final loss</th>
<th>held-out acc.</th><th>held-out gamma</th></tr>{table}</table>{body}
<h2>Configuration</h2><pre>{config}</pre></body></html>"""
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return out


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"
