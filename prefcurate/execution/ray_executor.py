"""Shards on a Ray cluster: Ray Data `map_batches` over one row per missing shard, on a pool of
actors that each build the shard function once (load the model, start a sandbox) from a picklable
`ShardWork`.

Before any shard is scheduled, every actor slot of the cluster answers a cheap probe (its device
class and library versions, `preflight.py`) and a mixed cluster is refused, nothing computed.
The driver stays the only writer: actors return each shard's output through Ray's object store and
the driver writes the shard file (the completion marker) itself, so no shared filesystem is needed
and a duplicate delivery is skipped. A shard whose function raised is retried by its actor, on the
model it already holds, up to `retries` times; then it comes back as an error row (the pool keeps
going) and the driver stops with a message naming it, keeping every finished shard for the rerun.
Actor deaths are retried by Ray (`max_restarts`, `max_task_retries`, bounded by `retries`); no
finished shard for `shard_timeout_s` ends the run with a message.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
import time
import warnings
from typing import Any

import pyarrow as pa

from prefcurate.errors import ConfigError, PrefcurateError

from .options import ExecutionOptions, ExecutorKind, WorkKind
from .preflight import check_uniform, run_preflight
from .runtime import FAIL_SHARDS_ENV, FAKE_DEVICE_ENV, failing_shards, runtime_identity, set_torch_threads
from .work import Deliver, Report, ShardJob, ShardWork


def to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def _no_report(_n: float) -> None:
    pass


class ShardActor:
    """One Ray actor: builds the shard function once, then computes the shards Ray Data hands it."""

    def __init__(self, work: ShardWork, threads: int | None, retries: int, kind: str) -> None:
        self.retries = retries
        if threads is not None:
            set_torch_threads(threads)
        self.fn = work.open(threads)
        self.fail = failing_shards()
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.identity = json.dumps(runtime_identity(WorkKind(kind)), sort_keys=True)

    def __call__(self, batch: pa.Table) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {
            k: [] for k in ("shard", "data", "error", "attempts", "actor", "identity", "info")
        }
        for row in batch.to_pylist():
            data, error, attempt = b"", "", 0
            while True:  # retried here, on the loaded model: a failed shard does not restart the pool
                try:
                    if attempt == 0 and row["shard"] in self.fail:
                        raise RuntimeError(f"test fault: {FAIL_SHARDS_ENV} fails shard {row['shard']} once")
                    data, error = to_ipc(self.fn(from_ipc(row["data"]), _no_report)), ""
                    break
                except Exception as exc:  # reported per shard: the driver names it and stops
                    error = f"{type(exc).__name__}: {exc}".splitlines()[0]
                    if attempt >= self.retries:
                        break
                    attempt += 1
            out["attempts"].append(attempt + 1)
            out["shard"].append(row["shard"])
            out["data"].append(data)
            out["error"].append(error)
            out["actor"].append(self.name)
            out["identity"].append(self.identity)
            info = getattr(self.fn, "info", None)  # e.g. the sandbox's isolation layers
            out["info"].append(json.dumps(info() if callable(info) else None, sort_keys=True))
        return out


class RayExecutor:
    kind = ExecutorKind.ray

    def __init__(self, options: ExecutionOptions) -> None:
        self.options = options
        self.connected = self.owned = False
        self.address: str | None = options.address
        # Per work kind: the first probe's (name, identity), which every later probe and actor must match.
        self.references: dict[str, tuple[str, dict[str, Any]]] = {}
        self.actors: dict[str, dict[str, Any]] = {}
        self.actor_info: dict[str, Any] = {}
        self.stats = {"shards_run": 0, "retried": 0, "duplicates_skipped": 0, "preflight_probes": 0}
        self.pool: dict[str, Any] = {}

    # -- cluster -----------------------------------------------------------------------------
    def _connect(self) -> Any:
        try:
            import ray
            import ray.data
        except ImportError:
            raise ConfigError("--executor ray needs Ray: pip install 'prefcurate[ray]'") from None
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
            # An address connects (close() disconnects); none starts a cluster for this command
            # (close() shuts it down). A caller that initialized Ray itself keeps its connection.
            ray.init(address=self.options.address, **kwargs)
            self.owned = True
        self.connected = True
        started_here = self.owned and not self.options.address
        self.address = self.options.address or (
            "local" if started_here else ray.get_runtime_context().gcs_address
        )
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # prefcurate's own bar counts shards
        ctx.print_on_execution_start = False
        # Start the whole pool before the first shard (and fail, not hang, when it cannot start).
        ctx.wait_for_min_actors_s = max(1, int(self.options.shard_timeout_s))
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        return ray

    def size_pool(self, ray: Any, work: ShardWork, work_kind: WorkKind, n_shards: int) -> dict[str, Any]:
        """Actors, CPUs and GPUs per actor, leaving `free_cpus` for Ray's own tasks; refuse what cannot progress."""
        resources = ray.cluster_resources()
        cpus, gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
        threads = self.options.threads or 1
        use_gpu = work.gpu or (work_kind is WorkKind.model and gpus >= 1)
        if work.gpu and gpus < 1:
            raise ConfigError("this step needs GPU actors (--backend vllm) but the Ray cluster has no GPU")
        room = cpus - self.options.free_cpus
        fit = int(room // threads)
        if use_gpu:
            fit = min(fit, int(gpus))
        why = (
            f"the cluster has {cpus:g} CPUs{f' and {gpus:g} GPUs' if use_gpu else ''}, {self.options.free_cpus} CPU "
            f"stays free for Ray's own tasks (ray#44687), and each actor takes --threads {threads} CPUs"
            + (" and 1 GPU" if use_gpu else "")
        )
        if fit < 1:
            raise ConfigError(f"no actor fits: {why}")
        workers = self.options.workers or fit
        if workers > fit:
            raise ConfigError(f"--workers {workers} cannot all start (at most {fit} fit): {why}")
        workers = max(1, min(workers, n_shards))
        return {
            "workers": workers,
            "threads": threads,
            "gpus_per_actor": 1 if use_gpu else 0,
            "cluster_cpus": cpus,
            "cluster_gpus": gpus,
        }

    # -- running -----------------------------------------------------------------------------
    def run(self, job: ShardJob, deliver: Deliver, report: Report) -> None:
        if job.work is None:
            raise ConfigError(f"{job.description} cannot run on Ray: it has no picklable shard work")
        ray = self._connect()
        self.pool = self.size_pool(ray, job.work, job.kind, len(job.missing))
        self._preflight(ray, job.kind)
        failures = self._pass(ray, job, deliver)
        if failures:
            shard, (actor, error, attempts) = min(failures.items())
            raise PrefcurateError(
                f"{job.description}: shard {shard} failed on Ray actor {actor} after {attempts} "
                f"attempt(s): {error} ({len(failures)} shard(s) failed; the finished shards are kept, "
                "rerun to continue)"
            )

    @staticmethod
    def _runtime_env() -> dict[str, Any] | None:
        env = {k: os.environ[k] for k in (FAIL_SHARDS_ENV, FAKE_DEVICE_ENV) if os.environ.get(k)}
        return {"env_vars": env} if env else None

    def _preflight(self, ray: Any, kind: WorkKind) -> None:
        """Every actor slot answers a probe before anything is scheduled (see execution/preflight.py)."""
        reference, n = run_preflight(
            ray, kind, self.pool, self._runtime_env(), max(1.0, self.options.shard_timeout_s)
        )
        check_uniform(self.references.get(kind.value), *reference)  # an earlier step's probes
        self.references.setdefault(kind.value, reference)
        self.stats["preflight_probes"] += n

    def _pass(self, ray: Any, job: ShardJob, deliver: Deliver) -> dict[int, tuple[str, str, int]]:
        """One pass over the missing shards; returns the ones that failed: actor, error, attempts."""
        import ray.data

        retries = self.options.retries
        rows = [{"shard": i, "data": to_ipc(job.shard(i))} for i in job.missing]
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        with warnings.catch_warnings():
            # Ray 2.60 deprecates extra remote args with no replacement for max_restarts; without
            # them Ray Data restarts a dying actor forever (a silent hang), so they stay, bounded.
            warnings.simplefilter("ignore", DeprecationWarning)
            mapped = ds.map_batches(
                ShardActor,
                fn_constructor_args=(job.work, self.pool["threads"], retries, job.kind.value),
                batch_size=1,  # one shard per call: a shard is the unit of resume and of batching
                # One shard in flight per actor: shards spread over the pool instead of queueing on one.
                compute=ray.data.ActorPoolStrategy(
                    size=self.pool["workers"], max_tasks_in_flight_per_actor=1
                ),
                num_cpus=self.pool["threads"],
                num_gpus=self.pool["gpus_per_actor"],
                batch_format="pyarrow",
                runtime_env=self._runtime_env(),
                max_restarts=retries,
                max_task_retries=retries,
            )
        results: queue.Queue[tuple[str, Any]] = queue.Queue()

        def consume() -> None:
            try:
                for batch in mapped.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0):
                    results.put(("batch", batch))
                results.put(("end", None))
            except BaseException as exc:  # handed to the main thread, which raises it with context
                results.put(("error", exc))

        threading.Thread(target=consume, name="prefcurate-ray-results", daemon=True).start()
        failures: dict[int, tuple[str, str, int]] = {}
        delivered: set[int] = set()
        last = time.monotonic()
        while True:
            try:
                kind, item = results.get(timeout=1.0)  # short waits: Ctrl-C stays responsive
            except queue.Empty:
                if time.monotonic() - last > self.options.shard_timeout_s:
                    raise PrefcurateError(
                        f"{job.description}: no shard finished on Ray for {self.options.shard_timeout_s:g}s "
                        "(a lost actor or a stuck cluster?); finished shards are kept, rerun to continue"
                    ) from None
                continue
            last = time.monotonic()
            if kind == "end":
                return failures
            if kind == "error":
                first = str(item).strip().splitlines()[-1] if str(item).strip() else type(item).__name__
                raise PrefcurateError(
                    f"{job.description}: the Ray run failed: {first}; finished shards are kept, rerun to continue"
                ) from item
            for row in item.to_pylist():
                identity = json.loads(row["identity"])
                who = f"actor {row['actor']}"
                check_uniform(self.references.get(job.kind.value), who, identity)
                self.references.setdefault(job.kind.value, (who, identity))
                self.actors.setdefault(row["actor"], identity)
                if (info := json.loads(row["info"])) is not None:
                    self.actor_info[row["actor"]] = info
                shard = row["shard"]
                self.stats["retried"] += row["attempts"] - 1
                if row["error"]:
                    failures[shard] = (row["actor"], row["error"], row["attempts"])
                elif shard in delivered:
                    self.stats["duplicates_skipped"] += 1
                else:
                    delivered.add(shard)
                    deliver(shard, from_ipc(row["data"]))
                    self.stats["shards_run"] += 1

    def record(self) -> dict[str, Any]:
        identities = {json.dumps(i, sort_keys=True) for i in self.actors.values()}
        return {
            **self.options.record(),
            "address": self.address,
            **{
                k: self.pool.get(k, v)
                for k, v in (("workers", self.options.workers), ("threads", self.options.threads))
            },
            "gpus_per_actor": self.pool.get("gpus_per_actor"),
            "cluster": {"cpus": self.pool.get("cluster_cpus"), "gpus": self.pool.get("cluster_gpus")},
            "retries": self.options.retries,
            "actors": len(self.actors),
            "actor_runtime": [json.loads(i) for i in sorted(identities)],
            "driver_runtime": runtime_identity(),
            **({"actor_info": dict(sorted(self.actor_info.items()))} if self.actor_info else {}),
            **self.stats,
        }

    def close(self) -> None:
        if self.owned:
            import ray

            ray.shutdown()
            self.owned = False
