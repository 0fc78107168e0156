"""`prefcurate partition`, `prefcurate split` and `prefcurate export`: buckets from signals, the
held-out split, and files any DPO trainer can read.

Only the choices and defaults load at start-up (`bucket/spec.py`, `bucket/export_options.py`,
`score/split.py`); partition, split and export import their library function when they run.
"""

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from prefcurate.bucket.export_options import DEFAULT_LAYOUT
from prefcurate.bucket.export_options import Layout as ExportLayout
from prefcurate.bucket.spec import Easy, PartitionSpec, Strategy
from prefcurate.extras import lazy_module
from prefcurate.score.split import DEFAULT_HOLDOUT, DEFAULT_SEED

from ..errors import ConfigError
from ..render import json_text
from .base import Format, FormatOpt, StoreOpt, app, field_default, get_store, out, render

if TYPE_CHECKING:
    import pyarrow as pa
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    pa = lazy_module("pyarrow")


def parse_numbers(text: str | None, flag: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{flag} takes comma-separated numbers, got {text!r}") from None


PARTITION_EPILOG = (
    "Examples: prefcurate partition uf --by score_gap_v1__gap --buckets 3 --name uf-curriculum | "
    "prefcurate partition code --by logprob_margin_v1__margin --strategy percentiles --cuts 10,50,90 "
    "--drop-extremes 5,95 --name code-cur | prefcurate partition uf --strategy source --by "
    "reward_margin_v1__margin --order-by accuracy --name uf-sdpo | prefcurate partition uf --strategy random "
    "--like uf-curriculum --seed 0 --name uf-random"
)


@app.command(epilog=PARTITION_EPILOG)
def partition(
    dataset: Annotated[
        str | None,
        typer.Argument(
            help="Dataset name in the store (see `prefcurate ls`); optional when it holds only one.",
            show_default=False,
            metavar="DATASET",
        ),
    ] = None,
    *,  # the options after an optional DATASET need no defaults (Typer passes them by name)
    name: Annotated[str, typer.Option("--name", help="Bucket-set name; each run publishes buckets/NAME/vN.")],
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            help="Signal column <signal>__<field> (e.g. score_gap_v1__gap) or a SQL expression over pair and signal columns.",
        ),
    ] = None,
    strategy: Annotated[
        Strategy,
        typer.Option(
            "--strategy",
            help="quantile: K equal-size buckets by the signal; percentiles: cut at --cuts percents; thresholds: cut at --cuts signal values; source: one bucket per data source ordered by --order-by; random: seeded, the sizes of --like (or --buckets K equal sizes).",
        ),
    ] = Strategy(field_default(PartitionSpec, "strategy")),
    buckets: Annotated[
        int | None,
        typer.Option("--buckets", "-k", help="Number of buckets (quantile; random without --like)."),
    ] = None,
    cuts: Annotated[
        str | None,
        typer.Option(
            "--cuts",
            help="Comma-separated cut points: percents for percentiles (10,50,90), signal values for thresholds.",
        ),
    ] = None,
    order_by: Annotated[
        str | None,
        typer.Option(
            "--order-by",
            help="source: per-source statistic: accuracy (share of pairs with --by > 0, or true), mean, count, or a SQL aggregate such as 'median(score_gap_v1__gap)'. (default: accuracy)",
        ),
    ] = None,
    easy: Annotated[
        Easy,
        typer.Option(
            "--easy",
            help="Which end is easy: high (a large score gap or margin is easy) or low. Bucket 0 is the easiest.",
        ),
    ] = Easy(field_default(PartitionSpec, "easy")),
    where: Annotated[
        str | None,
        typer.Option(
            "--where",
            help="Keep only pairs where this SQL predicate over pair and signal columns is true (others count as dropped: where).",
        ),
    ] = None,
    drop_extremes: Annotated[
        str | None,
        typer.Option(
            "--drop-extremes",
            help="LOW,HIGH percents: drop pairs whose --by value is below the LOW or above the HIGH percentile (e.g. 5,95).",
        ),
    ] = None,
    like: Annotated[
        str | None,
        typer.Option(
            "--like",
            help="random: the bucket set (NAME or NAME@vN) whose pairs and bucket sizes to reuse (the control arm).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="random: the seed.")] = field_default(
        PartitionSpec, "seed"
    ),
    pairs_version: Annotated[
        str | None, typer.Option("--pairs-version", help="Pairs version (default: latest).")
    ] = None,
    keep_holdout: Annotated[
        bool,
        typer.Option(
            "--keep-holdout", help="Keep pairs that `prefcurate split` held out (dropped by default)."
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Publish a new version even if this exact partition exists.")
    ] = False,
    store: StoreOpt = None,
    format: FormatOpt = Format.table,
) -> None:
    """Partition a dataset's pairs into versioned easy-to-hard buckets (bucket 0 = easiest)."""
    from prefcurate.bucket.partition import partition as partition_pairs

    extremes = parse_numbers(drop_extremes, "--drop-extremes")
    if extremes is not None and len(extremes) != 2:
        raise ConfigError(f"--drop-extremes takes two percents LOW,HIGH, got {drop_extremes!r}")
    spec = PartitionSpec(
        dataset=get_store(store).dataset_or_only(dataset),
        name=name,
        strategy=strategy.value,
        by=by,
        easy=easy.value,
        buckets=buckets,
        cuts=parse_numbers(cuts, "--cuts"),
        order_by=order_by,
        where=where,
        drop_extremes=(extremes[0], extremes[1]) if extremes else None,
        like=like,
        seed=seed,
        pairs_version=pairs_version,
        keep_holdout=keep_holdout,
    )
    result = partition_pairs(get_store(store), spec, force=force)
    m = result.manifest
    if format is Format.json:
        sys.stdout.write(json_text(m))
        return
    if format is Format.table:
        counts = m["counts"]
        dropped = ", ".join(f"{k}={v:,}" for k, v in counts["dropped"].items() if v) or "none"
        verb = "Reused" if result.reused else "Wrote"
        sp = m["spec"]
        if sp["strategy"] == "random":
            order = f"random buckets (seed {sp['seed']}" + (
                f", sizes of {sp['like']})" if sp["like"] else ")"
            )
        elif sp["strategy"] == "source":
            first = "highest" if sp["easy"] == "high" else "lowest"
            order = f"one bucket per source, {first} {sp['order_by']}{' of ' + sp['by'] if sp['by'] and sp['order_by'] in ('accuracy', 'mean') else ''} first"
        else:
            order = f"bucket 0 = easiest ({sp['by']}, easy = {sp['easy']})"
        out.print(
            f"{verb} {result.ref.label}: {len(m['buckets'])} buckets, {counts['kept']:,} of {counts['input']:,} pairs "
            f"(dropped: {dropped}); {order}",
            soft_wrap=True,
        )
    render(result.bucket_table(), format)


@app.command()
def split(
    dataset: Annotated[
        str | None,
        typer.Argument(
            help="Dataset name in the store; optional when it holds only one.",
            show_default=False,
            metavar="DATASET",
        ),
    ] = None,
    *,  # the options after an optional DATASET need no defaults (Typer passes them by name)
    holdout: Annotated[
        float,
        typer.Option(
            "--holdout", help="Fraction of distinct prompts held out (all pairs of a prompt go to one side)."
        ),
    ] = DEFAULT_HOLDOUT,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the prompt ranking.")] = DEFAULT_SEED,
    pairs_version: Annotated[
        str | None, typer.Option("--pairs-version", help="Pairs version (default: latest).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Publish again even if this exact split exists.")
    ] = False,
    store: StoreOpt = None,
) -> None:
    """Split a dataset into train and held-out pairs by prompt_id (published as signal split_v1).

    `partition` then leaves held-out pairs out of the buckets, and `prefcurate train` evaluates on them.
    """
    from prefcurate.bucket.split import split_dataset

    r = split_dataset(
        get_store(store),
        get_store(store).dataset_or_only(dataset),
        holdout=holdout,
        seed=seed,
        pairs_version=pairs_version,
        force=force,
    )
    verb = "Reused" if r.reused else "Wrote"
    out.print(
        f"{verb} {r.ref.label}: {r.pairs:,} pairs from {r.prompts:,} prompts; holdout {r.holdout_pairs:,} pairs "
        f"({r.holdout_prompts:,} prompts), train {r.pairs - r.holdout_pairs:,} pairs ({r.prompts - r.holdout_prompts:,} prompts)",
        soft_wrap=True,
    )


@app.command()
def export(
    buckets: Annotated[str, typer.Argument(help="Bucket set NAME or NAME@vN (see `prefcurate ls`).")],
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Folder to write (must be new or empty unless --overwrite).")
    ],
    layout: Annotated[
        ExportLayout,
        typer.Option(
            "--layout",
            help="trl: TRL's conversational form as data/bucket_<k>.parquet, jsonl/bucket_<k>.jsonl and a DatasetDict (splits bucket_0, ...); jsonl / parquet: flat rows for other trainers.",
        ),
    ] = ExportLayout(DEFAULT_LAYOUT),
    with_ref_logps: Annotated[
        str | None,
        typer.Option(
            "--with-ref-logps",
            help="Add ref_chosen_logps / ref_rejected_logps from this log-prob signal (e.g. logprob_margin_v1 or logprob_margin_v1@v2); refused unless every pair has values.",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out folder.")] = False,
    store: StoreOpt = None,
    push_to_hub: Annotated[
        str | None,
        typer.Option(
            "--push-to-hub",
            help="Also upload the DatasetDict (splits bucket_0, bucket_1, ...) and order.json to this hub dataset repo.",
            show_default=False,
        ),
    ] = None,
    private: Annotated[
        bool, typer.Option("--private", help="--push-to-hub: create the repo private.")
    ] = False,
) -> None:
    """Write a bucket set, bucket by bucket in training order, plus order.json."""
    from prefcurate.bucket.export import export as export_buckets

    if push_to_hub and layout.value != "trl":
        raise ConfigError(f"--push-to-hub uploads a --layout trl export (a DatasetDict), not {layout.value}")
    result = export_buckets(
        get_store(store),
        buckets,
        out_dir,
        fmt=layout.value,
        with_ref_logps=with_ref_logps,
        overwrite=overwrite,
    )
    order = result.order
    ref = order["ref_logps"]["signal_version"] if order["ref_logps"] else "none"
    out.print(
        f"Wrote {result.out} ({order['format']}): buckets/{order['name']}/{order['version']}, "
        f"{sum(b['rows'] for b in order['buckets']):,} pairs in {len(order['buckets'])} buckets; reference log-probs: {ref}",
        soft_wrap=True,
    )
    render(
        pa.table(
            {
                "bucket": pa.array([b["bucket"] for b in order["buckets"]], pa.int64()),
                "rows": pa.array([b["rows"] for b in order["buckets"]], pa.int64()),
                "split": [b["split"] for b in order["buckets"]],
                "files": [", ".join(b["files"]) for b in order["buckets"]],
            }
        )
    )
    if push_to_hub:
        from prefcurate.bucket.export import push_to_hub as push

        out.print(f"Pushed to {push(result.out, push_to_hub, private=private)}")
