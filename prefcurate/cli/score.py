"""`prefcurate score DATASET --by SIGNAL`: compute a signal and publish it as a sidecar version."""

from __future__ import annotations

from typing import Annotated

import typer

from prefcurate.score import get_signal, run_signal
from prefcurate.score.subset import Subset

from .app import StoreOpt, app, get_store, out


@app.command()
def score(
    dataset: Annotated[
        str | None,
        typer.Argument(
            help="Dataset name in the store (see `prefcurate ls`); optional when it holds only one.",
            show_default=False,
            metavar="DATASET",
        ),
    ] = None,
    *,  # the options after an optional DATASET need no defaults (Typer passes them by name)
    by: Annotated[
        str, typer.Option("--by", help="Signal: score-gap, logprob-margin, tests, reward, implicit-reward.")
    ],
    model: Annotated[
        str | None,
        typer.Option(
            help="Model: hub id, local folder or .gguf file (logprob-margin default: the bundled SmolLM2-135M-Instruct; required for --by reward)."
        ),
    ] = None,
    backend: Annotated[
        str | None, typer.Option(help="Log-prob backend: transformers (CPU/GPU) or vllm (GPU).")
    ] = None,
    dtype: Annotated[
        str | None,
        typer.Option(help="auto (bf16 where measured faster: GPUs, CPUs with native bf16), bf16 or fp32."),
    ] = None,
    max_length: Annotated[
        int | None,
        typer.Option(
            help="Truncate prompt+completion to this many tokens, keeping the start (default: 512)."
        ),
    ] = None,
    batch_tokens: Annotated[
        int | None, typer.Option(help="Token budget per padded batch (default: 8192).")
    ] = None,
    policy: Annotated[str | None, typer.Option(help="implicit-reward: the policy model.")] = None,
    reference: Annotated[str | None, typer.Option(help="implicit-reward: the reference model.")] = None,
    beta: Annotated[float | None, typer.Option(help="implicit-reward: DPO beta (default: 0.1).")] = None,
    timeout: Annotated[float | None, typer.Option(help="tests: wall-clock seconds per program.")] = None,
    workers: Annotated[int | None, typer.Option(help="tests: sandbox worker processes.")] = None,
    pairs_version: Annotated[
        str | None, typer.Option("--pairs-version", help="Pairs version (default: latest).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Recompute even if this exact signal version exists.")
    ] = False,
    store: StoreOpt = None,
    limit: Annotated[
        int | None, typer.Option("--limit", help="Score only the first N pairs (after --where/--sample).")
    ] = None,
    where: Annotated[
        str | None,
        typer.Option("--where", help="Score only pairs where this SQL predicate over pair columns holds."),
    ] = None,
    sample: Annotated[
        int | None, typer.Option("--sample", help="Score a seeded random sample of N pairs (see --seed).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="--sample: the seed of the draw.")] = 0,
) -> None:
    """Score every pair of a dataset with a difficulty signal (resumable: rerun to continue)."""
    subset = Subset(limit=limit, where=where, sample=sample, seed=seed)
    dataset = get_store(store).dataset_or_only(dataset)
    signal_cls = get_signal(by)
    signal = signal_cls.from_options(
        model=model,
        backend=backend,
        dtype=dtype,
        max_length=max_length,
        batch_tokens=batch_tokens,
        policy=policy,
        reference=reference,
        beta=beta,
        timeout=timeout,
        workers=workers,
    )
    ref, reused = run_signal(
        get_store(store), dataset, signal, pairs_version=pairs_version, force=force, subset=subset
    )
    m = ref.manifest
    verb = "Reused" if reused else "Wrote"
    of = f" of {m['subset']['of']:,} (subset)" if "subset" in m else ""
    out.print(f"{verb} {ref.label}: {m['counts']['rows']:,}{of} pairs, columns {', '.join(signal.columns)}")
    nulls = {k: v for k, v in m["counts"].get("nulls", {}).items() if v}
    if nulls:
        out.print("  missing values: " + ", ".join(f"{k}={v:,}" for k, v in nulls.items()))
