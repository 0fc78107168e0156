"""`train --eval SUITE[,SUITE]`: outcome evaluation of each checkpoint as soon as it exists.

The runner calls `after_stage` once before the first stage (the start model) and after every
stage, finished now or earlier: each checkpoint up to the global step trained so far (the start
model, the stage just finished, the `--save-at-steps` checkpoints inside it) is generated and
scored on every suite by `prefcurate.evaluate.run.evaluate_checkpoint`, into
RUN_DIR/evals/<suite>/<stage>/, before the next stage starts. A checkpoint whose entry.json was
written with the same settings is reused, so a resumed run does not evaluate a stage twice, and a
run stopped mid-way keeps the evaluations of its finished stages (`eval compare` reads them).

The store entry `evals/<run>/<version>` is published once per suite at the end of the run, from
the per-checkpoint results kept in the run folder, not once per stage: a version is immutable and
complete, and the `evals` view holds every version, so one version per stage would repeat the
earlier stages' rows in each later version. A run stopped before its end publishes nothing;
`prefcurate eval run RUN_DIR --suite S` publishes what it has (reusing the evaluations).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from prefcurate.evaluate.run import (
    RunEvalOptions,
    check_suites,
    checkpoints,
    evaluate_checkpoint,
    publish_run,
)
from prefcurate.store import Store


class SuiteEvals:
    """The suites a run evaluates each checkpoint on, checked when constructed (before training)."""

    def __init__(self, suites: str | Sequence[str], options: RunEvalOptions | None = None) -> None:
        self.options = options or RunEvalOptions()
        self.suites = check_suites(suites, self.options, flag="--eval")
        self._seen: set[tuple[str, str]] = set()  # (suite, checkpoint) handled in this process

    def after_stage(self, run_dir: Path, trained_steps: int, log: Callable[[str], None]) -> None:
        """Evaluate every checkpoint at or before global step `trained_steps` not evaluated yet.

        Checkpoints past it (a `step-<N>` folder left by an interrupted attempt at the next stage)
        wait: that stage is trained again and rewrites them."""
        name, models = checkpoints(run_dir)
        ready = [m for m in models if m.step <= trained_steps]
        for suite in self.suites:
            for ckpt in ready:
                if (suite, ckpt.stage) not in self._seen:
                    evaluate_checkpoint(run_dir, name, ckpt, suite, self.options, log)
                    self._seen.add((suite, ckpt.stage))

    def publish(self, store: Store, run_dir: Path, log: Callable[[str], None]) -> list[str]:
        """One `evals/<run>/<version>` per suite from the results in the run folder; their labels."""
        labels = []
        for suite in self.suites:
            ref, table = publish_run(store, run_dir, suite, self.options)
            labels.append(ref.label)
            log(
                f"{suite}: {table.num_rows} (checkpoint, task) rows published as {ref.label} (prefcurate sql evals)"
            )
        return labels


__all__ = ["SuiteEvals"]
