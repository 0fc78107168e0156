"""`prefcurate build code`: best-of-N code samples + unit tests run in the sandbox -> pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import StoreOpt, build_app, get_store, out


@build_app.command("code")
def code(
    path: Annotated[
        Path,
        typer.Argument(
            help="Samples JSONL: a CodeT samples file, or generic {prompt, completions[], tests[] | test + entry_point}."
        ),
    ],
    problems: Annotated[
        Path | None,
        typer.Option(
            "--problems",
            help="CodeT: the problems file joined on `prompt` (default: HumanEval_for_code_generation.jsonl next to PATH).",
        ),
    ] = None,
    format: Annotated[str, typer.Option("--format", help="Input format: auto, codet or generic.")] = "auto",
    pairing: Annotated[
        str,
        typer.Option(
            "--pairing",
            help="best-vs-worst (most vs fewest passed units) or pass-vs-fail (all passing x failing samples, capped).",
        ),
    ] = "best-vs-worst",
    max_pairs_per_prompt: Annotated[
        int, typer.Option("--max-pairs-per-prompt", help="pass-vs-fail: at most this many pairs per problem.")
    ] = 10,
    limit: Annotated[int | None, typer.Option("--limit", help="Read only the first N problems.")] = None,
    samples: Annotated[
        int | None, typer.Option("--samples", help="Use only the first N samples of each problem.")
    ] = None,
    truncate: Annotated[
        bool,
        typer.Option(
            "--truncate/--no-truncate",
            help="CodeT: cut each function body at its first dedented line (Codex stop sequences).",
        ),
    ] = True,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Wall-clock seconds per sample (program and all its tests).")
    ] = 5.0,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Sandbox worker processes (default: CPU count).")
    ] = None,
    name: Annotated[str, typer.Option("--name", help="Dataset name in the store.")] = "code",
    force: Annotated[
        bool,
        typer.Option("--force", help="Rebuild even if a version with the same inputs and options exists."),
    ] = False,
    store: StoreOpt = None,
) -> None:
    """Run every sample's unit tests in the sandbox and pair samples by pass count (resumable: rerun to continue)."""
    from prefcurate.build.code import CodeBuildOptions, build_code

    opts = CodeBuildOptions(
        path=str(path),
        problems=str(problems) if problems else None,
        format=format,
        pairing=pairing,
        max_pairs_per_prompt=max_pairs_per_prompt,
        limit=limit,
        samples=samples,
        truncate=truncate,
        timeout=timeout,
        workers=workers,
        name=name,
        force=force,
    )
    result = build_code(get_store(store), opts)
    c = result.counts
    verb = "Reused" if result.reused else "Wrote"
    out.print(
        f"{verb} {result.ref.label}: {c.get('kept', 0):,} pairs from {c.get('problems', 0):,} problems, "
        f"{c.get('read', 0):,} samples ({c.get('distinct_samples', 0):,} distinct, {c.get('fully_passing_samples', 0):,} passing all tests)"
    )
    dropped = c.get("dropped", {})
    if dropped:
        out.print("  dropped: " + ", ".join(f"{k}={v:,}" for k, v in dropped.items()))
