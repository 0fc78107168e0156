"""The Arrow schema of a pair (DESIGN.md "Data model") and small helpers over it."""

from __future__ import annotations

import pyarrow as pa

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])

PAIR_SCHEMA = pa.schema(
    [
        ("pair_id", pa.string()),
        ("prompt_id", pa.string()),
        ("dataset", pa.string()),
        ("source", pa.string()),
        ("prompt", pa.list_(MESSAGE)),
        ("chosen", pa.string()),
        ("rejected", pa.string()),
        ("chosen_id", pa.string()),
        ("rejected_id", pa.string()),
        ("chosen_score", pa.float64()),
        ("rejected_score", pa.float64()),
        ("chosen_model", pa.string()),
        ("rejected_model", pa.string()),
        ("meta", pa.string()),
    ]
)

PAIR_COLUMNS = tuple(PAIR_SCHEMA.names)


def signal_column(signal: str, field: str) -> str:
    """Sidecar column name: `<signal>__<field>`, e.g. `logprob_margin_v1__margin`."""
    return f"{signal}__{field}"


def conform_pairs(table: pa.Table) -> pa.Table:
    """Cast a table to PAIR_SCHEMA column order and types (raises if a column is missing)."""
    missing = [c for c in PAIR_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"pair table lacks columns {missing}")
    return table.select(list(PAIR_COLUMNS)).cast(PAIR_SCHEMA)
