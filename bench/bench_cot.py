"""Benchmark: chain-of-thought generation one question at a time vs in left-padded batches.

Same model, same questions, same greedy settings, one run, fresh (temporary) caches so nothing is
reused. Prints a table and writes bench/results/cot.json.

    .venv/bin/python bench/bench_cot.py                      # SmolLM2-135M, 8 questions, 48 tokens
    .venv/bin/python bench/bench_cot.py --model qwen25_coder_1p5b --n 8 --max-new-tokens 64 --threads 2 \
        --out bench/results/cot_qwen.json                      # the offline model, about 7 min
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
    with tempfile.TemporaryDirectory() as tmp:
        for name, bs in [("one_at_a_time", 1), ("batched", args.batch_size)]:
            cache = JsonlCache(Path(tmp) / f"{name}.jsonl")
            started = time.perf_counter()
            rows = generate(lm, texts, max_new_tokens=args.max_new_tokens, settings=settings, batch_size=bs,
                            cache=cache, probe=False, desc=name)
            wall = time.perf_counter() - started
            outputs[name] = [r["gen_ids"] for r in rows]
            results[name] = {"batch_size": bs, "seconds": round(wall, 2),
                             "seconds_per_question": round(wall / len(texts), 3),
                             "new_tokens": sum(r["n_new_tokens"] for r in rows)}
    same = sum(a == b for a, b in zip(outputs["one_at_a_time"], outputs["batched"]))
    ratio = results["one_at_a_time"]["seconds"] / results["batched"]["seconds"]
    report = {
        "model": args.model, "n_questions": len(texts), "max_new_tokens": args.max_new_tokens,
        "decoding": "greedy, stop at the Answer line", "device": device_description(),
        "torch_threads": torch.get_num_threads(), "platform": platform.platform(), "model_load_s": round(load_s, 1),
        **results, "speedup_batched_over_one_at_a_time": round(ratio, 2),
        "identical_outputs": f"{same}/{len(texts)}",
        "note": "greedy outputs may differ slightly between batch sizes (fp32 padding numerics); wall times include any other load on the machine",
    }
    print(f"{'variant':<16}{'batch':>6}{'seconds':>10}{'s/question':>12}{'new tokens':>12}")
    for name in ("one_at_a_time", "batched"):
        r = results[name]
        print(f"{name:<16}{r['batch_size']:>6}{r['seconds']:>10.1f}{r['seconds_per_question']:>12.2f}{r['new_tokens']:>12}")
    print(f"speedup (one at a time / batched): {ratio:.2f}x; identical outputs {same}/{len(texts)}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
