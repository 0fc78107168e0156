"""`prefcurate report`: one self-contained HTML page (PNG plots embedded as base64) about a dataset
or a bucket set, meant to be looked at rather than read:

- a histogram of each numeric signal, overall and (for a bucket set) per bucket;
- score gap against log-prob margin (or the first two signals) with their rank correlation,
  and a Spearman correlation matrix of all signals;
- per-source bars of pair count and mean signal (per bucket for a bucket set);
- the length difference (chosen minus rejected characters) per bucket (or per source);
- tables: buckets with their signal statistics, and pairs dropped by reason.

matplotlib comes with the `report` extra; it is imported only here.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prefcurate import __version__
from prefcurate.bucket.export import read_buckets, resolve
from prefcurate.bucket.partition import signal_on
from prefcurate.errors import ConfigError
from prefcurate.extras import lazy_module, require
from prefcurate.store import Store, VersionRef, parse_ref

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    np = lazy_module("numpy")
    pa = lazy_module("pyarrow")
    pc = lazy_module("pyarrow.compute")

MAX_HISTOGRAMS = 9  # histogram panels; more would be unreadable
MAX_MATRIX = 8  # signals in the correlation matrix
# Fields that carry a signal's verdict come first; raw parts (log-probs, token counts) after them.
HEADLINE_FIELDS = ("gap", "margin", "margin_per_token", "correct", "accuracy", "passed", "pass_rate")
SCATTER_POINTS = 5_000  # above this a hexbin replaces the scatter
PREFERRED_PAIR = ("score_gap_v1__gap", "logprob_margin_v1__margin")


@dataclass
class ReportData:
    """What the plots need, for a dataset (groups = sources) or a bucket set (groups = buckets)."""

    title: str
    dataset: str
    pairs_label: str
    rows: pa.Table  # pair_id, source, chosen_chars, rejected_chars, [bucket, signal_value], signal columns
    signals: list[str]  # numeric signal columns present in rows
    bucket_ref: VersionRef | None = None
    drops: list[tuple[str, str, int]] = field(default_factory=list)  # (where, reason, pairs)
    inputs: list[str] = field(default_factory=list)


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)


def _signal_tables(
    store: Store, dataset: str, pairs_ref: VersionRef
) -> tuple[pa.Table | None, list[str], list[str]]:
    """pair_id plus every numeric signal column computed on this pairs version; their labels."""
    joined: pa.Table | None = None
    cols: list[str] = []
    labels: list[str] = []
    for name in store.names("scores"):
        if not name.startswith(dataset + "/"):
            continue
        try:
            ref = signal_on(store, dataset, name.partition("/")[2], pairs_ref)
        except ConfigError:
            continue
        table = ref.read()
        keep = [c for c in table.column_names if c != "pair_id" and _numeric(table.schema.field(c).type)]
        if not keep:
            continue
        labels.append(ref.label)
        table = table.select(["pair_id", *keep])
        for c in keep:
            if pa.types.is_boolean(table.schema.field(c).type):
                table = table.set_column(table.column_names.index(c), c, table.column(c).cast(pa.float64()))
        cols += keep
        joined = table if joined is None else joined.join(table, "pair_id", join_type="left outer")
    return joined, cols, labels


def _with_lengths(table: pa.Table) -> pa.Table:
    table = table.append_column("chosen_chars", pc.utf8_length(table.column("chosen")))
    table = table.append_column("rejected_chars", pc.utf8_length(table.column("rejected")))
    return table.drop_columns(["chosen", "rejected"])


def load_report_data(store: Store, target: str) -> ReportData:
    """A bucket set (`NAME` or `NAME@vN`) or a dataset name."""
    base, _ = parse_ref(target)
    if store.versions("buckets", base):
        ref = resolve(store, target)
        m = ref.manifest
        dataset = m["dataset"]
        pairs_ref = store.get("pairs", dataset, ref.pairs_version)
        parts = []
        for k, t in read_buckets(ref):
            t = t.select(["pair_id", "source", "chosen", "rejected", "signal_value"])
            parts.append(t.append_column("bucket", pa.array([k] * t.num_rows, pa.int64())))
        rows = _with_lengths(pa.concat_tables(parts))
        title = f"bucket set {ref.label}"
        drops = [
            (f"pairs {pairs_ref.version} (build)", r, n)
            for r, n in pairs_ref.manifest.get("counts", {}).get("dropped", {}).items()
        ]
        drops += [
            (f"{ref.name} {ref.version} (partition)", r, n)
            for r, n in m.get("counts", {}).get("dropped", {}).items()
        ]
        bucket_ref: VersionRef | None = ref
    elif store.versions("pairs", target):
        pairs_ref = store.get("pairs", target)
        dataset = target
        rows = _with_lengths(pairs_ref.read(["pair_id", "source", "chosen", "rejected"]))
        title = f"dataset {pairs_ref.label}"
        drops = [
            (f"pairs {pairs_ref.version} (build)", r, n)
            for r, n in pairs_ref.manifest.get("counts", {}).get("dropped", {}).items()
        ]
        bucket_ref = None
    else:
        have = store.names("pairs") + store.names("buckets")
        raise ConfigError(
            f"{target!r} is neither a dataset nor a bucket set in store {store.root} (have: {', '.join(have) or 'nothing'})"
        )
    signals, cols, labels = _signal_tables(store, dataset, pairs_ref)
    if signals is not None:
        rows = rows.join(signals, "pair_id", join_type="left outer")
    if bucket_ref is not None:
        rows = rows.sort_by([("bucket", "ascending"), ("pair_id", "ascending")])
    else:
        rows = rows.sort_by("pair_id")
    return ReportData(
        title, dataset, pairs_ref.label, rows, cols, bucket_ref, drops, [pairs_ref.label, *labels]
    )


# -- plotting ----------------------------------------------------------------------------------------


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode()


def _values(rows: pa.Table, col: str) -> np.ndarray:
    return np.asarray(rows.column(col).cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=float)


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman's rho over the pairs that have both values (polars: average ranks for ties), None when
    fewer than 3 or either side is constant."""
    import polars as pl

    ok = ~(np.isnan(x) | np.isnan(y))
    if ok.sum() < 3 or np.unique(x[ok]).size < 2 or np.unique(y[ok]).size < 2:
        return None
    frame = pl.DataFrame({"x": x[ok], "y": y[ok]})
    return float(frame.select(pl.corr("x", "y", method="spearman")).item())


def _bins(values: np.ndarray) -> np.ndarray:
    """Histogram edges: one bin per value for discrete signals (ratings gaps, 0/1), else sqrt(n) bins."""
    unique = np.unique(values)
    if 1 < unique.size <= 30:
        mids = (unique[1:] + unique[:-1]) / 2
        step = float(np.min(np.diff(unique)))
        return np.concatenate([[unique[0] - step / 2], mids, [unique[-1] + step / 2]])
    return np.histogram_bin_edges(values, bins=min(30, max(5, int(np.sqrt(values.size)))))


def _short(col: str) -> str:
    return col.replace("__", "\n", 1) if len(col) > 22 else col


class _Figures:
    def __init__(self, data: ReportData) -> None:
        matplotlib = require("matplotlib", "the report")
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self.plt = plt
        self.data = data
        self.items: list[tuple[str, str, str, str]] = []  # (id, heading, caption, png)
        if data.bucket_ref is not None:
            self.groups = sorted(set(data.rows.column("bucket").to_pylist()))
            self.group_col, self.group_name = "bucket", "bucket"
            cmap = plt.get_cmap("viridis")  # dark = easy, green = hard; the yellow end is too pale on white
            self.colors = [
                cmap(0.05 + 0.75 * i / max(1, len(self.groups) - 1)) for i in range(len(self.groups))
            ]
        else:
            self.groups = sorted({s for s in data.rows.column("source").to_pylist() if s is not None})
            self.group_col, self.group_name = "source", "source"
            cmap = plt.get_cmap("tab10")
            self.colors = [cmap(i % 10) for i in range(len(self.groups))]

    def _mask(self, g: Any) -> np.ndarray:
        return np.asarray(
            pc.equal(self.data.rows.column(self.group_col), g).to_numpy(zero_copy_only=False), dtype=bool
        )

    def add(self, fig: Any, fid: str, heading: str, caption: str) -> None:
        self.items.append((fid, heading, caption, _png(fig)))
        self.plt.close(fig)

    def pick(self, limit: int) -> list[str]:
        """Signals worth a panel: the bucketing column first, then headline fields; constant ones left out."""
        by = self.data.bucket_ref.manifest["spec"].get("by") if self.data.bucket_ref is not None else None
        cols = []
        for c in self.data.signals:
            v = _values(self.data.rows, c)
            present = v[~np.isnan(v)]
            if present.size and present.min() != present.max():
                cols.append(c)

        def rank(c: str) -> tuple[int, int]:
            field = c.split("__", 1)[-1]
            first = 0 if c == by else (1 if field in HEADLINE_FIELDS else 2)
            return first, self.data.signals.index(c)

        cols.sort(key=rank)
        if self.data.bucket_ref is not None and by not in cols:
            cols.insert(0, "signal_value")  # --by was an expression (or a boolean): show its values
        return cols[:limit]

    def histograms(self) -> None:
        # true/false signals are not histograms: they get per-source accuracy with intervals (panels.py)
        cols = [
            c
            for c in self.pick(MAX_HISTOGRAMS)
            if not pa.types.is_boolean(self.data.rows.schema.field(c).type)
        ]
        by = self.data.bucket_ref.manifest["spec"].get("by") if self.data.bucket_ref is not None else None
        if not cols:
            return
        ncols = min(3, len(cols))
        nrows = (len(cols) + ncols - 1) // ncols
        width, height = (4.2, 3.0) if ncols > 1 else (7.0, 3.8)  # a lone panel gets room to read
        fig, axes = self.plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
        for ax, col in zip(axes.flat, cols, strict=False):
            v = _values(self.data.rows, col)
            present = v[~np.isnan(v)]
            title = f"{col} ({by})" if col == "signal_value" and by else col
            ax.set_title(_short(title) + ("\n(bucketing signal)" if col == by else ""), fontsize=9)
            if present.size == 0:
                ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
                continue
            bins = _bins(present)
            ax.hist(present, bins=bins, color="0.8", label="all pairs")
            if len(self.groups) <= 12:
                for g, color in zip(self.groups, self.colors, strict=True):
                    gv = v[self._mask(g) & ~np.isnan(v)]
                    if gv.size:
                        ax.hist(
                            gv,
                            bins=bins,
                            histtype="step",
                            linewidth=1.6,
                            color=color,
                            label=f"{self.group_name} {g}",
                        )
            ax.set_ylabel("pairs", fontsize=8)
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.25)
        for ax in list(axes.flat)[len(cols) :]:
            ax.axis("off")
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.tight_layout()
        fig.legend(
            handles,
            labels,
            loc="lower center",
            ncol=min(7, len(labels)),
            fontsize=8,
            bbox_to_anchor=(0.5, 1.0),
        )
        self.add(
            fig,
            "signal-histograms",
            "Signals: overall and per " + self.group_name,
            f"Gray: all pairs. Lines: one per {self.group_name}"
            + (" (bucket 0 = easiest)." if self.data.bucket_ref else "."),
        )

    def scatter(self) -> None:
        cols = self.data.signals
        pair = (
            PREFERRED_PAIR
            if all(c in cols for c in PREFERRED_PAIR)
            else tuple(c for c in cols if c != "signal_value")[:2]
        )
        if len(pair) < 2:
            return
        x, y = _values(self.data.rows, pair[0]), _values(self.data.rows, pair[1])
        ok = ~(np.isnan(x) | np.isnan(y))
        rho = spearman(x, y)
        fig, ax = self.plt.subplots(figsize=(6.2, 4.6))
        if ok.sum() > SCATTER_POINTS:
            hb = ax.hexbin(x[ok], y[ok], gridsize=40, cmap="viridis", mincnt=1)
            fig.colorbar(hb, ax=ax, label="pairs")
        elif self.data.bucket_ref is not None:
            b = np.asarray(self.data.rows.column("bucket").to_numpy(zero_copy_only=False))
            for g, color in zip(self.groups, self.colors, strict=True):
                m = ok & (b == g)
                ax.scatter(x[m], y[m], s=12, alpha=0.7, color=color, label=f"bucket {g}")
            ax.legend(fontsize=8)
        else:
            ax.scatter(x[ok], y[ok], s=12, alpha=0.6, color="tab:blue")
        ax.set_xlabel(pair[0])
        ax.set_ylabel(pair[1])
        ax.grid(alpha=0.25)
        rho_text = "n/a" if rho is None else f"{rho:.3f}"
        ax.set_title(f"Spearman rank correlation = {rho_text} ({int(ok.sum()):,} pairs)", fontsize=10)
        self.add(
            fig, "signal-scatter", f"{pair[0]} against {pair[1]}", "Do the two difficulty signals agree?"
        )
        matrix = [c for c in self.pick(MAX_MATRIX) if c != "signal_value"]
        if len(matrix) >= 2:
            self._matrix(matrix)

    def _matrix(self, cols: list[str]) -> None:
        n = len(cols)
        mat = np.full((n, n), np.nan)
        vals = [_values(self.data.rows, c) for c in cols]
        for i in range(n):
            for j in range(n):
                r = spearman(vals[i], vals[j])
                mat[i, j] = np.nan if r is None else r
        fig, ax = self.plt.subplots(figsize=(0.8 * n + 4.0, 0.6 * n + 2.4))
        im = ax.imshow(mat, cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_xticks(range(n), cols, rotation=40, ha="right", fontsize=8)
        ax.set_yticks(range(n), cols, fontsize=8)
        for i in range(n):
            for j in range(n):
                text = "" if np.isnan(mat[i, j]) else f"{mat[i, j]:.2f}"
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if abs(mat[i, j]) > 0.6 else "black",
                )
        fig.colorbar(im, ax=ax, label="Spearman rho")
        self.add(
            fig,
            "signal-correlation",
            "Rank correlation between signals",
            "Spearman rho over pairs that have both values.",
        )

    def sources(self) -> None:
        rows = self.data.rows
        sources = sorted({s for s in rows.column("source").to_pylist() if s is not None})
        if not sources:
            return
        value_col = (
            "signal_value"
            if self.data.bucket_ref is not None
            else next((c for c in ("score_gap_v1__gap", *self.data.signals) if c in self.data.signals), None)
        )
        src = np.asarray(rows.column("source").to_pylist(), dtype=object)
        fig, axes = self.plt.subplots(1, 2, figsize=(12, 0.35 * len(sources) + 2.2))
        y = np.arange(len(sources))
        if self.data.bucket_ref is not None:
            b = np.asarray(rows.column("bucket").to_numpy(zero_copy_only=False))
            left = np.zeros(len(sources))
            for g, color in zip(self.groups, self.colors, strict=True):
                counts = np.array([int(((src == s) & (b == g)).sum()) for s in sources])
                axes[0].barh(y, counts, left=left, color=color, label=f"bucket {g}")
                left += counts
            axes[0].legend(fontsize=8)
            axes[0].set_title("pairs per source, stacked by bucket", fontsize=10)
        else:
            counts = np.array([int((src == s).sum()) for s in sources])
            axes[0].barh(y, counts, color="tab:blue")
            axes[0].set_title("pairs per source", fontsize=10)
        axes[0].set_yticks(y, sources, fontsize=8)
        axes[0].invert_yaxis()
        axes[0].set_xlabel("pairs")
        if value_col is not None:
            v = _values(rows, value_col)
            means = [
                float(np.nanmean(v[src == s])) if np.any((src == s) & ~np.isnan(v)) else np.nan
                for s in sources
            ]
            axes[1].barh(y, means, color="tab:orange")
            axes[1].set_yticks(y, sources, fontsize=8)
            axes[1].invert_yaxis()
            label = value_col
            if value_col == "signal_value" and self.data.bucket_ref is not None:
                label = self.data.bucket_ref.manifest["spec"].get("by") or value_col
            axes[1].set_title(f"mean {label} per source", fontsize=10)
            axes[1].axvline(0, color="0.4", linewidth=0.8)
        else:
            axes[1].axis("off")
        for ax in axes:
            ax.grid(axis="x", alpha=0.25)
        fig.tight_layout()
        self.add(fig, "sources", "Data sources", "Pair count and mean signal per data source.")

    def lengths(self) -> None:
        rows = self.data.rows
        diff = _values(rows, "chosen_chars") - _values(rows, "rejected_chars")
        data, labels = [], []
        for g in self.groups:
            d = diff[self._mask(g)]
            if d.size:
                data.append(d)
                labels.append(str(g))
        if not data:
            return
        fig, ax = self.plt.subplots(figsize=(max(5.5, 0.8 * len(data) + 3), 3.8))
        parts = ax.boxplot(data, showfliers=False, patch_artist=True, showmeans=True)
        ax.set_xticks(range(1, len(labels) + 1), labels, rotation=0 if len(labels) < 8 else 40, fontsize=8)
        for patch, color in zip(parts["boxes"], self.colors, strict=False):
            patch.set_facecolor(color)
            patch.set_alpha(0.6)
        ax.axhline(0, color="0.3", linewidth=0.8)
        ax.set_xlabel(self.group_name + (" (0 = easiest)" if self.data.bucket_ref is not None else ""))
        ax.set_ylabel("chosen - rejected (characters)")
        ax.grid(axis="y", alpha=0.25)
        means = ", ".join(f"{lab}: {float(np.mean(d)):+.0f}" for lab, d in zip(labels, data, strict=True))
        ax.set_title("length difference per " + self.group_name, fontsize=10)
        self.add(
            fig,
            "length-bias",
            "Length bias",
            f"Boxes without outliers; triangles are means ({means}). "
            "A difficulty signal that mostly tracks length shows a trend here.",
        )


# -- HTML ----------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}img{max-width:100%}figcaption{font-size:12px;color:#555}
.meta{font-size:12px;color:#555}
"""


def _table(headers: list[str], rows: list[list[Any]], table_id: str) -> str:
    def cell(v: Any, tag: str) -> str:
        text = (
            ""
            if v is None
            else (f"{v:,.4g}" if isinstance(v, float) else (f"{v:,}" if isinstance(v, int) else str(v)))
        )
        cls = "" if isinstance(v, (int, float)) else ' class="l"'
        return f"<{tag}{cls}>{html.escape(text)}</{tag}>"

    head = "".join(cell(h, "th") for h in headers)
    body = "".join("<tr>" + "".join(cell(v, "td") for v in r) + "</tr>" for r in rows)
    return f'<table id="{table_id}"><tr>{head}</tr>{body}</table>'


def render_html(data: ReportData, figures: list[tuple[str, str, str, str]], extra_html: str = "") -> str:
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>prefcurate report: {html.escape(data.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>prefcurate report: {html.escape(data.title)}</h1>",
        f"<p class='meta'>{data.rows.num_rows:,} pairs; inputs: {html.escape(', '.join(data.inputs))}; "
        f"prefcurate {__version__}; {_dt.date.today().isoformat()}</p>",
    ]
    if data.bucket_ref is not None:
        m = data.bucket_ref.manifest
        spec = m["spec"]
        parts.append(
            f"<p>strategy <b>{html.escape(str(spec['strategy']))}</b> by <b>{html.escape(str(spec.get('by')))}</b>, "
            f"easy = {html.escape(str(spec['easy']))}; bucket 0 is the easiest.</p>"
        )
        rows = [
            [
                b["bucket"],
                b["rows"],
                b["label"],
                b["signal"]["min"],
                b["signal"]["median"],
                b["signal"]["mean"],
                b["signal"]["max"],
            ]
            for b in m["buckets"]
        ]
        parts.append(
            "<h2>Buckets</h2>"
            + _table(["bucket", "pairs", "label", "min", "median", "mean", "max"], rows, "buckets")
        )
    for fid, heading, caption, png in figures:
        parts.append(
            f"<h2>{html.escape(heading)}</h2><figure id='{fid}'><img alt='{html.escape(heading)}' "
            f"src='data:image/png;base64,{png}'><figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    if extra_html:
        parts.append(extra_html)
    drop_rows = [[where, reason, int(n)] for where, reason, n in data.drops]
    parts.append("<h2>Dropped pairs by reason</h2>")
    parts.append(
        _table(["step", "reason", "pairs"], drop_rows, "drops")
        if drop_rows
        else "<p id='drops'>No pairs were dropped.</p>"
    )
    parts.append("</body></html>\n")
    return "\n".join(parts)
