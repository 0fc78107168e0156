"""What every demo stage receives: the store, the bundled data, the output folder, the console."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from prefcurate.errors import PrefcurateError
from prefcurate.store import Store


def demo_data_dir() -> Path:
    """examples/data beside the package (repository checkout) or in the working folder."""
    for candidate in (
        Path(__file__).resolve().parents[2] / "examples" / "data",
        Path.cwd() / "examples" / "data",
    ):
        if candidate.is_dir():
            return candidate
    raise PrefcurateError(
        "demo data not found: run `prefcurate demo` from a checkout of the repository (examples/data/)"
    )


@dataclass
class DemoContext:
    store: Store
    data: Path
    out: Path
    console: Console
    quick: bool = False
    notes: list[str] = field(default_factory=list)
