"""prefcurate's log-prob scorer vs TRL's DPO reference pass, same pairs, same model, one process.

The peer is what users run today: TRL's ``DPOTrainer`` reference log-probs
(``precompute_ref_log_probs=True``): its collator over the tokenized pairs, batches of
``per_device_train_batch_size`` pairs, and ``compute_ref_log_probs`` per batch, exactly the loop of
``DPOTrainer._precompute_ref_logps`` (without its dataset cache, so each configuration really runs).
TRL runs as configured by default (float32) and with ``bf16=True`` (autocast); prefcurate runs in
fp32 and in the dtype ``--dtype auto`` picks on this machine.

Reported per configuration: pair tokens per second (prompt+chosen and prompt+rejected tokens after
truncation, divided by the pass's wall time, tokenization excluded on both sides), the ratios, the
max |difference| of the sums against TRL fp32, and our tokens/s as a share of the ceiling implied by
the machine's measured bf16 matrix-multiply rate (FLOPs per token = 2 x parameters + attention).

Two data shapes: ``binarized`` (the first N real UltraFeedback-binarized pairs, one pair per prompt)
and ``uf3`` (UltraFeedback-shaped: 3 pairs per prompt sharing the chosen completion, built from the
same real texts by pairing each prompt's chosen with its own rejected and the next two prompts'
rejected completions; TRL scores the shared chosen 3 times, prefcurate once).

    .venv/bin/python benchmarks/logprob.py --pairs 200 --max-length 512
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "ultrafeedback_binarized_flat" / "train_clean.jsonl"


def load_pairs(n: int, shape: str) -> list[tuple[list[dict[str, str]], str, str]]:
    rows = [json.loads(line) for line in DATA.read_text().splitlines()]
    if shape == "binarized":
        return [([{"role": "user", "content": r["prompt"]}], r["chosen"], r["rejected"]) for r in rows[:n]]
    prompts = max(1, n // 3)
    out = []
    for i in range(prompts):
        for k in range(3):
            out.append(
                (
                    [{"role": "user", "content": rows[i]["prompt"]}],
                    rows[i]["chosen"],
                    rows[(i + k) % len(rows)]["rejected"],
                )
            )
    return out


def bf16_matmul_gflops(seconds: float = 2.0) -> float:
    import torch

    a, b = torch.randn(1024, 1024, dtype=torch.bfloat16), torch.randn(1024, 1024, dtype=torch.bfloat16)
    a @ b
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        n += 1
    return 2 * 1024**3 * n / (time.perf_counter() - started) / 1e9


def run_ours(pairs, dtype: str, max_length: int, batch_tokens: int):
    from prefcurate.models import load_model
    from prefcurate.models.logprob import LogprobScorer

    model, tok = load_model(None, dtype)
    scorer = LogprobScorer(model, tok, max_length=max_length, batch_tokens=batch_tokens)
    distinct: dict[tuple[str, str], int] = {}
    items = []
    for prompt, chosen, rejected in pairs:
        for text in (chosen, rejected):
            key = (prompt[0]["content"], text)
            if key not in distinct:  # the completion id in the store: each distinct completion once
                distinct[key] = len(items)
                items.append(scorer.encode(prompt, text))
    started = time.perf_counter()
    values = scorer.score(items)
    seconds = time.perf_counter() - started
    chosen = [values[distinct[(p[0]["content"], c)]] for p, c, _ in pairs]
    rejected = [values[distinct[(p[0]["content"], r)]] for p, _, r in pairs]
    pair_tokens = sum(
        len(items[distinct[(p[0]["content"], t)]].input_ids) for p, c, r in pairs for t in (c, r)
    )
    return chosen, rejected, seconds, pair_tokens, sum(p.numel() for p in model.parameters()), model.config


def run_vllm_vs_transformers(pairs, dtype: str, max_length: int, batch_tokens: int) -> None:
    """GPU only: the vLLM backend against the transformers backend on the same pairs."""
    from prefcurate.models.logprob_vllm import VllmScorer

    c, r, s, tokens, _, _ = run_ours(pairs, dtype, max_length, batch_tokens)
    scorer = VllmScorer.open(None, dtype=dtype, max_length=max_length)
    items = [scorer.encode(p, t) for p, ch, rj in pairs for t in (ch, rj)]
    started = time.perf_counter()
    values = scorer.score(items)
    seconds = time.perf_counter() - started
    ours = [v for pair in zip(c, r, strict=True) for v in pair]
    diff = max(abs(a - b) for a, b in zip(values, ours, strict=True) if a is not None and b is not None)
    margins_t = [a - b for a, b in zip(c, r, strict=True)]
    margins_v = [values[2 * i] - values[2 * i + 1] for i in range(len(pairs))]
    flips = sum(1 for a, b in zip(margins_t, margins_v, strict=True) if (a > 0) != (b > 0))
    print(
        f"transformers {dtype}: {s:.1f} s {tokens / s:,.0f} pair-tokens/s; vllm {dtype}: {seconds:.1f} s "
        f"{tokens / seconds:,.0f} pair-tokens/s; max |diff| {diff:.2e} nats; margin sign flips {flips}/{len(pairs)}"
    )


def run_trl(pairs, bf16: bool, max_length: int, workdir: Path):
    import datasets
    import torch
    import trl
    from torch.utils.data import DataLoader

    from prefcurate.models import load_model

    datasets.disable_progress_bars()
    model, tok = load_model(None, "fp32")  # TRL's default: fp32 weights; bf16=True adds autocast
    data = datasets.Dataset.from_list(
        [
            {
                "prompt": p,
                "chosen": [{"role": "assistant", "content": c}],
                "rejected": [{"role": "assistant", "content": r}],
            }
            for p, c, r in pairs
        ]
    )
    args = trl.DPOConfig(
        output_dir=str(workdir),
        max_length=max_length,
        truncation_mode="keep_start",
        bf16=bf16,
        use_cpu=not torch.cuda.is_available(),
        report_to=[],
        disable_tqdm=True,
        save_strategy="no",
        precompute_ref_log_probs=False,  # we run its precompute loop below, timed and uncached
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = trl.DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
    ds = trainer.train_dataset
    loader = trainer.accelerator.prepare(
        DataLoader(
            ds,
            batch_size=args.precompute_ref_batch_size or args.per_device_train_batch_size,
            collate_fn=trainer.data_collator,
            shuffle=False,
        )
    )
    chosen, rejected = [], []
    started = time.perf_counter()
    for batch in loader:
        c, r = trainer.compute_ref_log_probs(trainer.model, batch)
        chosen += c.float().cpu().tolist()
        rejected += r.float().cpu().tolist()
    seconds = time.perf_counter() - started
    return chosen, rejected, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--batch-tokens", type=int, default=8192)
    ap.add_argument("--shape", choices=("binarized", "uf3", "both"), default="both")
    ap.add_argument("--skip-trl-fp32", action="store_true", help="TRL fp32 is the slowest configuration")
    ap.add_argument(
        "--backend",
        choices=("transformers", "vllm"),
        default="transformers",
        help="vllm: compare the vLLM backend with the transformers backend instead (GPU)",
    )
    args = ap.parse_args()

    import torch

    from prefcurate.models.dtypes import resolve_dtype

    auto, why = resolve_dtype("auto")
    print(f"machine: {torch.get_num_threads()} threads; --dtype auto -> {auto} ({why})")
    gflops = bf16_matmul_gflops()
    print(f"measured bf16 matmul: {gflops:,.0f} GFLOP/s")
    shapes = ("binarized", "uf3") if args.shape == "both" else (args.shape,)
    from transformers import AutoTokenizer

    from prefcurate.models import bundled_checkpoint
    from prefcurate.models.encoding import encode

    tok = AutoTokenizer.from_pretrained(str(bundled_checkpoint()))
    for shape in shapes:
        # TRL drops pairs whose prompt alone fills max_length (we would score them None): keep the others.
        pairs = [
            p
            for p in load_pairs(args.pairs, shape)
            if encode(tok, p[0], p[1], max_length=args.max_length, template="chat").n_tokens > 0
        ]
        print(f"\n== {shape}: {len(pairs)} pairs, max_length {args.max_length} ==")
        if args.backend == "vllm":
            run_vllm_vs_transformers(pairs, auto, args.max_length, args.batch_tokens)
            continue
        results = {}
        for dt in ("fp32", auto) if auto != "fp32" else ("fp32",):
            c, r, s, tokens, params, config = run_ours(pairs, dt, args.max_length, args.batch_tokens)
            results[f"prefcurate {dt}"] = (c, r, s)
            print(f"prefcurate {dt}: {s:8.1f} s  {tokens / s:8,.0f} pair-tokens/s", flush=True)
        configs = [("TRL bf16=True", True)] + ([] if args.skip_trl_fp32 else [("TRL default (fp32)", False)])
        for name, bf16 in configs:
            c, r, s = run_trl(pairs, bf16, args.max_length, ROOT / "benchmarks" / "_data" / "trl")
            results[name] = (c, r, s)
            print(f"{name}: {s:8.1f} s  {tokens / s:8,.0f} pair-tokens/s", flush=True)
        base = results.get("TRL default (fp32)")
        print("ratios (time of TRL / time of ours):")
        for ours in [k for k in results if k.startswith("prefcurate")]:
            for peer in [k for k in results if k.startswith("TRL")]:
                print(f"  {ours} vs {peer}: {results[peer][2] / results[ours][2]:.2f}x")
        if base is not None:
            for name, (c, r, _) in results.items():
                diff = max(abs(a - b) for a, b in zip(c + r, base[0] + base[1], strict=True))
                print(f"  max |{name} - TRL fp32| = {diff:.2e} nats")
        else:
            trl_b = results["TRL bf16=True"]
            for name, (c, r, _) in results.items():
                diff = max(abs(a - b) for a, b in zip(c + r, trl_b[0] + trl_b[1], strict=True))
                print(f"  max |{name} - TRL bf16| = {diff:.2e} nats")
        # Ceiling: FLOPs per token = 2 x parameters + attention (2 x layers x average context x hidden x 2).
        avg_ctx = tokens / (2 * len(pairs)) / 2
        flops = 2 * params + 4 * config.num_hidden_layers * avg_ctx * config.hidden_size
        ceiling = gflops * 1e9 / flops
        best = min((k for k in results if k.startswith("prefcurate")), key=lambda k: results[k][2])
        print(
            f"ceiling at measured bf16 rate: {ceiling:,.0f} tokens/s; {best}: {tokens / results[best][2] / ceiling:.0%} of it"
        )


if __name__ == "__main__":
    main()
