"""`build ultrafeedback`: its choices and defaults, in a module the CLI can import at start-up (no
pyarrow, no readers); `build/ultrafeedback.py` reads them from here, so each is written once."""

from __future__ import annotations

from enum import Enum

from prefcurate.build.ratings import ASPECTS


class Pairing(str, Enum):
    """How rated completions of one prompt become pairs."""

    top_vs_rest = "top-vs-rest"
    best_vs_worst = "best-vs-worst"
    best_vs_random = "best-vs-random"
    all_ordered = "all-ordered"


PAIRINGS = tuple(m.value for m in Pairing)


class Rating(str, Enum):
    """Which rating orders the completions: an overall score or one aspect."""

    overall = "overall"
    fine_grained = "fine-grained"
    mean_aspects = "mean-aspects"
    helpfulness = "helpfulness"
    honesty = "honesty"
    instruction_following = "instruction_following"
    truthfulness = "truthfulness"


RATINGS = tuple(m.value for m in Rating)
assert RATINGS[3:] == ASPECTS  # the aspects, in the order the raw data lists them

DEFAULT_HUB_ID = "openbmb/UltraFeedback"
DEFAULT_DATASET = "ultrafeedback"
DEFAULT_PAIRING = Pairing.top_vs_rest.value  # Curri-DPO: the best against each lower-rated completion
DEFAULT_RATING = Rating.overall.value
DEFAULT_MIN_GAP = 0.0  # ties are dropped whatever the gap
DEFAULT_SEED = 0  # best-vs-random
