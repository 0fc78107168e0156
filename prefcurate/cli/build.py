"""`prefcurate build ultrafeedback` and `prefcurate build pairs`.

Choices and defaults come from `build/*_options.py` (light); each builder loads when its command runs."""

import sys
from typing import Annotated

import typer

from prefcurate.build import BuildResult, empty_message, pick_source
from prefcurate.build import ultrafeedback_options as uf
from prefcurate.build.pairs_options import DEFAULT_FORMAT, InputFormat
from prefcurate.build.ultrafeedback_options import Pairing, Rating

from .base import StoreOpt, build_app, get_store, out


def warn_if_empty(label: str, counts: dict) -> None:
    """A loud line on stderr when a build kept nothing (the version exists, but trains nothing)."""
    if not counts.get("kept"):
        # One unwrapped line on stderr, so scripts and logs see it whole.
        print(f"Warning: {label}: {empty_message(counts)}", file=sys.stderr)


def summary(result: BuildResult) -> None:
    c = result.counts
    verb = "Reused" if result.reused else "Wrote"
    extra = " (same inputs and options; --force to rebuild)" if result.reused else ""
    out.print(f"{verb} {result.ref.label}: {c.get('kept', 0):,} pairs from {c.get('read', 0):,} rows{extra}")
    dropped = c.get("dropped", {})
    if dropped:
        out.print("  dropped: " + ", ".join(f"{k}={v:,}" for k, v in sorted(dropped.items())))
    warn_if_empty(result.ref.label, c)


ForceOpt = Annotated[
    bool, typer.Option("--force", help="Rebuild even if a version with the same inputs and options exists.")
]
LimitOpt = Annotated[
    int | None, typer.Option("--limit", help="Read only the first N rows.", show_default=False)
]
FailOnEmptyOpt = Annotated[
    bool,
    typer.Option(
        "--fail-on-empty", help="Exit 1 and publish nothing when every row is dropped (for scripts)."
    ),
]
SplitOpt = Annotated[
    str,
    typer.Option(
        "--split",
        help="Hub datasets, or a folder of split files (train.jsonl, eval.jsonl): the split to load.",
    ),
]
HubConfigOpt = Annotated[
    str | None,
    typer.Option("--config", help="Hub datasets: the configuration (subset) name.", show_default=False),
]
HubDataDirOpt = Annotated[
    str | None,
    typer.Option(
        "--data-dir",
        help="Hub datasets: a folder inside the repo, e.g. harmless-base of Anthropic/hh-rlhf.",
        show_default=False,
    ),
]
SourceArg = Annotated[
    str | None,
    typer.Argument(help="The input (same as --from): a file, a folder or a hub id.", show_default=False),
]


@build_app.command("ultrafeedback")
def ultrafeedback(
    source: Annotated[
        str,
        typer.Option(
            "--from",
            help="Hub id, or a local .jsonl/.json/.parquet file (optionally .gz) or folder in the raw openbmb/UltraFeedback schema.",
        ),
    ] = uf.DEFAULT_HUB_ID,
    pairing: Annotated[
        Pairing,
        typer.Option(
            "--pairing",
            help="top-vs-rest (best vs each lower-rated, Curri-DPO), best-vs-worst, best-vs-random (H4 binarized recipe, seeded) or all-ordered.",
        ),
    ] = Pairing(uf.DEFAULT_PAIRING),
    rating: Annotated[
        Rating,
        typer.Option(
            "--rating",
            help="overall (overall_score), fine-grained (fine-grained_score), mean-aspects (mean of the 4 aspect ratings, N/A excluded) or one aspect: helpfulness, honesty, instruction_following, truthfulness.",
        ),
    ] = Rating(uf.DEFAULT_RATING),
    min_gap: Annotated[
        float,
        typer.Option(
            "--min-gap", help="Drop pairs whose rating gap is below this (ties are always dropped)."
        ),
    ] = uf.DEFAULT_MIN_GAP,
    exclude_source: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude-source",
            help="Drop prompts from this source (repeatable), e.g. truthful_qa.",
            show_default=False,
        ),
    ] = None,
    limit: LimitOpt = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for best-vs-random.")] = uf.DEFAULT_SEED,
    dataset: Annotated[
        str, typer.Option("--dataset", "--name", help="Dataset name in the store.")
    ] = uf.DEFAULT_DATASET,
    split: SplitOpt = "train",
    force: ForceOpt = False,
    store: StoreOpt = None,
    fail_on_empty: FailOnEmptyOpt = False,
    source_arg: SourceArg = None,
    hub_config: HubConfigOpt = None,
    hub_data_dir: HubDataDirOpt = None,
) -> None:
    """Pair rated completions of the raw UltraFeedback schema and publish them as a new version."""
    from prefcurate.build.ultrafeedback import build_ultrafeedback

    source = pick_source(source_arg, None if source == uf.DEFAULT_HUB_ID else source, uf.DEFAULT_HUB_ID)
    result = build_ultrafeedback(
        get_store(store),
        source,
        dataset=dataset,
        pairing=pairing.value,
        rating=rating.value,
        min_gap=min_gap,
        exclude_sources=tuple(exclude_source or ()),
        limit=limit,
        seed=seed,
        split=split,
        force=force,
        fail_on_empty=fail_on_empty,
        hub_config=hub_config,
        hub_data_dir=hub_data_dir,
    )
    summary(result)


@build_app.command("pairs")
def pairs(
    source: Annotated[
        str | None,
        typer.Argument(
            help="Hub id, or a .jsonl/.json/.parquet/.csv file (optionally .gz), or a folder of them (source = file stem; files named train/eval/test are splits). Or --from.",
            show_default=False,
        ),
    ] = None,
    input_format: Annotated[
        InputFormat,
        typer.Option(
            "--input-format",
            help="auto, flat (prompt/chosen/rejected strings), conversational (TRL message lists, H4 binarized) or hh-rlhf (Human/Assistant transcripts).",
        ),
    ] = InputFormat(DEFAULT_FORMAT),
    prompt_col: Annotated[str, typer.Option("--prompt-col", help="Column holding the prompt.")] = "prompt",
    chosen_col: Annotated[
        str, typer.Option("--chosen-col", help="Column holding the chosen reply.")
    ] = "chosen",
    rejected_col: Annotated[
        str, typer.Option("--rejected-col", help="Column holding the rejected reply.")
    ] = "rejected",
    chosen_score_col: Annotated[
        str | None,
        typer.Option(
            "--chosen-score-col",
            help="Column with the chosen score (default: score_chosen or metadata.score_chosen).",
            show_default=False,
        ),
    ] = None,
    rejected_score_col: Annotated[
        str | None,
        typer.Option(
            "--rejected-score-col",
            help="Column with the rejected score (default: score_rejected or metadata.score_rejected).",
            show_default=False,
        ),
    ] = None,
    source_name: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="Source name for every pair (default: a `source` column, else the file stem).",
            show_default=False,
        ),
    ] = None,
    source_col: Annotated[
        str | None, typer.Option("--source-col", help="Column holding each row's source.", show_default=False)
    ] = None,
    limit: LimitOpt = None,
    limit_per_file: Annotated[
        int | None,
        typer.Option(
            "--limit-per-file",
            help="Read only the first N rows of each file of a folder (e.g. N pairs per HH-RLHF subset).",
            show_default=False,
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            "--name",
            help="Dataset name in the store (default: file stem, folder or hub dataset name).",
            show_default=False,
        ),
    ] = None,
    split: SplitOpt = "train",
    force: ForceOpt = False,
    store: StoreOpt = None,
    fail_on_empty: FailOnEmptyOpt = False,
    from_: Annotated[
        str | None, typer.Option("--from", help="The input (same as SOURCE).", show_default=False)
    ] = None,
    hub_config: HubConfigOpt = None,
    hub_data_dir: HubDataDirOpt = None,
) -> None:
    """Import data that is already pairwise (flat, TRL conversational, H4 binarized, HH-RLHF)."""
    from prefcurate.build.pairs import build_pairs

    result = build_pairs(
        get_store(store),
        pick_source(source, from_),
        dataset=dataset,
        format=input_format.value,
        prompt_col=prompt_col,
        chosen_col=chosen_col,
        rejected_col=rejected_col,
        chosen_score_col=chosen_score_col,
        rejected_score_col=rejected_score_col,
        source_name=source_name,
        source_col=source_col,
        limit=limit,
        limit_per_file=limit_per_file,
        split=split,
        force=force,
        fail_on_empty=fail_on_empty,
        hub_config=hub_config,
        hub_data_dir=hub_data_dir,
    )
    summary(result)
