"""The store: versioned, immutable folders of Parquet data with manifests.

`versions` writes and reads versions; `views` puts DuckDB views over them. Importing this
package loads only `versions` (DuckDB is imported by `prefcurate.store.views` when needed).
"""

from prefcurate.store.versions import (
    DEFAULT_STORE,
    KINDS,
    PARQUET_OPTIONS,
    Publication,
    Store,
    VersionRef,
    check_name,
    check_ref_name,
    command_line,
    kinds_for,
    parse_ref,
    write_parquet,
)

__all__ = [
    "DEFAULT_STORE",
    "KINDS",
    "PARQUET_OPTIONS",
    "Publication",
    "Store",
    "VersionRef",
    "check_name",
    "check_ref_name",
    "kinds_for",
    "command_line",
    "parse_ref",
    "write_parquet",
]
