"""implicit_reward_v1: the DPO implicit reward of each completion, beta * (log pi_policy - log pi_reference).

Built from two logprob_margin_v1 runs, one per model, through `run_signal`: a run that already exists
for the same pairs and options is reused (and completions already scored by either model come from
the per-completion cache), so nothing is computed twice. The reference run goes second, so when
both are computed here the latest logprob_margin_v1 version is the reference model's (what the
trainers inject as reference log-probs). When policy and reference are the same model the two runs are the same run and every
reward is exactly zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ..errors import ConfigError
from . import RunContext, Signal, register, run_signal
from .logprob_margin import LogprobMargin


@register
@dataclass
class ImplicitReward(Signal):
    name = "implicit_reward_v1"
    cli_name = "implicit-reward"
    fields = ("chosen", "rejected", "margin", "correct")
    description = (
        "DPO implicit reward beta*(log pi_policy - log pi_ref) of chosen and rejected, margin, correct"
    )

    policy: str | None = None  # required: the trained model
    reference: str | None = None  # None: the bundled SmolLM2-135M-Instruct
    beta: float = 0.1
    dtype: str = "auto"
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
        self._extra: dict[str, Any] = {}

    def logprob_options(self, model: str | None) -> LogprobMargin:
        return LogprobMargin(
            model=model, dtype=self.dtype, max_length=self.max_length, batch_tokens=self.batch_tokens
        )

    def manifest_extra(self) -> dict[str, Any]:
        return dict(self._extra)

    def compute(self, pairs: pa.Table, ctx: RunContext) -> pa.Table:
        runs = {}
        for role, model in (("policy", self.policy), ("reference", self.reference)):
            signal = self.logprob_options(model)
            ref, reused = run_signal(ctx.store, ctx.dataset, signal, pairs_version=ctx.pairs_ref.version)
            table = ref.read(["pair_id", signal.column("chosen_logp"), signal.column("rejected_logp")])
            if not table.column("pair_id").equals(pairs.column("pair_id")):
                raise ConfigError(
                    f"{ref.label} is not aligned with {ctx.pairs_ref.label}; rerun with --force"
                )
            m = ref.manifest
            runs[role] = (table, signal)
            self._extra[role] = {
                "signal_version": ref.label,
                "reused": reused,
                "model_fingerprint": m.get("model_fingerprint"),
                "dtype": m.get("dtype"),
                "chat_template_hash": m.get("chat_template_hash"),
            }
        if self._extra["policy"]["dtype"] != self._extra["reference"]["dtype"]:
            raise ConfigError(
                f"policy scored in {self._extra['policy']['dtype']} but reference in {self._extra['reference']['dtype']}; "
                "pass --dtype fp32 or --dtype bf16"
            )
        values = {}
        for side in ("chosen", "rejected"):
            (pt, ps), (rt, rs) = runs["policy"], runs["reference"]
            pol = pt.column(ps.column(f"{side}_logp")).to_pylist()
            ref_ = rt.column(rs.column(f"{side}_logp")).to_pylist()
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
        return pa.table(
            {
                "pair_id": pairs.column("pair_id"),
                self.column("chosen"): pa.array(values["chosen"], pa.float64()),
                self.column("rejected"): pa.array(values["rejected"], pa.float64()),
                self.column("margin"): pa.array(margin, pa.float64()),
                self.column("correct"): pa.array(correct, pa.bool_()),
            }
        )
