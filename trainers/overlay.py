"""`write_runs_report(run_dirs, out_html)`: several training runs on one page (curriculum against a
shuffled or plain control, say): their per-step curves overlaid with each run's stage boundaries,
learning rate and grad norm per step, held-out accuracy per stage with Wilson 95% intervals, the
`eval run` comparison table against the first run, and a plain warning when the held-out set (or an
eval suite) is too small for the runs' differences to mean anything.

The single-run report (`trainers.report`) draws its learning-rate / grad-norm panel and its held-out
warning with the functions here too (it imports this module; this module never imports it).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from prefcurate.errors import ConfigError, PrefcurateError
from prefcurate.explore.panels import wilson
from prefcurate.extras import require

# A held-out accuracy whose 95% interval is wider than +-this cannot separate runs that differ by a few
# points (curriculum effects reported in the papers are 1-5 points); 0.05 needs ~385 pairs at 50%.
HALF_WIDTH_WARN = 0.05
STEP_PANELS = (
    ("loss", "DPO loss"),
    ("rewards_margins", "reward margin (chosen - rejected)"),
    ("rewards_accuracies", "reward accuracy (train batches)"),
)
OPTIMIZER_PANELS = (("learning_rate", "learning rate"), ("grad_norm", "grad norm (before clipping)"))
# Runs often coincide (same schedule, same first stage): a line style and marker each keep them visible.
STYLES = (("-", "o"), ("--", "s"), ("-.", "^"), (":", "D"))


@dataclass
class RunData:
    """One run folder's record: run.json and the rows of metrics.parquet."""

    folder: Path
    name: str
    schedule: str
    meta: dict[str, Any]
    steps: list[dict[str, Any]]
    evals: list[dict[str, Any]]

    @property
    def holdout_pairs(self) -> int:
        return int(self.meta.get("holdout", {}).get("pairs") or 0)


def load_run(folder: str | Path) -> RunData:
    folder = Path(folder).expanduser()
    if not (folder / "run.json").is_file():
        raise ConfigError(
            f"{folder} is not a training run folder (no run.json; see `prefcurate train --out`)"
        )
    metrics = folder / "metrics.parquet"
    if not metrics.is_file():
        raise PrefcurateError(
            f"{folder} is not a finished training run (no metrics.parquet; see `prefcurate train`)"
        )
    meta = json.loads((folder / "run.json").read_text())
    rows = pq.read_table(metrics).to_pylist()
    return RunData(
        folder,
        str(meta.get("name") or folder.name),
        str(meta.get("config", {}).get("schedule", "?")),
        meta,
        [r for r in rows if r["kind"] == "step"],
        [r for r in rows if r["kind"] == "eval"],
    )


def holdout_warning(pairs: int) -> str:
    """A sentence when `pairs` held-out pairs are too few to tell runs apart; '' when they are enough."""
    if pairs <= 0:
        return "No held-out pairs: the runs were not evaluated (give `train --holdout` or run `prefcurate split`)."
    low, high = wilson(pairs // 2, pairs)
    half = (high - low) / 2
    if half <= HALF_WIDTH_WARN:
        return ""
    return (
        f"Held-out set too small to tell anything: with {pairs} pairs a held-out accuracy near 50% has a "
        f"95% interval of about ±{half:.2f} (Wilson), so runs whose accuracies differ by less than that "
        f"cannot be told apart; about {_pairs_for(HALF_WIDTH_WARN)} pairs give ±{HALF_WIDTH_WARN:.2f}."
    )


def _pairs_for(half_width: float) -> int:
    n = 1
    while True:
        low, high = wilson(n // 2, n)
        if (high - low) / 2 <= half_width:
            return n
        n = max(n + 1, int(n * 1.05))


def png(fig: Any) -> str:
    """A figure as base64 PNG, for an <img> that needs no file beside the page."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _plt() -> Any:
    matplotlib = require("matplotlib", "the run report")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _boundaries(run: RunData) -> list[int]:
    """Global steps after which a stage ended (all but the last stage)."""
    last: dict[int, int] = {}
    for row in run.steps:
        last[row["stage"]] = max(last.get(row["stage"], 0), row["global_step"])
    return [last[s] for s in sorted(last)][:-1]


def _style(i: int) -> dict[str, Any]:
    line, marker = STYLES[i % len(STYLES)]
    return {"color": f"C{i}", "linestyle": line, "marker": marker}


def _series(ax: Any, run: RunData, column: str, i: int, label: str) -> bool:
    points = [(r["global_step"], r[column]) for r in run.steps if r.get(column) is not None]
    points = [(x, y) for x, y in points if math.isfinite(y)]
    if not points:
        return False
    xs, ys = zip(*points, strict=True)
    style = _style(i)
    if len(xs) >= 40:
        style["marker"] = None
    ax.plot(xs, ys, linewidth=1.3, markersize=3.5, label=label, **style)
    for b in _boundaries(run):
        ax.axvline(b + 0.5, color=style["color"], linestyle=":", linewidth=1, alpha=0.7)
    return True


def step_figure(plt: Any, runs: list[RunData], panels: tuple[tuple[str, str], ...]) -> Any:
    """One panel per metric, one line per run against the global step; dotted lines = stage ends."""
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 0.6, 3.5), squeeze=False)
    for ax, (column, heading) in zip(axes[0], panels, strict=True):
        drawn = False
        for i, run in enumerate(runs):
            drawn |= _series(ax, run, column, i, f"{run.name} ({run.schedule})")
        if not drawn:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(heading, fontsize=10)
        ax.set_xlabel("optimizer step (whole run)", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    handles, labels = axes[0][0].get_legend_handles_labels()
    if len(runs) > 1 and handles:  # above the panels, clear of their titles
        fig.legend(
            handles, labels, loc="lower center", ncol=min(4, len(runs)), fontsize=8, bbox_to_anchor=(0.5, 1.0)
        )
    return fig


def holdout_figure(plt: Any, runs: list[RunData]) -> Any | None:
    """Held-out implicit-reward accuracy (Wilson 95%) and mean gamma at the end of each stage."""
    if not any(r.evals for r in runs):
        return None
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    span = max((e["global_step"] for r in runs for e in r.evals), default=1) or 1
    for i, run in enumerate(runs):
        # runs evaluated at the same step are drawn side by side, not on top of each other
        dodge = (i - (len(runs) - 1) / 2) * 0.012 * span
        evals = sorted(run.evals, key=lambda r: r["global_step"])
        acc = [e for e in evals if e.get("holdout_accuracy") is not None]
        if acc:
            xs = [e["global_step"] + dodge for e in acc]
            ys = [e["holdout_accuracy"] for e in acc]
            n = [int(e.get("holdout_pairs") or run.holdout_pairs) for e in acc]
            bounds = [wilson(round(y * k), k) for y, k in zip(ys, n, strict=True)]
            err = [
                [max(0.0, y - lo) for y, (lo, _) in zip(ys, bounds, strict=True)],
                [max(0.0, hi - y) for y, (_, hi) in zip(ys, bounds, strict=True)],
            ]
            axes[0].errorbar(xs, ys, yerr=err, capsize=3, label=run.name, **_style(i))
        gam = [e for e in evals if e.get("holdout_gamma") is not None]
        axes[1].plot(
            [e["global_step"] for e in gam],
            [e["holdout_gamma"] for e in gam],
            label=run.name,
            **_style(i),
        )
    axes[0].axhline(0.5, color="0.6", linestyle="--", linewidth=1)
    axes[0].set_ylim(-0.02, 1.12)  # headroom: intervals end at 1
    axes[0].set_title("held-out implicit-reward accuracy vs the starting model (Wilson 95%)", fontsize=9)
    axes[1].set_title("held-out mean gamma = log pi(y_w|x) - log pi(y_l|x)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("optimizer step at the end of the stage (0 = starting model)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _runs_table(runs: list[RunData]) -> str:
    head = (
        "<tr><th class='l'>run</th><th class='l'>schedule</th><th>stages</th><th>steps</th><th>pairs</th>"
        "<th>held-out pairs</th><th>final held-out acc.</th><th>95% interval</th><th>final gamma</th></tr>"
    )
    body = []
    for run in runs:
        stages = run.meta.get("stages", [])
        last = max(run.evals, key=lambda r: r["global_step"], default=None)
        acc = None if last is None else last.get("holdout_accuracy")
        interval = "-"
        if acc is not None and run.holdout_pairs:
            lo, hi = wilson(round(acc * run.holdout_pairs), run.holdout_pairs)
            interval = f"[{lo:.3f}, {hi:.3f}]"
        body.append(
            f"<tr><td class='l'>{html.escape(run.name)}</td><td class='l'>{html.escape(run.schedule)}</td>"
            f"<td>{len(stages)}</td><td>{max((r['global_step'] for r in run.steps), default=0)}</td>"
            f"<td>{sum(int(s.get('pairs') or 0) for s in stages)}</td><td>{run.holdout_pairs}</td>"
            f"<td>{_cell(acc)}</td><td>{interval}</td><td>{_cell(None if last is None else last.get('holdout_gamma'))}</td></tr>"
        )
    return f"<table id='runs'>{head}{''.join(body)}</table>"


def _eval_row(r: dict[str, Any]) -> str:
    diff = "-"
    if r["diff"] is not None:
        diff = f"{r['diff']:+.3f} [{r['diff_low']:+.3f}, {r['diff_high']:+.3f}]"
    cells = [
        ("l", r["suite"]),
        ("l", r["arm"]),
        ("l", r["stage"]),
        ("", _cell(r["step"])),
        ("l", r["metric"]),
        ("", r["n"]),
        ("", f"{r['value']:.3f}"),
        ("", f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]"),
        ("", diff),
        ("", _cell(r["p_holm"])),
        ("l", r["verdict"]),
        ("l", r["flag"]),
    ]
    return "<tr>" + "".join(f"<td class='{c}'>{html.escape(str(v))}</td>" for c, v in cells) + "</tr>"


def eval_table(runs: list[RunData]) -> str:
    """`eval run` results of every run, compared with the first run's at the same global step."""
    from prefcurate.evaluate.compare import compare

    suites = sorted({p.name for run in runs for p in (run.folder / "evals").glob("*") if p.is_dir()})
    rows: list[dict[str, Any]] = []
    for suite in suites:
        folders: list[str | Path] = [
            run.folder / "evals" / suite
            for run in runs
            if any((run.folder / "evals" / suite).glob("*/summary.json"))
        ]
        if folders:
            control = (
                runs[0].name if (runs[0].folder / "evals" / suite) in folders and len(folders) > 1 else None
            )
            rows += compare(folders, control=control, n_resamples=2000)
    if not rows:
        return ""
    head = (
        "<tr><th class='l'>suite</th><th class='l'>run</th><th class='l'>stage</th><th>step</th><th class='l'>metric</th>"
        "<th>problems</th><th>value</th><th>95% CI</th><th>diff to first run</th><th>p (Holm)</th>"
        "<th class='l'>verdict</th><th class='l'>flag</th></tr>"
    )
    body = "".join(_eval_row(r) for r in rows)
    smallest = min(r["n"] for r in rows)
    low, high = wilson(smallest // 2, smallest)
    note = ""
    if smallest and (high - low) / 2 > HALF_WIDTH_WARN:
        note = (
            f"<p class='warn'>Some suites have only {smallest} problems: a pass rate near 50% then has a 95% "
            f"interval of about ±{(high - low) / 2:.2f}; read the verdicts, not the point values.</p>"
        )
    return f"<h2>Outcome evaluation (eval run)</h2><table id='evals'>{head}{body}</table>{note}"


_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222}img{max-width:100%}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.warn{background:#fff4d6;border-left:4px solid #e0a800;padding:6px 10px}
figcaption{font-size:12px;color:#555}h2{font-size:17px;border-bottom:1px solid #ddd;padding-bottom:4px}"""


def write_runs_report(run_dirs: list[str | Path], out_html: str | Path) -> Path:
    """Render several run folders (the first is the control of the eval table) into `out_html`."""
    if not run_dirs:
        raise ConfigError("give at least one training run folder")
    runs = [load_run(d) for d in run_dirs]
    names = [r.name for r in runs]
    if len(set(names)) < len(names):
        raise ConfigError(f"run names repeat ({', '.join(names)}): give each run folder once")
    plt = _plt()
    figures: list[tuple[str, str, str, Any]] = [
        (
            "run-steps",
            "Training curves, overlaid",
            "One colour per run; dotted vertical lines mark where that run's stages end.",
            step_figure(plt, runs, STEP_PANELS),
        ),
        (
            "run-optimizer",
            "Learning rate and grad norm",
            "As TRL logged them each step (the schedule restarts every stage).",
            step_figure(plt, runs, OPTIMIZER_PANELS),
        ),
    ]
    held = holdout_figure(plt, runs)
    if held is not None:
        figures.append(
            (
                "run-holdout",
                "Held-out evaluation per stage",
                "Accuracy: share of held-out pairs whose implicit reward prefers the chosen answer.",
                held,
            )
        )
    images = []
    for fid, heading, caption, fig in figures:
        images.append(
            f"<h2>{html.escape(heading)}</h2><figure id='{fid}'><img alt='{html.escape(heading)}' "
            f"src='data:image/png;base64,{png(fig)}'><figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        plt.close(fig)
    warnings = sorted({w for w in (holdout_warning(r.holdout_pairs) for r in runs) if w})
    sizes = {r.holdout_pairs for r in runs}
    if len(sizes) > 1:
        warnings.append(
            f"The runs were evaluated on held-out sets of different sizes ({', '.join(map(str, sorted(sizes)))} pairs)."
        )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>runs {html.escape(', '.join(names))}</title>"
        f"<style>{_CSS}</style></head><body><h1>Training runs: {html.escape(', '.join(names))}</h1>"
        + "".join(f"<p class='warn holdout-warning'>{html.escape(w)}</p>" for w in warnings)
        + _runs_table(runs)
        + "".join(images)
        + eval_table(runs)
        + "</body></html>\n"
    )
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
