"""The stages of `prefcurate demo`, in order (see demo.py).

The demo is the README tour run for real: bundled real data (UltraFeedback-binarized, HH-RLHF,
CodeGen samples for HumanEval) and the bundled SmolLM2-135M-Instruct. Each stage calls the same
library functions as the CLI commands, so what the demo shows is what the commands do. Model
stages use small slices of the data so the whole demo runs in minutes on 2 CPU cores.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefcurate.demo.context import DemoContext
from prefcurate.extras import lazy_module
from prefcurate.render import render
from prefcurate.store.views import run_named, run_sql

if TYPE_CHECKING:
    import pyarrow as pa
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    pa = lazy_module("pyarrow")

UF = "ultrafeedback"
HH = "hh-rlhf"
CODE = "humaneval-codet"
# Model stages score the first pairs only (sorted by pair id, so a fixed, unbiased slice); the
# training stage injects these log-probs as its reference, so it uses the same max length.
MAX_LENGTH = 256


def show(ctx: DemoContext, table: pa.Table, title: str) -> None:
    render(table, title=title, console=ctx.console)


def _slice(ctx: DemoContext, full: int, quick: int) -> int:
    return quick if ctx.quick else full


def build_stage(ctx: DemoContext) -> None:
    from prefcurate.build.code import CodeBuildOptions, build_code
    from prefcurate.build.pairs import build_pairs
    from prefcurate.build.ultrafeedback import build_ultrafeedback

    uf = build_pairs(ctx.store, str(ctx.data / "ultrafeedback_binarized.jsonl"), dataset=UF)
    hh = build_pairs(ctx.store, str(ctx.data / "hh_rlhf"), dataset=HH)
    raw = build_ultrafeedback(ctx.store, str(ctx.data / "ultrafeedback_raw"), dataset="ultrafeedback-raw")
    for result in (uf, hh, raw):
        _print_build(ctx, result.ref.label, result.reused, result.counts)
    code = build_code(
        ctx.store,
        CodeBuildOptions(path=str(ctx.data / "codet_sample.jsonl"), name=CODE, timeout=2.0, workers=2),
    )
    _print_build(ctx, code.ref.label, code.reused, code.counts)


def _print_build(ctx: DemoContext, label: str, reused: bool, counts: dict) -> None:
    dropped = ", ".join(f"{k}={v}" for k, v in sorted(counts.get("dropped", {}).items())) or "none"
    verb = "reused" if reused else "built"
    ctx.console.print(f"{verb} {label}: {counts.get('kept', 0)} pairs (dropped: {dropped})")


def sql_stage(ctx: DemoContext) -> None:
    show(ctx, run_named(ctx.store, "overview"), title="prefcurate sql overview: pairs per dataset")
    show(
        ctx,
        run_named(ctx.store, "sources"),
        title="prefcurate sql sources: pairs and mean score gap per source",
    )
    show(ctx, run_named(ctx.store, "drops"), title="prefcurate sql drops: what each build dropped, by reason")


def model_free_signals_stage(ctx: DemoContext) -> None:
    from prefcurate.score import run_signal
    from prefcurate.score.score_gap import ScoreGap
    from prefcurate.score.test_pass import TestPass

    gap, _ = run_signal(ctx.store, UF, ScoreGap())
    ctx.console.print(
        f"{gap.label}: chosen_score - rejected_score for {gap.manifest['counts']['rows']} pairs"
    )
    tests, _ = run_signal(ctx.store, CODE, TestPass(timeout=2.0, workers=2))
    show(
        ctx,
        run_sql(
            ctx.store,
            "SELECT p.source, count(*) AS pairs, round(avg(t.test_pass_v1__chosen_passed), 2) AS chosen_passed, "
            "round(avg(t.test_pass_v1__rejected_passed), 2) AS rejected_passed, round(avg(t.test_pass_v1__total), 2) AS units "
            f"FROM pairs__{_view(CODE)} p JOIN test_pass_v1 t USING (pair_id) GROUP BY 1",
        ),
        title=f"{tests.label}: unit tests passed by chosen and rejected samples (sandboxed interpreter)",
    )


def _view(name: str) -> str:
    return name.replace("-", "_")


def _logprob(
    ctx: DemoContext, dataset: str, first: int, max_length: int = MAX_LENGTH, dtype: str = "auto"
) -> str:
    """Score the first `first` pairs (by pair id) of `dataset` with the bundled model."""
    from prefcurate.score import run_signal
    from prefcurate.score.logprob_margin import LogprobMargin

    subset = _subset(ctx, dataset, first)
    ref, reused = run_signal(ctx.store, subset, LogprobMargin(max_length=max_length, dtype=dtype))
    verb = "reused" if reused else "wrote"
    ctx.console.print(
        f"{verb} {ref.label}: bundled SmolLM2-135M-Instruct, dtype {ref.manifest.get('dtype')}, "
        f"template {ref.manifest.get('template')}"
    )
    return subset


def _subset(ctx: DemoContext, dataset: str, first: int) -> str:
    """Publish `<dataset>-demo`: the first `first` pairs (by pair id) of each source of `dataset`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from prefcurate.ids import fingerprint

    name = f"{dataset}-demo"
    pairs_ref = ctx.store.get("pairs", dataset)
    fp = fingerprint(
        {"subset_of": pairs_ref.manifest.get("fingerprint", pairs_ref.label), "first_per_source": first}
    )
    if ctx.store.find_fingerprint("pairs", name, fp):
        return name
    table = pairs_ref.read()
    table = table.take(pc.sort_indices(table, [("source", "ascending"), ("pair_id", "ascending")]))
    keep: list[int] = []
    seen: dict[str, int] = {}
    for i, source in enumerate(table.column("source").to_pylist()):
        if seen.get(source, 0) < first:
            keep.append(i)
            seen[source] = seen.get(source, 0) + 1
    subset = table.take(pa.array(keep, pa.int64()))
    subset = subset.set_column(
        subset.schema.get_field_index("dataset"), "dataset", pa.array([name] * subset.num_rows)
    )
    manifest = {
        "builder": "demo subset",
        "options": {"first_per_source": first},
        "inputs": {"pairs": {"version": pairs_ref.version, "dataset": dataset}},
        "counts": {
            "kept": subset.num_rows,
            "dropped": {"outside_demo_slice": table.num_rows - subset.num_rows},
        },
        "fingerprint": fp,
    }
    with ctx.store.publish("pairs", name, manifest) as pub:
        pub.write_table(subset)
    return name


def logprob_stage(ctx: DemoContext) -> None:
    from prefcurate.explore.ranking import rank_pairs

    # fp32, as the training stage runs: then its reference log-probs can be injected (bf16 weights
    # and TRL's bf16 autocast differ by up to a nat on long completions; fp32 agrees to 1e-4).
    subset = _logprob(ctx, UF, _slice(ctx, 40, 16), dtype="fp32")
    table, ref, field = rank_pairs(ctx.store, subset, "logprob-margin", top=5)
    show(ctx, table, title=f"prefcurate rank {subset} --by logprob-margin --top 5 (largest margin = easiest)")


def accuracy_stage(ctx: DemoContext) -> None:
    from prefcurate.explore.stats import accuracy, source_order

    subset = _logprob(ctx, HH, _slice(ctx, 20, 8), max_length=512)  # multi-turn HH prompts are long
    column = "logprob_margin_v1__correct"
    show(
        ctx,
        accuracy(ctx.store, subset, column),
        title="reference-free reward accuracy per HH-RLHF source (ties never count as correct)",
    )
    ctx.console.print(
        "sDPO order (easiest source first): " + " -> ".join(source_order(ctx.store, subset, column))
    )


def buckets_stage(ctx: DemoContext) -> None:
    from prefcurate.bucket.export import export
    from prefcurate.bucket.partition import PartitionSpec, partition
    from prefcurate.bucket.split import split_dataset
    from prefcurate.explore.page import write_report

    dataset = f"{UF}-demo"
    if not ctx.store.versions(
        "pairs", dataset
    ):  # the model stages were skipped: bucket the full set by score gap
        dataset = UF
    from prefcurate.score import run_signal
    from prefcurate.score.score_gap import ScoreGap

    run_signal(ctx.store, dataset, ScoreGap())
    split = split_dataset(ctx.store, dataset, holdout=0.1, seed=0)
    ctx.console.print(
        f"{split.ref.label}: {split.holdout_pairs} held-out pairs from {split.holdout_prompts} prompts"
    )
    scored = ctx.store.versions("scores", f"{dataset}/logprob_margin_v1")
    # Training injects the reference log-probs, so keep only pairs that have them (a prompt longer
    # than max_length leaves no completion tokens to score).
    where = (
        "logprob_margin_v1__chosen_logp IS NOT NULL AND logprob_margin_v1__rejected_logp IS NOT NULL"
        if scored
        else None
    )
    result = partition(
        ctx.store, PartitionSpec(dataset, "uf-curriculum", by="score_gap_v1__gap", buckets=3, where=where)
    )
    show(ctx, result.bucket_table(), title=f"{result.ref.label}: 3 buckets by score gap (bucket 0 = easiest)")
    control = partition(
        ctx.store, PartitionSpec(dataset, "uf-random", strategy="random", like="uf-curriculum", seed=0)
    )
    ctx.console.print(f"control arm: {control.ref.label} (same pairs and sizes, random order)")
    hh = f"{HH}-demo"
    if ctx.store.versions("scores", f"{hh}/logprob_margin_v1"):
        sdpo = partition(
            ctx.store,
            PartitionSpec(
                hh, "hh-sdpo", strategy="source", by="logprob_margin_v1__correct", order_by="accuracy"
            ),
        )
        show(
            ctx,
            sdpo.bucket_table(),
            title=f"{sdpo.ref.label}: one bucket per source, highest accuracy first (sDPO)",
        )
    with_ref = "logprob_margin_v1" if scored else None
    exported = export(
        ctx.store, "uf-curriculum", ctx.out / "export-uf-curriculum", with_ref_logps=with_ref, overwrite=True
    )
    extra = " with reference log-probs" if with_ref else ""
    ctx.console.print(
        f"exported {exported.out}{extra} (TRL form: order.json, data/bucket_<k>.parquet, jsonl/, a DatasetDict in dataset/)"
    )
    report = write_report(ctx.store, "uf-curriculum", ctx.out / "report-uf-curriculum.html")
    ctx.console.print(f"report: {report}")


def train_stage(ctx: DemoContext) -> None:
    from prefcurate.extras import require

    require("trl", "training")
    import trainers

    summary = trainers.demo_run(
        ctx.store,
        str(ctx.out / "export-uf-curriculum"),
        ctx.out / "run-stepwise",
        steps=_slice(ctx, 2, 1),
        schedule="stepwise",
        max_length=MAX_LENGTH,
        dtype="fp32",
        eval_pairs=_slice(ctx, 8, 4),
        echo=lambda line: ctx.console.print(line, markup=False, highlight=False),
    )
    show(ctx, summary, title="stepwise DPO (sDPO) on the 3 buckets: per-stage held-out evaluation")


STAGES = [
    ("1. build pairs from bundled real data", build_stage),
    ("2. explore with SQL", sql_stage),
    ("3. model-free signals: score gap, unit tests in the sandbox", model_free_signals_stage),
    ("4. reference log-prob margin with the bundled SmolLM2-135M-Instruct", logprob_stage),
    ("5. per-source reward accuracy (sDPO ordering)", accuracy_stage),
    ("6. split, buckets, control arm, export, report", buckets_stage),
    ("7. a short stepwise DPO run over the buckets", train_stage),
]
