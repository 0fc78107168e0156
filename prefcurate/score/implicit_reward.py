"""implicit_reward_v1: the DPO implicit reward of each completion, beta * (log pi_policy - log pi_reference).

Both models' completion log-probs come from the same code as logprob_margin_v1 (and its
per-completion cache, keyed by the model's content fingerprint, so nothing is computed twice), but
nothing is published under logprob_margin_v1: that name only ever holds reference-model margins.
When policy and reference are the same model every reward is exactly zero.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prefcurate.errors import ConfigError
from prefcurate.execution import WorkKind
from prefcurate.extras import lazy_module
from prefcurate.score.base import Computed, RunContext, Signal, register
from prefcurate.score.logprob_margin import LogprobMargin, completion_logps

if TYPE_CHECKING:
    import pyarrow as pa
else:  # loaded on first use (extras.lazy_module), so `--help` can import this module cheaply
    pa = lazy_module("pyarrow")

BF16_WARNING = (
    "Warning: implicit reward in bf16 is risky: it is a difference of two close log-probs (policy minus "
    "reference), and bf16 rounding flips its sign often (on 37 real pairs bf16 agreed with fp32 on only 16); "
    "use --dtype fp32 unless you have checked bf16 against it"
)


@register
@dataclass
class ImplicitReward(Signal):
    name = "implicit_reward_v1"
    cli_name = "implicit-reward"
    fields = ("chosen", "rejected", "margin", "correct")
    description = (
        "DPO implicit reward beta*(log pi_policy - log pi_ref) of chosen and rejected, margin, correct"
    )
    shards = WorkKind.model

    policy: str | None = None  # required: the trained model
    reference: str | None = None  # None: the bundled SmolLM2-135M-Instruct
    beta: float = 0.1
    # fp32: the reward is a difference of two close log-probs; in bf16 its sign agreed with fp32 on
    # only 16 of 37 real pairs (see docs/scoring.md).
    dtype: str = "fp32"
    max_length: int = 512
    batch_tokens: int = 8192

    def __post_init__(self) -> None:
        if not self.policy:
            raise ConfigError(
                "--by implicit-reward needs --policy MODEL (the reference defaults to the bundled model)"
            )
        if not isinstance(self.beta, (int, float)) or not self.beta > 0:
            raise ConfigError(f"--beta must be a positive number, got {self.beta!r}")
        self.logprob_options(self.policy)  # validates dtype, max_length, batch_tokens up front

    def logprob_options(self, model: str | None) -> LogprobMargin:
        return LogprobMargin(
            model=model, dtype=self.dtype, max_length=self.max_length, batch_tokens=self.batch_tokens
        )

    def identity(self) -> dict[str, Any]:
        from prefcurate.models import model_fingerprint

        return {
            "policy_fingerprint": model_fingerprint(self.policy),
            "reference_fingerprint": model_fingerprint(self.reference),
        }

    def compute(self, pairs: pa.Table, ctx: RunContext) -> Computed:
        logps: dict[str, dict[str, tuple]] = {}
        extra: dict[str, Any] = {}
        for role, model in (("policy", self.policy), ("reference", self.reference)):
            # Not through run_signal: a policy's log-probs published as logprob_margin_v1 would become
            # the dataset's newest "reference" margin for rank, partition and export.
            logps[role], info = completion_logps(pairs, ctx, self.logprob_options(model))
            extra[role] = {k: info.get(k) for k in ("model_fingerprint", "dtype", "chat_template_hash")}
            extra[role]["completions"] = info.get("completions")
        if extra["policy"]["dtype"] != extra["reference"]["dtype"]:
            raise ConfigError(
                f"policy scored in {extra['policy']['dtype']} but reference in {extra['reference']['dtype']}; "
                "pass --dtype fp32 or --dtype bf16"
            )
        if extra["policy"]["dtype"] == "bf16":
            print(BF16_WARNING, file=sys.stderr, flush=True)
            extra["dtype_warning"] = BF16_WARNING.removeprefix("Warning: ")
        values = {}
        for side in ("chosen", "rejected"):
            ids = pairs.column(f"{side}_id").to_pylist()
            pol = [logps["policy"][c][0] for c in ids]
            ref_ = [logps["reference"][c][0] for c in ids]
            values[side] = [
                None if a is None or b is None else self.beta * (a - b)
                for a, b in zip(pol, ref_, strict=True)
            ]
        margin = [
            None if c is None or r is None else c - r
            for c, r in zip(values["chosen"], values["rejected"], strict=True)
        ]
        correct = [
            None if c is None or r is None else c > r
            for c, r in zip(values["chosen"], values["rejected"], strict=True)
        ]
        table = pa.table(
            {
                "pair_id": pairs.column("pair_id"),
                self.column("chosen"): pa.array(values["chosen"], pa.float64()),
                self.column("rejected"): pa.array(values["rejected"], pa.float64()),
                self.column("margin"): pa.array(margin, pa.float64()),
                self.column("correct"): pa.array(correct, pa.bool_()),
            }
        )
        return Computed(table, extra)
