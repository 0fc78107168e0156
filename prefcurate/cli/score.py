"""`prefcurate score DATASET --by SIGNAL`: compute a signal and publish it as a sidecar version."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import StoreOpt, app, get_store, out


@app.command()
def score(
    dataset: Annotated[str, typer.Argument(help="Dataset name in the store (see `prefcurate ls`).")],
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
) -> None:
    """Score every pair of a dataset with a difficulty signal (resumable: rerun to continue)."""
    from prefcurate.score import get_signal, run_signal

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
    ref, reused = run_signal(get_store(store), dataset, signal, pairs_version=pairs_version, force=force)
    m = ref.manifest
    verb = "Reused" if reused else "Wrote"
    out.print(f"{verb} {ref.label}: {m['counts']['rows']:,} pairs, columns {', '.join(signal.columns)}")
    nulls = {k: v for k, v in m["counts"].get("nulls", {}).items() if v}
    if nulls:
        out.print("  missing values: " + ", ".join(f"{k}={v:,}" for k, v in nulls.items()))
