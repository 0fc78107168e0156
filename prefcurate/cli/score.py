"""`prefcurate score DATASET --by SIGNAL`: compute a signal and publish it as a sidecar version.

Choices, defaults and "applies to" in the help come from the signal classes themselves (their
dataclass fields), so the help cannot drift from what a signal does.
"""

from dataclasses import MISSING
from typing import Annotated

import typer

from prefcurate.choices import choice_enum, value_of
from prefcurate.execution import ExecutionOptions, ExecutorKind, open_executor
from prefcurate.models.dtypes import Dtype
from prefcurate.score import REGISTRY, get_signal, run_signal, signal_names
from prefcurate.score.logprob_margin import Backend
from prefcurate.score.subset import Subset

from .base import StoreOpt, app, field_default, get_store, out
from .execution import WORKERS_HELP, ExecutorOpt, RayAddressOpt, ThreadsOpt, execution_options

SignalName = choice_enum("SignalName", signal_names())  # from the registry: signals register themselves


def _about(option: str) -> str:
    """' Applies to: logprob-margin (default 512), reward (default 2048).' from the registry."""
    parts = []
    for cls in sorted(set(REGISTRY.values()), key=lambda c: c.cli_name):
        f = getattr(cls, "__dataclass_fields__", {}).get(option)
        if f is None:
            continue
        default = f.default if f.default is not MISSING else None
        parts.append(cls.cli_name + (f" (default {default})" if default is not None else ""))
    return " Applies to: " + ", ".join(parts) + "." if parts else ""


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
    by: Annotated[SignalName, typer.Option("--by", help="The signal to compute.")],  # type: ignore[valid-type]
    model: Annotated[
        str | None,
        typer.Option(
            help="Model: hub id, local folder or .gguf file (logprob-margin: default the bundled SmolLM2-135M-Instruct; reward: required)."
            + _about("model"),
            show_default=False,
        ),
    ] = None,
    backend: Annotated[
        Backend | None,
        typer.Option(help="Log-prob backend: transformers (CPU/GPU) or vllm (GPU)." + _about("backend")),
    ] = None,
    dtype: Annotated[
        Dtype | None,
        typer.Option(
            help="auto: bf16 where measured faster (GPUs, CPUs with native bf16), else fp32."
            + _about("dtype")
            + " implicit-reward defaults to fp32: its reward is a difference of close log-probs, which bf16 rounding flips."
        ),
    ] = None,
    max_length: Annotated[
        int | None,
        typer.Option(
            help="Truncate prompt+completion to this many tokens (log-prob signals keep the start, reward keeps the end)."
            + _about("max_length")
        ),
    ] = None,
    batch_tokens: Annotated[
        int | None, typer.Option(help="Token budget per padded batch." + _about("batch_tokens"))
    ] = None,
    policy: Annotated[str | None, typer.Option(help="The policy model." + _about("policy"))] = None,
    reference: Annotated[
        str | None,
        typer.Option(help="The reference model (default: the bundled model)." + _about("reference")),
    ] = None,
    beta: Annotated[float | None, typer.Option(help="DPO beta." + _about("beta"))] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Wall-clock seconds per program." + _about("timeout"))
    ] = None,
    workers: Annotated[int | None, typer.Option(help=WORKERS_HELP, show_default=False)] = None,
    require_isolation: Annotated[
        bool, typer.Option("--require-isolation", help="tests: refuse to run without every OS sandbox layer.")
    ] = False,
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
    executor: ExecutorOpt = ExecutorKind(field_default(ExecutionOptions, "kind")),
    ray_address: RayAddressOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Score every pair of a dataset with a difficulty signal (resumable: rerun to continue).

    Options that do not apply to the chosen --by are refused.
    """
    subset = Subset(limit=limit, where=where, sample=sample, seed=seed)
    dataset = get_store(store).dataset_or_only(dataset)
    signal_cls = get_signal(value_of(by))
    execution, workers = execution_options(executor, ray_address, workers, threads, signal_cls.shards)
    signal = signal_cls.from_options(
        model=model,
        backend=value_of(backend),
        dtype=value_of(dtype),
        max_length=max_length,
        batch_tokens=batch_tokens,
        policy=policy,
        reference=reference,
        beta=beta,
        timeout=timeout,
        workers=workers,
        require_isolation=require_isolation or None,
    )
    with open_executor(execution) as ex:
        ref, reused = run_signal(
            get_store(store),
            dataset,
            signal,
            pairs_version=pairs_version,
            force=force,
            subset=subset,
            executor=ex,
        )
    m = ref.manifest
    verb = "Reused" if reused else "Wrote"
    of = f" of {m['subset']['of']:,} (subset)" if "subset" in m else ""
    out.print(f"{verb} {ref.label}: {m['counts']['rows']:,}{of} pairs, columns {', '.join(signal.columns)}")
    nulls = {k: v for k, v in m["counts"].get("nulls", {}).items() if v}
    if nulls:
        out.print("  missing values: " + ", ".join(f"{k}={v:,}" for k, v in nulls.items()))
