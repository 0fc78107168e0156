"""Before any shard is scheduled on Ray: every node that can host an actor answers a probe, and a
cluster whose device classes or library versions differ is refused, naming both sides.

A probe is a plain Ray task with the actors' own demand (`--threads` CPUs, a GPU when the actors get
one) and runtime_env, pinned to one node; each node gets as many probes as actors fit there (at most
the pool size), so on a GPU node each probe running at once holds its own GPU. A probe answers with
what an actor of that node would record (`runtime_identity(kind)`), and costs an interpreter start and,
for model work, a torch import: no model is loaded, no sandbox is started, nothing is computed.
An actor whose results later disagree with the probes (a node that joined after them) is still
refused on its first result (`check_uniform` in the executor).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from prefcurate.errors import ConfigError

from .options import WorkKind
from .runtime import faked_device, runtime_identity, uniform_key


@dataclass(frozen=True)
class Probe:
    index: int
    node_id: str
    address: str


def plan_probes(nodes: list[dict[str, Any]], threads: int, gpus_per_actor: int, workers: int) -> list[Probe]:
    """One probe per actor slot of each alive node (`ray.nodes()` rows), at most `workers` per node."""
    probes: list[Probe] = []
    for node in sorted(nodes, key=lambda n: str(n.get("NodeID"))):
        if not node.get("Alive"):
            continue
        resources = node.get("Resources", {})
        slots = int(float(resources.get("CPU", 0)) // threads)
        if gpus_per_actor:
            slots = min(slots, int(float(resources.get("GPU", 0)) // gpus_per_actor))
        address = str(node.get("NodeManagerAddress", node.get("NodeID")))
        for _ in range(min(slots, workers)):
            probes.append(Probe(len(probes), str(node["NodeID"]), address))
    return probes


def probe(index: int, kind: str) -> tuple[str, dict[str, Any]]:
    """Runs on the node: this process's name and the identity an actor there would record."""
    identity = runtime_identity(WorkKind(kind))
    if (fake := faked_device(index)) is not None:
        identity["device"] = fake
    return f"{socket.gethostname()}:{os.getpid()}", identity


def describe_identity(identity: dict[str, Any]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in sorted(identity["versions"].items()) if v)
    return f"{identity['device']} ({versions})"


def check_uniform(reference: tuple[str, dict[str, Any]] | None, who: str, identity: dict[str, Any]) -> None:
    """Refuse `who` (a probe or an actor) when its device class or library versions differ from the
    reference's (the first probe's)."""
    if reference is None or uniform_key(reference[1]) == uniform_key(identity):
        return
    first, ref = reference
    raise ConfigError(
        f"mixed Ray cluster: {who} runs {describe_identity(identity)} but {first} runs "
        f"{describe_identity(ref)}; one result must come from one device class and one set of "
        "library versions (pin them with node labels or a runtime_env)"
    )


def run_preflight(
    ray: Any,
    kind: WorkKind,
    pool: dict[str, Any],
    runtime_env: dict[str, Any] | None,
    timeout_s: float,
) -> tuple[tuple[str, dict[str, Any]], int]:
    """Probe every actor slot (see the module doc); returns the reference (name, identity) and the
    number of probes, or raises ConfigError naming the two sides of a mismatch."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probes = plan_probes(ray.nodes(), pool["threads"], pool["gpus_per_actor"], pool["workers"])
    if not probes:
        raise ConfigError("no node of the Ray cluster can host an actor for the preflight probe")
    remote = ray.remote(probe)
    refs = [
        remote.options(
            num_cpus=pool["threads"],
            num_gpus=pool["gpus_per_actor"],
            scheduling_strategy=NodeAffinitySchedulingStrategy(p.node_id, soft=False),
            runtime_env=runtime_env,
            max_retries=0,
        ).remote(p.index, kind.value)
        for p in probes
    ]
    pending, deadline = list(refs), time.monotonic() + timeout_s
    while pending:  # short waits: Ctrl-C stays responsive
        _, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
        if pending and time.monotonic() > deadline:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise ConfigError(
                f"the Ray preflight: {len(pending)} of {len(refs)} probes did not answer in "
                f"{timeout_s:g}s (nodes busy or unreachable?); nothing was computed"
            )
    answers = ray.get(refs)
    reference: tuple[str, dict[str, Any]] | None = None
    for p, (name, identity) in zip(probes, answers, strict=True):
        who = f"node {p.address} (probe {p.index}, {name})"
        try:
            check_uniform(reference, who, identity)
        except ConfigError as exc:
            raise ConfigError(f"{exc}; refused by the preflight, before any shard was scheduled") from None
        if reference is None:
            reference = (who, identity)
    assert reference is not None
    return reference, len(probes)
