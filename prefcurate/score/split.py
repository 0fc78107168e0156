"""split_v1, the held-out split by prompt: all pairs of one prompt land on the same side.

A prompt yields up to 3 pairs (top-vs-rest pairing), so splitting by row would put near-copies
of a training pair into the held-out set. The split is a signal (`split_v1`, field `split` with
values `train` / `holdout`) so it is an ordinary versioned sidecar: `partition` drops held-out
pairs from the buckets and the trainers evaluate on them.

Which prompts are held out: prompts are ranked by a hash of (seed, prompt_id) and the first
`round(holdout * prompts)` of them (at least one) are held out. The count is exact, the result
does not depend on row order, and growing a dataset keeps most earlier held-out prompts held out
(a new prompt only enters if its hash ranks among the lowest).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prefcurate.errors import ConfigError
from prefcurate.extras import lazy_module
from prefcurate.score.base import Computed, RunContext, Signal, register

if TYPE_CHECKING:
    import pyarrow as pa
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    pa = lazy_module("pyarrow")

TRAIN, HOLDOUT = "train", "holdout"
DEFAULT_HOLDOUT = 0.05  # fraction of distinct prompts held out
DEFAULT_SEED = 0


def check_fraction(holdout: float) -> None:
    if not (0.0 < holdout < 1.0):
        raise ConfigError(f"--holdout is a fraction of prompts between 0 and 1 (exclusive), got {holdout:g}")


def _rank_key(seed: int, prompt_id: str) -> str:
    return hashlib.blake2b(f"{seed}\x1f{prompt_id}".encode(), digest_size=8).hexdigest()


def held_out_prompts(prompt_ids: list[str], holdout: float, seed: int) -> set[str]:
    """The prompt ids held out: the `round(holdout * n)` (at least 1) lowest-ranked distinct prompts."""
    check_fraction(holdout)
    unique = sorted(set(prompt_ids))
    if len(unique) < 2:
        raise ConfigError(
            f"a held-out split needs at least 2 distinct prompts, the dataset has {len(unique)}"
        )
    n_hold = min(max(1, round(holdout * len(unique))), len(unique) - 1)
    ranked = sorted(unique, key=lambda p: (_rank_key(seed, p), p))
    return set(ranked[:n_hold])


def assign_split(prompt_ids: list[str], holdout: float, seed: int) -> pa.Array:
    """`train` / `holdout` per row, by the row's prompt."""
    held = held_out_prompts(prompt_ids, holdout, seed)
    return pa.array([HOLDOUT if p in held else TRAIN for p in prompt_ids], pa.string())


@register
@dataclass
class Split(Signal):
    name = "split_v1"
    cli_name = "split"
    fields = ("split",)
    description = "held-out split by prompt_id: 'train' or 'holdout' (all pairs of a prompt on one side)"

    holdout: float = DEFAULT_HOLDOUT
    seed: int = DEFAULT_SEED

    def __post_init__(self) -> None:
        check_fraction(self.holdout)

    def compute(self, pairs: pa.Table, ctx: RunContext) -> Computed:
        split = assign_split(pairs.column("prompt_id").to_pylist(), self.holdout, self.seed)
        return Computed(pa.table({"pair_id": pairs.column("pair_id"), self.column("split"): split}))
