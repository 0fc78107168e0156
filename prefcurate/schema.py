"""The Arrow schema of a pair (DESIGN.md "Data model") and small helpers over it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    MESSAGE: pa.StructType
    PAIR_SCHEMA: pa.Schema
    PAIR_COLUMNS: tuple[str, ...]


def _schemas() -> dict[str, Any]:
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    pair_schema = pa.schema(
        [
            ("pair_id", pa.string()),
            ("prompt_id", pa.string()),
            ("dataset", pa.string()),
            ("source", pa.string()),
            ("prompt", pa.list_(message)),
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
    return {"MESSAGE": message, "PAIR_SCHEMA": pair_schema, "PAIR_COLUMNS": tuple(pair_schema.names)}


def __getattr__(name: str) -> Any:
    # MESSAGE, PAIR_SCHEMA and PAIR_COLUMNS are built on first use, so importing this module (as
    # `--help` does, through the builders) does not load pyarrow. Modules that use them import them
    # inside the function that does.
    if name in ("MESSAGE", "PAIR_SCHEMA", "PAIR_COLUMNS"):
        globals().update(_schemas())
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def signal_column(signal: str, field: str) -> str:
    """Sidecar column name: `<signal>__<field>`, e.g. `logprob_margin_v1__margin`."""
    return f"{signal}__{field}"


def conform_pairs(table: pa.Table) -> pa.Table:
    """Cast a table to PAIR_SCHEMA column order and types (raises if a column is missing)."""
    from prefcurate.schema import PAIR_COLUMNS, PAIR_SCHEMA

    missing = [c for c in PAIR_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"pair table lacks columns {missing}")
    return table.select(list(PAIR_COLUMNS)).cast(PAIR_SCHEMA)
