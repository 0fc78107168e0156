"""`build code`: its choices and the options dataclass (with its defaults and checks), in a module the
CLI can import at start-up (no sandbox, no pyarrow); `build/code.py` takes them from here."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from prefcurate.errors import ConfigError
from prefcurate.store import check_name


class CodeInputFormat(str, Enum):
    """The shape of a code samples file."""

    auto = "auto"
    codet = "codet"
    generic = "generic"


FORMATS = tuple(m.value for m in CodeInputFormat)


class CodePairing(str, Enum):
    """How tested samples of one problem become pairs."""

    best_vs_worst = "best-vs-worst"
    pass_vs_fail = "pass-vs-fail"


PAIRINGS = tuple(m.value for m in CodePairing)


@dataclass
class CodeBuildOptions:
    path: str
    problems: str | None = None  # codet: the problems file (default: next to the samples)
    format: str = "auto"
    pairing: str = "best-vs-worst"
    max_pairs_per_prompt: int = 10
    limit: int | None = None  # problems
    samples: int | None = None  # samples per problem (the first N)
    truncate: bool = True  # codet: cut bodies at the first dedented line (Codex stop sequences)
    timeout: float = 5.0
    workers: int | None = None
    name: str = "code"
    force: bool = False
    require_isolation: bool = False  # refuse to run without every OS isolation layer
    fail_on_empty: bool = False  # refuse to publish a build that kept no pair

    def validate(self) -> None:
        check_name(self.name, "dataset name")  # before any test runs or work file is written
        if self.format not in FORMATS:
            raise ConfigError(f"--input-format {self.format!r} is not one of {', '.join(FORMATS)}")
        if self.pairing not in PAIRINGS:
            raise ConfigError(f"--pairing {self.pairing!r} is not one of {', '.join(PAIRINGS)}")
        if self.max_pairs_per_prompt < 1:
            raise ConfigError(f"--max-pairs-per-prompt must be at least 1, got {self.max_pairs_per_prompt}")
        for flag, value in (("--limit", self.limit), ("--samples", self.samples)):
            if value is not None and value < 1:
                raise ConfigError(f"{flag} must be at least 1, got {value}")
        if self.timeout <= 0:
            raise ConfigError(f"--timeout must be positive, got {self.timeout}")
        if not Path(self.path).is_file():
            raise ConfigError(f"no such file: {self.path}")
