"""Benchmark: chain-of-thought generation one question at a time, in fixed batches, and with
continuous batching (a finished row's place goes to the next question at once).

Same model, same questions, same greedy settings, one run, fresh (temporary) caches so nothing is
reused. Prints a table and writes bench/results/cot.json.

    .venv/bin/python bench/bench_cot.py                      # SmolLM2-135M, 8 questions, 48 tokens
    .venv/bin/python bench/bench_cot.py --model qwen25_coder_1p5b --n 8 --max-new-tokens 64 --threads 2 \
        --out bench/results/cot_qwen.json                      # the offline model, about 7 min
    .venv/bin/python bench/bench_cot.py --model qwen25_coder_1p5b --n 16 --max-new-tokens 160 --threads 2 \
        --variants static,batched --out bench/results/cot_qwen_continuous.json   # fixed vs continuous
    .venv/bin/python bench/bench_cot.py --model qwen25_coder_1p5b --n 32 --max-new-tokens 160 --threads 2 \
        --variants static:8,batched:16 --out bench/results/cot_qwen_continuous16.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from analysis.cot import prompts
from analysis.cot.generate import LM, JsonlCache, generate
from analysis.data.scienceqa import sample_questions
from analysis.envinfo import device_description


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2_135m")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: see CotConfig.torch_threads)")
    ap.add_argument("--variants", default="one_at_a_time,batched",
                    help="comma list of one_at_a_time, static (fixed batches, as before continuous batching), "
                         "batched (continuous), each optionally :B for its own batch size; the speedup is first over last")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "cot.json"))
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    qs = sample_questions(args.n, seed=0).questions
    lm = LM(args.model)
    t = time.perf_counter()
    _ = lm.model
    load_s = time.perf_counter() - t
    texts = [prompts.render(lm.tokenizer, prompts.cot_prompt(q), lm.family) for q in qs]
    settings = {"dtype": lm.dtype_name(), "bench": True}
    results = {}
    outputs = {}
    variants = {"one_at_a_time": (1, False), "static": (args.batch_size, True), "batched": (args.batch_size, False)}
    chosen = args.variants.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        for name in chosen:
            kind, _, size = name.partition(":")  # "batched:16": another batch size for this variant
            bs, static = variants[kind]
            bs = int(size) if size else bs
            cache = JsonlCache(Path(tmp) / f"{name}.jsonl")
            # static: fixed batches, a finished row's slot stays empty until the whole batch is done
            groups = [texts[i:i + bs] for i in range(0, len(texts), bs)] if static else [texts]
            started = time.perf_counter()
            rows = [r for g in groups for r in generate(lm, g, max_new_tokens=args.max_new_tokens, settings=settings,
                                                          batch_size=bs, cache=cache, probe=False, desc=name)]
            wall = time.perf_counter() - started
            outputs[name] = [r["gen_ids"] for r in rows]
            results[name] = {"batch_size": bs, "seconds": round(wall, 2),
                             "seconds_per_question": round(wall / len(texts), 3),
                             "new_tokens": sum(r["n_new_tokens"] for r in rows)}
    base, last = chosen[0], chosen[-1]
    same = sum(a == b for a, b in zip(outputs[base], outputs[last]))
    ratio = results[base]["seconds"] / results[last]["seconds"]
    report = {
        "model": args.model, "n_questions": len(texts), "max_new_tokens": args.max_new_tokens,
        "decoding": "greedy, stop at the Answer line", "device": device_description(),
        "torch_threads": torch.get_num_threads(), "platform": platform.platform(), "model_load_s": round(load_s, 1),
        **results, f"speedup_{last}_over_{base}": round(ratio, 2),
        "identical_outputs": f"{same}/{len(texts)}",
        "note": "greedy outputs may differ slightly between batch sizes (fp32 padding numerics); wall times include any other load on the machine",
    }
    print(f"{'variant':<16}{'batch':>6}{'seconds':>10}{'s/question':>12}{'new tokens':>12}")
    for name in chosen:
        r = results[name]
        print(f"{name:<16}{r['batch_size']:>6}{r['seconds']:>10.1f}{r['seconds_per_question']:>12.2f}{r['new_tokens']:>12}")
    print(f"speedup ({base} / {last}): {ratio:.2f}x; identical outputs {same}/{len(texts)}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
