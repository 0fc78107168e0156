"""`eval holdout RUN_DIR`: held-out preference accuracy of every stage of a train run, per pair,
as result folders `eval compare` pairs across arms (exact McNemar: one 0/1 outcome per pair).

A train run with held-out pairs writes the log-probs of chosen and rejected under the start model
(RUN_DIR/eval/start.parquet), under each stage's model (RUN_DIR/eval/stage-<t>.parquet) and under
each `--save-at-steps` checkpoint (RUN_DIR/eval/step-<N>.parquet, tagged with its global step, so
`eval compare` pairs a plain arm's step-N with a curriculum's stage ending at step N). A
pair is correct when the implicit reward ranks it right against the start model:
(log pi(y_w) - log pi_0(y_w)) > (log pi(y_l) - log pi_0(y_l)), the same accuracy the run reports
(beta > 0 does not change the sign). Every arm is measured against the same start model, so arms
trained with different references (a stepwise run) are still compared on one scale.

Folders: RUN_DIR/evals/holdout/<stage>/summary.json + pairs.jsonl, tagged like `eval run`'s.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from ..errors import ConfigError
from .paired import bootstrap_ci
from .run import checkpoints


def _logps(path: Path) -> dict[str, tuple[float | None, float | None]]:
    t = pq.read_table(path, columns=["pair_id", "chosen_logp", "rejected_logp"]).to_pydict()
    return {
        str(p): (c, r) for p, c, r in zip(t["pair_id"], t["chosen_logp"], t["rejected_logp"], strict=True)
    }


def holdout_results(run_dir: str | Path, *, n_resamples: int = 10_000, seed: int = 0) -> list[dict[str, Any]]:
    """Write the per-stage folders (see the module doc); return one summary row per stage."""
    run_dir = Path(run_dir)
    name, models = checkpoints(run_dir)
    start_path = run_dir / "eval" / "start.parquet"
    if not start_path.is_file():
        raise ConfigError(f"{run_dir} was trained without held-out pairs (no eval/start.parquet)")
    start = _logps(start_path)
    out: list[dict[str, Any]] = []
    for ckpt in models:
        path = run_dir / "eval" / f"{ckpt.stage}.parquet"
        if ckpt.stage == "start" or not path.is_file():
            # No log-probs: a step-<N> of a run trained before step checkpoints were evaluated.
            continue
        stage = _logps(path)
        rows: list[dict[str, Any]] = []
        for pid, (c, r) in stage.items():
            c0, r0 = start.get(pid, (None, None))
            if None in (c, r, c0, r0):
                continue  # TRL dropped the pair (prompt alone fills max_length)
            assert c is not None and r is not None and c0 is not None and r0 is not None
            rows.append({"pair_id": pid, "correct": float((c - c0) > (r - r0)), "gamma": c - r})
        if not rows:
            raise ConfigError(f"{path}: no held-out pair with log-probs on both sides")
        acc = [float(row["correct"]) for row in rows]
        low, high = bootstrap_ci(acc, n_resamples=n_resamples, seed=seed)
        metrics = {
            "holdout_accuracy": sum(acc) / len(acc),
            "holdout_accuracy_low": low,
            "holdout_accuracy_high": high,
            "holdout_gamma": sum(float(row["gamma"]) for row in rows) / len(rows),
            "pairs": float(len(rows)),
        }
        tags = {
            "arm": name,
            "stage": ckpt.stage,
            "step": ckpt.step,
            "epochs": ckpt.epochs,
            "pairs_seen": ckpt.pairs_seen,
        }
        folder = run_dir / "evals" / "holdout" / ckpt.stage
        folder.mkdir(parents=True, exist_ok=True)
        summary = {**metrics, "suite": "holdout", "tags": tags}
        (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        with open(folder / "pairs.jsonl", "w") as fh:
            fh.writelines(json.dumps(row) + "\n" for row in rows)
        out.append({"stage": ckpt.stage, "step": ckpt.step, "epochs": ckpt.epochs, **metrics})
    if not out:
        raise ConfigError(f"{run_dir}: no stage has held-out log-probs (eval/stage-<t>.parquet)")
    return out


__all__ = ["holdout_results"]
