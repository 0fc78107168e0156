"""`prefcurate score --by logprob-margin` as a whole command against TRL's reference pass as a whole
process, same pairs, same bundled SmolLM2-135M-Instruct, one run, interleaved.

Ours: `python -m prefcurate score DATASET --by logprob-margin --dtype D --max-length L --force` in a
fresh process, the store's per-completion cache emptied before each run (so every completion is
computed): start-up, tokenizer, model load, tokenization, scoring, publishing.
Peer: a fresh process that loads the same model in fp32 (TRL's default; `bf16=True` adds autocast) and
builds `trl.DPOTrainer(..., DPOConfig(precompute_ref_log_probs=True))` on the same pairs, which
tokenizes them and runs the reference pass in its constructor (empty datasets cache each run).

Printed per configuration: wall seconds and peak RSS (the child's ru_maxrss) for each repetition,
the ratio TRL time / our time per repetition (min-max spread), and the max |difference| of the sums
against TRL fp32. Shapes: `binarized` (real UltraFeedback-binarized pairs, one per prompt) and `uf3`
(3 pairs per prompt sharing the chosen completion, built from the same real texts).

    python benchmarks/score_command.py --pairs 54 --max-length 1024 --shape both --reps 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]  # this tree's prefcurate, not an installed one


def run_child(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd[:4])}... failed:\n{err[-3000:]}")
    return wall, usage.ru_maxrss / 1024


def trl_worker(pairs_file: Path, out: Path, bf16: bool, max_length: int) -> None:
    """The peer, inside its own process: load, construct the trainer (tokenize + reference pass)."""
    import warnings

    import datasets
    import torch
    import trl

    from prefcurate.models import load_model

    datasets.disable_progress_bars()
    rows = [json.loads(line) for line in pairs_file.read_text().splitlines()]
    model, tok = load_model(None, "fp32")
    data = datasets.Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": r["prompt"]}],
                "chosen": [{"role": "assistant", "content": r["chosen"]}],
                "rejected": [{"role": "assistant", "content": r["rejected"]}],
            }
            for r in rows
        ]
    )
    args = trl.DPOConfig(
        output_dir=str(out.parent / "trl-out"),
        max_length=max_length,
        truncation_mode="keep_start",
        bf16=bf16,
        use_cpu=not torch.cuda.is_available(),
        report_to=[],
        disable_tqdm=True,
        save_strategy="no",
        precompute_ref_log_probs=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = trl.DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
    ds = trainer.train_dataset
    chosen, rejected = ds["ref_chosen_logps"], ds["ref_rejected_logps"]
    out.write_text(
        json.dumps({"chosen": [float(x) for x in chosen], "rejected": [float(x) for x in rejected]})
    )


def write_pairs(path: Path, shape: str, n: int, max_length: int) -> int:
    from logprob import load_pairs
    from transformers import AutoTokenizer

    from prefcurate.models import bundled_checkpoint
    from prefcurate.models.encoding import encode

    tok = AutoTokenizer.from_pretrained(str(bundled_checkpoint()))
    # TRL drops pairs whose prompt alone fills max_length (we would score them None): keep the others.
    pairs = [
        p
        for p in load_pairs(n, shape)
        if encode(tok, p[0], p[1], max_length=max_length, template="chat").n_tokens > 0
    ]
    with path.open("w") as fh:
        for prompt, chosen, rejected in pairs:
            fh.write(
                json.dumps({"prompt": prompt[0]["content"], "chosen": chosen, "rejected": rejected}) + "\n"
            )
    forwarded_tokens(tok, pairs, max_length)
    return len(pairs)


def forwarded_tokens(tok: object, pairs: list, max_length: int) -> None:
    """Tokens through the backbone (load-independent): TRL (prompt + completion for both sides of
    every pair), ours without prefix reuse (each distinct completion once) and with it (each
    shared prefix once, plus the completions' own tokens)."""
    from prefcurate.models.encoding import encode
    from prefcurate.models.logprob import _prefix_len, prefix_groups

    trl = 0
    distinct: dict[tuple[str, str], object] = {}
    for prompt, chosen, rejected in pairs:
        for text in (chosen, rejected):
            enc = encode(tok, prompt, text, max_length=max_length, template="chat")
            trl += len(enc.input_ids)
            distinct.setdefault((prompt[0]["content"], text), enc)
    items = list(distinct.values())
    whole = sum(len(it.input_ids) for it in items)
    groups, alone = prefix_groups(items)
    reuse = sum(len(items[i].input_ids) for i in alone)
    for g in groups:
        p = _prefix_len(items[g[0]])
        reuse += p + sum(len(items[i].input_ids) - p for i in g)
    print(
        f"tokens forwarded: TRL {trl:,}; ours, distinct completions {whole:,} ({trl / whole:.2f}x fewer); "
        f"with prefix reuse {reuse:,} ({trl / reuse:.2f}x fewer than TRL)",
        flush=True,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=54)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--shape", choices=("binarized", "uf3", "both"), default="both")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--configs", default="ours-fp32,ours-auto,trl-fp32,trl-bf16")
    ap.add_argument("--worker", choices=("trl",), help=argparse.SUPPRESS)
    ap.add_argument("--pairs-file", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--bf16", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker == "trl":
        trl_worker(args.pairs_file, args.out, bool(args.bf16), args.max_length)
        return 0

    from prefcurate.models.dtypes import resolve_dtype
    from prefcurate.store import Store

    auto, why = resolve_dtype("auto")
    print(f"--dtype auto -> {auto} ({why}); load average {os.getloadavg()[0]:.1f}", flush=True)
    configs = [c for c in args.configs.split(",") if c]
    shapes = ("binarized", "uf3") if args.shape == "both" else (args.shape,)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env = dict(os.environ, PYTHONPATH=str(ROOT), PREFCURATE_PROGRESS="0", TQDM_DISABLE="1")
        for shape in shapes:
            pairs_file = tmp / f"{shape}.jsonl"
            n = write_pairs(pairs_file, shape, args.pairs, args.max_length)
            store = tmp / f"store-{shape}"
            env_s = dict(env, PREFCURATE_STORE=str(store))
            prefix = [sys.executable, "-m", "prefcurate"]
            run_child(
                [*prefix, "build", "pairs", str(pairs_file), "--input-format", "flat", "--dataset", shape],
                env_s,
                tmp,
            )
            print(
                f"\n== {shape}: {n} pairs, max_length {args.max_length}, {args.reps} repetition(s) ==",
                flush=True,
            )
            times: dict[str, list[float]] = {}
            values: dict[str, list[float]] = {}
            for rep in range(args.reps):
                for cfg in configs:
                    if cfg.startswith("ours"):
                        dtype = "fp32" if cfg == "ours-fp32" else "auto"
                        shutil.rmtree(store / ".cache" / "logprobs", ignore_errors=True)
                        cmd = [*prefix, "score", shape, "--by", "logprob-margin", "--dtype", dtype]
                        cmd += ["--max-length", str(args.max_length), "--force"]
                        wall, rss = run_child(cmd, env_s, tmp)
                        table = Store(store).get("scores", f"{shape}/logprob_margin_v1").read()
                        got = table.column("logprob_margin_v1__chosen_logp").to_pylist()
                        got += table.column("logprob_margin_v1__rejected_logp").to_pylist()
                        order = table.column("pair_id").to_pylist()
                    else:
                        out = tmp / f"{cfg}.json"
                        hf = tmp / "hf-datasets"
                        shutil.rmtree(hf, ignore_errors=True)
                        cmd = [sys.executable, str(Path(__file__)), "--worker", "trl", "--pairs-file"]
                        cmd += [str(pairs_file), "--out", str(out), "--max-length", str(args.max_length)]
                        cmd += ["--bf16", str(int(cfg == "trl-bf16"))]
                        wall, rss = run_child(cmd, dict(env, HF_DATASETS_CACHE=str(hf)), tmp)
                        res = json.loads(out.read_text())
                        got, order = res["chosen"] + res["rejected"], None
                    times.setdefault(cfg, []).append(wall)
                    if order is not None:  # our rows follow the store's pair order: map back to file order
                        got = _file_order(store, shape, order, got)
                    values[cfg] = got
                    print(f"  rep {rep + 1} {cfg:<9} {wall:8.1f} s  peak RSS {rss:7,.0f} MB", flush=True)
            print("ratios, TRL time / our time, per repetition (min-max):")
            for ours in [c for c in configs if c.startswith("ours")]:
                for peer in [c for c in configs if c.startswith("trl")]:
                    r = [p / o for p, o in zip(times[peer], times[ours], strict=True)]
                    print(f"  {ours} vs {peer}: {min(r):.2f}x - {max(r):.2f}x")
            if "trl-fp32" in values:
                base = values["trl-fp32"]
                for cfg, got in values.items():
                    diff = max(abs(a - b) for a, b in zip(got, base, strict=True))
                    print(f"  max |{cfg} - trl-fp32| = {diff:.2e} nats")
    return 0


def _file_order(store: Path, shape: str, pair_ids: list[str], got: list[float]) -> list[float]:
    """Our chosen+rejected values re-ordered to the pairs file's order (the store keeps its own order)."""
    from prefcurate.store import Store

    file_ids = Store(store).get("pairs", shape).read(["pair_id"]).column("pair_id").to_pylist()
    n = len(pair_ids)
    chosen = dict(zip(pair_ids, got[:n], strict=True))
    rejected = dict(zip(pair_ids, got[n:], strict=True))
    return [chosen[p] for p in file_ids] + [rejected[p] for p in file_ids]


if __name__ == "__main__":
    sys.exit(main())
