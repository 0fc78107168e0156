"""The training configuration: one validated dataclass shared by `trainers.run` and `prefcurate train`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from typing import Any

from prefcurate.errors import ConfigError
from prefcurate.models.encoding import check_max_length

from .trl_options import TRL_OPTIONS, dpo_fields, parse_trl_args, trl_default


class Schedule(str, Enum):
    """How buckets become training stages."""

    plain = "plain"
    curriculum = "curriculum"
    stepwise = "stepwise"


SCHEDULES = tuple(m.value for m in Schedule)


class Order(str, Enum):
    """Pair order within a stage."""

    shuffle = "shuffle"
    sequential = "sequential"


ORDERS = tuple(m.value for m in Order)


class TrainDtype(str, Enum):
    """Training precision."""

    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


DTYPES = tuple(m.value for m in TrainDtype)


class RefLogps(str, Enum):
    """Where reference log-probs come from."""

    auto = "auto"
    compute = "compute"
    require = "require"


REF_MODES = tuple(m.value for m in RefLogps)


class LrScheduler(str, Enum):
    """Learning-rate schedule per stage."""

    linear = "linear"
    constant = "constant"
    cosine = "cosine"


LR_SCHEDULERS = tuple(m.value for m in LrScheduler)


def parse_steps(value: str | int | list[int] | tuple[int, ...] | None) -> tuple[int, ...]:
    """`--save-at-steps 10,20,30` -> (10, 20, 30): distinct global steps >= 1, sorted."""
    if value is None or value == "" or value == ():
        return ()
    parts = (
        value.split(",") if isinstance(value, str) else ([value] if isinstance(value, int) else list(value))
    )
    try:
        steps = sorted({int(str(p).strip()) for p in parts if str(p).strip()})
    except ValueError:
        raise ConfigError(f"--save-at-steps takes whole numbers separated by commas, got {value!r}") from None
    if steps and steps[0] < 1:
        raise ConfigError(f"--save-at-steps takes global steps >= 1, got {value!r}")
    return tuple(steps)


# TrainingArguments.report_to's values (transformers' INTEGRATION_TO_CALLBACK keys, plus all/none); kept
# here so validating a config does not import transformers. Where the integration is missing, TRL says so.
REPORT_TO = (
    "none",
    "all",
    "azure_ml",
    "clearml",
    "codecarbon",
    "comet_ml",
    "dagshub",
    "dvclive",
    "flyte",
    "kubeflow",
    "mlflow",
    "neptune",
    "swanlab",
    "tensorboard",
    "trackio",
    "wandb",
)
# Settings that do not change what is trained: a resumed run may differ in them.
NOT_RECORDED_FOR_RESUME = ("report_to",)


def parse_epochs(value: str | int | list[int] | tuple[int, ...] | None) -> tuple[int, ...]:
    """`"1,5,5"` or `3` or `[1, 5, 5]` -> `(1, 5, 5)`; every value a positive whole number."""
    if value is None:
        return (1,)
    items: list[Any]
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = [value]
    result = []
    for item in items:
        number: int | None = None
        if isinstance(item, int) and not isinstance(item, bool):
            number = item
        elif isinstance(item, float) and item.is_integer():
            number = int(item)
        elif isinstance(item, str) and item.isdigit():
            number = int(item)
        if number is None or number < 1:
            raise ConfigError(
                f"--epochs-per-stage takes positive whole numbers separated by commas, got {value!r}"
            )
        result.append(number)
    return tuple(result)


def parse_report_to(value: str | list[str] | tuple[str, ...] | None) -> str:
    """`"wandb,tensorboard"` or a list -> the normalised comma-joined names; each one TRL accepts."""
    items = value.split(",") if isinstance(value, str) else list(value or ["none"])
    names = [str(v).strip() for v in items if str(v).strip()] or ["none"]
    for name in names:
        if name not in REPORT_TO:
            raise ConfigError(f"--report-to must be one or more of {', '.join(REPORT_TO)}, got {name!r}")
    if len(names) > 1 and ("none" in names or "all" in names):
        raise ConfigError(f"--report-to 'none' and 'all' stand alone, got {','.join(names)!r}")
    return ",".join(names)


@dataclass
class TrainConfig:
    """Everything that determines a training run (recorded in run.json; a resumed run must match it).

    schedule      plain (all buckets together, one stage), curriculum (one stage per bucket, reference =
                  the starting model) or stepwise (sDPO: reference and start = the previous stage's model)
    order         within a stage: shuffle (seeded, within the bucket) or sequential (the exported order)
    epochs_per_stage  one value for every stage, or one per stage ("1,5,5")
    dtype         fp32, bf16 mixed precision (fp32 master weights, bf16 matrix products), or auto: bf16 on a
                  GPU or a CPU with fast bf16 (AVX512-BF16/AMX), else fp32 (on an AVX2-only CPU bf16 is
                  emulated and many times slower)
    ref_logps     auto: inject the reference log-probs of a matching log-prob signal, else compute them;
                  compute: always compute; require: fail unless they can be injected where the reference
                  is the starting model
    report_to     where TRL logs too (TrainingArguments.report_to: "none", "wandb", "tensorboard,mlflow"...);
                  per-step metrics always go to the store
    trl           any other trl.DPOConfig field, as given (`--trl loss_type=ipo --trl weight_decay=0.01`)

    TRL's options (beta, learning_rate, batch_size, grad_accum, max_length, lr_scheduler, warmup_ratio,
    seed, report_to: see trl_options.TRL_OPTIONS for their DPOConfig names) default to DPOConfig's own
    defaults, except the few in trl_options.OURS, which say why they differ.
    """

    schedule: str = "curriculum"
    model: str | None = None
    beta: float = trl_default("beta")
    learning_rate: float = trl_default("learning_rate")
    epochs_per_stage: tuple[int, ...] = (1,)
    order: str = "shuffle"
    seed: int = trl_default("seed")
    max_steps_per_stage: int | None = None
    batch_size: int = trl_default("batch_size")
    grad_accum: int = trl_default("grad_accum")
    max_length: int = trl_default("max_length")
    dtype: str = "auto"
    lr_scheduler: str = trl_default("lr_scheduler")
    warmup_ratio: float = trl_default("warmup_ratio")
    ref_logps: str = "auto"
    eval_max_pairs: int | None = None
    eval_batch_tokens: int = 4096
    save_at_steps: tuple[int, ...] = ()  # extra checkpoints at these global steps (RUN_DIR/step-<N>/)
    report_to: str = trl_default("report_to")
    trl: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.trl = parse_trl_args(self.trl)
        if not dpo_fields() and any(getattr(self, name) is None for name in TRL_OPTIONS):
            return  # TRL is not installed: its defaults are unknown, and training says to install it
        self.epochs_per_stage = parse_epochs(self.epochs_per_stage)
        self.save_at_steps = parse_steps(self.save_at_steps)
        self.report_to = parse_report_to(self.report_to)
        self._choice("schedule", SCHEDULES)
        self._choice("order", ORDERS)
        self._choice("dtype", DTYPES)
        self._choice("ref_logps", REF_MODES)
        self._choice("lr_scheduler", LR_SCHEDULERS)
        self._positive("beta", self.beta)
        self._positive("learning_rate", self.learning_rate, flag="--lr")
        for name in ("batch_size", "grad_accum", "eval_batch_tokens"):
            self._positive_int(name, getattr(self, name))
        for name in ("max_steps_per_stage", "eval_max_pairs"):
            if getattr(self, name) is not None:
                self._positive_int(name, getattr(self, name))
        check_max_length(self.max_length, minimum=8)  # TRL needs room for prompt and completion
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"--seed must be a whole number >= 0, got {self.seed!r}")
        if not (0.0 <= self.warmup_ratio < 1.0):
            raise ConfigError(f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if self.schedule == "plain" and len(self.epochs_per_stage) > 1:
            joined = ",".join(map(str, self.epochs_per_stage))
            raise ConfigError(
                f"--schedule plain trains one stage: give one --epochs-per-stage value, got {joined!r}"
            )

    # -- validation helpers (messages quote the bad value and name the flag) ----------------------
    @staticmethod
    def _flag(name: str) -> str:
        return "--" + name.replace("_", "-")

    def _choice(self, name: str, allowed: tuple[str, ...]) -> None:
        value = getattr(self, name)
        if value not in allowed:
            raise ConfigError(f"{self._flag(name)} must be one of {', '.join(allowed)}, got {value!r}")

    def _positive(self, name: str, value: Any, flag: str | None = None) -> None:
        ok = (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value > 0
        )
        if not ok:
            raise ConfigError(f"{flag or self._flag(name)} must be a number > 0, got {value!r}")

    def _positive_int(self, name: str, value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{self._flag(name)} must be a whole number >= 1, got {value!r}")

    # -- derived -----------------------------------------------------------------------------------
    def dpo_kwargs(self) -> dict[str, Any]:
        """The trl.DPOConfig keyword arguments this config decides (a stage adds its own: epochs, paths...)."""
        kwargs = {dpo: getattr(self, ours) for ours, dpo in TRL_OPTIONS.items()}
        kwargs["report_to"] = self.report_to_list()
        return {**kwargs, **self.trl}

    def report_to_list(self) -> list[str]:
        """TrainingArguments.report_to: [] for none (TRL's own default would try every integration)."""
        return [] if self.report_to == "none" else self.report_to.split(",")

    def epochs_for(self, stage: int, n_stages: int) -> int:
        """Epochs of stage `stage` (1-based) in a run of `n_stages` stages."""
        if len(self.epochs_per_stage) == 1:
            return self.epochs_per_stage[0]
        if len(self.epochs_per_stage) != n_stages:
            joined = ",".join(map(str, self.epochs_per_stage))
            raise ConfigError(
                f"--epochs-per-stage {joined!r} gives {len(self.epochs_per_stage)} values but the run has "
                f"{n_stages} stages: give one value or one per stage"
            )
        return self.epochs_per_stage[stage - 1]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["epochs_per_stage"] = list(self.epochs_per_stage)
        # Left out when unused, so runs started before the option existed still resume.
        if data["save_at_steps"]:
            data["save_at_steps"] = list(self.save_at_steps)
        else:
            del data["save_at_steps"]
        if not data["trl"]:
            del data["trl"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def resolve_dtype(dtype: str) -> str:
    """`auto` -> bf16 where it is fast (CUDA with bf16, or a CPU whose bf16 matmul beats fp32), else fp32.

    The same resolver as the log-prob signal (its probe is memoised per CPU), so a run and a signal
    that both say `auto` agree on the dtype their fingerprints record."""
    if dtype != "auto":
        return dtype
    import torch

    from prefcurate.models.dtypes import resolve_dtype as resolve_shared

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return resolve_shared("auto", device)[0]
