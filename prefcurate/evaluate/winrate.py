"""`eval winrate`: a reward model judges a candidate's responses against a baseline's, per prompt.

Per prompt: win = 1 if the judge scores the candidate higher, 0.5 on a tie, 0 otherwise; soft
win = sigmoid(reward difference). The length-controlled win rate is alpaca_eval's minimal
formula: a logistic regression of the (soft) win on the standardized length difference
(candidate - baseline, in characters), predicted at a zero difference, so a judge that simply
prefers longer answers does not make a verbose arm look better.

A judge that also scored the training pairs (`score --by reward` with the same weights) is
refused unless `allow_circular`: the policy was trained toward that judge's preferences.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, InputError


@dataclass(frozen=True)
class Response:
    prompt_id: str
    prompt: tuple[dict[str, str], ...]
    completion: str


@dataclass
class WinRateResult:
    metrics: dict[str, float]
    prompts: list[dict[str, Any]]
    judge: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # candidate and baseline responses

    def summary(self) -> dict[str, Any]:
        # `suite` names what was measured, so `eval compare` pairs win rates only with win rates.
        return {**self.metrics, "suite": "winrate", "judge": self.judge, "tags": self.tags, **self.files}

    def write(self, out: str | Path) -> Path:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "summary.json").write_text(json.dumps(self.summary(), indent=2) + "\n")
        with open(folder / "prompts.jsonl", "w") as fh:
            fh.writelines(json.dumps(p) + "\n" for p in self.prompts)
        return folder


def sigmoid(x: np.ndarray | float) -> np.ndarray | float:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


def fit_logistic(x: np.ndarray, y: np.ndarray, *, iters: int = 100) -> tuple[float, float]:
    """(intercept, slope) of a logistic regression of y in [0, 1] (soft labels allowed) on x, by
    Newton's method on the mean log-loss; a tiny ridge keeps separable data finite."""
    X = np.column_stack([np.ones_like(x), x])
    w = np.zeros(2)
    ridge = 1e-6
    for _ in range(iters):
        p = sigmoid(X @ w)
        grad = X.T @ (p - y) / len(y) + ridge * w
        hess = (X.T * (p * (1 - p))) @ X / len(y) + ridge * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(w[0]), float(w[1])


def length_controlled(
    wins: Sequence[float], len_candidate: Sequence[int], len_baseline: Sequence[int]
) -> float:
    """alpaca_eval's minimal length-controlled win rate: sigmoid(intercept) of win ~ std(len diff)."""
    y = np.asarray(wins, dtype=float)
    diff = np.asarray(len_candidate, dtype=float) - np.asarray(len_baseline, dtype=float)
    sd = diff.std()
    x = diff / sd if sd > 0 else np.zeros_like(diff)  # scaled, not centred: x = 0 is "same length"
    intercept, _slope = fit_logistic(x, y)
    return float(sigmoid(intercept))


def win_stats(
    reward_candidate: Sequence[float],
    reward_baseline: Sequence[float],
    len_candidate: Sequence[int],
    len_baseline: Sequence[int],
) -> tuple[dict[str, float], list[float], list[float]]:
    """Aggregate metrics, and the per-prompt win and soft win."""
    rc, rb = np.asarray(reward_candidate, float), np.asarray(reward_baseline, float)
    if rc.size == 0:
        raise ConfigError("no prompts to judge")
    win = np.where(rc > rb, 1.0, np.where(rc == rb, 0.5, 0.0))
    soft = sigmoid(rc - rb)
    metrics = {
        "win_rate": float(win.mean()),
        "soft_win_rate": float(np.mean(soft)),
        "lc_win_rate": length_controlled(win.tolist(), len_candidate, len_baseline),
        "mean_len_candidate": float(np.mean(len_candidate)),
        "mean_len_baseline": float(np.mean(len_baseline)),
        "prompts": float(rc.size),
    }
    return metrics, win.tolist(), [float(x) for x in np.atleast_1d(soft)]


def read_responses(path: str | Path) -> dict[str, Response]:
    """Responses JSONL (`eval generate` output for chat prompts): prompt_id or task_id, prompt, completion."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no such responses file: {path}")
    out: dict[str, Response] = {}
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"not UTF-8 (byte {exc.start})", path=path, line=line_no) from None
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(f"not valid JSON ({exc.msg})", path=path, line=line_no) from None
            pid = row.get("prompt_id", row.get("task_id")) if isinstance(row, dict) else None
            if pid is None:
                raise InputError("missing", path=path, line=line_no, field="prompt_id")
            prompt = row.get("prompt")
            if isinstance(prompt, str):
                prompt = [{"role": "user", "content": prompt}]
            if not isinstance(prompt, list) or not all(
                isinstance(m, dict) and "content" in m for m in prompt
            ):
                raise InputError(
                    "expected a string or a list of messages", path=path, line=line_no, field="prompt"
                )
            if not isinstance(row.get("completion"), str):
                raise InputError("missing or not a string", path=path, line=line_no, field="completion")
            if str(pid) not in out:  # several samples per prompt: the first one is judged
                msgs = tuple(
                    {"role": str(m.get("role", "user")), "content": str(m["content"])} for m in prompt
                )
                out[str(pid)] = Response(str(pid), msgs, row["completion"])
    return out


def circular_scores(store: Any, dataset: str, fingerprint: dict[str, Any]) -> list[str]:
    """Versions of `dataset`'s reward signal computed with the same weights as the judge."""
    hits = []
    for name in store.names("scores"):
        if not name.startswith(f"{dataset}/reward_margin"):
            continue
        for ref in store.versions("scores", name):
            model = ref.manifest.get("model") or {}
            used = model.get("fingerprint") or ref.manifest.get("spec", {}).get("model_fingerprint")
            if used and _same_weights(used, fingerprint):
                hits.append(ref.label)
    return hits


def _same_weights(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a.get("model_sha256") and b.get("model_sha256"):
        return a["model_sha256"] == b["model_sha256"]
    return a.get("model") == b.get("model") and a.get("revision") == b.get("revision")


def refuse_circular(
    store: Any, datasets: Sequence[str], judge_model: str, fingerprint: dict[str, Any], allow: bool
) -> None:
    """Raise when the judge scored any of `datasets`' pairs (see the module doc), unless `allow`."""
    if store is None or allow:
        return
    for dataset in dict.fromkeys(d for d in datasets if d):
        hits = circular_scores(store, dataset, fingerprint)
        if hits:
            raise ConfigError(
                f"--judge {judge_model} also scored the training pairs ({hits[0]}): its win rate would "
                "reward fitting the judge; use another judge or pass --allow-circular"
            )


def score_responses(
    rm: Any, ids: Sequence[str], responses: dict[str, Response], *, max_length: int, batch_tokens: int
) -> list[float]:
    """The judge's reward of each prompt's response, in `ids` order."""
    seqs = [rm.encode(list(responses[p].prompt), responses[p].completion, max_length).input_ids for p in ids]
    return [float(x) for x in rm.score(seqs, batch_tokens)]


def judged(
    ids: Sequence[str],
    cand: dict[str, Response],
    base: dict[str, Response],
    rc: Sequence[float],
    rb: Sequence[float],
    info: dict[str, Any],
    tags: dict[str, Any] | None,
    files: dict[str, str],
) -> WinRateResult:
    """The result from both sides' rewards on the prompts `ids`."""
    lc = [len(cand[p].completion) for p in ids]
    lb = [len(base[p].completion) for p in ids]
    metrics, win, soft = win_stats(rc, rb, lc, lb)
    rows = [
        {
            "prompt_id": p,
            "reward_candidate": rc[i],
            "reward_baseline": rb[i],
            "win": win[i],
            "soft_win": soft[i],
            "len_candidate": lc[i],
            "len_baseline": lb[i],
        }
        for i, p in enumerate(ids)
    ]
    return WinRateResult(metrics, rows, info, dict(tags or {}), files)


def judge(
    candidate: str | Path,
    baseline: str | Path,
    judge_model: str,
    *,
    store: Any = None,
    dataset: str | None = None,
    allow_circular: bool = False,
    dtype: str = "auto",
    max_length: int = 2048,
    batch_tokens: int = 16384,
    tags: dict[str, Any] | None = None,
) -> WinRateResult:
    """Judge candidate vs baseline responses on their common prompts with a reward model."""
    from prefcurate.models.reward import load_reward_model

    from ..models import model_fingerprint

    fp = model_fingerprint(judge_model)
    refuse_circular(store, [dataset] if dataset else [], judge_model, fp, allow_circular)
    cand, base = read_responses(candidate), read_responses(baseline)
    common = [p for p in cand if p in base]
    if not common:
        raise ConfigError(f"{candidate} and {baseline} share no prompt_id")
    rm = load_reward_model(judge_model, dtype, fingerprint=fp)
    rc = score_responses(rm, common, cand, max_length=max_length, batch_tokens=batch_tokens)
    rb = score_responses(rm, common, base, max_length=max_length, batch_tokens=batch_tokens)
    info = {"spec": judge_model, "fingerprint": fp, "dtype": rm.dtype, "allow_circular": allow_circular}
    files = {"candidate": str(candidate), "baseline": str(baseline)}
    return judged(common, cand, base, rc, rb, info, tags, files)


__all__ = [
    "judge",
    "judged",
    "length_controlled",
    "read_responses",
    "refuse_circular",
    "score_responses",
    "win_stats",
]
