"""The Hugging Face hub as an input: ask it once, quickly, before `datasets.load_dataset` does.

Offline, `load_dataset` retries for ~24 s before failing. One `dataset_info` call with a short timeout
tells within a second whether the hub is reachable (and which commit the id resolves to, for the
manifest); when it is not, the load runs in `datasets`' offline mode, which answers from the local
cache at once or fails, and the error suggests a local file instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class HubProbe:
    reachable: bool
    sha: str | None = None  # the commit `main` (or the asked revision) resolves to
    reason: str = ""


def offline_mode() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or os.environ.get(
        "HF_DATASETS_OFFLINE", ""
    ) not in ("", "0")


def probe(hub_id: str, revision: str | None = None) -> HubProbe:
    """Ask the hub about a dataset id (huggingface_hub's own client, one short request)."""
    if offline_mode():
        return HubProbe(False, reason="HF_HUB_OFFLINE is set")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        info = HfApi().dataset_info(hub_id, revision=revision, timeout=PROBE_TIMEOUT_S)
    except HfHubHTTPError:  # the hub answered (no such dataset, gated...): let `datasets` say what
        return HubProbe(True)
    except Exception as exc:  # DNS, refused, timeout: the hub cannot be reached from here
        return HubProbe(False, reason=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return HubProbe(True, sha=getattr(info, "sha", None))


@contextmanager
def datasets_offline() -> Iterator[None]:
    """`datasets` and `huggingface_hub` in offline mode for one call (cache only, no retries)."""
    import datasets
    from huggingface_hub import constants

    before = (datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = before
