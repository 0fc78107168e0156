"""`PrecomputedRefDPOTrainer`: stock TRL `DPOTrainer` that trains against the reference log-probs a
prefcurate export carries (`ref_chosen_logps` / `ref_rejected_logps`), for a user's own script.

Stock TRL 1.16 ignores those columns unless `precompute_ref_log_probs=True`, and with it set it computes
them again and fails on the duplicated columns. This subclass:

- uses the columns when every row of the dataset has both (the reference model is then never loaded or
  run: TRL's `precompute_ref_log_probs` path, with the values taken from the data);
- computes them when they are absent (TRL's own behaviour for the `args` given);
- checks the dtype the values were computed in (recorded by `prefcurate export` in the dataset's info,
  or passed as `ref_logps_dtype=`) against the dtype this run computes in (`bf16`/`fp16` autocast, else
  the model's dtype): a bf16 run against an fp32 reference differs by up to ~0.7 nats per sequence on
  SmolLM2, so a mismatch is refused (`on_dtype_mismatch="warn"` trains anyway, with a warning).

    from datasets import load_from_disk
    from trl import DPOConfig
    from trainers import PrecomputedRefDPOTrainer

    ds = load_from_disk("out/uf-curriculum/dataset")          # DatasetDict: bucket_0, bucket_1, ...
    args = DPOConfig("runs/mine", bf16=False, max_steps=10)   # the export's signal was fp32
    trainer = PrecomputedRefDPOTrainer(model_path, args=args, train_dataset=ds["bucket_0"])
    trainer.train()
"""

from __future__ import annotations

import copy
import json
import warnings
from typing import Any

from trl import DPOConfig, DPOTrainer

from prefcurate.bucket.export import REF_COLUMNS
from prefcurate.errors import ConfigError

# Where `prefcurate export` records what the reference columns are (in `DatasetInfo.description`).
INFO_KEY = "prefcurate"
MISMATCH_CHOICES = ("error", "warn", "ignore")
TORCH_DTYPES = {"torch.float32": "fp32", "torch.bfloat16": "bf16", "torch.float16": "fp16"}


def has_ref_columns(dataset: Any) -> bool:
    """True when the dataset carries both reference columns with a value in every row."""
    names = getattr(dataset, "column_names", None) or []
    if not all(c in names for c in REF_COLUMNS):
        return False
    data = getattr(dataset, "data", None)  # an Arrow-backed `datasets.Dataset`: count nulls without a scan
    if data is not None and hasattr(data, "column"):
        missing = [c for c in REF_COLUMNS if data.column(c).null_count]
        if missing:
            raise ConfigError(
                f"column {missing[0]!r} has {data.column(missing[0]).null_count} empty values; "
                "give every row a reference log-prob or drop both columns to have them computed"
            )
    return True


def recorded_ref_info(dataset: Any) -> dict[str, Any]:
    """What the export recorded about the reference columns ({} when nothing: e.g. a hand-made dataset)."""
    info = getattr(dataset, "info", None)
    description = getattr(info, "description", None) or ""
    try:
        parsed = json.loads(description)
    except (TypeError, ValueError):
        return {}
    found = parsed.get(INFO_KEY, {}) if isinstance(parsed, dict) else {}
    return found.get("ref_logps") or {} if isinstance(found, dict) else {}


def training_dtype(model: Any, args: Any) -> str | None:
    """The dtype this run's forward passes compute in: autocast wins over the weights' dtype."""
    if getattr(args, "bf16", False):
        return "bf16"
    if getattr(args, "fp16", False):
        return "fp16"
    dtype = getattr(model, "dtype", None)
    if dtype is None and isinstance(model, str):
        init = dict(getattr(args, "model_init_kwargs", None) or {})
        dtype = init.get("dtype") or init.get("torch_dtype")
        if dtype in (None, "auto"):
            return None  # decided by the checkpoint's config when TRL loads it
    text = str(dtype)
    return TORCH_DTYPES.get(text, {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(text))


def dtype_problem(signal_dtype: str | None, run_dtype: str | None) -> str | None:
    """A one-line reason when the injected values are not what this run would compute, else None."""
    if signal_dtype is None or run_dtype is None or signal_dtype == run_dtype:
        return None
    hint = "bf16=False" if signal_dtype == "fp32" else f"{signal_dtype}=True"
    return (
        f"the reference log-probs were computed in {signal_dtype}, this run computes in {run_dtype} "
        f"(a different reference: bf16 and fp32 sums differ by up to ~0.7 nats per sequence); "
        f"set {hint} in DPOConfig, re-score in {run_dtype}, or pass on_dtype_mismatch='warn'"
    )


class PrecomputedRefDPOTrainer(DPOTrainer):
    """`trl.DPOTrainer` that uses `ref_chosen_logps` / `ref_rejected_logps` from the data when present.

    Arguments are TRL's, plus `ref_logps_dtype` (`"fp32"`/`"bf16"`; default: what the export recorded)
    and `on_dtype_mismatch` (`"error"` default, `"warn"`, `"ignore"`).
    `self.ref_logps_from_data` says which route was taken.
    """

    def __init__(
        self,
        model: Any,
        ref_model: Any = None,
        args: DPOConfig | None = None,
        *positional: Any,
        train_dataset: Any = None,
        ref_logps_dtype: str | None = None,
        on_dtype_mismatch: str = "error",
        **kwargs: Any,
    ) -> None:
        if on_dtype_mismatch not in MISMATCH_CHOICES:
            raise ConfigError(
                f"on_dtype_mismatch={on_dtype_mismatch!r} is not one of: {', '.join(MISMATCH_CHOICES)}"
            )
        if positional:  # TRL's order: data_collator, train_dataset, ...
            kwargs["data_collator"] = positional[0]
            if len(positional) > 1:
                train_dataset = positional[1]
            if len(positional) > 2:
                raise TypeError("pass eval_dataset and later arguments by keyword")
        self.ref_logps_from_data = has_ref_columns(train_dataset)
        self.ref_logps_dtype = ref_logps_dtype or recorded_ref_info(train_dataset).get("dtype")
        if self.ref_logps_from_data:
            if args is None:
                name = model if isinstance(model, str) else model.config.name_or_path
                args = DPOConfig(f"{str(name).rstrip('/').split('/')[-1]}-DPO")
            problem = dtype_problem(self.ref_logps_dtype, training_dtype(model, args))
            if problem and on_dtype_mismatch == "error":
                raise ConfigError(problem)
            if problem and on_dtype_mismatch == "warn":
                warnings.warn(problem, stacklevel=2)
            if self.ref_logps_dtype is None and on_dtype_mismatch != "ignore":
                warnings.warn(
                    "the dataset does not say which dtype its reference log-probs were computed in; "
                    "pass ref_logps_dtype='fp32' (or 'bf16') to have it checked against this run",
                    stacklevel=2,
                )
            if not args.precompute_ref_log_probs:
                # TRL reads the reference from the batch only on its precompute path; the copy keeps the
                # caller's config object unchanged.
                args = copy.copy(args)
                args.precompute_ref_log_probs = True
        super().__init__(model, ref_model, args, train_dataset=train_dataset, **kwargs)

    def _precompute_ref_logps(self, dataset: Any, name: str, batch_size: int) -> Any:
        if has_ref_columns(dataset):
            return dataset  # the values came with the data: no reference forward pass
        return super()._precompute_ref_logps(dataset, name, batch_size)
