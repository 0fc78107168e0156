"""Thin trainers that consume buckets in bucket order: plain, curriculum and stepwise (sDPO) DPO.

Built on TRL's `DPOTrainer` (see trainers/dpo.py for the little it overrides). Heavy imports (torch,
transformers, trl) happen only when training starts, so `import trainers` is cheap.

    import trainers
    result = trainers.run("exports/uf-curriculum", "runs/sdpo", schedule="stepwise", beta=0.1)
    print(result.summary())

`trainers.PrecomputedRefDPOTrainer` is a drop-in `trl.DPOTrainer` for a user's own script that trains
against an export's `ref_chosen_logps` / `ref_rejected_logps` (see docs/buckets.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import TrainConfig

if TYPE_CHECKING:
    from .runner import RunResult, StagePlan, StageResult, plan_stages, run

# Loaded on first use (pyarrow): `prefcurate train --help` imports trainers.config for its choices.
_FROM_RUNNER = ("RunResult", "StagePlan", "StageResult", "plan_stages", "run")

__all__ = [
    "PrecomputedRefDPOTrainer",
    "RunResult",
    "StagePlan",
    "StageResult",
    "TrainConfig",
    "demo_run",
    "plan_stages",
    "run",
    "write_run_report",
    "write_runs_report",
]


def write_run_report(run_dir: Any, out_html: Any) -> Any:
    from .report import write_run_report as _write

    return _write(run_dir, out_html)


def write_runs_report(run_dirs: Any, out_html: Any) -> Any:
    from .overlay import write_runs_report as _write

    return _write(run_dirs, out_html)


def demo_run(*args: Any, **kwargs: Any) -> Any:
    from .demo import demo_run as _demo_run

    return _demo_run(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name in _FROM_RUNNER:
        from . import runner

        return getattr(runner, name)
    if name == "PrecomputedRefDPOTrainer":  # imports trl: only when asked for
        from .precomputed import PrecomputedRefDPOTrainer

        return PrecomputedRefDPOTrainer
    raise AttributeError(f"module 'trainers' has no attribute {name!r}")
