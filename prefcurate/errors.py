"""Errors the CLI turns into one-line messages (exit code 1, no traceback)."""

from __future__ import annotations

from pathlib import Path


class PrefcurateError(Exception):
    """Base class: any error a user can fix. `str(err)` is the one-line message."""


class InputError(PrefcurateError):
    """Bad input data: names the file, the line or row, and the field."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path, self.line, self.row, self.field, self.reason = path, line, row, field, message
        where = str(path) if path is not None else "<input>"
        if line is not None:
            where += f":{line}"
        elif row is not None:
            where += f": row {row}"
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{message}")


class StoreError(PrefcurateError):
    """Missing datasets or versions, or a store that is not a prefcurate store."""


class ConfigError(PrefcurateError):
    """An option value that cannot work; the message quotes the bad value."""


class MissingExtraError(PrefcurateError):
    """A heavy optional dependency is not installed."""
