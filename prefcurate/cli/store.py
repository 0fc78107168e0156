"""`prefcurate ls` and `prefcurate info`: what the store holds, from its manifests."""

import json
import sys
from typing import Annotated

import typer

from prefcurate.store import KINDS, kinds_for

from ..errors import StoreError
from ..render import json_text
from .base import Format, FormatOpt, StoreOpt, app, get_store, out, render


@app.command("ls")
def ls(store: StoreOpt = None, format: FormatOpt = Format.table) -> None:
    """List datasets, signals, bucket sets and runs with their versions and row counts."""
    st = get_store(store)
    rows: dict[str, list] = {
        "kind": [],
        "name": [],
        "versions": [],
        "latest": [],
        "rows": [],
        "created_at": [],
    }
    for kind in KINDS:
        for name in st.names(kind):
            refs = st.versions(kind, name)
            m = refs[-1].manifest
            counts = m.get("counts", {})
            rows["kind"].append(kind)
            rows["name"].append(name)
            rows["versions"].append(len(refs))
            rows["latest"].append(refs[-1].version)
            rows["rows"].append(counts.get("kept", counts.get("rows")))
            rows["created_at"].append(m.get("created_at"))
    if not rows["name"] and format is Format.table:
        out.print(f"Store {st.root} is empty. Start with: prefcurate build ultrafeedback --from FILE")
        return
    render(rows, format, title=f"Store {st.root}")  # a column mapping: `ls` loads no pyarrow


@app.command("info")
def info(
    name: Annotated[str, typer.Argument(help="A dataset, `dataset/signal`, bucket set or run name.")],
    version: Annotated[
        str | None, typer.Option("--version", "-v", help="A version such as v2 (default: latest).")
    ] = None,
    store: StoreOpt = None,
    format: FormatOpt = Format.table,
) -> None:
    """Show a version's manifest: command, options, inputs (lineage), counts kept and dropped."""
    st = get_store(store)
    for kind in kinds_for(name):
        if st.versions(kind, name):
            ref = st.get(kind, name, version)
            break
    else:
        have = [n for k in KINDS for n in st.names(k)]
        raise StoreError(f"nothing named {name!r} in store {st.root} (have: {', '.join(have) or 'nothing'})")
    m = ref.manifest
    if format is Format.json:
        sys.stdout.write(json_text(m))  # plain strict JSON, no Rich markup
        return
    versions = ", ".join(r.version for r in st.versions(ref.kind, ref.name))
    out.print(f"[bold]{ref.label}[/bold]  (versions: {versions})")
    for key in ("created_at", "prefcurate_version", "command", "fingerprint"):
        if key in m:
            out.print(f"  {key}: {m[key]}")
    skip = {"kind", "name", "version", "created_at", "prefcurate_version", "command", "fingerprint", "files"}
    for key, value in m.items():
        if key in skip:
            continue
        text = json.dumps(value, indent=2, default=str) if isinstance(value, (dict, list)) else str(value)
        out.print(f"  {key}: " + text.replace("\n", "\n  "))
    files = m.get("files", [])
    out.print(f"  files: {len(files)} Parquet file(s), {sum(f['bytes'] for f in files):,} bytes")
