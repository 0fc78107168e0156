"""Printing Arrow tables: a Rich table for people, exact CSV and JSON for programs.

Only the Rich table rounds. The machine formats are lossless and standard: floats in their
shortest round-trip form, `true`/`false`, missing values empty (CSV) or `null` (JSON), NaN and
infinities as missing in JSON (strict JSON has no spelling for them) and as `nan`/`inf`/`-inf` in
CSV (what DuckDB, polars and Python's float() read back), RFC 4180 quoting (a field holding a comma,
a quote, CR or LF is quoted, quotes doubled) with `\n` between rows.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import io
import json
import math
import sys
from collections.abc import Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console

if TYPE_CHECKING:  # the CLI imports this module for --help; pyarrow loads only when a table is rendered
    import pyarrow as pa


class Format(str, Enum):
    """How a command prints a table."""

    table = "table"
    csv = "csv"
    json = "json"


def _json_value(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    return value


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # shortest string that reads back as the same double
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(_json_value(value), ensure_ascii=False, allow_nan=False)
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    return str(value)


def _cell(value: Any) -> str:
    """A rounded, human-friendly cell for the Rich table."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return json.dumps(_json_value(value), ensure_ascii=False)
    return str(value)


# A plain {column: values} mapping renders like the Arrow table built from it, without loading pyarrow
# (whose first Python-to-Arrow conversion also imports pandas: ~0.3 s of `prefcurate ls`).
Columns = Mapping[str, list]


def _names_rows(table: pa.Table | Columns) -> tuple[list[str], list[dict[str, Any]]]:
    if isinstance(table, Mapping):
        names = list(table)
        return names, [dict(zip(names, values, strict=True)) for values in zip(*table.values(), strict=True)]
    return table.column_names, table.to_pylist()


def _numeric(table: pa.Table | Columns, name: str) -> bool:
    if isinstance(table, Mapping):
        values = [v for v in table[name] if v is not None]
        return (
            bool(values)
            and all(isinstance(v, (int, float, decimal.Decimal)) for v in values)
            and not any(isinstance(v, bool) for v in values)
        )
    import pyarrow as pa

    kind = table.schema.field(name).type
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)


def to_json(table: pa.Table | Columns) -> str:
    """One JSON list of row objects; strict JSON (no NaN/Infinity)."""
    rows = [_json_value(row) for row in _names_rows(table)[1]]
    return json.dumps(rows, ensure_ascii=False, allow_nan=False, indent=2) + "\n"


def json_text(obj: Any) -> str:
    """One JSON document (a manifest, a result) as strict JSON: NaN/Inf as null, Decimal as a number."""
    return json.dumps(_json_value(obj), ensure_ascii=False, allow_nan=False, indent=2, default=str) + "\n"


def write_jsonl(table: pa.Table, stream: TextIO) -> None:
    """JSON Lines: one strict JSON object per row (keys in column order; NaN/Inf as null)."""
    for row in table.to_pylist():
        stream.write(json.dumps(_json_value(row), ensure_ascii=False, allow_nan=False) + "\n")


def _quote(field: str) -> str:
    # By hand: Python's csv module leaves a bare CR unquoted when rows end in LF, and readers then
    # split the row there.
    if any(ch in field for ch in ',"\r\n'):
        return '"' + field.replace('"', '""') + '"'
    return field


def write_csv(table: pa.Table | Columns, stream: TextIO) -> None:
    """RFC 4180 CSV with a header row; lossless values (see module docstring)."""
    names, rows = _names_rows(table)
    stream.write(",".join(_quote(c) for c in names) + "\n")
    for row in rows:
        stream.write(",".join(_quote(_csv_value(row[c])) for c in names) + "\n")


def to_csv(table: pa.Table | Columns) -> str:
    buf = io.StringIO(newline="")
    write_csv(table, buf)
    return buf.getvalue()


def render(
    table: pa.Table | Columns,
    fmt: Format = Format.table,
    title: str | None = None,
    max_rows: int = 200,
    console: Console | None = None,
) -> None:
    """Print an Arrow table (or a {column: values} mapping) as a Rich table, CSV or JSON (one object per row, in a list)."""
    if fmt is Format.json:
        sys.stdout.write(to_json(table))
        return
    if fmt is Format.csv:
        sys.stdout.write(to_csv(table))
        return
    from rich.table import Table

    console = console or Console()
    names, rows = _names_rows(table)
    rich_table = Table(title=title, show_lines=False, header_style="bold cyan")
    for name in names:
        rich_table.add_column(name, justify="right" if _numeric(table, name) else "left", overflow="fold")
    for row in rows[:max_rows]:
        rich_table.add_row(*(_cell(row[c]) for c in names))
    console.print(rich_table)
    if len(rows) > max_rows:
        console.print(f"[dim]... {len(rows) - max_rows} more rows (use --format csv or json for all)[/dim]")
