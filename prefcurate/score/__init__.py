"""Difficulty signals, dolma-style: one small class per versioned signal, one module each.

`base` holds the Signal base class, the registry and `run_signal` (publish, reuse, resume); the
modules below register themselves on import. Heavy dependencies stay lazy inside each module.
"""

from prefcurate.errors import ConfigError
from prefcurate.score import (  # noqa: F401  (importing registers the signals)
    implicit_reward,
    logprob_margin,
    reward_margin,
    score_gap,
    split,
    test_pass,
)
from prefcurate.score.base import (
    REGISTRY,
    Computed,
    RunContext,
    Signal,
    load_signal_columns,
    register,
    run_signal,
)


def get_signal(key: str) -> type[Signal]:
    try:
        return REGISTRY[key]
    except KeyError:
        names = sorted({c.cli_name for c in REGISTRY.values()})
        raise ConfigError(f"unknown signal {key!r}; choose one of: {', '.join(names)}") from None


def signal_names() -> list[str]:
    return sorted({c.cli_name for c in REGISTRY.values()})


__all__ = [
    "REGISTRY",
    "Computed",
    "RunContext",
    "Signal",
    "get_signal",
    "load_signal_columns",
    "register",
    "run_signal",
    "signal_names",
]
