"""DuckDB over the store: views on the Parquet files (no copies) and the canned queries in sql/.

Views made on every connection:
    pairs                          latest version of every dataset (column `dataset` tells which)
    pairs__<dataset>[__vN]         one dataset, latest or a given version
    <signal>  e.g. score_gap_v1    latest version of that signal for every dataset: dataset, pair_id, fields
    scores                         one row per pair of every dataset, with every signal's latest columns
    buckets                        latest version of every bucket set: name, version, bucket, pair columns
    buckets__<name>[__vN]          one bucket set
    runs                           per-step training metrics of every run (latest version of each)
    evals                          per-task outcome evaluations of every run and stage (all versions)
    drops                          pairs dropped per reason, from the manifests of every pairs and bucket version
    versions                       one row per published version (kind, name, version, rows, created_at)
Each named view exists under the exact name (`"buckets__uf-curriculum"`: quote names holding `-`
or `.`) and, where no other view maps to it, under a lowered [a-z0-9_] alias (`buckets__uf_curriculum`).
Names that would be ambiguous (datasets `uf-a` and `uf_a` share the alias; DuckDB matches names
case-insensitively, so `UF` and `uf` clash) get no alias, or no view, rather than the wrong rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefcurate.errors import ConfigError, PrefcurateError
from prefcurate.extras import lazy_module
from prefcurate.store import Store, VersionRef

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    duckdb = lazy_module("duckdb")
    pa = lazy_module("pyarrow")


def view_name(*parts: str) -> str:
    """The lowered alias of a view (`uf-curriculum` -> `uf_curriculum`)."""
    return "__".join(re.sub(r"[^a-z0-9_]", "_", p.lower()) for p in parts)


def exact_name(*parts: str) -> str:
    return "__".join(parts)


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _create_named(con: duckdb.DuckDBPyConnection, named: dict[str, str], fixed: set[str]) -> None:
    """Create each view under its exact name and its alias, leaving out any name two views share."""
    taken = {n.lower() for n in fixed}
    by_key: dict[str, list[str]] = {}
    for name in named:
        by_key.setdefault(name.lower(), []).append(name)
    created = {names[0] for key, names in by_key.items() if len(names) == 1 and key not in taken}
    for name in sorted(created):
        con.execute(f"CREATE OR REPLACE VIEW {ident(name)} AS {named[name]}")
    aliases: dict[str, list[str]] = {}
    for name in created:
        alias = view_name(*name.split("__"))
        if alias != name:
            aliases.setdefault(alias, []).append(name)
    for alias, sources in sorted(aliases.items()):
        if len(sources) == 1 and alias not in by_key and alias not in taken:
            con.execute(f"CREATE OR REPLACE VIEW {ident(alias)} AS SELECT * FROM {ident(sources[0])}")


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _files_sql(ref: VersionRef, hive: bool = False) -> str:
    files = "[" + ", ".join(_q(str(p)) for p in ref.parquet_files()) + "]"
    opts = ", hive_partitioning = true" if hive else ""
    return f"read_parquet({files}, union_by_name = true{opts})"


def _union(selects: list[str]) -> str:
    return "\nUNION ALL BY NAME\n".join(selects)


def connect(store: Store, database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the store's views (see module docstring)."""
    con = duckdb.connect(database)
    create_views(con, store)
    return con


def create_views(con: duckdb.DuckDBPyConnection, store: Store) -> None:
    version_rows: list[tuple[str, str, str, int | None, str | None]] = []
    named: dict[str, str] = {}  # exact view name -> its SELECT, created at the end (see _create_named)
    latest_pairs = _create_pairs_view(con, store, version_rows, named)
    by_signal = _create_scores_views(con, store, version_rows, named, latest_pairs)
    _create_buckets_view(con, store, version_rows, named)
    _create_runs_view(con, store, version_rows)
    _create_evals_view(con, store, version_rows)
    _create_drops_view(con, store)

    versions = pa.table(
        {
            "kind": [r[0] for r in version_rows],
            "name": [r[1] for r in version_rows],
            "version": [r[2] for r in version_rows],
            "rows": pa.array([r[3] for r in version_rows], pa.int64()),
            "created_at": [r[4] for r in version_rows],
        }
    )
    con.register("_versions_arrow", versions)
    con.execute("CREATE OR REPLACE VIEW versions AS SELECT * FROM _versions_arrow")
    fixed = {"pairs", "scores", "buckets", "runs", "drops", "versions", *by_signal}
    _create_named(con, named, fixed)


def _create_pairs_view(
    con: duckdb.DuckDBPyConnection, store: Store, version_rows: list, named: dict[str, str]
) -> dict[str, VersionRef]:
    """`pairs`: the latest version of every dataset; returns those versions."""
    latest_pairs: dict[str, VersionRef] = {}
    for name in store.names("pairs"):
        refs = store.versions("pairs", name)
        for ref in refs:
            if ref.parquet_files():
                named[exact_name("pairs", name, ref.version)] = f"SELECT * FROM {_files_sql(ref)}"
            m = ref.manifest
            version_rows.append(
                ("pairs", name, ref.version, m.get("counts", {}).get("kept"), m.get("created_at"))
            )
        if refs and refs[-1].parquet_files():
            latest_pairs[name] = refs[-1]
            named[exact_name("pairs", name)] = f"SELECT * FROM {_files_sql(refs[-1])}"
    if latest_pairs:
        con.execute(
            "CREATE OR REPLACE VIEW pairs AS "
            + _union([f"SELECT * FROM {_files_sql(r)}" for r in latest_pairs.values()])
        )
    else:
        con.execute(
            "CREATE OR REPLACE VIEW pairs AS SELECT * FROM (SELECT NULL::VARCHAR AS pair_id, NULL::VARCHAR AS prompt_id, "
            "NULL::VARCHAR AS dataset, NULL::VARCHAR AS source, NULL::STRUCT(role VARCHAR, content VARCHAR)[] AS prompt, "
            "NULL::VARCHAR AS chosen, NULL::VARCHAR AS rejected, NULL::VARCHAR AS chosen_id, NULL::VARCHAR AS rejected_id, "
            "NULL::DOUBLE AS chosen_score, NULL::DOUBLE AS rejected_score, NULL::VARCHAR AS chosen_model, "
            "NULL::VARCHAR AS rejected_model, NULL::VARCHAR AS meta) WHERE false"
        )
    return latest_pairs


def _create_scores_views(
    con: duckdb.DuckDBPyConnection,
    store: Store,
    version_rows: list,
    named: dict[str, str],
    latest_pairs: dict[str, VersionRef],
) -> dict[str, list[tuple[str, VersionRef]]]:
    """Per-signal views and one wide `scores` view (a row per latest pair); returns the signals."""
    by_signal: dict[str, list[tuple[str, VersionRef]]] = {}
    for name in store.names("scores"):
        dataset, _, signal = name.partition("/")
        refs = store.versions("scores", name)
        for ref in refs:
            m = ref.manifest
            version_rows.append(
                ("scores", name, ref.version, m.get("counts", {}).get("rows"), m.get("created_at"))
            )
        if refs and refs[-1].parquet_files():
            by_signal.setdefault(signal, []).append((dataset, refs[-1]))
            named[exact_name(signal, dataset)] = f"SELECT * FROM {_files_sql(refs[-1])}"
    for signal, entries in by_signal.items():
        con.execute(
            f"CREATE OR REPLACE VIEW {ident(signal)} AS "
            + _union([f"SELECT {_q(ds)} AS dataset, * FROM {_files_sql(ref)}" for ds, ref in entries])
        )
    per_dataset = []
    for dataset in latest_pairs:
        # Straight from the files, not through the named views (whose names may be left out).
        joins = "".join(
            f" LEFT JOIN (SELECT * FROM {_files_sql(ref)}) USING (pair_id)"
            for signal, entries in sorted(by_signal.items())
            for ds, ref in entries
            if ds == dataset
        )
        per_dataset.append(
            f"SELECT {_q(dataset)} AS dataset, * FROM (SELECT pair_id FROM {_files_sql(latest_pairs[dataset])}){joins}"
        )
    if per_dataset:
        con.execute("CREATE OR REPLACE VIEW scores AS " + _union(per_dataset))
    else:
        con.execute(
            "CREATE OR REPLACE VIEW scores AS SELECT NULL::VARCHAR AS dataset, NULL::VARCHAR AS pair_id WHERE false"
        )
    return by_signal


def _create_buckets_view(
    con: duckdb.DuckDBPyConnection, store: Store, version_rows: list, named: dict[str, str]
) -> None:
    """`buckets`: the latest version of every bucket set, with its name and version."""
    latest_buckets = []
    bucket_sql: dict[tuple[str, str], str] = {}
    for name in store.names("buckets"):
        refs = store.versions("buckets", name)
        for ref in refs:
            m = ref.manifest
            version_rows.append(
                ("buckets", name, ref.version, m.get("counts", {}).get("kept"), m.get("created_at"))
            )
            if ref.parquet_files():
                bucket_sql[(name, ref.version)] = (
                    f"SELECT {_q(name)} AS name, {_q(ref.version)} AS version, * FROM {_files_sql(ref, hive=True)}"
                )
                named[exact_name("buckets", name, ref.version)] = bucket_sql[(name, ref.version)]
        if refs and refs[-1].parquet_files():
            latest_buckets.append(refs[-1])
            named[exact_name("buckets", name)] = bucket_sql[(name, refs[-1].version)]
    if latest_buckets:
        con.execute(
            "CREATE OR REPLACE VIEW buckets AS "
            + _union([bucket_sql[(r.name, r.version)] for r in latest_buckets])
        )
    else:
        # No bucket set yet: an empty view with the bucket files' columns, so canned queries still bind.
        from prefcurate.schema import PAIR_SCHEMA

        empty = pa.schema(
            [*PAIR_SCHEMA, pa.field("signal_value", pa.float64()), pa.field("position", pa.int64())]
        ).empty_table()
        con.register("_empty_buckets_arrow", empty)
        con.execute(
            "CREATE OR REPLACE VIEW buckets AS SELECT NULL::VARCHAR AS name, NULL::VARCHAR AS version, "
            "NULL::BIGINT AS bucket, * FROM _empty_buckets_arrow"
        )


def _create_runs_view(con: duckdb.DuckDBPyConnection, store: Store, version_rows: list) -> None:
    """`runs`: training metrics of the latest version of every run."""
    latest_runs = []
    for name in store.names("runs"):
        refs = store.versions("runs", name)
        for ref in refs:
            m = ref.manifest
            version_rows.append(
                ("runs", name, ref.version, m.get("counts", {}).get("rows"), m.get("created_at"))
            )
        if refs and refs[-1].parquet_files():
            latest_runs.append(refs[-1])
    if latest_runs:
        con.execute(
            "CREATE OR REPLACE VIEW runs AS "
            + _union(
                [
                    f"SELECT {_q(r.name)} AS run, {_q(r.version)} AS version, * FROM {_files_sql(r)}"
                    for r in latest_runs
                ]
            )
        )


def _create_evals_view(con: duckdb.DuckDBPyConnection, store: Store, version_rows: list) -> None:
    """`evals`: every version of every run's evaluations (each suite is its own version)."""
    refs = [ref for name in store.names("evals") for ref in store.versions("evals", name)]
    for ref in refs:
        m = ref.manifest
        version_rows.append(
            ("evals", ref.name, ref.version, m.get("counts", {}).get("rows"), m.get("created_at"))
        )
    with_files = [r for r in refs if r.parquet_files()]
    if with_files:
        con.execute(
            "CREATE OR REPLACE VIEW evals AS "
            + _union([f"SELECT {_q(r.version)} AS version, * FROM {_files_sql(r)}" for r in with_files])
        )
    else:
        con.execute(
            "CREATE OR REPLACE VIEW evals AS SELECT NULL::VARCHAR AS version, NULL::VARCHAR AS run, "
            "NULL::VARCHAR AS stage, NULL::BIGINT AS step, NULL::DOUBLE AS epochs, NULL::BIGINT AS pairs_seen, "
            "NULL::VARCHAR AS suite, NULL::VARCHAR AS task_id, NULL::BIGINT AS n, NULL::BIGINT AS c, "
            "NULL::DOUBLE AS pass_at_1 WHERE false"
        )


def _create_drops_view(con: duckdb.DuckDBPyConnection, store: Store) -> None:
    """`drops`: kind, name, version, reason, pairs (from counts.dropped in pairs and bucket manifests)."""
    rows: list[tuple[str, str, str, str, int]] = []
    for kind in ("pairs", "buckets"):
        for name in store.names(kind):
            for ref in store.versions(kind, name):
                dropped = ref.dropped
                rows += [
                    (kind, name, ref.version, str(reason), int(n or 0))
                    for reason, n in sorted(dropped.items())
                ]
    table = pa.table(
        {
            "kind": pa.array([r[0] for r in rows], pa.string()),
            "name": pa.array([r[1] for r in rows], pa.string()),
            "version": pa.array([r[2] for r in rows], pa.string()),
            "reason": pa.array([r[3] for r in rows], pa.string()),
            "pairs": pa.array([r[4] for r in rows], pa.int64()),
        }
    )
    con.register("_drops_arrow", table)
    con.execute("CREATE OR REPLACE VIEW drops AS SELECT * FROM _drops_arrow")


# -- canned queries ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    default: str | None  # SQL literal text as written in the header, None when required
    help: str = ""


@dataclass(frozen=True)
class CannedQuery:
    """A file in sql/ with a header of `-- key: value` lines:

    -- name: overview
    -- description: what it answers
    -- param: dataset = NULL   restrict to one dataset (NULL: all)
    -- columns: dataset, pairs, prompts
    """

    name: str
    description: str
    params: tuple[Param, ...]
    columns: tuple[str, ...]
    sql: str
    path: Path = field(compare=False)


_HEADER_RE = re.compile(r"^--\s*(\w+)\s*:\s*(.*)$")
_PARAM_RE = re.compile(r"^(\w+)\s*(?:=\s*(\S+))?\s*(.*)$")


def parse_canned(path: Path) -> CannedQuery:
    text = path.read_text()
    meta: dict[str, str] = {}
    params: list[Param] = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        m = _HEADER_RE.match(line)
        if not m:
            continue
        key, value = m.group(1), m.group(2).strip()
        if key == "param":
            pm = _PARAM_RE.match(value)
            if not pm:
                raise PrefcurateError(f"{path}: bad param header {value!r}")
            params.append(Param(pm.group(1), pm.group(2), pm.group(3).strip()))
        else:
            meta[key] = value
    if "columns" not in meta:
        raise PrefcurateError(f"{path}: canned query lacks a '-- columns:' header line")
    return CannedQuery(
        name=meta.get("name", path.stem),
        description=meta.get("description", ""),
        params=tuple(params),
        columns=tuple(c.strip() for c in meta["columns"].split(",") if c.strip()),
        sql=text,
        path=path,
    )


def sql_dir() -> Path:
    """The canned query folder: packaged copy (wheel) or the repository's sql/ (editable install)."""
    from importlib import resources  # not at import: `--help` imports this module

    packaged = resources.files("prefcurate") / "sql"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "sql"


def canned_queries() -> dict[str, CannedQuery]:
    return {q.name: q for q in (parse_canned(p) for p in sorted(sql_dir().glob("*.sql")))}


def resolve_params(query: CannedQuery, given: dict[str, str]) -> dict[str, Any]:
    """Bind named parameters: given values (as text) or header defaults (SQL literals)."""
    known = {p.name for p in query.params}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ConfigError(
            f"canned query {query.name!r} has no parameter {unknown[0]!r} "
            f"(parameters: {', '.join(sorted(known)) or 'none'})"
        )
    values: dict[str, Any] = {}
    for p in query.params:
        if p.name in given:
            values[p.name] = given[p.name]
        elif p.default is None:
            raise ConfigError(f"canned query {query.name!r} needs --param {p.name}=VALUE ({p.help})")
        else:
            values[p.name] = duckdb.execute(f"SELECT {p.default}").fetchall()[0][0]
    return values


SIGNAL_PARAMS = ("signal", "a", "b")  # canned-query parameters that name a `<signal>__<field>` column


def check_canned_values(store: Store, query: CannedQuery, values: dict[str, Any]) -> None:
    """A dataset, bucket set or signal column that does not exist would give an empty table: say so."""
    datasets, bucket_sets = store.names("pairs"), store.names("buckets")
    dataset = values.get("dataset")
    if dataset is not None and dataset not in datasets:
        raise ConfigError(
            f"canned query {query.name!r}: no dataset {dataset!r} in store {store.root} "
            f"(have: {', '.join(datasets) or 'none'})"
        )
    name = values.get("name")
    if name is not None and name not in bucket_sets and name not in datasets:
        have = ", ".join([*datasets, *bucket_sets]) or "none"
        raise ConfigError(
            f"canned query {query.name!r}: no dataset or bucket set {name!r} in store {store.root} (have: {have})"
        )
    wanted = [(p, values[p]) for p in SIGNAL_PARAMS if isinstance(values.get(p), str)]
    if not wanted:
        return
    columns = [c for c in run_sql(store, "SELECT * FROM scores LIMIT 0").column_names if "__" in c]
    for param, column in wanted:
        signal = column.partition("__")[0]
        targets = [dataset] if dataset is not None else datasets
        with_it = [d for d in targets if f"{d}/{signal}" in store.names("scores")]
        if column not in columns or not with_it:
            where = f"dataset {dataset!r} has no" if dataset is not None else "no dataset has a"
            raise ConfigError(
                f"canned query {query.name!r}: --param {param}={column}: {where} signal column {column!r} "
                f"(have: {', '.join(columns) or 'none; score a dataset first'})"
            )


def to_arrow(result: duckdb.DuckDBPyConnection | duckdb.DuckDBPyRelation) -> pa.Table:
    """Fetch a DuckDB result as Arrow across DuckDB 1.x and 2.x method names."""
    for method in ("to_arrow_table", "fetch_arrow_table", "arrow"):
        if hasattr(result, method):
            out = getattr(result, method)()
            return out.read_all() if isinstance(out, pa.RecordBatchReader) else out
    raise PrefcurateError("this DuckDB version offers no Arrow fetch method")


def run_sql(store: Store, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
    """Run SQL (or a canned query's SQL) against the store's views; returns an Arrow table."""
    con = connect(store)
    try:
        rel = con.sql(sql, params=params or None)
        return to_arrow(rel) if rel is not None else pa.table({})
    except duckdb.Error as exc:
        msg = str(exc).strip().splitlines()[0]
        raise PrefcurateError(f"SQL error: {msg}{_name_hint(con, sql, exc)}") from exc
    finally:
        con.close()


def view_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def _listing(names: list[str]) -> str:
    shown = names if len(names) <= 40 else [*names[:40], f"... {len(names) - 40} more"]
    return ", ".join(shown)


def _name_hint(con: duckdb.DuckDBPyConnection, sql: str, exc: duckdb.Error) -> str:
    """For a name that does not exist, which names do; for `a-b` written unquoted, how to quote it."""
    names = view_names(con)
    lowered = {n.lower(): n for n in names}
    for token in re.findall(r'(?<!["\w])([A-Za-z_][\w.]*(?:-[\w.]+)+)', sql):
        if token.lower() in lowered:
            exact = lowered[token.lower()]
            alias = view_name(*exact.split("__"))
            defs = con.execute("SELECT sql FROM duckdb_views() WHERE view_name = ?", [alias]).fetchall()
            is_alias = bool(defs) and defs[0][0].rstrip(";").endswith(f"FROM {ident(exact)}")
            also = f" or its alias {alias}" if is_alias else ""
            return f' (a name holding "-" must be quoted: "{exact}"{also})'
        if "__" in token:
            return f" (no view named {token!r}; views: {_listing(names)})"
    if isinstance(exc, duckdb.CatalogException) and "does not exist" in str(exc):
        return f" (views: {_listing(names)})"
    return ""


def run_named(store: Store, name_or_sql: str, given: dict[str, str] | None = None) -> pa.Table:
    """Run a canned query by name, a .sql file by path, or literal SQL."""
    given = given or {}
    canned = canned_queries()
    if name_or_sql in canned:
        q = canned[name_or_sql]
        values = resolve_params(q, given)
        check_canned_values(store, q, values)
        return run_sql(store, q.sql, values)
    path = Path(name_or_sql)
    if name_or_sql.endswith(".sql") and path.is_file():
        in_file = (
            parse_canned(path)
            if path.read_text().lstrip().startswith("--") and "-- columns:" in path.read_text()
            else None
        )
        if in_file is not None:
            return run_sql(store, in_file.sql, resolve_params(in_file, given))
        return run_sql(store, path.read_text(), given or None)
    if re.fullmatch(r"[A-Za-z_][\w-]*", name_or_sql.strip()):
        raise ConfigError(
            f"no canned query named {name_or_sql!r}; see `prefcurate sql --list` (have: {', '.join(sorted(canned))})"
        )
    return run_sql(store, name_or_sql, given or None)
