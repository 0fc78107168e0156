"""`score --limit N / --where SQL / --sample N --seed S`: score a subset of a dataset's pairs.

Applied in that order of meaning: `--where` filters (a DuckDB predicate over the pair columns), `--sample`
draws N of what is left by a seeded hash of `pair_id` (so the draw does not depend on row order and a
larger N keeps the smaller draw), `--limit` keeps the first N in stored order. The kept pairs keep their
stored order. The published signal has rows for these pairs only, and its manifest records the subset.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from prefcurate.errors import ConfigError
from prefcurate.extras import lazy_module

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.compute as pc
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    pa = lazy_module("pyarrow")
    pc = lazy_module("pyarrow.compute")


@dataclass(frozen=True)
class Subset:
    limit: int | None = None
    where: str | None = None
    sample: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for flag, value in (("--limit", self.limit), ("--sample", self.sample)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"{flag} must be a whole number >= 1, got {value!r}")
        if self.where is not None and not self.where.strip():
            raise ConfigError("--where is empty")

    @property
    def active(self) -> bool:
        return self.limit is not None or self.where is not None or self.sample is not None

    def spec(self) -> dict[str, Any]:
        """What the fingerprint and manifest record (the seed only matters with --sample)."""
        data = {k: v for k, v in asdict(self).items() if v is not None}
        if self.sample is None:
            data.pop("seed", None)
        return data


def _sample_key(seed: int, pair_id: str) -> str:
    return hashlib.sha256(f"{seed}\x00{pair_id}".encode()).hexdigest()


def select(pairs: pa.Table, subset: Subset) -> pa.Table:
    """The pairs to score, in stored order."""
    keep = pa.array([True] * pairs.num_rows)
    if subset.where is not None:
        import duckdb

        con = duckdb.connect()
        try:
            con.register("pairs", pairs)
            ids = (
                con.sql(f"SELECT pair_id FROM pairs WHERE {subset.where}").to_arrow_table().column("pair_id")
            )
        except duckdb.Error as exc:
            raise ConfigError(f"--where {subset.where!r}: {str(exc).splitlines()[0]}") from None
        finally:
            con.close()
        keep = pc.is_in(pairs.column("pair_id"), value_set=ids.combine_chunks())
    if subset.sample is not None:
        ids = [p for p, k in zip(pairs.column("pair_id").to_pylist(), keep.to_pylist(), strict=True) if k]
        drawn = set(sorted(ids, key=lambda p: _sample_key(subset.seed, p))[: subset.sample])
        keep = pa.array([p in drawn for p in pairs.column("pair_id").to_pylist()])
    table = pairs.filter(keep)
    if subset.limit is not None:
        table = table.slice(0, subset.limit)
    if table.num_rows == 0:
        raise ConfigError(
            f"the subset ({', '.join(f'{k}={v}' for k, v in subset.spec().items())}) holds no pairs"
        )
    return table
