"""Benchmark: chain-of-thought generation throughput, today's loop against the slot loop, same run.

On the first ``--n`` questions of the offline sample (real ScienceQA prompts, the assignment's
instruction as the system turn, the offline model Qwen2.5-Coder-1.5B-Instruct), with ``--budget``
new tokens each:

1. **reference** - today's loop as the stored run ran it: ``greedy_generate_stream`` (continuous
   batching with a concatenated KV cache), bf16 weights and activations, batch 16;
2. **reference, float32** - the same loop with the model in float32 (the GGUF's dequantised
   weights as they are), batch 16: isolates the dtype from the loop;
3. **slots** - ``decode.greedy_generate_slots`` (one preallocated KV cache written in place,
   freed slots refilled at once, the shared system-prompt prefix computed once), float32,
   ``--batch`` rows.

New tokens per second of wall time include prefill. Outputs are compared pairwise (the same
dtype must give the same tokens: where they differ, the first differing position and the top-2
logit margin there are reported) and against the stored run's chains (their first ``--budget``
tokens). ``--levers`` adds single decoding-step costs: dtype x batch size x KV cache kind, and
threads. Writes bench/results/cot_throughput.json.

    .venv/bin/python bench/bench_cot_throughput.py                 # ~12 min on 2 cores
    .venv/bin/python bench/bench_cot_throughput.py --n 4 --budget 16 --no-levers   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from analysis.cot import prompts
from analysis.cot.decode import SlotCache, greedy_generate_slots
from analysis.cot.generate import LM, _answer_line_done, _cache_of, _eos_ids, greedy_generate_stream
from analysis.data.scienceqa import sample_questions
from analysis.envinfo import device_description

ROOT = Path(__file__).resolve().parent.parent
STORED = ROOT / "results" / "offline" / "cot_scienceqa" / "c1d09b35790ca30c" / "records.jsonl"


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return sorted(f for f in flags if f.startswith(("avx512_bf16", "amx", "avx512f", "avx512_vnni")))


def to_float32(model) -> None:
    """The model in float32 in place: bf16 -> float32 is exact, so these are the bf16 run's weights
    (transformers refuses ``.float()`` on a model loaded from a GGUF file)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            tensor.data = tensor.data.float()
    model.config.dtype = torch.float32


def timed(fn):
    load = os.getloadavg()[0]
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started, load


def first_difference(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def margin_at(model, prompt: list[int], prefix: list[int], pair: tuple[int, int]) -> dict:
    """The logits after ``prompt + prefix`` (one forward pass): the top-2 margin and the gap
    between the two tokens the compared outputs chose there."""
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([prompt + prefix]), logits_to_keep=1).logits[0, -1].float()
    top = torch.topk(logits, 2)
    return {"top2_margin": round(float(top.values[0] - top.values[1]), 5),
            "chosen_gap": round(float(logits[pair[0]] - logits[pair[1]]), 5),
            "both_in_top2": sorted(pair) == sorted(top.indices.tolist())}


def compare(name: str, outs_a, outs_b, model, prompts_ids) -> dict:
    same, diffs = 0, []
    for i, (a, b) in enumerate(zip(outs_a, outs_b)):
        k = first_difference(a, b)
        if k is None:
            same += 1
            continue
        row = {"item": i, "position": k}
        if k < min(len(a), len(b)) and model is not None:
            row.update(margin_at(model, prompts_ids[i], a[:k], (a[k], b[k])))
        diffs.append(row)
    return {"pair": name, "identical": same, "n": len(outs_a), "differences": diffs}


def step_costs(model, batches, ctx: int, kinds=("dynamic", "slots"), steps: int = 2) -> list[dict]:
    """Seconds per decoding step with a ``ctx``-column cache (random keys/values), per batch size
    and cache kind; the best of ``steps``."""
    from transformers import DynamicCache

    cfg = model.config
    heads, dim = cfg.num_key_value_heads, cfg.hidden_size // cfg.num_attention_heads
    dtype = next(model.parameters()).dtype
    rows = []
    for bs in batches:
        for kind in kinds:
            if kind == "dynamic":
                kv = DynamicCache()
                for layer in range(cfg.num_hidden_layers):
                    kv.update(torch.randn(bs, heads, ctx, dim).to(dtype), torch.randn(bs, heads, ctx, dim).to(dtype), layer)
                cache, counter = kv, None
            else:
                sc = SlotCache(model, bs, ctx + steps + 1)
                sc.counter.n = ctx
                cache, counter = sc.cache, sc.counter
            mask = torch.ones(bs, ctx + 1, dtype=torch.long)
            ids, pos = torch.randint(0, 1000, (bs, 1)), torch.full((bs, 1), ctx)
            best = float("inf")
            for _ in range(steps):
                started = time.perf_counter()
                with torch.inference_mode():
                    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True,
                                logits_to_keep=1)
                best = min(best, time.perf_counter() - started)
                if counter is not None:
                    counter.n += 1
                else:
                    cache = _cache_of(out)
                mask = torch.cat([mask, mask.new_ones((bs, 1))], dim=1)
                pos = pos + 1
            rows.append({"dtype": str(dtype).replace("torch.", ""), "batch": bs, "cache": kind, "ctx": ctx,
                         "step_s": round(best, 3), "tokens_per_s": round(bs / best, 1),
                         "threads": torch.get_num_threads()})
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=24, help="questions: the first n of the offline sample")
    ap.add_argument("--budget", type=int, default=128, help="new tokens per question")
    ap.add_argument("--ref-batch", type=int, default=16, help="today's batch size (the stored run's)")
    ap.add_argument("--batch", type=int, default=64, help="rows of the slot loop")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-levers", dest="levers", action="store_false")
    ap.add_argument("--lever-batches", default="16,64,128", help="batch sizes of the single-step costs")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "cot_throughput.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    lever_batches = [int(b) for b in args.lever_batches.split(",")]

    questions = sample_questions(200, seed=0).questions[:args.n]
    lm = LM("qwen25_coder_1p5b", dtype="bfloat16")
    tok = lm.tokenizer
    texts = [prompts.render(tok, prompts.cot_prompt(q), lm.family) for q in questions]
    prompts_ids = [tok.encode(t, add_special_tokens=False) for t in texts]
    eos, stop = _eos_ids(lm), _answer_line_done(tok)
    budgets = [args.budget] * args.n
    n_prompt = sum(map(len, prompts_ids))
    report = {"model": lm.name, "n_questions": args.n, "budget": args.budget, "prompt_tokens": n_prompt,
              "device": device_description(), "cpu_flags": cpu_flags(), "threads": torch.get_num_threads(),
              "platform": platform.platform(), "torch": torch.__version__, "runs": []}

    def run(name, fn, **meta):
        outs, wall, load = timed(fn)
        new = sum(map(len, outs))
        row = {"variant": name, **meta, "wall_s": round(wall, 1), "new_tokens": new,
               "new_tokens_per_s": round(new / wall, 2), "load_avg_before": round(load, 2)}
        report["runs"].append(row)
        print(row, flush=True)
        return outs

    model = lm.model  # bf16 weights and activations, float32 head: the stored run's setting
    t0 = time.perf_counter()
    ref_bf16 = run("reference loop, bf16", lambda: greedy_generate_stream(lm, prompts_ids, budgets, args.ref_batch),
                   batch=args.ref_batch, loop="stream", dtype="bfloat16")
    levers = []
    if args.levers:
        levers += step_costs(model, [b for b in lever_batches if b <= 64], ctx=300)
    to_float32(model)
    ref_f32 = run("reference loop, float32", lambda: greedy_generate_stream(lm, prompts_ids, budgets, args.ref_batch),
                  batch=args.ref_batch, loop="stream", dtype="float32")
    stats: dict = {}
    slots_f32 = run("slot loop, float32", lambda: greedy_generate_slots(model, tok, prompts_ids, budgets, args.batch,
                                                                        eos, stop, stats=stats),
                    batch=args.batch, loop="slots", dtype="float32")
    report["runs"][-1]["loop_stats"] = stats
    if args.levers:
        levers += step_costs(model, lever_batches, ctx=300)
        torch.set_num_threads(1)
        levers += step_costs(model, [64], ctx=300, kinds=("slots",))
        torch.set_num_threads(args.threads)
    report["levers"] = levers
    report["speedup_slots_vs_reference_bf16"] = round(report["runs"][2]["new_tokens_per_s"]
                                                      / report["runs"][0]["new_tokens_per_s"], 2)

    comparisons = [compare("slots float32 vs reference float32 (same dtype: the loop)", slots_f32, ref_f32, model,
                           prompts_ids),
                   compare("reference float32 vs reference bf16 (the dtype)", ref_f32, ref_bf16, model, prompts_ids)]
    if STORED.exists():
        stored = {}
        for line in STORED.read_text().splitlines():
            rec = json.loads(line)
            stored[rec["id"]] = tok.encode(rec["cot_text"], add_special_tokens=False)[:args.budget]
        want = [stored[q.id] for q in questions]
        comparisons.append(compare("reference bf16 (this machine) vs stored run (text re-tokenised)",
                                   ref_bf16, want, None, prompts_ids))
        comparisons.append(compare("slots float32 vs stored run (text re-tokenised)", slots_f32, want, None,
                                   prompts_ids))
    report["comparisons"] = comparisons
    report["total_s"] = round(time.perf_counter() - t0, 1)
    for c in comparisons:
        print(c["pair"], f"{c['identical']}/{c['n']} identical", c["differences"][:4])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
