"""`prefcurate split`: publish the held-out split signal and count both sides (the rule is in
prefcurate.score.split).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from prefcurate.extras import lazy_module
from prefcurate.score import run_signal
from prefcurate.score.split import DEFAULT_HOLDOUT, DEFAULT_SEED, HOLDOUT, Split, check_fraction
from prefcurate.store import Store, VersionRef

if TYPE_CHECKING:
    import pyarrow.compute as pc
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    pc = lazy_module("pyarrow.compute")


@dataclass
class SplitResult:
    ref: VersionRef
    reused: bool
    pairs: int
    holdout_pairs: int
    prompts: int
    holdout_prompts: int


def split_dataset(
    store: Store,
    dataset: str,
    *,
    holdout: float = DEFAULT_HOLDOUT,
    seed: int = DEFAULT_SEED,
    pairs_version: str | None = None,
    force: bool = False,
) -> SplitResult:
    """Publish `scores/<dataset>/split_v1/<version>` (reused when the same split exists)."""
    check_fraction(holdout)
    ref, reused = run_signal(
        store, dataset, Split(holdout=holdout, seed=seed), pairs_version=pairs_version, force=force
    )
    table = ref.read(["pair_id", "split_v1__split"])
    pairs_ref = store.get("pairs", dataset, ref.pairs_version)
    prompts = pairs_ref.read(["pair_id", "prompt_id"]).join(table, "pair_id")
    is_hold = pc.equal(prompts.column("split_v1__split"), HOLDOUT)
    held = prompts.filter(is_hold)
    return SplitResult(
        ref,
        reused,
        pairs=prompts.num_rows,
        holdout_pairs=held.num_rows,
        prompts=len(pc.unique(prompts.column("prompt_id"))),
        holdout_prompts=len(pc.unique(held.column("prompt_id"))),
    )
