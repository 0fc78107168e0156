"""Report panels that hold up at tens of pairs: each signal per bucket as an ECDF, per-source accuracy
of true/false signals with Wilson intervals, the bucketing value against completion length (with a
plain warning when the ordering is mostly a length ordering), and a few example pairs per bucket.

Each function takes the report's figure collector (`report._Figures`) and adds to it.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any

from prefcurate.extras import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from prefcurate.store import Store

    from .report import _Figures
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    np = lazy_module("numpy")
    pa = lazy_module("pyarrow")

MAX_ECDF = 6
LENGTH_RHO_WARN = 0.5  # |Spearman rho| of the bucketing value with the length difference that earns a warning
EXAMPLES_PER_GROUP = 2
EXCERPT = 160
Z95 = 1.959963984540054


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (the same formula as `prefcurate stats accuracy`)."""
    if n == 0:
        return math.nan, math.nan
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def is_flag(rows: pa.Table, col: str) -> bool:
    """A true/false signal (the report reads booleans as 0.0/1.0): every present value is 0 or 1."""
    if pa.types.is_boolean(rows.schema.field(col).type):
        return True
    from .report import _values

    v = _values(rows, col)
    present = v[~np.isnan(v)]
    return bool(present.size) and bool(np.isin(present, (0.0, 1.0)).all())


def _boolean_columns(rows: pa.Table, signals: list[str]) -> list[str]:
    return [c for c in signals if is_flag(rows, c)]


def ecdf(figs: _Figures) -> None:
    """One ECDF per group for each numeric signal: readable at 20 pairs, where a histogram is a barcode."""
    from .report import _values

    rows = figs.data.rows
    cols = [c for c in figs.pick(MAX_ECDF) if not is_flag(rows, c)]
    if not cols:
        return
    ncols = min(3, len(cols))
    nrows = (len(cols) + ncols - 1) // ncols
    fig, axes = figs.plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.1 * nrows), squeeze=False)
    for ax, col in zip(axes.flat, cols, strict=False):
        v = _values(rows, col)
        for g, color in zip(figs.groups, figs.colors, strict=True):
            d = np.sort(v[figs._mask(g) & ~np.isnan(v)])
            if d.size:
                ax.step(
                    d, np.arange(1, d.size + 1) / d.size, where="post", color=color, label=f"{g} (n={d.size})"
                )
        ax.set_title(col, fontsize=9)
        ax.set_ylabel("share of pairs <= x", fontsize=8)
        ax.grid(alpha=0.25)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(cols) :]:
        ax.axis("off")
    fig.tight_layout()
    figs.add(
        fig,
        "signal-ecdf",
        f"Each signal per {figs.group_name} (ECDF)",
        f"Share of a {figs.group_name}'s pairs at or below each value; curves that do not cross mean the "
        f"{figs.group_name}s are ordered by this signal. Readable at any number of pairs.",
    )


def source_accuracy(figs: _Figures) -> None:
    """Per-source accuracy of each true/false signal (e.g. logprob_margin_v1__correct), Wilson 95%."""
    rows = figs.data.rows
    cols = _boolean_columns(rows, figs.data.signals)
    sources = sorted({s for s in rows.column("source").to_pylist() if s is not None})
    if not cols or not sources:
        return
    src = np.asarray(rows.column("source").to_pylist(), dtype=object)
    fig, ax = figs.plt.subplots(figsize=(7.5, 0.45 * len(sources) * len(cols) + 1.8))
    y, labels, lines = 0.0, [], []
    for i, col in enumerate(cols):
        values = [None if v is None or v != v else bool(v) for v in rows.column(col).to_pylist()]
        for s in sources:
            got = [v for v, here in zip(values, src == s, strict=True) if here and v is not None]
            n, k = len(got), sum(bool(v) for v in got)
            low, high = wilson(k, n)
            if n:
                err = [[max(0.0, k / n - low)], [max(0.0, high - k / n)]]  # rounding at p = 0 or 1
                ax.errorbar(k / n, y, xerr=err, fmt="o", color=f"C{i}", capsize=3)
            labels.append((y, f"{s} (n={n})"))
            lines.append(f"{col} {s}: {k}/{n}")
            y += 1
        y += 0.5
    ax.set_yticks([p for p, _ in labels], [t for _, t in labels], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.axvline(0.5, color="0.5", linewidth=0.8, linestyle="--")
    ax.set_xlabel("accuracy (share of pairs whose signal says chosen > rejected)")
    ax.grid(axis="x", alpha=0.25)
    ax.set_title(", ".join(f"C{i}: {c}" for i, c in enumerate(cols)), fontsize=9)
    fig.tight_layout()
    figs.add(
        fig,
        "source-accuracy",
        "Accuracy per source, with 95% intervals",
        "Wilson 95% intervals; overlapping intervals cannot order two sources (sDPO orders sources by this). "
        + "; ".join(lines),
    )


def length_vs_value(figs: _Figures) -> None:
    """The bucketing value (or the log-prob margin) against chosen-minus-rejected length."""
    from .report import _values, spearman

    rows = figs.data.rows
    col: str | None
    if figs.data.bucket_ref is not None:
        col = "signal_value"
        label = figs.data.bucket_ref.manifest["spec"].get("by") or col
    else:
        col = next((c for c in ("logprob_margin_v1__margin", *figs.pick(1)) if c in rows.column_names), None)
        label = col
    if col is None or col not in rows.column_names:
        return
    x = _values(rows, "chosen_chars") - _values(rows, "rejected_chars")
    v = _values(rows, col)
    ok = ~(np.isnan(x) | np.isnan(v))
    if ok.sum() < 3:
        return
    rho = spearman(x, v)
    fig, ax = figs.plt.subplots(figsize=(6.2, 4.4))
    for g, color in zip(figs.groups, figs.colors, strict=True):
        m = ok & figs._mask(g)
        ax.scatter(x[m], v[m], s=12, alpha=0.7, color=color, label=f"{figs.group_name} {g}")
    ax.legend(fontsize=7)
    ax.set_xlabel("chosen - rejected length (characters)")
    ax.set_ylabel(str(label))
    ax.grid(alpha=0.25)
    rho_text = "n/a" if rho is None else f"{rho:+.2f}"
    ax.set_title(f"Spearman rho with length difference = {rho_text} ({int(ok.sum())} pairs)", fontsize=10)
    caption = "Does the difficulty signal measure length? "
    if rho is not None and abs(rho) >= LENGTH_RHO_WARN:
        caption += (
            f"Warning: {label} has a rank correlation of {rho:+.2f} with the length difference, so this "
            "ordering is mostly a length ordering (a sum of per-token log-probs grows with length); "
            "consider a per-token signal (e.g. logprob_margin_v1__margin_per_token) or a length-matched control."
        )
    else:
        caption += f"|rho| below {LENGTH_RHO_WARN}: not mainly a length ordering."
    figs.add(fig, "length-value", f"{label} against completion length", caption)


def examples_html(figs: _Figures, store: Store, per_group: int = EXAMPLES_PER_GROUP) -> str:
    """A few pairs per bucket (or source): the first ones in stored order, i.e. the easiest of a bucket.
    The report's rows hold lengths, not texts, so the texts of just these pairs are read back."""
    import pyarrow.compute as pc

    rows = figs.data.rows
    _, name, version = figs.data.pairs_label.split("/")
    pairs_ref = store.get("pairs", name, version)
    # stored order (the report's rows come out of joins in another order): a bucket's easiest first
    ordered = (figs.data.bucket_ref or pairs_ref).read(["pair_id"]).column("pair_id").to_pylist()
    position = {pid: i for i, pid in enumerate(ordered)}
    chosen_rows: dict[Any, list[dict[str, Any]]] = {}
    for g in figs.groups:
        group = rows.filter(pa.array(figs._mask(g))).to_pylist()
        chosen_rows[g] = sorted(group, key=lambda r: position.get(r["pair_id"], len(position)))[:per_group]
    picked_ids = [r["pair_id"] for g in figs.groups for r in chosen_rows[g]]
    texts = pairs_ref.read(["pair_id", "prompt", "chosen", "rejected"])
    texts = texts.filter(pc.is_in(texts.column("pair_id"), value_set=pa.array(picked_ids, pa.string())))
    by_id = {r["pair_id"]: r for r in texts.to_pylist()}
    out = [f"<h2>Example pairs per {html.escape(figs.group_name)}</h2>", "<table id='examples'>"]
    out.append(
        f"<tr><th>{html.escape(figs.group_name)}</th><th class='l'>prompt</th><th class='l'>chosen</th>"
        "<th class='l'>rejected</th><th>value</th></tr>"
    )
    value_col = "signal_value" if "signal_value" in rows.column_names else None
    for g in figs.groups:
        for r in chosen_rows[g]:
            r = {**r, **by_id.get(r["pair_id"], {})}
            prompt = _prompt_text(r.get("prompt"))
            value = r.get(value_col) if value_col else None
            cells = [str(g), _cut(prompt), _cut(r.get("chosen")), _cut(r.get("rejected"))]
            out.append(
                "<tr><td>"
                + html.escape(cells[0])
                + "</td>"
                + "".join(f"<td class='l'>{html.escape(c)}</td>" for c in cells[1:])
                + f"<td>{'' if value is None else f'{value:.4g}'}</td></tr>"
            )
    out.append("</table>")
    return "\n".join(out)


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, list):
        return " / ".join(str(m.get("content", "")) for m in prompt if isinstance(m, dict))
    return "" if prompt is None else str(prompt)


def _cut(text: Any) -> str:
    text = "" if text is None else " ".join(str(text).split())
    return text if len(text) <= EXCERPT else text[: EXCERPT - 1] + "…"
