"""`build ultrafeedback`: preference pairs from the raw openbmb/UltraFeedback schema.

A row: `source`, `instruction`, `models`, `completions[]` with `model`, `response`,
`annotations{helpfulness, honesty, instruction_following, truthfulness: {Rating, Rationale, ...}}`
(a Rating is a string and may be "N/A"), `overall_score`, `fine-grained_score`, `critique`.

Steps (all columnar: Arrow for the completions, polars for ranking and pairing; Python only
hashes ids):

1. drop prompts whose source is excluded (`excluded_source`) or whose instruction is blank
   (`empty_prompt`); read only the first `limit` rows;
2. explode completions; drop blank responses (`empty_response`), repeated responses of the
   same prompt (`duplicate_completion`, the first is kept) and completions without the chosen
   rating (`missing_rating`: null, absent or "N/A");
3. drop prompts left with fewer than two completions (`too_few_completions`);
4. pair by the policy (ties broken by completion order: the first of equal best ratings is the
   best, the last of equal worst ratings the worst); drop pairs with equal ratings (`tie`),
   identical texts after trimming whitespace (`identical_text`) and gaps below `min_gap`
   (`below_min_gap`).

Counts: prompt-level reasons count prompts, completion-level reasons completions, pair-level
reasons candidate pairs.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prefcurate import ids
from prefcurate.build import BuildResult, run_build
from prefcurate.build.ratings import ASPECTS, candidates, ratings, struct_child
from prefcurate.build.ultrafeedback_options import (
    DEFAULT_DATASET,
    DEFAULT_HUB_ID,
    DEFAULT_MIN_GAP,
    DEFAULT_PAIRING,
    DEFAULT_RATING,
    DEFAULT_SEED,
    PAIRINGS,
    RATINGS,
)
from prefcurate.errors import ConfigError, InputError
from prefcurate.extras import lazy_module
from prefcurate.ids import prompt_id
from prefcurate.readers import FILE_COL, Loaded, load
from prefcurate.store import Store

if TYPE_CHECKING:  # polars is imported where used: `prefcurate --help` and `build pairs` stay light
    import numpy as np
    import polars as pl
    import pyarrow as pa
    import pyarrow.compute as pc
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    np = lazy_module("numpy")
    pa = lazy_module("pyarrow")
    pc = lazy_module("pyarrow.compute")

_HASH_BATCH = 8_192  # completions whose texts are Python strings at a time (peak memory)
CHUNK_PAIRS = 50_000  # pairs per Parquet part (= the store's row group size)


@functools.cache
def read_schema() -> pa.Schema:
    """The fields pairing needs: JSON Lines / Parquet reads skip the rest (rationales, critiques...)."""
    rating = pa.struct([("Rating", pa.string())])
    return pa.schema(
        [
            ("source", pa.string()),
            ("instruction", pa.string()),
            (
                "completions",
                pa.list_(
                    pa.struct(
                        [
                            ("model", pa.string()),
                            ("response", pa.string()),
                            ("overall_score", pa.float64()),
                            ("fine-grained_score", pa.float64()),
                            ("annotations", pa.struct([(a, rating) for a in ASPECTS])),
                        ]
                    )
                ),
            ),
        ]
    )


def validate_options(pairing: str, rating: str, min_gap: float, limit: int | None) -> None:
    if pairing not in PAIRINGS:
        raise ConfigError(f"unknown pairing {pairing!r}; choose one of {', '.join(PAIRINGS)}")
    if rating not in RATINGS:
        raise ConfigError(f"unknown rating {rating!r}; choose one of {', '.join(RATINGS)}")
    if min_gap is None or not np.isfinite(min_gap) or min_gap < 0:
        raise ConfigError(f"--min-gap must be a number >= 0, got {min_gap!r}")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit!r}")


def _first_bad(mask: pa.ChunkedArray | pa.Array) -> int | None:
    """Index of the first True in a boolean array (nulls count as False)."""
    idx = pc.index(pc.fill_null(mask, False), True).as_py()
    return None if idx is None or idx < 0 else idx


def _check_schema(loaded: Loaded) -> None:
    """Required fields and their types: a one-line InputError naming file, line and field."""
    table = loaded.table
    first = loaded.inputs[0].path
    for name in ("instruction", "completions"):
        if name not in table.column_names:
            raise InputError("missing required field", path=first, field=name)
    itype = table.schema.field("instruction").type
    if not (pa.types.is_string(itype) or pa.types.is_large_string(itype) or pa.types.is_null(itype)):
        raise loaded.error(0, "instruction", f"expected a string, got {itype}")
    bad = _first_bad(pc.is_null(table.column("instruction")))
    if bad is not None:
        raise loaded.error(bad, "instruction", "missing required field")
    ctype = table.schema.field("completions").type
    if not (pa.types.is_list(ctype) or pa.types.is_large_list(ctype)) or not pa.types.is_struct(
        ctype.value_type
    ):
        if pa.types.is_null(ctype):
            raise loaded.error(0, "completions", "missing required field")
        raise loaded.error(0, "completions", f"expected a list of objects, got {ctype}")
    bad = _first_bad(pc.is_null(table.column("completions")))
    if bad is not None:
        raise loaded.error(bad, "completions", "missing required field")
    fields = {f.name: f.type for f in ctype.value_type}
    if "response" not in fields:
        raise InputError("missing required field", path=first, field="completions[].response")
    rtype = fields["response"]
    if not (pa.types.is_string(rtype) or pa.types.is_large_string(rtype) or pa.types.is_null(rtype)):
        raise loaded.error(0, "completions[].response", f"expected a string, got {rtype}")
    if "source" in table.column_names:
        stype = table.schema.field("source").type
        if not (pa.types.is_string(stype) or pa.types.is_large_string(stype) or pa.types.is_null(stype)):
            raise loaded.error(0, "source", f"expected a string, got {stype}")


def _take(arr: pa.ChunkedArray, indices: np.ndarray) -> pa.Array | pa.ChunkedArray:
    """`arr.take(indices)` chunk by chunk: Arrow's take on a ChunkedArray concatenates every
    chunk first (a copy of the whole column per call); pairs read rows nearly in order, so
    runs of indices in one chunk are taken from that chunk alone."""
    if arr.num_chunks <= 1:
        return pc.take(arr, pa.array(indices, pa.int64()))
    if len(indices) == 0:
        return pa.chunked_array([], arr.type)
    bounds = np.cumsum([len(c) for c in arr.chunks])
    chunk_of = np.searchsorted(bounds, indices, side="right")
    starts = np.concatenate([[0], bounds[:-1]])
    cuts = np.flatnonzero(np.diff(chunk_of)) + 1
    pieces = []
    for seg in np.split(np.arange(len(indices)), cuts):
        k = int(chunk_of[seg[0]])
        pieces.append(pc.take(arr.chunk(k), pa.array(indices[seg] - starts[k], pa.int64())))
    return pa.chunked_array(pieces, arr.type)


def _combine(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _text(arr: pa.ChunkedArray) -> pa.ChunkedArray:
    return arr if arr.type in (pa.string(), pa.large_string()) else pc.cast(arr, pa.string())


@dataclass
class _Completions:
    """Every completion of every row, exploded (Arrow views: nothing copied), indexed by position."""

    flat: pa.ChunkedArray  # the completion structs
    response: pa.ChunkedArray  # their texts
    parent: np.ndarray  # the row of each completion
    ci: np.ndarray  # its index among its row's completions
    in_kept: np.ndarray  # whether its row passed the prompt-level filters


def _kept_prompts(
    loaded: Loaded, exclude_sources: tuple[str, ...], dropped: dict[str, int]
) -> tuple[pa.ChunkedArray, np.ndarray]:
    """Prompt-level filters: (the source of every row, the rows kept)."""
    table = loaded.table
    read = table.num_rows
    stems = pc.take(pa.array([i.source for i in loaded.inputs], pa.string()), table.column(FILE_COL))
    if "source" in table.column_names:  # rows without a source: the input file's stem
        source = pc.coalesce(_text(table.column("source")), stems)
    else:
        source = stems
    keep = pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(_text(table.column("instruction")))), 0)
    dropped["empty_prompt"] = read - pc.sum(keep).as_py() if read else 0
    if exclude_sources:
        excluded = pc.is_in(source, value_set=pa.array(list(exclude_sources), pa.string()))
        dropped["excluded_source"] = pc.sum(pc.and_(excluded, keep)).as_py() or 0
        keep = pc.and_(keep, pc.invert(excluded))
    return source, np.flatnonzero(np.asarray(keep.to_numpy(zero_copy_only=False), dtype=bool))


def _explode(loaded: Loaded, kept_rows: np.ndarray) -> tuple[_Completions, int]:
    """The completions of every row (rows filtered out are masked, not removed) and how many the
    kept rows hold."""
    comps = loaded.table.column("completions")
    read = loaded.table.num_rows
    lengths = np.asarray(
        pc.fill_null(pc.list_value_length(comps), 0).to_numpy(zero_copy_only=False), dtype=np.int64
    )
    flat = pc.list_flatten(comps)
    parent = np.repeat(np.arange(read, dtype=np.int64), lengths)
    starts = np.cumsum(lengths) - lengths
    row_kept = np.zeros(read, dtype=bool)
    row_kept[kept_rows] = True
    response = _text(pc.struct_field(flat, "response"))
    bad = _first_bad(pc.is_null(response))
    if bad is not None:
        raise loaded.error(int(parent[bad]), "completions[].response", "missing required field")
    ci = np.arange(len(parent), dtype=np.int64) - starts[parent]
    return _Completions(flat, response, parent, ci, row_kept[parent]), int(lengths[kept_rows].sum())


def _hash_ids(
    loaded: Loaded, kept_rows: np.ndarray, comp: _Completions
) -> tuple[list[str | None], np.ndarray, list[str], list[str], int]:
    """Ids: the only per-row Python work. Texts are hashed straight from slices of the Arrow column
    (no copies); `skey` (id of the whitespace-trimmed text) finds identical replies. Returns the
    prompt id of every row (None where dropped), the usable (non-blank) completions, their ids and
    skeys, and the number of blank responses."""
    instructions = _text(loaded.table.column("instruction")).to_pylist()
    pids: list[str | None] = [None] * loaded.table.num_rows
    for i in kept_rows.tolist():
        pids[i] = prompt_id(({"role": "user", "content": instructions[i]},))
    del instructions
    usable: list[int] = []
    cids: list[str] = []
    skeys: list[str] = []
    blank = 0
    # ids.completion_id inlined (same bytes, same digest): this loop runs once per completion.
    blake2b, sep, size = hashlib.blake2b, ids._SEP, ids.ID_HEX_CHARS // 2
    for start in range(0, len(comp.parent), _HASH_BATCH):
        stop = min(start + _HASH_BATCH, len(comp.parent))
        texts = comp.response.slice(start, stop - start).to_pylist()
        for j, (p, keep_row, t) in enumerate(
            zip(comp.parent[start:stop].tolist(), comp.in_kept[start:stop].tolist(), texts, strict=True)
        ):
            if not keep_row:
                continue
            s = t.strip()
            if not s:
                blank += 1
                continue
            cid = blake2b(f"{pids[p]}{sep}{t}".encode(), digest_size=size).hexdigest()
            usable.append(start + j)
            cids.append(cid)
            skeys.append(
                cid if s is t else blake2b(f"{pids[p]}{sep}{s}".encode(), digest_size=size).hexdigest()
            )
        del texts
    return pids, np.asarray(usable, dtype=np.int64), cids, skeys, blank


def _rated(
    comp: _Completions, usable: np.ndarray, cids: list[str], rating: str, n_kept: int, dropped: dict[str, int]
) -> pl.DataFrame:
    """The usable completions that can be ranked: one per distinct text of a prompt, with a finite
    rating, of prompts left with at least two."""
    import polars as pl

    scores = (
        ratings(comp.flat, rating).gather(usable)
        if len(comp.flat)
        else pl.Series(values=[], dtype=pl.Float64)
    )
    frame = pl.DataFrame(
        {
            "p": comp.parent[usable],
            "ci": comp.ci[usable],
            "k": np.arange(len(usable), dtype=np.int64),
            "cid": cids,
            "rating": scores,
        },
        schema={"p": pl.Int64, "ci": pl.Int64, "k": pl.Int64, "cid": pl.String, "rating": pl.Float64},
    )
    before = frame.height
    frame = frame.unique(subset=["p", "cid"], keep="first", maintain_order=True)
    dropped["duplicate_completion"] = before - frame.height
    before = frame.height
    frame = frame.filter(pl.col("rating").is_not_null() & ~pl.col("rating").is_nan())
    dropped["missing_rating"] = before - frame.height
    before = frame.height
    frame = frame.filter(pl.col("rating").is_finite())  # Infinity would rank above every real rating
    dropped["non_finite_rating"] = before - frame.height
    sizes = frame.group_by("p").len()
    enough = sizes.filter(pl.col("len") >= 2).select("p")
    dropped["too_few_completions"] = n_kept - enough.height
    return frame.join(enough, on="p", how="semi", maintain_order="left")


def _kept_pairs(
    rated: pl.DataFrame,
    skeys: list[str],
    *,
    pairing: str,
    seed: int,
    n_rows: int,
    min_gap: float,
    dropped: dict[str, int],
) -> pl.DataFrame:
    """The policy's candidate pairs, less ties, identical texts and gaps below `min_gap`."""
    import polars as pl

    cand = candidates(rated, pairing, seed, n_rows).sort(["p", "c_ci", "r_ci"])
    gap = pl.col("c_rating") - pl.col("r_rating")
    skey = pl.Series(skeys, dtype=pl.String)  # indexed like `usable` (c and r are such indices)
    cand = (
        cand.with_columns(
            (skey.gather(cand.get_column("c")) == skey.gather(cand.get_column("r"))).alias("same")
        )
        if cand.height
        else cand.with_columns(pl.lit(False).alias("same"))
    )
    reason = (
        pl.when(gap == 0)
        .then(pl.lit("tie"))
        .when(pl.col("same"))
        .then(pl.lit("identical_text"))
        .when(gap < min_gap)
        .then(pl.lit("below_min_gap"))
        .otherwise(None)
    )
    cand = cand.with_columns(reason.alias("reason"))
    for name in ("tie", "identical_text", "below_min_gap"):
        dropped[name] = int((cand["reason"] == name).sum())
    return cand.filter(pl.col("reason").is_null())


def pairs_from_table(
    loaded: Loaded,
    *,
    dataset: str,
    pairing: str = "top-vs-rest",
    rating: str = "overall",
    min_gap: float = 0.0,
    exclude_sources: tuple[str, ...] = (),
    seed: int = 0,
) -> tuple[Iterator[pa.Table], dict[str, Any]]:
    """Pair the completions of the loaded rows; returns the pair tables (parts, in order) and the counts."""
    _check_schema(loaded)
    dropped: dict[str, int] = {}
    read = loaded.table.num_rows
    source, kept_rows = _kept_prompts(loaded, exclude_sources, dropped)
    comp, completions_read = _explode(loaded, kept_rows)
    pids, usable, cids, skeys, dropped["empty_response"] = _hash_ids(loaded, kept_rows, comp)
    rated = _rated(comp, usable, cids, rating, len(kept_rows), dropped)
    pairs = _kept_pairs(
        rated, skeys, pairing=pairing, seed=seed, n_rows=read, min_gap=min_gap, dropped=dropped
    )
    counts = {
        "read": read,
        "completions": completions_read,
        "kept": pairs.height,
        "dropped": {k: v for k, v in dropped.items() if v},
    }
    parts = _pair_parts(
        loaded,
        comp,
        pairs,
        dataset=dataset,
        source=source,
        pids=pids,
        usable=usable,
        cids=cids,
        pairing=pairing,
        rating=rating,
    )
    return parts, counts


def _pair_parts(
    loaded: Loaded,
    comp: _Completions,
    pairs: pl.DataFrame,
    *,
    dataset: str,
    source: pa.ChunkedArray,
    pids: list[str | None],
    usable: np.ndarray,
    cids: list[str],
    pairing: str,
    rating: str,
) -> Iterator[pa.Table]:
    """The output in parts of CHUNK_PAIRS pairs: only one part's texts are copied at a time."""
    import polars as pl

    from prefcurate.schema import MESSAGE

    model = struct_child(comp.flat, ["model"])
    instruction = _text(loaded.table.column("instruction"))
    model_text = _text(model) if model is not None else None
    cid_arr = pa.array(cids, pa.string())
    meta_head = pl.lit('{"chosen_index":')
    meta_mid = pl.lit(f',"pairing":{json.dumps(pairing)},"rating":{json.dumps(rating)},"rejected_index":')
    blake2b, sep, size = hashlib.blake2b, ids._SEP, ids.ID_HEX_CHARS // 2
    for start in range(0, pairs.height, CHUNK_PAIRS):
        part = pairs.slice(start, CHUNK_PAIRS)
        n = part.height
        c_k = part.get_column("c").to_numpy()
        r_k = part.get_column("r").to_numpy()
        c_rows, r_rows = usable[c_k], usable[r_k]
        p_np = part.get_column("p").to_numpy()
        pid_list = [pids[p] for p in p_np.tolist()]
        cids_c, cids_r = pc.take(cid_arr, pa.array(c_k)), pc.take(cid_arr, pa.array(r_k))
        pair_ids = [
            blake2b(f"{p}{sep}{c}{sep}{r}".encode(), digest_size=size).hexdigest()  # ids.pair_id inlined
            for p, c, r in zip(pid_list, cids_c.to_pylist(), cids_r.to_pylist(), strict=True)
        ]
        prompt_col = pa.ListArray.from_arrays(
            pa.array(np.arange(n + 1, dtype=np.int32)),
            pa.StructArray.from_arrays(
                [pa.array(["user"] * n, pa.string()), _combine(_take(instruction, p_np))],
                fields=list(MESSAGE),
            ),
        )
        if model is not None:
            chosen_model, rejected_model = _take(model_text, c_rows), _take(model_text, r_rows)
        else:
            chosen_model = rejected_model = pa.nulls(n, pa.string())
        # meta as JSON with sorted keys, built column-wise.
        meta = (
            part.select(
                pl.concat_str(
                    [
                        meta_head,
                        pl.col("c_ci").cast(pl.String),
                        meta_mid,
                        pl.col("r_ci").cast(pl.String),
                        pl.lit("}"),
                    ]
                )
            )
            .to_series()
            .to_arrow()
        )
        yield pa.table(
            {
                "pair_id": pa.array(pair_ids, pa.string()),
                "prompt_id": pa.array(pid_list, pa.string()),
                "dataset": pa.array([dataset] * n, pa.string()),
                "source": _take(source, p_np),
                "prompt": prompt_col,
                "chosen": _take(comp.response, c_rows),
                "rejected": _take(comp.response, r_rows),
                "chosen_id": cids_c,
                "rejected_id": cids_r,
                "chosen_score": part.get_column("c_rating").to_arrow(),
                "rejected_score": part.get_column("r_rating").to_arrow(),
                "chosen_model": chosen_model,
                "rejected_model": rejected_model,
                "meta": pc.cast(meta, pa.string()),
            }
        )


def build_ultrafeedback(
    store: Store,
    source: str = DEFAULT_HUB_ID,
    *,
    dataset: str = DEFAULT_DATASET,
    pairing: str = DEFAULT_PAIRING,
    rating: str = DEFAULT_RATING,
    min_gap: float = DEFAULT_MIN_GAP,
    exclude_sources: tuple[str, ...] | list[str] = (),
    limit: int | None = None,
    seed: int = DEFAULT_SEED,
    split: str = "train",
    force: bool = False,
    fail_on_empty: bool = False,
    hub_config: str | None = None,
    hub_data_dir: str | None = None,
) -> BuildResult:
    """Read raw UltraFeedback rows (file, folder or hub id), pair them and publish `pairs/<dataset>/vN`."""
    validate_options(pairing, rating, min_gap, limit)
    exclude = tuple(sorted(set(exclude_sources)))
    options = {
        "source": str(source),
        "pairing": pairing,
        "rating": rating,
        "min_gap": float(min_gap),
        "exclude_sources": list(exclude),
        "limit": limit,
        "seed": seed,
        "split": split,
    }
    for key, value in (("hub_config", hub_config), ("hub_data_dir", hub_data_dir)):
        if value is not None:  # only when given, so earlier builds keep their fingerprints
            options[key] = value

    def build(loaded: Loaded) -> tuple[Iterator[pa.Table], dict[str, Any]]:
        return pairs_from_table(
            loaded,
            dataset=dataset,
            pairing=pairing,
            rating=rating,
            min_gap=min_gap,
            exclude_sources=exclude,
            seed=seed,
        )

    return run_build(
        store,
        dataset,
        command="ultrafeedback",
        options=options,
        source=str(source),
        load=lambda: load(
            source,
            split=split,
            limit=limit,
            schema=read_schema(),
            defer_fingerprints=True,
            hub_config=hub_config,
            hub_data_dir=hub_data_dir,
        ),
        build=build,
        force=force,
        fail_on_empty=fail_on_empty,
    )
