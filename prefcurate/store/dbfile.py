"""`prefcurate sql --db FILE.duckdb`: the store's views written into a DuckDB database file, so the
DuckDB shell (`duckdb FILE.duckdb`) or its UI opens the store with every view prefcurate has.

The views name the Parquet files of each version as they are when written (versions are immutable);
run it again after publishing new versions.
"""

from __future__ import annotations

from pathlib import Path

from prefcurate.errors import ConfigError
from prefcurate.store.versions import Store


def write_views(store: Store, path: str | Path) -> list[str]:
    """Create (or replace) the views in the database file; returns their names."""
    import duckdb

    from prefcurate.store.views import create_views

    path = Path(path).expanduser()
    if path.suffix not in (".duckdb", ".db"):
        raise ConfigError(f"--db {path}: expected a .duckdb (or .db) file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path))
    except duckdb.Error as exc:
        raise ConfigError(f"--db {path}: {str(exc).splitlines()[0]}") from None
    try:
        create_views(con, store)
        if not store.names("buckets"):
            # with no bucket set the `buckets` view reads an in-memory table that the file cannot keep
            con.execute("DROP VIEW IF EXISTS buckets")
        rows = con.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return [r[0] for r in rows]
