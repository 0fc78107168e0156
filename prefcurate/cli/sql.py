"""`prefcurate sql`: DuckDB over the store."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from prefcurate.extras import lazy_module

from .base import Format, FormatOpt, StoreOpt, app, err, get_store, parse_key_values, render

if TYPE_CHECKING:
    import pyarrow as pa
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    pa = lazy_module("pyarrow")


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    epilog="Views: pairs, scores, <signal> (e.g. score_gap_v1), buckets, runs, versions, drops, "
    "pairs__<dataset>[__vN], buckets__<name>[__vN]. Canned queries take parameters as "
    "--param NAME=VALUE or --NAME VALUE.",
)
def sql(
    ctx: typer.Context,
    query: Annotated[
        str | None, typer.Argument(help="SQL text, a canned query name (see --list), or a .sql file.")
    ] = None,
    list_: Annotated[
        bool, typer.Option("--list", help="List the canned queries and their parameters.")
    ] = False,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Named parameter NAME=VALUE ($NAME in SQL).")
    ] = None,
    store: StoreOpt = None,
    format: FormatOpt = Format.table,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            help="Write the views into this DuckDB file (open it with `duckdb FILE` or the DuckDB UI); with a query, run it too.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Query pairs, signals and buckets with SQL (DuckDB views over the store's Parquet files)."""
    from prefcurate.store.views import canned_queries, run_named  # imported when the command runs

    if db is not None:
        from prefcurate.store.dbfile import write_views

        names = write_views(get_store(store), db)
        err.print(f"Wrote {len(names)} views to {db}: {', '.join(names)}", markup=False, highlight=False)
        if query is None:
            return
    if list_:
        queries = canned_queries()
        render(
            pa.table(
                {
                    "name": list(queries),
                    "description": [q.description for q in queries.values()],
                    "parameters": [
                        ", ".join(
                            f"{p.name}={p.default}" if p.default is not None else p.name for p in q.params
                        )
                        for q in queries.values()
                    ],
                }
            ),
            format,
            title="Canned queries",
        )
        return
    if query is None:
        raise typer.BadParameter("give a query, a canned query name or --list")
    given = parse_key_values(param)
    extras = list(ctx.args)
    while extras:
        flag = extras.pop(0)
        if not flag.startswith("--"):
            raise typer.BadParameter(f"unexpected argument {flag!r}")
        key, sep, value = flag[2:].partition("=")
        if not sep:
            if not extras:
                raise typer.BadParameter(f"{flag} needs a value")
            value = extras.pop(0)
        given[key.replace("-", "_")] = value
    render(run_named(get_store(store), query, given), format)
