"""Benchmark: cost of one prefill and of one decoding step against the batch size.

Where the chain-of-thought run's time goes on a CPU. If a decoding step costs about the same for 8
rows as for 16, decoding is bound by reading the weights, and keeping the batch full (admitting a
new question as soon as a row finishes) would cut the cost per generated token; if the step cost
grows with the rows, it is compute-bound and only fewer tokens help. Real ScienceQA CoT prompts,
the project's chat template, fresh KV caches. Writes bench/results/cot_decode.json.

    .venv/bin/python bench/bench_cot_decode.py                        # Qwen2.5-Coder-1.5B, batches 1-16
    .venv/bin/python bench/bench_cot_decode.py --model smollm2_135m   # seconds
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from transformers import DynamicCache

from analysis.cot import prompts
from analysis.cot.generate import LM, _cache_of, _positions
from analysis.data.scienceqa import sample_questions
from analysis.envinfo import device_description


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen25_coder_1p5b", help="the offline CoT model (about 4 min on 2 cores)")
    ap.add_argument("--batch-sizes", default="1,4,8,16")
    ap.add_argument("--steps", type=int, default=8, help="decoding steps timed per batch size")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "cot_decode.json"))
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    qs = sample_questions(max(sizes), seed=0).questions
    lm = LM(args.model)
    tok, model = lm.tokenizer, lm.model
    texts = [prompts.render(tok, prompts.cot_prompt(q), lm.family) for q in qs]
    rows = []
    print(f"{'batch':>6}{'prompt tok':>12}{'prefill s':>11}{'s/row':>8}{'step s':>9}{'s/row-token':>13}")
    for bs in sizes:
        enc = tok(texts[:bs], return_tensors="pt", padding=True, add_special_tokens=False)
        mask = enc.attention_mask
        pos = _positions(mask)
        started = time.perf_counter()
        with torch.inference_mode():
            out = model(input_ids=enc.input_ids, attention_mask=mask, position_ids=pos, cache=DynamicCache(),
                        use_cache=True, logits_to_keep=1)
        prefill = time.perf_counter() - started
        kv, next_tok, next_pos = _cache_of(out), out.logits[:, -1].argmax(-1), pos[:, -1] + 1
        started = time.perf_counter()
        for _ in range(args.steps):
            mask = torch.cat([mask, mask.new_ones((bs, 1))], dim=1)
            with torch.inference_mode():
                out = model(input_ids=next_tok[:, None], attention_mask=mask, position_ids=next_pos[:, None],
                            cache=kv, use_cache=True)
            kv, next_tok, next_pos = _cache_of(out), out.logits[:, -1].argmax(-1), next_pos + 1
        step = (time.perf_counter() - started) / args.steps
        row = {"batch_size": bs, "prompt_tokens_padded": enc.input_ids.shape[1], "prefill_s": round(prefill, 3),
               "prefill_s_per_row": round(prefill / bs, 3), "step_s": round(step, 4),
               "step_s_per_row_token": round(step / bs, 4)}
        rows.append(row)
        print(f"{bs:>6}{row['prompt_tokens_padded']:>12}{prefill:>11.2f}{prefill / bs:>8.2f}{step:>9.3f}{step / bs:>13.4f}")
    report = {"model": args.model, "device": device_description(), "torch_threads": torch.get_num_threads(),
              "platform": platform.platform(), "steps_timed": args.steps, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
