"""`prefcurate build code`: best-of-N code samples + unit tests run in the sandbox -> pairs."""

from pathlib import Path
from typing import Annotated

import typer

from prefcurate.build import pick_source
from prefcurate.build.code_options import CodeBuildOptions
from prefcurate.build.code_options import CodeInputFormat as InputFormat
from prefcurate.build.code_options import CodePairing as Pairing
from prefcurate.execution import ExecutionOptions, ExecutorKind, WorkKind, open_executor

from .base import StoreOpt, build_app, field_default, get_store, out
from .build import FailOnEmptyOpt, warn_if_empty
from .execution import WORKERS_HELP, ExecutorOpt, RayAddressOpt, ThreadsOpt, execution_options


@build_app.command("code")
def code(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="Samples JSONL: a CodeT samples file, or generic {prompt, completions[], tests[] | test + entry_point}. Or --from.",
            show_default=False,
        ),
    ] = None,
    problems: Annotated[
        Path | None,
        typer.Option(
            "--problems",
            help="CodeT: the problems file joined on `prompt` (default: HumanEval_for_code_generation.jsonl next to PATH).",
        ),
    ] = None,
    input_format: Annotated[
        InputFormat, typer.Option("--input-format", help="CodeT samples, generic rows, or auto-detect.")
    ] = InputFormat(field_default(CodeBuildOptions, "format")),
    pairing: Annotated[
        Pairing,
        typer.Option(
            "--pairing",
            help="best-vs-worst (most vs fewest passed units) or pass-vs-fail (all passing x failing samples, capped).",
        ),
    ] = Pairing(field_default(CodeBuildOptions, "pairing")),
    max_pairs_per_prompt: Annotated[
        int, typer.Option("--max-pairs-per-prompt", help="pass-vs-fail: at most this many pairs per problem.")
    ] = field_default(CodeBuildOptions, "max_pairs_per_prompt"),
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
    ] = field_default(CodeBuildOptions, "truncate"),
    timeout: Annotated[
        float, typer.Option("--timeout", help="Wall-clock seconds per sample (program and all its tests).")
    ] = field_default(CodeBuildOptions, "timeout"),
    workers: Annotated[int | None, typer.Option("--workers", help=WORKERS_HELP, show_default=False)] = None,
    require_isolation: Annotated[
        bool,
        typer.Option("--require-isolation", help="Refuse to run unless every OS sandbox layer is active."),
    ] = False,
    name: Annotated[str, typer.Option("--name", help="Dataset name in the store.")] = field_default(
        CodeBuildOptions, "name"
    ),
    force: Annotated[
        bool,
        typer.Option("--force", help="Rebuild even if a version with the same inputs and options exists."),
    ] = False,
    store: StoreOpt = None,
    fail_on_empty: FailOnEmptyOpt = False,
    from_: Annotated[
        Path | None, typer.Option("--from", help="The samples file (same as PATH).", show_default=False)
    ] = None,
    executor: ExecutorOpt = ExecutorKind(field_default(ExecutionOptions, "kind")),
    ray_address: RayAddressOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Run every sample's unit tests in the sandbox and pair samples by pass count (resumable: rerun to continue)."""
    from prefcurate.build.code import build_code  # the builder and the sandbox load when it runs

    execution, workers = execution_options(executor, ray_address, workers, threads, WorkKind.sandbox)
    opts = CodeBuildOptions(
        path=pick_source(str(path) if path else None, str(from_) if from_ else None),
        problems=str(problems) if problems else None,
        format=input_format.value,
        pairing=pairing.value,
        max_pairs_per_prompt=max_pairs_per_prompt,
        limit=limit,
        samples=samples,
        truncate=truncate,
        timeout=timeout,
        workers=workers,
        require_isolation=require_isolation,
        name=name,
        force=force,
        fail_on_empty=fail_on_empty,
    )
    with open_executor(execution) as ex:
        result = build_code(get_store(store), opts, ex)
    c = result.counts
    verb = "Reused" if result.reused else "Wrote"
    out.print(
        f"{verb} {result.ref.label}: {c.get('kept', 0):,} pairs from {c.get('problems', 0):,} problems, "
        f"{c.get('read', 0):,} samples ({c.get('distinct_samples', 0):,} distinct, {c.get('fully_passing_samples', 0):,} passing all tests)"
    )
    dropped = c.get("dropped", {})
    if dropped:
        out.print("  dropped: " + ", ".join(f"{k}={v:,}" for k, v in dropped.items()))
    warn_if_empty(result.ref.label, c)
