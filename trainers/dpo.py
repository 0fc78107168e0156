"""TRL's `DPOTrainer`, subclassed only where a curriculum needs it.

The DPO loss, tokenization, truncation and metrics are TRL's own. This subclass changes three things:

1. the sampler: `sequential` (the exported order) or `shuffle` (a seeded permutation per epoch, within
   the stage's data only), instead of Trainer's global random sampler;
2. reference log-probs: when the dataset already carries `ref_chosen_logps` / `ref_rejected_logps`
   (injected from a log-prob signal), TRL's precompute pass is skipped and the reference model is
   never run; otherwise TRL precomputes them with the reference model (or the starting policy);
3. bookkeeping: every batch carries a `row_index` column so the order actually consumed by the
   optimizer is recorded per step (the collator passes it through; it is removed before the model).

Imported lazily (torch, transformers, trl are heavy).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Sampler
from trl import DPOTrainer
from trl.trainer.dpo_trainer import DataCollatorForPreference

from .buckets import REF_COLUMNS

ROW_INDEX = "row_index"


class StageSampler(Sampler[int]):
    """Yields row positions: in order (`sequential`) or a fresh seeded permutation each epoch (`shuffle`).

    Each `__iter__` is one epoch; epoch e of seed s always gives the same permutation, so a run is
    reproducible and a resumed stage replays exactly.
    """

    def __init__(self, n_rows: int, order: str, seed: int) -> None:
        self.n_rows, self.order, self.seed = n_rows, order, seed
        self.epoch = 0

    def permutation(self, epoch: int) -> list[int]:
        if self.order == "sequential":
            return list(range(self.n_rows))
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n_rows, generator=generator).tolist()

    def __iter__(self) -> Iterator[int]:
        order = self.permutation(self.epoch)
        self.epoch += 1
        return iter(order)

    def __len__(self) -> int:
        return self.n_rows


@dataclass
class IndexedPreferenceCollator:
    """TRL's preference collator plus the `row_index` of each example (for the consumed-order record)."""

    inner: DataCollatorForPreference

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.inner(examples)
        if ROW_INDEX in examples[0]:
            batch[ROW_INDEX] = torch.tensor([int(e[ROW_INDEX]) for e in examples], dtype=torch.long)
        return batch


@contextmanager
def quiet_tqdm() -> Iterator[None]:
    """TRL's reference precompute reads TQDM_DISABLE at call time; our own progress bar replaces it."""
    before = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = before


class BucketDPOTrainer(DPOTrainer):
    """`DPOTrainer` with a stage sampler, injectable reference log-probs and a consumed-order record."""

    def __init__(self, *args: Any, order: str = "shuffle", sampler_seed: int = 0, **kwargs: Any) -> None:
        self._order, self._sampler_seed = order, sampler_seed
        self._sampler: StageSampler | None = None
        self.consumed: list[tuple[int, int, list[int]]] = []  # (optimizer step, micro-batch, row indices)
        self._micro = 0
        self.ref_logps_injected = False
        with quiet_tqdm():
            super().__init__(*args, **kwargs)

    # -- 1. the sampler ----------------------------------------------------------------------------
    def _get_train_sampler(self, train_dataset: Any = None) -> StageSampler:
        dataset: Any = train_dataset if train_dataset is not None else self.train_dataset
        if self._sampler is None or self._sampler.n_rows != len(dataset):
            self._sampler = StageSampler(len(dataset), self._order, self._sampler_seed)
        return self._sampler

    # -- 2. reference log-probs --------------------------------------------------------------------
    def _precompute_ref_logps(self, dataset: Any, name: str, batch_size: int) -> Any:
        if all(c in dataset.column_names for c in REF_COLUMNS):
            self.ref_logps_injected = True  # values came with the data: no reference forward pass
            return dataset
        return super()._precompute_ref_logps(dataset, name, batch_size)

    def compute_ref_log_probs(self, model: Any, inputs: dict[str, Any]) -> Any:
        inputs = {k: v for k, v in inputs.items() if k != ROW_INDEX}
        return super().compute_ref_log_probs(model, inputs)

    # -- 3. bookkeeping ----------------------------------------------------------------------------
    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if self._signature_columns is not None and ROW_INDEX not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, ROW_INDEX]

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        rows = inputs.pop(ROW_INDEX, None)
        if rows is not None and model.training:
            step = self.state.global_step + 1  # the optimizer step this micro-batch contributes to
            self._micro = self._micro + 1 if self.consumed and self.consumed[-1][0] == step else 0
            self.consumed.append((step, self._micro, rows.tolist()))
        return super().compute_loss(
            model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )
