"""`build pairs`: data that is already pairwise (prompt, chosen, rejected) into the store.

Formats (`--format`, auto-detected from the column types):

* `flat`: `prompt`, `chosen`, `rejected` strings; the prompt becomes one user message.
* `conversational`: TRL's conversational form: `chosen` / `rejected` are message lists. The
  prompt is explicit (`prompt` as a message list or a string) or implicit: the common prefix of
  the chosen and rejected lists. The H4 binarized form (full conversations in `chosen` /
  `rejected` plus `score_chosen` / `score_rejected`) is this format with scores.
* `hh-rlhf`: Anthropic HH-RLHF transcripts ("\\n\\nHuman: ...\\n\\nAssistant: ..."); both
  transcripts are split into messages, their common prefix is the prompt.

Scores come from `score_chosen` / `score_rejected`, `metadata.score_chosen` /
`metadata.score_rejected` (the flattened binarized files) or the columns named with
`--chosen-score-col` / `--rejected-score-col`.

Valid rows that cannot train anything are dropped and counted: `empty_prompt`, `empty_text`
(blank chosen or rejected), `identical_text`, `non_finite_score` (an Infinity or NaN score), `tie` (both scores present and equal: DPO learns
nothing certain from a pair its own labels call equal), `not_one_reply` (the chosen or rejected
side adds more than one message after the prompt). A chosen score below the rejected score is
kept: the pair label is the authority; query `chosen_score < rejected_score` to find them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prefcurate.build import BuildResult, meta_json, run_build
from prefcurate.build.pairs_options import DEFAULT_FORMAT, FORMATS
from prefcurate.errors import ConfigError, InputError
from prefcurate.extras import lazy_module
from prefcurate.ids import completion_id, pair_id, prompt_id
from prefcurate.progress import progress_bar
from prefcurate.readers import FILE_COL, Loaded, load, looks_like_hub_id, stem
from prefcurate.store import Store

if TYPE_CHECKING:
    import pyarrow as pa
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    pa = lazy_module("pyarrow")

_TURN = re.compile(r"\n\n(Human|Assistant):[ ]?")
_ROLE = {"Human": "user", "Assistant": "assistant"}


def default_dataset_name(source: str) -> str:
    """A store name from the input: file stem, folder name or hub dataset name."""
    from pathlib import Path

    name = (
        source.rstrip("/").split("/")[-1]
        if looks_like_hub_id(source)
        else stem(Path(source).expanduser().resolve())
    )
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._") or "pairs"
    return name


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t)


def _is_str(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def detect_format(table: pa.Table, chosen_col: str, prompt_col: str) -> str:
    ctype = table.schema.field(chosen_col).type
    if _is_list(ctype):
        return "conversational"
    if prompt_col in table.column_names:
        return "flat"
    sample = next((v for v in table.column(chosen_col).slice(0, 50).to_pylist() if v), "")
    if isinstance(sample, str) and _TURN.search(sample):
        return "hh-rlhf"
    return "flat"  # and a missing prompt column is reported as such


def parse_transcript(text: str) -> list[dict[str, str]] | None:
    """HH-RLHF transcript -> messages; None when it holds no Human/Assistant turn."""
    parts = _TURN.split(text)
    if len(parts) < 3:
        return None
    messages = []
    if parts[0].strip():  # text before the first marker belongs to the first turn
        return None
    for role, content in zip(parts[1::2], parts[2::2], strict=False):
        messages.append({"role": _ROLE[role], "content": content})
    return messages


def _messages(value: Any, field: str, err) -> list[dict[str, str]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise err(field, f"expected a list of messages or a string, got {type(value).__name__}")
    out = []
    for m in value:
        if (
            not isinstance(m, dict)
            or not isinstance(m.get("role"), str)
            or not isinstance(m.get("content"), str)
        ):
            raise err(field, "expected messages with string 'role' and 'content'")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _split(chosen: list[dict[str, str]], rejected: list[dict[str, str]]) -> tuple[list, list, list]:
    """(common prefix, chosen tail, rejected tail) at message level."""
    k = 0
    while k < min(len(chosen), len(rejected)) - 0 and chosen[k] == rejected[k]:
        k += 1
    # Keep at least one message on each side when the lists are identical or nested.
    k = min(k, len(chosen) - 1, len(rejected) - 1) if chosen and rejected else k
    return chosen[:k], chosen[k:], rejected[k:]


def _score(row: dict[str, Any], col: str | None, meta_key: str) -> Any:
    if col is not None:
        return row.get(col)
    if row.get(meta_key) is not None:
        return row.get(meta_key)
    meta = row.get("metadata")
    return meta.get(meta_key) if isinstance(meta, dict) else None


Messages = list[dict[str, str]]
ErrorAt = Callable[[str, str], InputError]  # (field, message) -> the error naming this row


def _check_columns(
    table: pa.Table,
    first: str,
    fmt: str,
    prompt_col: str,
    chosen_col: str,
    rejected_col: str,
    named: tuple[str | None, ...],
) -> None:
    """The columns the options name exist (a missing one is named before any row is read)."""
    for col in (chosen_col, rejected_col):
        if col not in table.column_names:
            raise InputError("missing required field", path=first, field=col)
    if fmt == "flat" and prompt_col not in table.column_names:
        raise InputError(
            "missing required field (flat format needs a prompt column)", path=first, field=prompt_col
        )
    for name in named:
        if name is not None and name not in table.column_names:
            raise InputError("missing column named by an option", path=first, field=name)


def _conversation(
    row: dict[str, Any], fmt: str, prompt_col: str, chosen_col: str, rejected_col: str, err: ErrorAt
) -> tuple[Messages, Messages, Messages]:
    """(prompt, chosen tail, rejected tail) of one row in its input format."""
    c_val: Any = row.get(chosen_col)
    r_val: Any = row.get(rejected_col)
    for col, val in ((chosen_col, c_val), (rejected_col, r_val)):
        if val is None:
            raise err(col, "missing required field")
    if fmt == "flat":
        p_val: Any = row.get(prompt_col)
        if p_val is None:
            raise err(prompt_col, "missing required field")
        for col, val in ((prompt_col, p_val), (chosen_col, c_val), (rejected_col, r_val)):
            if not isinstance(val, str):
                raise err(col, f"expected a string, got {type(val).__name__}")
        return (
            [{"role": "user", "content": p_val}],
            [{"role": "assistant", "content": c_val}],
            [{"role": "assistant", "content": r_val}],
        )
    if fmt == "hh-rlhf":
        for col, val in ((chosen_col, c_val), (rejected_col, r_val)):
            if not isinstance(val, str):
                raise err(col, f"expected a Human/Assistant transcript string, got {type(val).__name__}")
        c_msgs, r_msgs = parse_transcript(c_val), parse_transcript(r_val)
        if c_msgs is None or r_msgs is None:
            raise err(
                chosen_col if c_msgs is None else rejected_col,
                "not a Human/Assistant transcript (expected '\\n\\nHuman: ...\\n\\nAssistant: ...')",
            )
    else:
        c_msgs = _messages(c_val, chosen_col, err)
        r_msgs = _messages(r_val, rejected_col, err)
    prefix, c_tail, r_tail = _split(c_msgs, r_msgs)
    p_val = row.get(prompt_col) if fmt == "conversational" else None
    if prefix:
        return prefix, c_tail, r_tail
    if p_val is not None:
        return _messages(p_val, prompt_col, err), c_tail, r_tail
    raise err(
        prompt_col,
        "no prompt: the chosen and rejected messages share no prefix and there is no prompt column",
    )


def _scores(
    row: dict[str, Any], chosen_score_col: str | None, rejected_score_col: str | None, err: ErrorAt
) -> list[float | None]:
    """(chosen, rejected) scores as floats, from the named columns or the metadata's keys."""
    scores: list[float | None] = []
    for score_col, key in ((chosen_score_col, "score_chosen"), (rejected_score_col, "score_rejected")):
        val = _score(row, score_col, key)
        if val is not None and (isinstance(val, bool) or not isinstance(val, (int, float))):
            try:
                val = float(val)
            except (TypeError, ValueError):
                raise err(score_col or key, f"expected a number, got {val!r}") from None
        scores.append(None if val is None else float(val))
    return scores


def _drop_reason(prompt: Messages, c_tail: Messages, r_tail: Messages) -> str | None:
    """Why a row that parsed makes no pair (before its scores are read), or None."""
    if len(c_tail) != 1 or len(r_tail) != 1:
        return "not_one_reply"
    chosen, rejected = c_tail[0]["content"], r_tail[0]["content"]
    if not any(m["content"].strip() for m in prompt):
        return "empty_prompt"
    if not chosen.strip() or not rejected.strip():
        return "empty_text"
    if chosen.strip() == rejected.strip():
        return "identical_text"
    return None


def pairs_from_table(
    loaded: Loaded,
    *,
    dataset: str,
    format: str = DEFAULT_FORMAT,
    prompt_col: str = "prompt",
    chosen_col: str = "chosen",
    rejected_col: str = "rejected",
    chosen_score_col: str | None = None,
    rejected_score_col: str | None = None,
    source: str | None = None,
    source_col: str | None = None,
) -> tuple[pa.Table, dict[str, Any]]:
    from prefcurate.schema import PAIR_SCHEMA

    table = loaded.table
    fmt = detect_format(table, chosen_col, prompt_col) if format == "auto" else format
    _check_columns(
        table,
        loaded.inputs[0].path,
        fmt,
        prompt_col,
        chosen_col,
        rejected_col,
        (source_col, chosen_score_col, rejected_score_col),
    )
    use_source_col = source_col or ("source" if source is None and "source" in table.column_names else None)
    wanted = [prompt_col, chosen_col, rejected_col, use_source_col, chosen_score_col, rejected_score_col]
    wanted += ["score_chosen", "score_rejected", "metadata", FILE_COL]
    rows = table.select(list(dict.fromkeys(c for c in wanted if c and c in table.column_names))).to_pylist()
    stems = [i.source for i in loaded.inputs]
    dropped: dict[str, int] = {}
    out: dict[str, list] = {name: [] for name in PAIR_SCHEMA.names}
    cid_cache: dict[tuple[str, str], str] = {}

    def drop(reason: str) -> None:
        dropped[reason] = dropped.get(reason, 0) + 1

    with progress_bar(f"reading {fmt} pairs", len(rows)) as bar:
        for i, row in enumerate(rows):
            bar.advance(1)

            def err(field: str, message: str, i: int = i) -> InputError:
                return loaded.error(i, field, message)

            prompt, c_tail, r_tail = _conversation(row, fmt, prompt_col, chosen_col, rejected_col, err)
            reason = _drop_reason(prompt, c_tail, r_tail)
            if reason:
                drop(reason)
                continue
            chosen, rejected = c_tail[0]["content"], r_tail[0]["content"]
            scores = _scores(row, chosen_score_col, rejected_score_col, err)
            if any(v is not None and not math.isfinite(v) for v in scores):
                drop("non_finite_score")  # Infinity/NaN gaps would land in the easiest bucket
                continue
            if scores[0] is not None and scores[0] == scores[1]:
                drop("tie")
                continue
            # The pair's source: --source, else the source column, else the input file's stem.
            src = source
            if src is None:
                named = row.get(use_source_col) if use_source_col else None
                src = stems[row[FILE_COL]] if named is None else str(named)
            pid = prompt_id(prompt)
            cid = cid_cache.setdefault((pid, chosen), completion_id(pid, chosen))
            rid = cid_cache.setdefault((pid, rejected), completion_id(pid, rejected))
            out["pair_id"].append(pair_id(pid, cid, rid))
            out["prompt_id"].append(pid)
            out["dataset"].append(dataset)
            out["source"].append(src)
            out["prompt"].append(prompt)
            out["chosen"].append(chosen)
            out["rejected"].append(rejected)
            out["chosen_id"].append(cid)
            out["rejected_id"].append(rid)
            out["chosen_score"].append(scores[0])
            out["rejected_score"].append(scores[1])
            out["chosen_model"].append(None)
            out["rejected_model"].append(None)
            out["meta"].append(meta_json({"format": fmt}))
    counts = {"read": len(rows), "kept": len(out["pair_id"]), "dropped": dict(sorted(dropped.items()))}
    return pa.table(out, schema=PAIR_SCHEMA), counts


def build_pairs(
    store: Store,
    source: str,
    *,
    dataset: str | None = None,
    format: str = DEFAULT_FORMAT,
    prompt_col: str = "prompt",
    chosen_col: str = "chosen",
    rejected_col: str = "rejected",
    chosen_score_col: str | None = None,
    rejected_score_col: str | None = None,
    source_name: str | None = None,
    source_col: str | None = None,
    limit: int | None = None,
    limit_per_file: int | None = None,
    split: str = "train",
    force: bool = False,
    fail_on_empty: bool = False,
    hub_config: str | None = None,
    hub_data_dir: str | None = None,
) -> BuildResult:
    """Read pairwise rows (file, folder of files, or hub id) and publish `pairs/<dataset>/vN`."""
    if format not in FORMATS:
        raise ConfigError(f"unknown --input-format {format!r}; choose one of {', '.join(FORMATS)}")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit!r}")
    if limit_per_file is not None and limit_per_file < 1:
        raise ConfigError(f"--limit-per-file must be at least 1, got {limit_per_file!r}")
    if source_name is not None and source_col is not None:
        raise ConfigError("give either --source or --source-col, not both")
    dataset = dataset or default_dataset_name(str(source))
    options = {
        "source": str(source),
        "format": format,
        "prompt_col": prompt_col,
        "chosen_col": chosen_col,
        "rejected_col": rejected_col,
        "chosen_score_col": chosen_score_col,
        "rejected_score_col": rejected_score_col,
        "source_name": source_name,
        "source_col": source_col,
        "limit": limit,
        "split": split,
    }
    if limit_per_file is not None:  # only when given, so earlier builds keep their fingerprints
        options["limit_per_file"] = limit_per_file
    for key, value in (("hub_config", hub_config), ("hub_data_dir", hub_data_dir)):
        if value is not None:  # only when given, so earlier builds keep their fingerprints
            options[key] = value

    def build(loaded: Loaded) -> tuple[pa.Table, dict[str, Any]]:
        return pairs_from_table(
            loaded,
            dataset=dataset,
            format=format,
            prompt_col=prompt_col,
            chosen_col=chosen_col,
            rejected_col=rejected_col,
            chosen_score_col=chosen_score_col,
            rejected_score_col=rejected_score_col,
            source=source_name,
            source_col=source_col,
        )

    return run_build(
        store,
        dataset,
        command="pairs",
        options=options,
        source=str(source),
        load=lambda: load(
            source,
            split=split,
            limit=limit,
            limit_per_file=limit_per_file,
            defer_fingerprints=True,
            hub_config=hub_config,
            hub_data_dir=hub_data_dir,
        ),
        build=build,
        force=force,
        fail_on_empty=fail_on_empty,
    )
