"""Training throughput: the assignment snippet's settings vs this project's, same model, same machine.

snippet: fp32, every 1,000-row ``Dataset.map`` batch padded to its own longest text, random batches
of 16 (the data collator then has nothing to pad).
project: no padding at tokenisation, ``DataCollatorWithPadding`` (each batch padded to its own longest
text), length-grouped batches, a larger batch (64 by default), bf16/fp16 autocast on GPUs that
support it (fp32 on CPU).

Both train the same model from the same weights on the same rows for the same number of samples
(a short fixed run), one after the other in one process. Prints a table and writes JSON.

    python bench/bench_bert.py                         # MiniLM-L6 (offline), 640 samples each
    python bench/bench_bert.py --model bert_base_uncased --random-weights --samples 20000   # GPU
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np


def build_trainer(model, tok, ds, collator, batch_size, max_steps, grouped, precision, out_dir):
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=str(out_dir), max_steps=max_steps, per_device_train_batch_size=batch_size,
        learning_rate=2e-5, save_strategy="no", eval_strategy="no", logging_strategy="no", report_to="none",
        train_sampling_strategy="group_by_length" if grouped else "random", length_column_name="length",
        seed=0, data_seed=0, disable_tqdm=True, dataloader_num_workers=0, **precision,
    )
    return Trainer(model=model, args=args, train_dataset=ds, data_collator=collator, processing_class=tok)


def padding_stats(trainer, max_steps):
    """Mean tokens per sample as fed to the model, and the share of them that is padding."""
    seen, pads, samples = 0, 0, 0
    for i, batch in enumerate(trainer.get_train_dataloader()):
        if i >= max_steps:
            break
        mask = batch["attention_mask"]
        seen += mask.numel()
        pads += int((mask == 0).sum())
        samples += mask.shape[0]
    return seen / max(samples, 1), pads / max(seen, 1)


def main(argv=None):
    import datasets
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, default_data_collator

    from analysis.bert.train import quiet_transformers
    from analysis.data import agnews
    from analysis.envinfo import device_description
    from analysis.models import cuda_bf16_native, hf_source, load_tokenizer, pick_device, spec

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="minilm_l6")
    p.add_argument("--random-weights", action="store_true", help="architecture only (hub models offline)")
    p.add_argument("--rows", type=int, default=2000, help="training rows the batches are drawn from")
    p.add_argument("--samples", type=int, default=640, help="samples each variant trains on")
    p.add_argument("--project-batch", type=int, default=64)
    p.add_argument("--snippet-batch", type=int, default=16)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "bert.json"))
    a = p.parse_args(argv)
    quiet_transformers()

    device = pick_device()
    tok = load_tokenizer("minilm_l6" if a.random_weights and a.model == "bert_base_uncased" else a.model)
    df = agnews.load("train", limit=a.rows, seed=0)
    raw = datasets.Dataset.from_pandas(df[["text", "label"]], preserve_index=False)

    def snippet_map(b):  # the snippet: pad each 1,000-row map batch to its longest text
        return tok(b["text"], padding=True, truncation=True, max_length=a.max_length)

    def project_map(b):  # this project: no padding here; the collator pads per batch
        enc = tok(b["text"], truncation=True, max_length=a.max_length)
        enc["length"] = [len(x) for x in enc["input_ids"]]
        return enc

    snippet_ds = raw.map(snippet_map, batched=True, batch_size=1000, remove_columns=["text"])
    project_ds = raw.map(project_map, batched=True, remove_columns=["text"])

    def fresh_model():
        transformers.set_seed(0)
        if a.random_weights:
            cfg = spec(a.model).random_config() if spec(a.model).random_config else None
            cfg.num_labels = 4
            return AutoModelForSequenceClassification.from_config(cfg)
        src = hf_source(a.model)
        return AutoModelForSequenceClassification.from_pretrained(src.path, num_labels=4, dtype=torch.float32)

    amp = {"bf16": False, "fp16": False}
    if device.type == "cuda":
        bf16 = cuda_bf16_native()
        amp = {"bf16": bf16, "fp16": not bf16}
    variants = {
        "snippet": dict(ds=snippet_ds, collator=default_data_collator, batch=a.snippet_batch, grouped=False,
                        precision={"bf16": False, "fp16": False}),
        "project": dict(ds=project_ds, collator=DataCollatorWithPadding(tok), batch=a.project_batch, grouped=True,
                        precision=amp),
    }
    results = {}
    import tempfile

    for name, v in variants.items():
        steps = max(1, a.samples // v["batch"])
        with tempfile.TemporaryDirectory() as tmp:
            trainer = build_trainer(fresh_model(), tok, v["ds"], v["collator"], v["batch"], steps, v["grouped"],
                                    v["precision"], tmp)
            tokens_per_sample, pad_share = padding_stats(trainer, steps)
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = trainer.train()
            if device.type == "cuda":
                torch.cuda.synchronize()
            wall = time.perf_counter() - t0
        n = steps * v["batch"]
        results[name] = {"batch_size": v["batch"], "steps": steps, "samples": n, "seconds": round(wall, 3),
                         "samples_per_s": round(n / wall, 3), "tokens_per_sample": round(tokens_per_sample, 1),
                         "padding_share": round(pad_share, 3), "precision": "bf16" if v["precision"]["bf16"] else "fp16" if v["precision"]["fp16"] else "fp32",
                         "length_grouped": v["grouped"], "final_loss": round(float(out.training_loss), 4)}
        print(f"{name:8s} batch {v['batch']:4d}  {n:6d} samples  {wall:8.1f} s  {n / wall:8.1f} samples/s  "
              f"{tokens_per_sample:6.1f} tokens/sample  {pad_share:5.1%} padding", flush=True)
    ratio = results["project"]["samples_per_s"] / results["snippet"]["samples_per_s"]
    print(f"project / snippet throughput: {ratio:.2f}x")
    record = {"model": a.model, "random_weights": a.random_weights, "device": device_description(),
              "machine": platform.machine(), "torch_threads": torch.get_num_threads(), "rows": a.rows,
              "max_length": a.max_length, "variants": results, "ratio": round(ratio, 3),
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(record, indent=1) + "\n")
    return record


if __name__ == "__main__":
    main()
