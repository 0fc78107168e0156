"""`eval compare`: one row per arm and stage, each metric with a 95% paired bootstrap interval, and
the difference to a control arm at the same global step with its interval and a paired test.

Inputs are eval result folders (`eval code --out`, `eval winrate --out`, or the stage folders
`eval run`, `eval winrate RUN_DIR` and `eval holdout` write). Each folder's `summary.json` carries tags: arm, stage, step (global
optimizer step), epochs and pairs_seen. Per-problem values are what gets paired: pass@1 of a
task (c/n) for code, the win (1, 0.5, 0) of a prompt for win rates, whether a held-out pair is
ranked right (1, 0) for held-out accuracy.

Test choice: exact McNemar when every problem has one sample on both sides (greedy pass@1,
binary outcomes), paired sign-flip permutation otherwise (problems as clusters). p-values are
Holm-adjusted across all compared rows. A row is flagged when the control has no result at the
same global step, or when the arms differ in epochs or in the problems evaluated.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError
from .paired import bootstrap_ci, holm, mcnemar_exact, sign_flip_test

ALPHA = 0.05


@dataclass
class ArmResult:
    """One evaluated checkpoint: its tags and per-problem values of each metric."""

    arm: str
    stage: str
    step: int | None
    epochs: float | None
    pairs_seen: int | None
    suite: str
    path: str
    values: dict[str, dict[str, float]]  # metric -> problem -> value
    binary: dict[str, bool] = field(default_factory=dict)  # metric -> one 0/1 outcome per problem


def _num(value: Any, cast: type) -> Any:
    if value is None or value == "":
        return None
    try:
        return cast(value)
    except (TypeError, ValueError):
        return None


def _jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"not valid JSON ({exc.msg})", path=path, line=line_no) from None
    return rows


def load_result(folder: Path, arm: str | None = None) -> ArmResult:
    """Read one result folder (summary.json + tasks.jsonl or prompts.jsonl)."""
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read eval summary ({exc})", path=folder / "summary.json") from None
    tags = summary.get("tags") or {}
    values: dict[str, dict[str, float]] = {}
    binary: dict[str, bool] = {}
    if (folder / "tasks.jsonl").is_file():
        tasks = _jsonl(folder / "tasks.jsonl")
        values["pass@1"] = {str(t["task_id"]): t["c"] / t["n"] for t in tasks if t.get("n")}
        binary["pass@1"] = all(t.get("n") == 1 for t in tasks)
    if (folder / "prompts.jsonl").is_file():
        prompts = _jsonl(folder / "prompts.jsonl")
        for metric in ("win", "soft_win"):
            values[metric] = {str(p["prompt_id"]): float(p[metric]) for p in prompts if metric in p}
        binary["win"] = False  # ties are 0.5: not a binary outcome
    if (folder / "pairs.jsonl").is_file():  # `eval holdout`: one 0/1 outcome per held-out pair
        pairs = _jsonl(folder / "pairs.jsonl")
        values["holdout_acc"] = {str(p["pair_id"]): float(p["correct"]) for p in pairs}
        binary["holdout_acc"] = True
    if not values:
        raise InputError("no tasks.jsonl, prompts.jsonl or pairs.jsonl next to summary.json", path=folder)
    return ArmResult(
        arm=str(tags.get("arm") or arm or folder.name),
        stage=str(tags.get("stage") or "final"),
        step=_num(tags.get("step"), int),
        epochs=_num(tags.get("epochs"), float),
        pairs_seen=_num(tags.get("pairs_seen"), int),
        suite=str(summary.get("suite") or summary.get("prompts") or ""),
        path=str(folder),
        values=values,
        binary=binary,
    )


def collect(paths: list[str | Path]) -> list[ArmResult]:
    """Result folders: each path is one (has summary.json) or holds one per stage sub-folder."""
    results: list[ArmResult] = []
    for raw in paths:
        path = Path(raw)
        if (path / "summary.json").is_file():
            results.append(load_result(path))
            continue
        subs = sorted(p.parent for p in path.glob("*/summary.json"))
        if not subs:
            raise ConfigError(f"{path}: no eval results (summary.json) in it or its sub-folders")
        results.extend(load_result(s, arm=path.name) for s in subs)
    return results


def _verdict(p_adj: float, diff: float, low: float, high: float, n: int) -> str:
    if math.isnan(p_adj):
        return ""
    if p_adj < ALPHA:
        return "better" if diff > 0 else "worse"
    half = (high - low) / 2
    return f"cannot tell: 95% CI ±{half:.3f} over {n} problems"


def compare(
    paths: list[str | Path], *, control: str | None = None, n_resamples: int = 10_000, seed: int = 0
) -> list[dict[str, Any]]:
    """The comparison table as rows (see the module doc)."""
    results = collect(paths)
    arms = {r.arm for r in results}
    if control is not None and control not in arms:
        by_path = [
            r.arm for r in results if Path(r.path) == Path(control) or Path(r.path).parent == Path(control)
        ]
        if not by_path:
            raise ConfigError(
                f"--control {control!r} is neither an arm ({', '.join(sorted(arms))}) nor one of the paths"
            )
        control = by_path[0]
    rows: list[dict[str, Any]] = []
    for r in sorted(
        results, key=lambda r: (r.arm != control, r.arm, r.step if r.step is not None else -1, r.stage)
    ):
        for metric, per in r.values.items():
            vals = list(per.values())
            low, high = bootstrap_ci(vals, n_resamples=n_resamples, seed=seed)
            row: dict[str, Any] = {
                "arm": r.arm,
                "stage": r.stage,
                "step": r.step,
                "epochs": r.epochs,
                "pairs_seen": r.pairs_seen,
                "suite": r.suite,
                "metric": metric,
                "n": len(vals),
                "value": sum(vals) / len(vals) if vals else math.nan,
                "ci_low": low,
                "ci_high": high,
                "control_value": None,
                "diff": None,
                "diff_low": None,
                "diff_high": None,
                "test": None,
                "p": math.nan,
                "p_holm": math.nan,
                "flag": "",
                "verdict": "",
            }
            if control is not None and r.arm != control:
                _against_control(row, r, metric, results, control, n_resamples, seed)
            rows.append(row)
    adjusted = holm([row["p"] for row in rows])
    for row, p_adj in zip(rows, adjusted, strict=True):
        row["p_holm"] = p_adj
        if row["diff"] is not None:
            row["verdict"] = _verdict(p_adj, row["diff"], row["diff_low"], row["diff_high"], row["n"])
    return rows


def _against_control(
    row: dict[str, Any],
    r: ArmResult,
    metric: str,
    results: list[ArmResult],
    control: str,
    n_resamples: int,
    seed: int,
) -> None:
    candidates = [c for c in results if c.arm == control and c.suite == r.suite and metric in c.values]
    flags: list[str] = []
    same_step = [c for c in candidates if c.step is not None and c.step == r.step]
    if same_step:
        ctrl = same_step[0]
    else:
        same_stage = [c for c in candidates if c.stage == r.stage]
        if not same_stage:
            row["flag"] = "no control result for this suite and stage"
            return
        ctrl = same_stage[0]
        flags.append(f"steps differ ({r.step} vs control {ctrl.step})")
    if r.epochs is not None and ctrl.epochs is not None and abs(r.epochs - ctrl.epochs) > 1e-9:
        flags.append(f"epochs differ ({r.epochs:g} vs {ctrl.epochs:g})")
    mine, theirs = r.values[metric], ctrl.values[metric]
    common = [k for k in mine if k in theirs]
    if len(common) != len(mine) or len(common) != len(theirs):
        flags.append(f"paired on {len(common)} common problems")
    if not common:
        row["flag"] = "; ".join(flags + ["no common problems"])
        return
    diffs = [mine[k] - theirs[k] for k in common]
    row["control_value"] = sum(theirs[k] for k in common) / len(common)
    row["diff"] = sum(diffs) / len(diffs)
    row["diff_low"], row["diff_high"] = bootstrap_ci(diffs, n_resamples=n_resamples, seed=seed)
    if r.binary.get(metric) and ctrl.binary.get(metric):
        row["test"] = "mcnemar"
        row["p"] = mcnemar_exact([mine[k] > 0.5 for k in common], [theirs[k] > 0.5 for k in common])[0]
    else:
        row["test"] = "sign-flip"
        row["p"] = sign_flip_test(diffs, n_resamples=max(n_resamples, 10_000), seed=seed)
    row["n"] = len(common)
    row["flag"] = "; ".join(flags)


def markdown(rows: list[dict[str, Any]]) -> str:
    """The comparison rows as a Markdown table (for RESULTS.md and the examples): every value with
    its 95% interval, every difference with its interval and the interval's half-width."""

    def ci(v: float, lo: float, hi: float, sign: str = "") -> str:
        return f"{v:{sign}.3f} [{lo:{sign}.3f}, {hi:{sign}.3f}]"

    lines = [
        "| arm | stage | step | epochs | metric | n | value [95% CI] | diff to control [95% CI] | ± | test | p (Holm) | verdict | flag |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        diff = half = test = p = ""
        if r["diff"] is not None:
            diff = ci(r["diff"], r["diff_low"], r["diff_high"], "+")
            half = f"{(r['diff_high'] - r['diff_low']) / 2:.3f}"
            test, p = str(r["test"]), f"{r['p_holm']:.3g}"
        epochs = "" if r["epochs"] is None else f"{r['epochs']:g}"
        lines.append(
            f"| {r['arm']} | {r['stage']} | {r['step']} | {epochs} | {r['metric']} | {r['n']} | "
            f"{ci(r['value'], r['ci_low'], r['ci_high'])} | {diff} | {half} | {test} | {p} | "
            f"{r['verdict']} | {r['flag']} |"
        )
    return "\n".join(lines)
