"""The Ray executor on a real local cluster (CPU only): the same published bytes as a local run with
1 or 2 actors, shard faults with and without retries, Ctrl-C of the driver then resume, thread-count
invariance, `build code`, `eval code` and `eval generate` on actors (generate: a partial run, then
resume), the preflight that refuses a mixed cluster before any actor starts, `score --by reward`
without weights on the driver, the manifest's `execution` block, and refused configurations.

One cluster for the session: `num_cpus=3` logical CPUs (on a 2-core machine), so two single-CPU
actors fit with the one CPU the executor keeps free for Ray's own tasks (ray#44687).
"""

from __future__ import annotations

import json
import os
import signal as os_signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

ray = pytest.importorskip("ray")
pytest.importorskip("torch")
pytest.importorskip("transformers")

from prefcurate.cli import app  # noqa: E402
from prefcurate.errors import ConfigError, PrefcurateError  # noqa: E402
from prefcurate.execution import ExecutionOptions, ExecutorKind, LocalExecutor, WorkKind, open_executor  # noqa: E402
from prefcurate.execution.preflight import plan_probes  # noqa: E402
from prefcurate.execution.ray_executor import RayExecutor, check_uniform  # noqa: E402
from prefcurate.execution.runtime import FAIL_SHARDS_ENV, FAKE_DEVICE_ENV, runtime_identity  # noqa: E402
from prefcurate.score import logprob_margin as lm  # noqa: E402
from prefcurate.score import run_signal  # noqa: E402
from prefcurate.store import Store, VersionRef  # noqa: E402

from .helpers import pairs_table, publish_pairs_table  # noqa: E402

pytestmark = pytest.mark.ray
runner = CliRunner()
SHARD_ROWS = 4  # 16 distinct completions in the toy pairs -> 4 shards


@pytest.fixture(scope="session")
def cluster() -> object:
    ray.init(num_cpus=3, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def small_shards(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(lm, "MIN_SHARD_ROWS", SHARD_ROWS)  # read on the driver only: it cuts the shards
    monkeypatch.setenv("PREFCURATE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(FAIL_SHARDS_ENV, raising=False)
    monkeypatch.delenv(FAKE_DEVICE_ENV, raising=False)


@pytest.fixture(scope="session")
def local_bytes(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The reference: the published bytes of a local run (small shards, one thread)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(lm, "MIN_SHARD_ROWS", SHARD_ROWS)
    try:
        root = tmp_path_factory.mktemp("local-reference")
        mp.setenv("PREFCURATE_CACHE", str(root / "cache"))
        ref, _ = score(fresh_store(root / "store"), tiny_model, ExecutionOptions(threads=1))
    finally:
        mp.undo()
    assert ref.manifest["execution"]["executor"] == "local"
    return data_bytes(ref)


def signal(model: str) -> lm.LogprobMargin:
    return lm.LogprobMargin(model=model, dtype="fp32", max_length=64, batch_tokens=128)


def fresh_store(root: Path) -> Store:
    store = Store(root)
    publish_pairs_table(store, pairs_table())
    return store


def data_bytes(ref: VersionRef) -> bytes:
    files = sorted(ref.path.glob("*.parquet"))
    assert files, f"no parquet in {ref.path}"
    return b"".join(f.read_bytes() for f in files)


def score(store: Store, model: str, options: ExecutionOptions) -> tuple[VersionRef, bool]:
    with open_executor(options) as executor:
        return run_signal(store, "toy", signal(model), executor=executor)


def ray_options(workers: int, **kw: object) -> ExecutionOptions:
    return ExecutionOptions(kind=ExecutorKind.ray, workers=workers, threads=1, **kw)  # type: ignore[arg-type]


def shard_files(store: Store) -> list[Path]:
    return sorted((store.root).rglob("shard-*"))


def test_two_actors_publish_the_local_bytes_and_a_local_rerun_reuses_the_version(
    cluster, tiny_model, local_bytes, tmp_path
) -> None:
    two_store = fresh_store(tmp_path / "two")
    two, reused = score(two_store, tiny_model, ray_options(2))
    assert not reused and data_bytes(two) == local_bytes
    block = two.manifest["execution"]
    assert block["executor"] == "ray" and block["workers"] == 2 and block["threads"] == 1
    assert block["actors"] == 2  # both actors computed shards (one shard in flight per actor)
    assert block["shards_run"] == 4 and block["retried"] == 0 and block["duplicates_skipped"] == 0
    assert block["actor_runtime"] == [runtime_identity()]  # uniform, and the driver's own
    # Where it ran is not hashed: a local rerun after the Ray run reuses the version.
    again, reused = score(two_store, tiny_model, ExecutionOptions())
    assert reused and again.version == two.version


def test_shard_fault_with_retries_completes_on_one_actor_without_duplicates(
    cluster, tiny_model, local_bytes, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv(FAIL_SHARDS_ENV, "1,3")
    ref, _ = score(fresh_store(tmp_path / "ray"), tiny_model, ray_options(1, retries=1))
    block = ref.manifest["execution"]
    assert block["actors"] >= 1 and block["workers"] == 1
    assert block["retried"] == 2 and block["shards_run"] == 4 and block["duplicates_skipped"] == 0
    assert data_bytes(ref) == local_bytes


def test_shard_fault_without_retries_fails_cleanly_then_rerun_runs_only_missing(
    cluster, tiny_model, local_bytes, tmp_path, monkeypatch
) -> None:
    store = fresh_store(tmp_path / "ray")
    monkeypatch.setenv(FAIL_SHARDS_ENV, "2")
    with pytest.raises(
        PrefcurateError,
        match=r"shard 2 failed on Ray actor .* after 1 attempt\(s\): RuntimeError: test fault",
    ) as err:
        score(store, tiny_model, ray_options(2, retries=0))
    assert "\n" not in str(err.value) and "rerun to continue" in str(err.value)
    assert store.versions("scores", "toy/logprob_margin_v1") == []  # nothing half-published
    assert len(shard_files(store)) == 3  # the other shards were kept
    monkeypatch.delenv(FAIL_SHARDS_ENV)
    # The rerun computes only the missing shard; here locally, from the shards the actors wrote.
    ref, reused = score(store, tiny_model, ExecutionOptions(threads=1))
    assert not reused and ref.manifest["execution"]["shards_run"] == 1
    assert data_bytes(ref) == local_bytes


INTERRUPTED_DRIVER = """
import sys, time
from pathlib import Path
from prefcurate.execution import ray_executor
from prefcurate.score import logprob_margin as lm
lm.MIN_SHARD_ROWS = int(sys.argv[3])
marker = Path(sys.argv[2])
real, seen = ray_executor.from_ipc, []

def slow_from_ipc(data):  # the driver receives shards slowly, so the signal lands mid-run
    seen.append(1)
    if len(seen) == 2:
        marker.write_text("2")
    if len(seen) >= 2:
        time.sleep(2)
    return real(data)

ray_executor.from_ipc = slow_from_ipc
from prefcurate.cli import main
sys.argv = ["prefcurate", *sys.argv[4:]]
main()
"""


def test_sigint_of_the_driver_mid_run_then_rerun_resumes(cluster, tiny_model, local_bytes, tmp_path) -> None:
    store = fresh_store(tmp_path / "ray")
    marker = tmp_path / "marker"
    address = ray.get_runtime_context().gcs_address
    args = ["score", "toy", "--by", "logprob-margin", "--model", tiny_model, "--dtype", "fp32"]
    args += ["--max-length", "64", "--batch-tokens", "128", "--store", str(store.root)]
    args += ["--executor", "ray", "--ray-address", address, "--workers", "1", "--threads", "1"]
    env = {**os.environ, "PREFCURATE_PROGRESS": "0"}
    child = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_DRIVER, "", str(marker), str(SHARD_ROWS), *args],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, f"the driver ended before the signal: {child.stderr.read()}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the driver never received its second shard"
            time.sleep(0.1)
        child.send_signal(os_signal.SIGINT)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode != 0
    assert store.versions("scores", "toy/logprob_margin_v1") == []
    done = len(shard_files(store))
    assert 1 <= done < 4
    ref, reused = score(store, tiny_model, ray_options(1))
    assert not reused and ref.manifest["execution"]["shards_run"] == 4 - done
    assert data_bytes(ref) == local_bytes


def test_thread_count_does_not_change_the_values(tiny_model, tmp_path) -> None:
    one, _ = score(fresh_store(tmp_path / "one"), tiny_model, ExecutionOptions(threads=1))
    two, _ = score(fresh_store(tmp_path / "two"), tiny_model, ExecutionOptions(threads=2))
    assert data_bytes(one) == data_bytes(two)  # so threads stay out of the fingerprint
    assert one.manifest["fingerprint"] == two.manifest["fingerprint"]
    assert two.manifest["execution"]["threads"] == 2


def test_build_code_and_score_tests_on_ray_give_the_local_bytes(cluster, tmp_path, monkeypatch) -> None:
    from prefcurate.build import code

    from .test_build_code import write_generic

    monkeypatch.setattr(code, "SHARD_ROWS", 2)  # several shards for the two actors
    path = write_generic(tmp_path)
    refs = {}
    for name, extra in (("local", []), ("ray", ["--executor", "ray", "--workers", "2", "--threads", "1"])):
        store = tmp_path / f"store-{name}"
        res = runner.invoke(app, ["build", "code", str(path), "--store", str(store), *extra])
        assert res.exit_code == 0, res.output
        refs[name] = Store(store).get("pairs", "code")
    assert data_bytes(refs["ray"]) == data_bytes(refs["local"])
    block = refs["ray"].manifest["execution"]
    assert block["executor"] == "ray" and block["shards_run"] >= 2 and block["actors"] == 2
    isolation = [info["sandbox_isolation"] for info in block["actor_info"].values()]
    assert isolation and all(i is not None for i in isolation)  # each actor ran its own sandbox
    assert refs["ray"].manifest["fingerprint"] == refs["local"].manifest["fingerprint"]
    # score --by tests on the same pairs: the same signal bytes from actors as from this process.
    monkeypatch.setattr("prefcurate.score.test_pass.SHARD_ROWS", 2)
    scored = {}
    for name, extra in (("local", []), ("ray", ["--executor", "ray", "--workers", "2", "--threads", "1"])):
        store = tmp_path / f"store-{name}"
        res = runner.invoke(app, ["score", "code", "--by", "tests", "--store", str(store), *extra])
        assert res.exit_code == 0, res.output
        scored[name] = Store(store).get("scores", "code/test_pass_v1")
    assert data_bytes(scored["ray"]) == data_bytes(scored["local"])
    assert scored["ray"].manifest["execution"]["shards_run"] >= 2


def test_configurations_that_cannot_progress_or_do_not_apply_are_refused(cluster, tmp_path) -> None:
    executor = RayExecutor(ray_options(3))
    work = lm.LogprobWork(None, "transformers", "fp32", 64, 128)
    with pytest.raises(ConfigError, match=r"--workers 3 cannot all start \(at most 2 fit\).*ray#44687"):
        executor.size_pool(ray, work, WorkKind.model, 10)
    with pytest.raises(ConfigError, match="no actor fits: the cluster has 3 CPUs"):
        RayExecutor(ExecutionOptions(kind=ExecutorKind.ray, threads=3)).size_pool(
            ray, work, WorkKind.model, 10
        )
    with pytest.raises(ConfigError, match="needs GPU actors"):
        RayExecutor(ray_options(1)).size_pool(
            ray, lm.LogprobWork(None, "vllm", "bf16", 64, 128), WorkKind.model, 1
        )
    store = fresh_store(tmp_path / "s")
    base = ["score", "toy", "--store", str(store.root)]
    cases = {
        ("--by", "logprob-margin", "--ray-address", "auto"): "--ray-address applies only to --executor ray",
        ("--by", "logprob-margin", "--workers", "2"): "--workers applies to --executor ray",
        ("--by", "score-gap", "--executor", "ray"): "apply only to signals computed in shards",
        ("--by", "tests", "--threads", "2"): "--threads applies to --executor ray for tests",
    }
    for extra, message in cases.items():
        res = runner.invoke(app, [*base, *extra])
        assert res.exit_code == 1 and message in res.stderr, res.output
    evals = {
        (
            "generate",
            "m",
            "--suite",
            "humaneval",
            "--out",
            "x.jsonl",
            "--workers",
            "2",
        ): "--workers applies to",
        ("code", "x.jsonl", "--suite", "humaneval", "--threads", "2"): "--threads applies to --executor ray",
    }
    for extra, message in evals.items():
        res = runner.invoke(app, ["eval", *extra])
        assert res.exit_code == 1 and message in res.stderr, res.output


def test_a_mixed_cluster_is_refused_with_both_sides_named() -> None:
    a = {"device": "cuda:NVIDIA H100", "versions": {"torch": "2.6.0", "vllm": "0.8.0"}}
    check_uniform(("actor n1:1", a), "actor n1:2", json.loads(json.dumps(a)))  # the same: accepted
    b = {"device": "cuda:NVIDIA A100", "versions": {"torch": "2.6.0", "vllm": "0.8.0"}}
    with pytest.raises(
        ConfigError,
        match=r"mixed Ray cluster: actor n2:7 runs cuda:NVIDIA A100 .* actor n1:1 runs cuda:NVIDIA H100",
    ):
        check_uniform(("actor n1:1", a), "actor n2:7", b)
    c = {"device": "cuda:NVIDIA H100", "versions": {"torch": "2.7.0", "vllm": "0.8.0"}}
    with pytest.raises(ConfigError, match="torch 2.7.0"):
        check_uniform(("actor n1:1", a), "actor n3:1", c)
    # The preflight's plan: one probe per actor slot of each alive node, at most the pool size.
    nodes = [
        {"NodeID": "b", "Alive": True, "NodeManagerAddress": "10.0.0.2", "Resources": {"CPU": 8, "GPU": 2}},
        {"NodeID": "a", "Alive": True, "NodeManagerAddress": "10.0.0.1", "Resources": {"CPU": 3}},
        {"NodeID": "c", "Alive": False, "NodeManagerAddress": "10.0.0.3", "Resources": {"CPU": 64}},
    ]
    assert [(p.index, p.address) for p in plan_probes(nodes, 2, 0, 3)] == [
        (0, "10.0.0.1"),
        (1, "10.0.0.2"),
        (2, "10.0.0.2"),
        (3, "10.0.0.2"),
    ]
    assert [p.address for p in plan_probes(nodes, 1, 1, 8)] == ["10.0.0.2", "10.0.0.2"]  # GPUs bound it


def test_local_executor_moves_the_bar_inside_a_shard(tmp_path, monkeypatch) -> None:
    import pyarrow as pa

    from prefcurate.score import base

    advances: list[float] = []

    class Recorder:
        def advance(self, n: float = 1, **_fields: object) -> None:
            advances.append(n)

    from contextlib import contextmanager

    @contextmanager
    def bar(*_a: object, **_k: object):  # type: ignore[no-untyped-def]
        yield Recorder()

    monkeypatch.setattr(base, "progress_bar", bar)
    ctx = base.RunContext(Store(tmp_path / "s"), "toy", tmp_path / "work", None, LocalExecutor())  # type: ignore[arg-type]

    def fn(shard: pa.Table, report) -> pa.Table:  # type: ignore[no-untyped-def]
        for _ in range(shard.num_rows):
            report(1)  # one row done
        return shard

    out = ctx.map_shards(pa.table({"x": list(range(10))}), fn, shard_rows=4)
    assert out.column("x").to_pylist() == list(range(10))
    assert advances.count(1) == 10 and sum(advances) == 10  # per row, and nothing counted twice


@pytest.mark.slow
def test_bundled_model_local_and_two_actors_publish_identical_bytes(cluster, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(lm, "MIN_SHARD_ROWS", 64)
    opts = {"dtype": "fp32", "max_length": 128}
    sig = lm.LogprobMargin(**opts)  # type: ignore[arg-type]
    got = {}
    for name, options in (("local", ExecutionOptions(threads=1)), ("ray", ray_options(2))):
        store = fresh_store(tmp_path / name)
        with open_executor(options) as executor:
            got[name] = data_bytes(run_signal(store, "toy", sig, executor=executor)[0])
    assert got["ray"] == got["local"]


def test_reward_signal_on_a_ray_actor_gives_the_local_bytes(
    cluster, smollm2_tokenizer_dir, tmp_path_factory, tmp_path, monkeypatch
) -> None:
    from prefcurate.score import reward_margin
    from prefcurate.score.reward_margin import RewardMargin

    from .test_reward import make_model

    model = make_model(tmp_path_factory.mktemp("tiny-rm"), smollm2_tokenizer_dir)
    monkeypatch.setattr(RewardMargin, "shard_rows", SHARD_ROWS)
    got = {}
    with open_executor(ExecutionOptions(threads=1)) as executor:
        sig = RewardMargin(model=model, dtype="fp32", max_length=64)
        got["local"] = run_signal(fresh_store(tmp_path / "local"), "toy", sig, executor=executor)[0]
    # On Ray the driver only tokenizes: loading the weights here fails the test (the actors' own
    # processes import the module afresh, unpatched).
    loads: list[object] = []

    def no_weights_here(*args: object, **kwargs: object) -> None:
        loads.append(args)
        raise AssertionError("the driver loaded the reward model's weights")

    monkeypatch.setattr(reward_margin, "load_reward_model", no_weights_here)
    with open_executor(ray_options(1)) as executor:
        sig = RewardMargin(model=model, dtype="fp32", max_length=64)
        got["ray"] = run_signal(fresh_store(tmp_path / "ray"), "toy", sig, executor=executor)[0]
    assert loads == []
    assert data_bytes(got["ray"]) == data_bytes(got["local"])
    assert got["ray"].manifest["execution"]["shards_run"] == 4
    assert (
        got["ray"].manifest["model"] == got["local"].manifest["model"]
    )  # pad id, template: from the tokenizer


# -- preflight: a mixed cluster is refused before anything is scheduled ----------------------------


class MarkerWork:
    """A ShardWork that leaves a file behind when an actor builds it, so a test can tell whether
    any actor started (and would have computed)."""

    gpu = False

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def open(self, threads: int | None):  # type: ignore[no-untyped-def]
        Path(self.marker).write_text("opened")
        return lambda shard, report: shard


def marker_job(marker: Path):  # type: ignore[no-untyped-def]
    import pyarrow as pa

    from prefcurate.execution import ShardJob

    return ShardJob(
        pa.table({"x": [0, 1, 2, 3]}), 1, [0, 1, 2, 3], None, MarkerWork(marker), "marker", WorkKind.sandbox
    )


def test_preflight_refuses_a_mixed_cluster_before_any_actor_starts(
    cluster, tiny_model, tmp_path, monkeypatch
) -> None:
    delivered: list[int] = []
    # The control: a uniform cluster probes each actor slot, then the actors build and compute.
    executor = RayExecutor(ray_options(2))
    executor.run(marker_job(tmp_path / "control"), lambda i, _t: delivered.append(i), lambda _n: None)
    assert sorted(delivered) == [0, 1, 2, 3] and (tmp_path / "control").exists()
    assert executor.record()["preflight_probes"] == 2  # one node, two actor slots
    # Probe 1 reports another device: refused, both sides named, before any actor was built.
    monkeypatch.setenv(FAKE_DEVICE_ENV, "1=cuda:Fake GPU")
    delivered.clear()
    executor = RayExecutor(ray_options(2))
    with pytest.raises(
        ConfigError,
        match=r"mixed Ray cluster: node \S+ \(probe 1, \S+\) runs cuda:Fake GPU \(.*\) but node \S+ "
        r"\(probe 0, \S+\) runs cpu:.*before any shard was scheduled",
    ) as err:
        executor.run(marker_job(tmp_path / "refused"), lambda i, _t: delivered.append(i), lambda _n: None)
    assert "\n" not in str(err.value)
    assert delivered == [] and not (tmp_path / "refused").exists() and executor.actors == {}
    # The same through a command: nothing computed, no shard file, no version.
    store = fresh_store(tmp_path / "store")
    res = runner.invoke(
        app,
        ["score", "toy", "--by", "logprob-margin", "--model", tiny_model, "--dtype", "fp32"]
        + ["--max-length", "64", "--batch-tokens", "128", "--store", str(store.root)]  # 4 shards: 2 actors
        + ["--executor", "ray", "--workers", "2", "--threads", "1"],
    )
    assert res.exit_code == 1 and "mixed Ray cluster" in res.stderr, res.output
    assert shard_files(store) == [] and store.versions("scores", "toy/logprob_margin_v1") == []


# -- eval code and eval generate on actors --------------------------------------------------------


def write_suite(folder: Path, problems: list[dict]) -> Path:
    import gzip

    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "HumanEval.jsonl.gz", "wt") as fh:
        fh.writelines(json.dumps(p) + "\n" for p in problems)
    return folder


def test_eval_code_on_one_or_two_actors_gives_the_local_bytes(cluster, tmp_path, monkeypatch) -> None:
    from prefcurate.evaluate import code

    from .test_eval_code import PROBLEMS

    monkeypatch.setattr(code, "SHARD_ROWS", 2)  # 2 references -> 1 shard, 4 scored samples -> 2 shards
    data = write_suite(tmp_path / "data", PROBLEMS)
    samples = tmp_path / "s.jsonl"
    completions = ["    return a + b\n", "    return a - b\n", "    return a +\n", "    return b + a\n"]
    lines = [{"task_id": "HumanEval/0", "completion": c} for c in completions]
    lines.append({"task_id": "HumanEval/1", "completion": "    return 1\n"})  # its reference fails: excluded
    samples.write_text("".join(json.dumps(r) + "\n" for r in lines))
    base = ["eval", "code", str(samples), "--suite", "humaneval", "--data", str(data), "--timeout", "60"]
    runs = {
        "local": ["--workers", "1"],
        "ray-1": ["--executor", "ray", "--workers", "1", "--threads", "1"],
        "ray-2": ["--executor", "ray", "--workers", "2", "--threads", "1"],
    }
    files = {}
    for name, extra in runs.items():
        res = runner.invoke(app, [*base, "--out", str(tmp_path / name), *extra])
        assert res.exit_code == 0, res.output
        files[name] = {
            f: (tmp_path / name / f).read_bytes() for f in ("summary.json", "tasks.jsonl", "samples.jsonl")
        }
    assert files["ray-1"] == files["local"] and files["ray-2"] == files["local"]
    summary = json.loads(files["local"]["summary.json"])
    assert summary["tasks"] == 1 and summary["samples"] == 4 and summary["excluded_samples"] == 1
    assert summary["pass@1"] == 0.5 and summary["sandbox"]["isolation"] is not None
    execution = {name: json.loads((tmp_path / name / "execution.json").read_text()) for name in runs}
    assert execution["local"]["executor"] == "local" and execution["local"]["sandbox_workers"] == 1
    two = execution["ray-2"]
    assert two["executor"] == "ray" and two["sandbox_workers"] == 1 and two["shards_run"] == 3
    assert two["actors"] >= 2  # the references' one-actor pool, then the samples' two actors
    assert two["preflight_probes"] == 3  # each pass probes each actor slot first: 1, then 2


def test_eval_generate_on_actors_gives_the_local_bytes_and_resumes(
    cluster, make_tiny_model, tmp_path, monkeypatch
) -> None:
    from prefcurate.evaluate import generate as gen

    from .test_eval_generate import PROBLEMS

    monkeypatch.setattr(gen, "SHARD_BATCHES", 1)  # 9 jobs in shards of 2 (--batch-size 2): 5 shards
    data = write_suite(tmp_path / "data", PROBLEMS)
    model = make_tiny_model(seed=7)
    common = ["--suite", "humaneval", "--data", str(data), "--n", "3", "--temperature", "1.0"]
    common += ["--max-new-tokens", "6", "--batch-size", "2"]
    local = tmp_path / "local.jsonl"
    res = runner.invoke(app, ["eval", "generate", model, *common, "--out", str(local), "--threads", "1"])
    assert res.exit_code == 0 and "9 samples written" in res.stdout, res.output
    two = tmp_path / "two.jsonl"
    res = runner.invoke(
        app,
        ["eval", "generate", model, *common, "--out", str(two)]
        + ["--executor", "ray", "--workers", "2", "--threads", "1"],
    )
    assert res.exit_code == 0 and "9 samples written" in res.stdout, res.output
    assert two.read_bytes() == local.read_bytes()
    # A partial run: shard 2 fails on its actor (no retries); the other shards' rows are written.
    opts = gen.GenerateOptions(
        model=model,
        suite="humaneval",
        out=str(tmp_path / "resumed.jsonl"),
        n=3,
        temperature=1.0,
        max_new_tokens=6,
        batch_size=2,
        data_dir=str(data),
    )
    monkeypatch.setenv(FAIL_SHARDS_ENV, "2")
    with (
        open_executor(ray_options(2, retries=0)) as executor,
        pytest.raises(PrefcurateError, match="shard 2 failed"),
    ):
        gen.generate(opts, executor=executor)
    assert len((tmp_path / "resumed.jsonl").read_text().splitlines()) == 7  # 4 shards of 2, 2 + 2 + 2 + 1
    monkeypatch.delenv(FAIL_SHARDS_ENV)
    with open_executor(ray_options(1)) as executor:
        res_again = gen.generate(opts, executor=executor)
    assert (res_again.skipped, res_again.written) == (7, 2)
    assert (tmp_path / "resumed.jsonl").read_bytes() == local.read_bytes()
