"""`prefcurate build ultrafeedback` and `prefcurate build pairs`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from .app import StoreOpt, build_app, get_store, out

if TYPE_CHECKING:
    from prefcurate.build import BuildResult

# prefcurate.build.ultrafeedback.DEFAULT_HUB_ID (a literal here so `--help` needs no pyarrow; a test checks they match)
DEFAULT_HUB_ID = "openbmb/UltraFeedback"


def summary(result: BuildResult) -> None:
    c = result.counts
    verb = "Reused" if result.reused else "Wrote"
    extra = " (same inputs and options; --force to rebuild)" if result.reused else ""
    out.print(f"{verb} {result.ref.label}: {c.get('kept', 0):,} pairs from {c.get('read', 0):,} rows{extra}")
    dropped = c.get("dropped", {})
    if dropped:
        out.print("  dropped: " + ", ".join(f"{k}={v:,}" for k, v in sorted(dropped.items())))


ForceOpt = Annotated[
    bool, typer.Option("--force", help="Rebuild even if a version with the same inputs and options exists.")
]
LimitOpt = Annotated[
    int | None, typer.Option("--limit", help="Read only the first N rows.", show_default=False)
]
SplitOpt = Annotated[str, typer.Option("--split", help="Hub datasets: the split to load.")]


@build_app.command("ultrafeedback")
def ultrafeedback(
    source: Annotated[
        str,
        typer.Option(
            "--from",
            help="Hub id, or a local .jsonl/.json/.parquet file (optionally .gz) or folder in the raw openbmb/UltraFeedback schema.",
        ),
    ] = DEFAULT_HUB_ID,
    pairing: Annotated[
        str,
        typer.Option(
            "--pairing",
            help="top-vs-rest (best vs each lower-rated, Curri-DPO), best-vs-worst, best-vs-random (H4 binarized recipe, seeded) or all-ordered.",
        ),
    ] = "top-vs-rest",
    rating: Annotated[
        str,
        typer.Option(
            "--rating",
            help="overall (overall_score), fine-grained (fine-grained_score), mean-aspects (mean of the 4 aspect ratings, N/A excluded) or one aspect: helpfulness, honesty, instruction_following, truthfulness.",
        ),
    ] = "overall",
    min_gap: Annotated[
        float,
        typer.Option(
            "--min-gap", help="Drop pairs whose rating gap is below this (ties are always dropped)."
        ),
    ] = 0.0,
    exclude_source: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude-source",
            help="Drop prompts from this source (repeatable), e.g. truthful_qa.",
            show_default=False,
        ),
    ] = None,
    limit: LimitOpt = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for best-vs-random.")] = 0,
    dataset: Annotated[
        str, typer.Option("--dataset", "--name", help="Dataset name in the store.")
    ] = "ultrafeedback",
    split: SplitOpt = "train",
    force: ForceOpt = False,
    store: StoreOpt = None,
) -> None:
    """Pair rated completions of the raw UltraFeedback schema and publish them as a new version."""
    from prefcurate.build.ultrafeedback import build_ultrafeedback

    result = build_ultrafeedback(
        get_store(store),
        source,
        dataset=dataset,
        pairing=pairing,
        rating=rating,
        min_gap=min_gap,
        exclude_sources=tuple(exclude_source or ()),
        limit=limit,
        seed=seed,
        split=split,
        force=force,
    )
    summary(result)


@build_app.command("pairs")
def pairs(
    source: Annotated[
        str,
        typer.Argument(
            help="Hub id, or a .jsonl/.json/.parquet file (optionally .gz), or a folder of them (source = file stem)."
        ),
    ],
    format: Annotated[
        str,
        typer.Option(
            "--format",
            help="auto, flat (prompt/chosen/rejected strings), conversational (TRL message lists, H4 binarized) or hh-rlhf (Human/Assistant transcripts).",
        ),
    ] = "auto",
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
) -> None:
    """Import data that is already pairwise (flat, TRL conversational, H4 binarized, HH-RLHF)."""
    from prefcurate.build.pairs import build_pairs

    result = build_pairs(
        get_store(store),
        source,
        dataset=dataset,
        format=format,
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
    )
    summary(result)
