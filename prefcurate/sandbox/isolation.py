"""The OS layer of one job's process: what a forked child applies to itself before it reads
its program, and the report of which layers took hold (the `isolation` object).

Order matters: namespaces first (unshare needs a single-threaded process with its privileges),
then resource limits, `no_new_privs` (needed for Landlock and seccomp without privileges), the
Landlock domain, and the seccomp filter last (it forbids the syscalls used above).
"""

from __future__ import annotations

import ctypes
import math
import os
import resource
from typing import Any

from ..errors import PrefcurateError
from . import landlock, seccomp

# Every layer `--require-isolation` asks for, in the order of the report.
LAYERS = (
    "fork_per_job",
    "parent_death_signal",
    "unprivileged",
    "rlimits",
    "no_new_privs",
    "network_namespace",
    "landlock",
    "seccomp",
)
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
NOBODY = 65534
STACK_ROOM = 64 * 1024 * 1024


class IsolationError(PrefcurateError):
    """Raised when --require-isolation is given and a layer is not active (one-line message)."""


_LIBC: list[ctypes.CDLL] = []
# Set once in the zygote, inherited by every child: (is the zygote in its own user+network
# namespace, why not) and the zygote's address-space size (a child's, right after fork).
_ZYGOTE_NETNS: list[tuple[bool, str]] = []
_BASE_VM: list[int] = []
_UNPRIVILEGED: list[bool] = []
# TEST ONLY: layers the OS-layer tests leave out to show that each remaining one holds alone
# (set from the zygote's command line, which only `pool._SKIP_LAYERS_FOR_TESTS` fills).
SKIPPABLE = frozenset({"unprivileged", "network_namespace", "landlock", "seccomp"})
SKIP: set[str] = set()
_SKIPPED = "left out by a test"


def libc() -> ctypes.CDLL:
    if not _LIBC:
        lib = ctypes.CDLL(None, use_errno=True)
        lib.syscall.restype = ctypes.c_long
        _LIBC.append(lib)
    return _LIBC[0]


def prepare_zygote() -> None:
    """In the zygote, once: everything a child would otherwise recompute on each job.

    The user+network namespace is made here and shared by all children: creating and tearing
    down a network namespace per job costs ~1 ms of kernel time. A second user namespace nested
    inside the first leaves the zygote and its children without any capability over that
    network namespace (it is owned by the outer one), so nobody can bring its loopback up."""
    lib = libc()
    _UNPRIVILEGED.append(os.geteuid() != 0 and os.getuid() != 0)
    seccomp.prepared_filter()
    _BASE_VM.append(_vm_bytes())
    if "network_namespace" in SKIP:
        _ZYGOTE_NETNS.append((False, _SKIPPED))
        return
    uid, gid = os.geteuid(), os.getegid()
    lib.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0)  # after setuid /proc/self/*_map belong to root otherwise
    if lib.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) == 0:
        # Map our own ids 1:1 (what an unprivileged process may write), so that the nested
        # namespace below can be created.
        try:
            for name, text in (
                ("setgroups", "deny"),
                ("uid_map", f"{uid} {uid} 1"),
                ("gid_map", f"{gid} {gid} 1"),
            ):
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
        except OSError:
            pass
        nested = lib.unshare(_CLONE_NEWUSER) == 0
        _ZYGOTE_NETNS.append((True, "") if nested else (False, f"nested unshare(CLONE_NEWUSER): {_err()}"))
    else:
        _ZYGOTE_NETNS.append((False, f"unshare(CLONE_NEWUSER|CLONE_NEWNET): {_err()}"))


def _err() -> str:
    return os.strerror(ctypes.get_errno())


def set_parent_death_signal(lib: ctypes.CDLL, sig: int, parent: int) -> bool:
    """Die with `sig` when the parent dies; False if the parent is already gone."""
    if lib.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        return False
    return os.getppid() == parent


def drop_root() -> None:
    """Root becomes `nobody` (no groups); an ordinary user stays who it is."""
    if os.getuid() == 0 or os.geteuid() == 0:
        try:
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
        except OSError:
            pass  # reported: "unprivileged" is then inactive


def _vm_bytes() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _set_limits(memory_mb: int, timeout: float, stack_bytes: int, nofile: int) -> str | None:
    cpu = int(math.ceil(timeout)) + 1  # the parent's wall-clock deadline is the real limit
    # The C stack grows into the address space as it is used: room for deep host recursion
    # (interpreted frames use little of it), not the whole stack limit, so that the heap gets
    # what --memory-mb says.
    stack_room = min(stack_bytes, STACK_ROOM)
    limits = [
        (
            resource.RLIMIT_AS,
            (_BASE_VM[0] if _BASE_VM else _vm_bytes()) + stack_room + memory_mb * 1024 * 1024,
        ),
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_NOFILE, nofile),
        (resource.RLIMIT_NPROC, 0),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_MEMLOCK, 0),
        (resource.RLIMIT_MSGQUEUE, 0),
    ]
    failed = []
    for which, value in limits:
        hard = value + 1 if which == resource.RLIMIT_CPU else value  # SIGXCPU, then SIGKILL
        try:
            resource.setrlimit(which, (value, hard))
        except (ValueError, OSError):
            failed.append(str(which))
    return f"could not set rlimits {', '.join(failed)}" if failed else None


def confine(memory_mb: int, timeout: float, stack_bytes: int, nofile: int = 16) -> dict[str, Any]:
    """Apply every layer this kernel allows to the calling process; return the report."""
    lib = libc()
    active: dict[str, bool] = {"fork_per_job": True, "parent_death_signal": True}
    why: dict[str, str] = {}
    active["unprivileged"] = _UNPRIVILEGED[0] if _UNPRIVILEGED else (os.geteuid() != 0 and os.getuid() != 0)
    if not active["unprivileged"]:
        why["unprivileged"] = _SKIPPED if "unprivileged" in SKIP else "still root"
    # A new user namespace lets an unprivileged process own a new network namespace: only a
    # loopback device, down; nothing of the host's network is reachable from it.
    if _ZYGOTE_NETNS:
        active["network_namespace"], reason = _ZYGOTE_NETNS[0]
    elif lib.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) == 0:
        active["network_namespace"], reason = True, ""
    else:
        active["network_namespace"], reason = False, f"unshare(CLONE_NEWUSER|CLONE_NEWNET): {_err()}"
    if reason:
        why["network_namespace"] = reason
    problem = _set_limits(memory_mb, timeout, stack_bytes, nofile)
    active["rlimits"] = problem is None
    if problem:
        why["rlimits"] = problem
    active["no_new_privs"] = lib.prctl(seccomp.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
    if not active["no_new_privs"]:
        why["no_new_privs"] = f"prctl(PR_SET_NO_NEW_PRIVS): {_err()}"
    if "landlock" in SKIP:
        abi, problem = landlock.abi_version(lib), _SKIPPED
    elif active["no_new_privs"]:
        abi, problem = landlock.restrict_self(lib)
    else:
        abi, problem = 0, "needs no_new_privs"
    active["landlock"] = problem is None
    if problem:
        why["landlock"] = problem
    if "seccomp" in SKIP:
        problem = _SKIPPED
    else:
        problem = seccomp.install(lib) if active["no_new_privs"] else "needs no_new_privs"
    active["seccomp"] = problem is None
    if problem:
        why["seccomp"] = problem
    return report(active, why, abi)


def report(active: dict[str, bool], why: dict[str, str], landlock_abi: int = 0) -> dict[str, Any]:
    layers = {name: bool(active.get(name, False)) for name in LAYERS}
    return {
        "layers": layers,
        "all_active": all(layers.values()),
        "landlock_abi": landlock_abi,
        "inactive": {name: why.get(name, "not reported") for name, on in layers.items() if not on},
    }


def merge(a: dict[str, Any] | None, b: dict[str, Any]) -> dict[str, Any]:
    """The layers active in both reports (a pool reports what held for every job)."""
    if a is None:
        return b
    active = {n: a["layers"].get(n, False) and b["layers"].get(n, False) for n in LAYERS}
    why = {**b.get("inactive", {}), **a.get("inactive", {})}
    return report(active, why, min(a.get("landlock_abi", 0), b.get("landlock_abi", 0)))


def check_required(iso: dict[str, Any]) -> None:
    if not iso.get("all_active"):
        missing = "; ".join(f"{k} ({v})" for k, v in iso.get("inactive", {}).items())
        raise IsolationError(f"--require-isolation: sandbox isolation layers not active: {missing}")


def parse_report(data: Any) -> dict[str, Any]:
    """A child's report, rebuilt from its frame as plain booleans (anything odd: inactive)."""
    if not isinstance(data, dict) or not isinstance(data.get("layers"), dict):
        return report({}, {n: "malformed report" for n in LAYERS})
    active = {n: data["layers"].get(n) is True for n in LAYERS}
    given = data.get("inactive")
    raw: dict[Any, Any] = given if isinstance(given, dict) else {}
    why = {str(k)[:200]: str(v)[:500] for k, v in list(raw.items())[:20]}
    abi = data.get("landlock_abi")
    return report(active, why, abi if type(abi) is int else 0)
