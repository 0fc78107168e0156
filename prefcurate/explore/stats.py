"""Per-source accuracy of a signal column (sDPO's "reward accuracy" per data source).

A pair is *correct* when the column's value is > 0 (a margin) or true (a `correct` flag), *wrong*
when < 0 or false, a *tie* when the margin is exactly 0 (never counted as correct), and *missing*
when it has no value. A boolean `correct*` field cannot show ties by itself, so its sibling margin
(`<signal>__correct` -> `<signal>__margin`, `__correct_per_token` -> `__margin_per_token`) marks
them when the signal has one. accuracy = correct / (correct + wrong + ties).

The numbers come from the canned query `sql/accuracy.sql` over the store's DuckDB views, so
`prefcurate stats accuracy` and `prefcurate sql accuracy` always agree. Sorted by accuracy, highest
first: that is sDPO's easy-to-hard order of the sources (`source_order`).
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from prefcurate.errors import ConfigError
from prefcurate.extras import lazy_module
from prefcurate.store import Store

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    pa = lazy_module("pyarrow")
    pq = lazy_module("pyarrow.parquet")

DEFAULT_SIGNAL = "logprob_margin_v1__correct"


class Grouping(str, Enum):
    """What accuracy rows are grouped by."""

    source = "source"
    dataset = "dataset"


GROUPINGS = tuple(m.value for m in Grouping)


def accuracy_sql(value: str, is_bool: bool) -> str:
    """correct / (pairs with a value) as a DuckDB aggregate over the SQL expression `value`: the rule
    of sql/accuracy.sql (> 0 or true is correct, a tie is never correct, null and NaN are missing).
    `partition --strategy source --order-by accuracy` orders sources with it."""
    number = f"CAST(({value}) AS DOUBLE)"
    missing = f"({value}) IS NULL" if is_bool else f"({value}) IS NULL OR isnan({number})"
    correct = f"({value})" if is_bool else f"{number} > 0"
    return f"avg(CASE WHEN {missing} THEN NULL WHEN {correct} THEN 1.0 ELSE 0.0 END)"


def check_signal_column(store: Store, dataset: str, column: str) -> pa.DataType:
    """The column's type, after checking the dataset, the signal and the column exist (one-line errors)."""
    store.get("pairs", dataset)
    signal, sep, field = column.partition("__")
    if not sep or not field:
        raise ConfigError(
            f"{column!r} is not a signal column; expected <signal>__<field>, e.g. {DEFAULT_SIGNAL}"
        )
    have = [n.partition("/")[2] for n in store.names("scores") if n.startswith(f"{dataset}/")]
    if signal not in have:
        raise ConfigError(
            f"dataset {dataset!r} has no {signal} scores (have: {', '.join(sorted(have)) or 'none'}); "
            f"run `prefcurate score {dataset} --by ...` first"
        )
    ref = store.get("scores", f"{dataset}/{signal}")
    schema = pq.read_schema(ref.parquet_files()[0])
    if column not in schema.names:
        cols = [n for n in schema.names if n != "pair_id"]
        raise ConfigError(f"{ref.label} has no column {column!r} (have: {', '.join(cols)})")
    kind = schema.field(column).type
    if not (pa.types.is_boolean(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        raise ConfigError(f"{column} is {kind}; accuracy needs a number (a margin) or a boolean")
    return kind


def accuracy(store: Store, dataset: str, column: str = DEFAULT_SIGNAL, by: str = "source") -> pa.Table:
    """One row per source (or one per dataset): dataset, source, pairs, correct, wrong, ties, missing, accuracy, ci_low, ci_high."""
    if by not in GROUPINGS:
        raise ConfigError(f"--by {by!r} is not one of: {', '.join(GROUPINGS)}")
    check_signal_column(store, dataset, column)
    from prefcurate.store.views import run_named  # duckdb: when a query runs

    return run_named(store, "accuracy", {"signal": column, "by": by, "dataset": dataset})


def source_order(store: Store, dataset: str, column: str = DEFAULT_SIGNAL) -> list[str]:
    """Sources from easiest (highest accuracy) to hardest; ties in accuracy by name."""
    return accuracy(store, dataset, column).column("source").to_pylist()
