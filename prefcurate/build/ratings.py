"""UltraFeedback ratings as numbers, and the pairing policies that rank them (polars).

`build ultrafeedback` explodes the completions of every prompt into one frame (p = prompt row,
k = completion, ci = its index in the row, rating); a policy turns it into candidate pairs
(c = chosen, r = rejected), before ties, identical texts and small gaps are dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefcurate.extras import lazy_module

if TYPE_CHECKING:  # polars is imported where used: `prefcurate --help` and `build pairs` stay light
    import numpy as np
    import polars as pl
    import pyarrow as pa
    import pyarrow.compute as pc
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    np = lazy_module("numpy")
    pa = lazy_module("pyarrow")
    pc = lazy_module("pyarrow.compute")

ASPECTS = ("helpfulness", "honesty", "instruction_following", "truthfulness")
SCORE_FIELDS = {"overall": "overall_score", "fine-grained": "fine-grained_score"}


def as_float(arr: pa.ChunkedArray | pa.Array | None, n: int) -> pl.Series:
    """A rating column as float64: strings are parsed ("N/A" and junk -> null), NaN -> null."""
    import polars as pl

    if arr is None:
        return pl.Series(values=np.full(n, np.nan)).fill_nan(None)
    s = pl.from_arrow(arr)
    assert isinstance(s, pl.Series)
    if s.dtype == pl.String:
        s = s.str.strip_chars().cast(pl.Float64, strict=False)
    elif s.dtype.is_numeric() or s.dtype == pl.Null or s.dtype == pl.Boolean:
        s = s.cast(pl.Float64, strict=False)
    else:
        s = pl.Series(values=np.full(n, np.nan))
    return s.fill_nan(None)


def struct_child(arr: pa.ChunkedArray, path: list[str]) -> pa.ChunkedArray | None:
    """A nested struct field (None when any level is absent)."""
    cur = arr
    for name in path:
        if not pa.types.is_struct(cur.type) or cur.type.get_field_index(name) < 0:
            return None
        cur = pc.struct_field(cur, name)
    return cur


def ratings(flat: pa.ChunkedArray, rating: str) -> pl.Series:
    import polars as pl

    n = len(flat)
    if rating in SCORE_FIELDS:
        return as_float(struct_child(flat, [SCORE_FIELDS[rating]]), n)
    if rating in ASPECTS:
        return as_float(struct_child(flat, ["annotations", rating, "Rating"]), n)
    cols = [as_float(struct_child(flat, ["annotations", a, "Rating"]), n).alias(a) for a in ASPECTS]
    return pl.DataFrame(cols).select(pl.mean_horizontal(*ASPECTS)).to_series()


def pick(comp: pl.DataFrame, *, best: bool) -> pl.DataFrame:
    """Per prompt: the first best-rated completion, or the last worst-rated one."""

    if best:
        ordered = comp.sort(["p", "rating", "ci"], descending=[False, True, False])
    else:
        ordered = comp.sort(["p", "rating", "ci"], descending=[False, False, True])
    return ordered.group_by("p", maintain_order=True).first()


def candidates(comp: pl.DataFrame, pairing: str, seed: int, n_prompts: int) -> pl.DataFrame:
    """Candidate pairs (p, c = chosen row, r = rejected row) before dropping ties and small gaps."""
    import polars as pl

    c_cols = [pl.col("k").alias("c"), pl.col("rating").alias("c_rating"), pl.col("ci").alias("c_ci")]
    r_cols = [pl.col("k").alias("r"), pl.col("rating").alias("r_rating"), pl.col("ci").alias("r_ci")]
    best = pick(comp, best=True).select("p", *c_cols)
    if pairing == "top-vs-rest":
        rest = comp.select("p", *r_cols)
        return best.join(rest, on="p").filter(pl.col("c") != pl.col("r"))
    if pairing == "best-vs-worst":
        worst = pick(comp, best=False).select("p", *r_cols)
        return best.join(worst, on="p")
    if pairing == "best-vs-random":
        # One seeded draw per read prompt, so a prompt's choice does not depend on other prompts.
        draws = pl.DataFrame(
            {"p": np.arange(n_prompts, dtype=np.int64), "u": np.random.default_rng(seed).random(n_prompts)}
        )
        others = (
            best.select("p", "c")
            .join(comp.select("p", *r_cols), on="p")
            .filter(pl.col("c") != pl.col("r"))
            .sort(["p", "r_ci"])
            .with_columns(pl.int_range(pl.len()).over("p").alias("j"), pl.len().over("p").alias("m"))
            .join(draws, on="p")
            .filter(pl.col("j") == (pl.col("u") * pl.col("m")).floor().cast(pl.Int64))
            .select("p", "r", "r_rating", "r_ci")
        )
        return best.join(others, on="p")
    # all-ordered: every unordered pair once, oriented so the higher rating is chosen.
    a = comp.select(
        "p", pl.col("k").alias("a"), pl.col("rating").alias("a_rating"), pl.col("ci").alias("a_ci")
    )
    b = comp.select(
        "p", pl.col("k").alias("b"), pl.col("rating").alias("b_rating"), pl.col("ci").alias("b_ci")
    )
    both = a.join(b, on="p").filter(pl.col("a_ci") < pl.col("b_ci"))
    swap = pl.col("b_rating") > pl.col("a_rating")
    return both.select(
        "p",
        pl.when(swap).then("b").otherwise("a").alias("c"),
        pl.when(swap).then("b_rating").otherwise("a_rating").alias("c_rating"),
        pl.when(swap).then("b_ci").otherwise("a_ci").alias("c_ci"),
        pl.when(swap).then("a").otherwise("b").alias("r"),
        pl.when(swap).then("a_rating").otherwise("b_rating").alias("r_rating"),
        pl.when(swap).then("a_ci").otherwise("b_ci").alias("r_ci"),
    )
