"""Ranking pairs by a signal (`prefcurate rank`): the ordering a curriculum would follow, to look at or save.

`rank_pairs` joins a signal version with the pairs it was computed on and sorts by one of its fields
(default: the signal's margin; largest first, i.e. easiest first for margins and gaps). Rows with no
value sort last; ties are broken by pair_id so the order is deterministic.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from prefcurate.errors import ConfigError
from prefcurate.extras import lazy_module
from prefcurate.render import write_csv, write_jsonl
from prefcurate.score import get_signal
from prefcurate.store import Store, VersionRef

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    pa = lazy_module("pyarrow")
    pc = lazy_module("pyarrow.compute")
    pq = lazy_module("pyarrow.parquet")

OUT_FORMATS = (".parquet", ".csv", ".jsonl")


def resolve_field(by: str, field: str | None = None) -> tuple[str, str]:
    """(signal versioned name, field) from `--by` (cli name, versioned name, or `<signal>__<field>`)."""
    signal_key, sep, col_field = by.partition("__")
    cls = get_signal(signal_key)
    if sep:
        if field and field != col_field:
            raise ConfigError(f"--by {by!r} already names field {col_field!r}; drop --field {field!r}")
        field = col_field
    if field is None:
        field = next((f for f in ("margin", "gap") if f in cls.fields), cls.fields[0])
    if field not in cls.fields:
        raise ConfigError(f"{cls.name} has no field {field!r} (fields: {', '.join(cls.fields)})")
    return cls.name, field


def _excerpt(messages: list[dict[str, str]] | None, width: int) -> str:
    if not messages:
        return ""
    users = [m["content"] for m in messages if m.get("role") == "user"] or [messages[-1]["content"]]
    text = " ".join(users[-1].split())
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def rank_pairs(
    store: Store,
    dataset: str,
    by: str,
    *,
    field: str | None = None,
    ascending: bool = False,
    top: int | None = None,
    version: str | None = None,
    excerpt: int = 60,
) -> tuple[pa.Table, VersionRef, str]:
    """(table, signal version, field): pairs ordered by a signal field, with rank, pair_id, source,
    prompt excerpt, both scores and the field.

    "Both scores" are the signal's chosen/rejected fields (e.g. chosen_logp, rejected_logp) or, for
    signals without them (score_gap), the pairs' chosen_score/rejected_score.
    """
    if top is not None and top < 1:
        raise ConfigError(f"--top must be at least 1, got {top}")
    signal_name, field = resolve_field(by, field)
    cls = get_signal(signal_name)
    ref = store.get("scores", f"{dataset}/{signal_name}", version)
    pairs_version = ref.pairs_version
    pairs = store.get("pairs", dataset, pairs_version).read(
        ["pair_id", "source", "prompt", "chosen_score", "rejected_score"]
    )
    # Arrow joins cannot carry list<struct> columns: turn the prompt into its excerpt first.
    prompts = pa.array([_excerpt(p, excerpt) for p in pairs.column("prompt").to_pylist()], pa.string())
    pairs = pairs.set_column(pairs.column_names.index("prompt"), "prompt", prompts)
    scores = ref.read()
    # The signal's own per-completion scores (chosen_logp, chosen...) when it has float ones, else the ratings.
    chosen_f = next(
        (f for f in cls.fields if f.startswith("chosen") and _floating(scores, f"{signal_name}__{f}")), None
    )
    rejected_f = next(
        (f for f in cls.fields if f.startswith("rejected") and _floating(scores, f"{signal_name}__{f}")), None
    )
    sides: list[tuple[str, pa.ChunkedArray]] = []
    if chosen_f and rejected_f:
        wanted = dict.fromkeys(
            [f"{signal_name}__{chosen_f}", f"{signal_name}__{rejected_f}", f"{signal_name}__{field}"]
        )
        joined = pairs.select(["pair_id", "source", "prompt"]).join(
            scores.select(["pair_id", *wanted]),
            "pair_id",
            join_type="inner",
        )
        sides = [
            (chosen_f, joined.column(f"{signal_name}__{chosen_f}")),
            (rejected_f, joined.column(f"{signal_name}__{rejected_f}")),
        ]
    else:
        joined = pairs.join(
            scores.select(["pair_id", f"{signal_name}__{field}"]), "pair_id", join_type="inner"
        )
        sides = [
            ("chosen_score", joined.column("chosen_score")),
            ("rejected_score", joined.column("rejected_score")),
        ]
    value = joined.column(f"{signal_name}__{field}")
    # Sort by value (nulls last), then pair_id: deterministic for ties.
    order = pc.sort_indices(
        pa.table({"v": value, "id": joined.column("pair_id")}),
        sort_keys=[
            ("v", "ascending" if ascending else "descending", "at_end"),
            ("id", "ascending", "at_end"),
        ],
    )
    if top is not None:
        order = order.slice(0, top)
    picked = joined.take(order)
    columns = {
        "rank": pa.array(range(1, picked.num_rows + 1), pa.int64()),
        "pair_id": picked.column("pair_id"),
        "source": picked.column("source"),
        "prompt": picked.column("prompt"),
    }
    for name, col in sides:
        columns[name] = col.take(order)
    columns[field] = value.take(order)  # last, unless it is one of the two scores already shown
    return pa.table(columns), ref, field


def _floating(table: pa.Table, column: str) -> bool:
    return column in table.column_names and pa.types.is_floating(table.schema.field(column).type)


def write_ranking(table: pa.Table, path: Path) -> None:
    """Write by extension: .parquet, .csv or .jsonl."""
    suffix = path.suffix.lower()
    if suffix not in OUT_FORMATS:
        raise ConfigError(
            f"--out {str(path)!r}: unknown extension {suffix or '(none)'!r}; use one of: {', '.join(OUT_FORMATS)}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        pq.write_table(table, path)
    elif suffix == ".csv":  # the same dialect as `rank -f csv` (render.py)
        with path.open("w", encoding="utf-8", newline="") as fh:
            write_csv(table, fh)
    else:
        with path.open("w", encoding="utf-8") as fh:
            write_jsonl(table, fh)
