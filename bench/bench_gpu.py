"""GPU timings of the full profile's three heavy parts: the assignment's way vs this project's.

Side by side in one run, on random weights of the real architectures (weights over 64 MiB cannot
travel to the GPU machine, which has no network) and synthetic inputs with the real data's shapes:

(a) **bert-base-uncased, one epoch of 120,000 AG-News-like rows** (token lengths drawn from the
    stored offline AG News statistics, ``results/offline/agnews_stats``, else a log-normal fit).
    *snippet*: the assignment's code: fp32, batch 16, ``Dataset.map(..., batched=True)`` with
    ``padding=True`` (each 1,000-row map batch padded to its longest row), random batches; timed on
    ``--snippet-steps`` steps after a warm-up and extrapolated to the epoch.
    *project*: the full profile's settings (``FT_FULL`` in ``analysis/bert/experiments.py``: its
    batch size, bf16 autocast, no padding at tokenisation, each batch padded to its own longest row,
    length-grouped batches), a whole epoch timed through the Trainer; and the same at larger
    batches on a quarter epoch (extrapolated), to show what a larger batch would buy.
    *loops*: the loop the full profile runs on one GPU (``analysis/bert/train_fast.py``: tokenised
    once into tensors on the GPU, length-bucketed slices, fused AdamW, ``torch.compile``) against
    the Trainer loop, both at batch 16 (the snippet's) and 32 with bf16 autocast and length
    grouping: seconds per epoch (the fast loop timed on a whole epoch, the Trainer on
    ``--loop-fraction`` of one, extrapolated), mean GPU utilisation while timed (NVML), and the
    ratio Trainer / fast. ``--no-compile`` times the fast loop without ``torch.compile``.
(b) **SAM ViT-H on 206 images (256 px, as the lung files) with 31 prompts each** (the full
    profile's strategies and robustness prompts: 1-6 points, boxes, box + point).
    *naive*: the course notebook's way: ``set_image`` for every strategy (9 per image), one
    ``predict`` per prompt, fp32; timed on a few images, extrapolated to 206.
    *project*: every image embedded once, in batches, under bf16 autocast; every image's prompts in
    batched decoder calls (``CachedPredictor.predict_batch``, the code the experiments run). The
    masks of the bf16 encoder are compared with those of the fp32 encoder (pixel agreement, IoU).
(c) **flan-t5-base, 200 chain-of-thought prompts** (prompt lengths of the CoT prompt, ~150-260
    tokens), greedy, ``--t5-new-tokens`` new tokens each (forced: random weights would stop anywhere):
    one prompt at a time (timed on a few, extrapolated) vs batches of the full config's
    ``batch_size`` and of all 200.

Targets on an H100 (the project's settings): (a) <= 15 s per epoch, (b) <= 30 s, (c) <= 10 s.

    python bench/bench_gpu.py --out bench/results/gpu.json     # GPU, full size (< 5 min on an H100)
    python bench/bench_gpu.py --tiny                             # CPU, toy sizes, < 1 min (tested)
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f} s] {msg}", flush=True)


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------------ (a) BERT
def agnews_lengths(n: int, rng) -> np.ndarray:
    """Token counts (with [CLS]/[SEP]) resampled from the stored offline AG News statistics
    (bert-base-uncased's vocabulary), else from a log-normal with their median and spread."""
    stored = sorted((ROOT / "results" / "offline" / "agnews_stats").glob("*/arrays.npz"))
    if stored:
        with np.load(stored[0]) as arrays:
            real = np.concatenate([arrays[k] for k in arrays.files if k.startswith("tokens_")]).astype(int)
        return rng.choice(real, size=n, replace=True), "stored offline AG News token counts"
    return np.clip(rng.lognormal(math.log(48), 0.3, size=n).astype(int), 8, 400), "log-normal fit"


def bert_rows(n: int, seed: int, vocab: int, cap: int = 512):
    rng = np.random.default_rng(seed)
    lengths, source = agnews_lengths(n, rng)
    lengths = np.minimum(lengths, cap)  # the snippet truncates at the model's 512
    ids = [[101] + rng.integers(min(1000, vocab // 2), vocab, size=max(int(k) - 2, 1)).tolist() + [102]
           for k in lengths]
    labels = rng.integers(0, 4, size=n).tolist()
    return ids, labels, source


def snippet_dataset(ids, labels, max_length: int):
    """The snippet's ``tokenizer(..., truncation=True, padding=True)`` over the whole map: every row
    padded to the longest row of the data set. (Taken literally, ``map(batched=True)`` pads each
    1,000-row map batch to its own longest row, and the Trainer's default collator then fails on
    a random batch that mixes map batches of different widths; padding over the whole map is the
    version of the snippet that runs.)"""
    import datasets

    cut = [x[:max_length] for x in ids]
    width = max(map(len, cut))
    rows_ids = [x + [0] * (width - len(x)) for x in cut]
    rows_mask = [[1] * len(x) + [0] * (width - len(x)) for x in cut]
    return datasets.Dataset.from_dict({"input_ids": rows_ids, "attention_mask": rows_mask, "labels": labels})


def project_dataset(ids, labels, max_length: int):
    import datasets

    cut = [x[:max_length] for x in ids]
    return datasets.Dataset.from_dict({"input_ids": cut, "labels": labels, "length": [len(x) for x in cut]})


def pad_collator(features):
    """``DataCollatorWithPadding`` without a tokenizer: pad each batch to its longest row (pad id 0)."""
    import torch

    width = max(len(f["input_ids"]) for f in features)
    ids = torch.zeros((len(features), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, f in enumerate(features):
        ids[r, :len(f["input_ids"])] = torch.tensor(f["input_ids"])
        mask[r, :len(f["input_ids"])] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([f["labels"] for f in features])}


def stacked_collator(features):
    import torch

    return {k: torch.tensor([f[k] for f in features]) for k in ("input_ids", "attention_mask", "labels")}


class StepClock:
    """Trainer callback: wall time of steps after the first ``warmup`` (device synchronised)."""

    def __new__(cls, device, warmup: int):
        from transformers import TrainerCallback

        class _Clock(TrainerCallback):
            def __init__(self):
                self.start = None
                self.steps = 0

            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == warmup:
                    sync(device)
                    self.start = time.perf_counter()
                elif state.global_step > warmup:
                    self.steps += 1

            def seconds(self):
                sync(device)
                return time.perf_counter() - self.start

        return _Clock()


def train_timed(model_factory, ds, collator, *, batch_size, max_steps, grouped, bf16, device, warmup, out_dir):
    """Train ``max_steps`` steps with the Trainer; (seconds of the steps after warm-up, steps timed,
    mean padded tokens per row)."""
    from transformers import Trainer, TrainingArguments

    model = model_factory()
    args = TrainingArguments(
        output_dir=str(out_dir), max_steps=max_steps, per_device_train_batch_size=batch_size, learning_rate=2e-5,
        save_strategy="no", eval_strategy="no", logging_strategy="no", report_to="none",
        train_sampling_strategy="group_by_length" if grouped else "random", length_column_name="length",
        seed=0, data_seed=0, disable_tqdm=True, dataloader_num_workers=0, bf16=bf16,
        use_cpu=device.type == "cpu",
    )
    clock = StepClock(device, warmup)
    trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=collator, callbacks=[clock])
    result = trainer.train()
    seconds = clock.seconds()
    train_timed.last_runtime = float(result.metrics.get("train_runtime", float("nan")))
    tokens = []
    for i, batch in enumerate(trainer.get_train_dataloader()):
        if i >= min(max_steps, 50):
            break
        tokens.append(batch["input_ids"].shape[1])
    del trainer, model
    return seconds, clock.steps, float(np.mean(tokens))


class GpuUtilisation:
    """Mean GPU utilisation (%) while the block runs, sampled every 0.2 s through NVML (pynvml or
    ``nvidia-smi``); ``mean`` is None on CPU or where neither is available."""

    def __init__(self, device):
        self.device, self.samples, self._stop = device, [], None

    def _read(self):
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(self.device.index or 0)
            return lambda: pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
        except Exception:  # noqa: BLE001 - no pynvml: nvidia-smi, else nothing
            import shutil
            import subprocess

            smi = shutil.which("nvidia-smi")
            if smi is None:
                return None
            query = [smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", f"--id={self.device.index or 0}"]
            return lambda: float(subprocess.run(query, capture_output=True, text=True, timeout=5).stdout.split()[0])

    def __enter__(self):
        import threading

        read = self._read() if self.device.type == "cuda" else None
        if read is not None:
            self._stop = threading.Event()

            def loop():
                while not self._stop.wait(0.2):
                    try:
                        self.samples.append(float(read()))
                    except Exception:  # noqa: BLE001
                        return

            self._thread = threading.Thread(target=loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._stop is not None:
            self._stop.set()
            self._thread.join()

    @property
    def mean(self):
        return float(np.mean(self.samples)) if self.samples else None


def fast_loop_timed(model_factory, ids, labels, *, batch_size, max_steps, bf16, device, warmup, compile_model):
    """``analysis.bert.train_fast.train_loop`` (the full profile's loop on one GPU) for ``max_steps``:
    (seconds of the steps after warm-up, steps timed, wall seconds including warm-up and compiling,
    mean GPU utilisation during the timed steps, mean padded width per batch)."""
    from analysis.bert import train_fast as F

    data = F.TokenTensors.from_lists(ids, labels)
    clock = {"start": None, "steps": 0}
    util = GpuUtilisation(device)

    def on_step(step):
        if step == warmup:
            sync(device)
            clock["start"] = time.perf_counter()
            util.__enter__()
        elif step > warmup:
            clock["steps"] += 1

    started = time.perf_counter()
    F.train_loop(model_factory(), data, None, device=device, epochs=1.0, batch_size=batch_size, learning_rate=2e-5,
                 mixed_precision=bf16, logging_steps=100, compile_model=compile_model, max_steps=max_steps,
                 on_step=on_step)
    sync(device)
    seconds, wall = time.perf_counter() - clock["start"], time.perf_counter() - started
    util.__exit__()
    lengths = data.lengths.numpy()
    widths = [int(np.ceil(lengths[b].max() / F.PAD_MULTIPLE) * F.PAD_MULTIPLE)
              for b in F.length_grouped_batches(lengths, batch_size, 42, 0)[:max_steps]]
    return seconds, clock["steps"], wall, util.mean, float(np.mean(widths))


def bench_bert_loops(args, device, factory, ids, labels, bf16, warm) -> dict:
    """The Trainer loop vs the fast loop at batch 16 (the snippet's) and 32, seconds per epoch,
    GPU utilisation; the ratio is Trainer seconds / fast seconds at the same batch size."""
    from analysis.bert.experiments import FT_FULL

    n_rows = len(ids)
    ds = project_dataset(ids, labels, FT_FULL.max_length)
    cut = [x[:FT_FULL.max_length] for x in ids]
    compile_model = device.type == "cuda" and not args.no_compile
    out = {"compile": compile_model, "rows": n_rows, "by_batch": []}
    for bs in (16, 32):
        steps_total = math.ceil(n_rows / bs)
        part = steps_total if args.tiny else max(warm + 8, int(steps_total * args.loop_fraction))
        with GpuUtilisation(device) as util:
            secs, steps, _ = train_timed(factory, ds, pad_collator, batch_size=bs, max_steps=part,
                                         grouped=True, bf16=bf16, device=device, warmup=min(warm, part // 4),
                                         out_dir=Path(args.work) / "bert")
        trainer = {"steps_timed": steps, "seconds_per_step": secs / steps, "gpu_utilisation_percent": util.mean,
                   "epoch_seconds": secs / steps * steps_total, "measured_whole_epoch": part == steps_total}
        fsecs, fsteps, fwall, futil, width = fast_loop_timed(factory, cut, labels, batch_size=bs, max_steps=steps_total,
                                                             bf16=bf16, device=device, warmup=min(warm, steps_total // 4),
                                                             compile_model=compile_model)
        fast = {"steps_timed": fsteps, "seconds_per_step": fsecs / fsteps, "gpu_utilisation_percent": futil,
                "epoch_seconds": fsecs / fsteps * steps_total, "epoch_wall_seconds_with_warmup_and_compile": fwall,
                "padded_tokens_per_row": width, "measured_whole_epoch": True}
        row = {"batch_size": bs, "steps_per_epoch": steps_total, "trainer": trainer, "fast": fast,
               "ratio_trainer_over_fast": trainer["epoch_seconds"] / fast["epoch_seconds"]}
        out["by_batch"].append(row)
        log(f"bert loops batch {bs}: Trainer {trainer['epoch_seconds']:.1f} s/epoch, fast {fast['epoch_seconds']:.1f} s/epoch "
            f"({fwall:.1f} s wall with warm-up{' and compile' if compile_model else ''}); ratio {row['ratio_trainer_over_fast']:.2f}"
            + (f"; GPU busy {trainer['gpu_utilisation_percent']:.0f}% vs {futil:.0f}%" if futil is not None
               and trainer["gpu_utilisation_percent"] is not None else ""))
    return out


def bench_bert(args, device) -> dict:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from analysis.bert.experiments import FT_FULL
    from analysis.models import cuda_bf16_native

    if args.tiny:
        config = BertConfig(vocab_size=2000, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, max_position_embeddings=512)
        n_rows, snippet_steps, sweep, cap = 320, 4, (64,), 64
    else:
        config = BertConfig()  # bert-base-uncased's architecture
        n_rows, snippet_steps, sweep, cap = args.bert_rows, args.snippet_steps, (128, 256), 512
    config.num_labels = 4

    def factory():
        torch.manual_seed(0)
        return BertForSequenceClassification(config).to(device)

    log(f"bert: {n_rows} synthetic rows")
    ids, labels, source = bert_rows(n_rows, 0, config.vocab_size, cap)
    bf16 = device.type == "cuda" and FT_FULL.mixed_precision and cuda_bf16_native()
    out = {"rows": n_rows, "length_source": source, "mean_tokens": float(np.mean([len(x) for x in ids])),
           "full_config": {"batch_size": FT_FULL.batch_size, "mixed_precision": FT_FULL.mixed_precision,
                           "group_by_length": FT_FULL.group_by_length, "max_length": FT_FULL.max_length}}
    tmp = Path(args.work) / "bert"
    warm = 2 if args.tiny else 10

    # the assignment snippet: fp32, batch 16, map-batch padding to 512 at most, random order
    ds = snippet_dataset(ids, labels, 512)
    secs, steps, tok = train_timed(factory, ds, stacked_collator, batch_size=16, max_steps=warm + snippet_steps,
                                   grouped=False, bf16=False, device=device, warmup=warm, out_dir=tmp)
    per_step = secs / steps
    out["snippet"] = {"batch_size": 16, "precision": "fp32", "padding": "longest row of each 1,000-row map batch",
                      "steps_timed": steps, "seconds_per_step": per_step, "padded_tokens_per_row": tok,
                      "epoch_seconds_extrapolated": per_step * math.ceil(n_rows / 16)}
    log(f"bert snippet: {per_step * 1000:.1f} ms/step -> {out['snippet']['epoch_seconds_extrapolated']:.0f} s/epoch (extrapolated)")

    # the project: the full profile's settings, one whole epoch
    ds = project_dataset(ids, labels, FT_FULL.max_length)
    epoch_steps = math.ceil(n_rows / FT_FULL.batch_size)
    warm_p = min(warm, epoch_steps // 4)
    secs, steps, tok = train_timed(factory, ds, pad_collator, batch_size=FT_FULL.batch_size, max_steps=epoch_steps,
                                   grouped=FT_FULL.group_by_length, bf16=bf16, device=device, warmup=warm_p, out_dir=tmp)
    per_step = secs / steps
    out["project"] = {"batch_size": FT_FULL.batch_size, "precision": "bf16 autocast" if bf16 else "fp32",
                      "padding": "each batch to its longest row", "group_by_length": FT_FULL.group_by_length,
                      "max_length": FT_FULL.max_length, "steps": epoch_steps, "steps_timed": steps,
                      "seconds_per_step": per_step, "padded_tokens_per_row": tok,
                      "epoch_seconds": per_step * epoch_steps, "measured_whole_epoch": True,
                      "epoch_wall_seconds_with_warmup": train_timed.last_runtime,
                      "note": "epoch_seconds: steady-state seconds per step x steps of the epoch (all steps run)"}
    log(f"bert project (batch {FT_FULL.batch_size}): {out['project']['epoch_seconds']:.1f} s/epoch")

    out["loops"] = bench_bert_loops(args, device, factory, ids, labels, bf16, warm)
    out["project_larger_batches"] = []
    for bs in sweep:
        if time.perf_counter() - T0 > args.budget_s * 0.6:
            log(f"bert: batch {bs} skipped (time budget)")
            continue
        steps_total = math.ceil(n_rows / bs)
        run = max(warm_p + 4, steps_total // 4)
        secs, steps, tok = train_timed(factory, ds, pad_collator, batch_size=bs, max_steps=run,
                                       grouped=FT_FULL.group_by_length, bf16=bf16, device=device, warmup=warm_p,
                                       out_dir=tmp)
        out["project_larger_batches"].append({"batch_size": bs, "steps_timed": steps, "seconds_per_step": secs / steps,
                                              "epoch_seconds_extrapolated": secs / steps * steps_total})
        log(f"bert project batch {bs}: {secs / steps * steps_total:.1f} s/epoch (extrapolated from {steps} steps)")
    out["speedup"] = out["snippet"]["epoch_seconds_extrapolated"] / out["project"]["epoch_seconds"]
    out["target_seconds"] = 15.0
    return out


# ------------------------------------------------------------------------------------ (b) SAM
N_STRATEGIES = 9  # the full profile's prompt strategies (a naive loop calls set_image for each)


def sam_prompts(rng, size: int, n: int):
    """``n`` prompts on a ``size`` px image: the mix of the full profile's strategies and robustness
    prompts (1, 2, 3, 6 points with labels; boxes; box + point)."""
    from analysis.sam.engine import Prompt

    out = []
    kinds = ["p1", "p2", "p3", "box", "boxpt", "p6"]
    for i in range(n):
        kind = kinds[i % len(kinds)]
        cx, cy = rng.uniform(0.25, 0.75, 2) * size
        box = np.array([cx - 0.15 * size, cy - 0.3 * size, cx + 0.15 * size, cy + 0.3 * size], np.float32)
        if kind.startswith("p"):
            k = int(kind[1:])
            pts = (np.array([[cx, cy]]) + rng.normal(0, 0.05 * size, (k, 2))).astype(np.float32)
            out.append(Prompt(points_xy=pts, labels=np.array([1] * (k - 1) + [0 if k > 2 else 1]), box_xyxy=None))
        elif kind == "box":
            out.append(Prompt(box_xyxy=box))
        else:
            out.append(Prompt(points_xy=np.array([[cx, cy]], np.float32), labels=np.array([1]), box_xyxy=box))
    return out


def bench_sam(args, device) -> dict:
    import torch

    from analysis.sam.engine import cached_predictor
    from analysis.models import cuda_bf16_native
    from analysis.sam.model import build_sam_arch

    if args.tiny:  # a tiny encoder at 256 px input (SAM's decoder): seconds on a CPU
        arch = dict(encoder_embed_dim=32, encoder_depth=2, encoder_num_heads=2, encoder_global_attn_indexes=[1],
                    image_size=256)
        n_images, n_prompts, naive_images, agree_images = 3, 6, 1, 2
    else:
        arch = dict(encoder_embed_dim=1280, encoder_depth=32, encoder_num_heads=16,
                    encoder_global_attn_indexes=[7, 15, 23, 31])  # build_sam_vit_h's, 1024 px
        n_images, n_prompts, naive_images, agree_images = args.sam_images, 31, args.sam_naive_images, 16
    log(f"sam: building {'ViT-H' if not args.tiny else 'tiny ViT'} with random weights on {device}")
    started = time.perf_counter()
    torch.manual_seed(0)
    with torch.device(device):
        sam = build_sam_arch(**arch)
    sam = sam.to(device).eval()
    sync(device)
    build_s = time.perf_counter() - started
    rng = np.random.default_rng(0)
    size = 256
    images = [np.repeat((rng.random((size, size)) * 255).astype(np.uint8)[..., None], 3, axis=2) for _ in range(n_images)]
    prompts = [sam_prompts(rng, size, n_prompts) for _ in range(n_images)]
    pred = cached_predictor(sam, "bench", use_cache=False)
    out = {"images": n_images, "prompts_per_image": n_prompts, "build_seconds": build_s,
           "encoder": "ViT-H (random weights)" if not args.tiny else "tiny ViT"}

    # naive: set_image per strategy, one predict per prompt, fp32
    with torch.inference_mode():
        pred.set_image(images[0])
        pred.predict(point_coords=np.array([[100.0, 100.0]]), point_labels=np.array([1]), multimask_output=True)
    sync(device)
    started = time.perf_counter()
    for i in range(naive_images):
        per_strategy = math.ceil(n_prompts / N_STRATEGIES)
        for s in range(N_STRATEGIES):
            pred.set_image(images[i])
            for p in prompts[i][s * per_strategy:(s + 1) * per_strategy]:
                pred.predict(point_coords=p.points_xy, point_labels=p.labels, box=p.box_xyxy, multimask_output=True)
    sync(device)
    naive_per_image = (time.perf_counter() - started) / naive_images
    out["naive"] = {"precision": "fp32", "set_image_per_strategy": N_STRATEGIES, "images_timed": naive_images,
                    "seconds_per_image": naive_per_image, "seconds_extrapolated": naive_per_image * n_images}
    log(f"sam naive: {naive_per_image:.2f} s/image -> {naive_per_image * n_images:.0f} s (extrapolated)")

    def embed_all(idx, bf16: bool, batch: int = 8):
        """Image features for ``idx``, the encoder run in batches (preprocessing as SamPredictor's)."""
        feats = []
        for start in range(0, len(idx), batch):
            xs = []
            for i in idx[start:start + batch]:
                x = pred.transform.apply_image(images[i])
                x = torch.as_tensor(x, device=device).permute(2, 0, 1).contiguous()[None]
                xs.append(sam.preprocess(x))
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                f = sam.image_encoder(torch.cat(xs))
            feats += list(f.float()[:, None])
        input_size = tuple(pred.transform.apply_image(images[0]).shape[:2])
        return feats, input_size

    def decode_all(feats, input_size, idx, keep: int):
        """Every image's prompts through the batched decoder; the masks of the first ``keep`` images
        are kept (for the agreement check; all 206 would be 1.7 GB of booleans)."""
        masks = []
        for n, (f, i) in enumerate(zip(feats, idx)):
            pred.reset_image()
            pred.features, pred.original_size, pred.input_size, pred.is_image_set = f, (size, size), input_size, True
            m, _ = pred.predict_batch(prompts[i])
            if n < keep:
                masks.append(m)
        return masks

    bf16 = device.type == "cuda" and cuda_bf16_native()
    idx = list(range(n_images))
    embed_all(idx[:2], bf16)  # warm-up
    sync(device)
    started = time.perf_counter()
    feats, input_size = embed_all(idx, bf16)
    sync(device)
    embed_s = time.perf_counter() - started
    started = time.perf_counter()
    masks_project = decode_all(feats, input_size, idx, keep=agree_images)
    sync(device)
    decode_s = time.perf_counter() - started
    out["project"] = {"encoder_precision": "bf16 autocast" if bf16 else "fp32", "embed_seconds": embed_s,
                      "decode_seconds": decode_s, "seconds": embed_s + decode_s, "decoder": "batched per image"}
    log(f"sam project: embed {embed_s:.1f} s + decode {decode_s:.1f} s")

    # agreement of the bf16 encoder's masks with the fp32 encoder's (same prompts, same decoder)
    sub = idx[:agree_images]
    feats32, _ = embed_all(sub, False)
    masks32 = decode_all(feats32, input_size, sub, keep=len(sub))
    equal, ious = [], []
    for a, b in zip(masks32, [masks_project[i] for i in sub]):
        equal.append(float((a == b).mean()))
        inter = (a & b).sum(axis=(-1, -2))
        union = (a | b).sum(axis=(-1, -2))
        ious += list(np.where(union > 0, inter / np.maximum(union, 1), 1.0).ravel())
    out["bf16_vs_fp32_masks"] = {"images": len(sub), "pixel_agreement": float(np.mean(equal)),
                                 "mask_iou_mean": float(np.mean(ious)), "mask_iou_min": float(np.min(ious)),
                                 "note": "random weights: logits sit near the threshold far more than a trained SAM's"}
    log(f"sam bf16 vs fp32: pixel agreement {np.mean(equal):.5f}, mask IoU mean {np.mean(ious):.4f}")
    out["speedup"] = out["naive"]["seconds_extrapolated"] / out["project"]["seconds"]
    out["target_seconds"] = 30.0
    return out


# ------------------------------------------------------------------------------------ (c) flan-t5
def bench_t5(args, device) -> dict:
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    from analysis.cot.config import CONFIGS
    from analysis.models import float32_head, pick_dtype

    full_batch = CONFIGS["full"].batch_size
    if args.tiny:
        config = T5Config(vocab_size=512, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                          num_heads=2, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                          decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
        n_prompts, new_tokens, single_timed = 6, 8, 2
    else:
        from analysis.models import _flan_t5_base_config

        config = _flan_t5_base_config()
        n_prompts, new_tokens, single_timed = 200, args.t5_new_tokens, args.t5_single_prompts
    dtype = pick_dtype(device)
    log(f"t5: building flan-t5-base architecture ({dtype}) with random weights")
    torch.manual_seed(0)
    with torch.device(device):
        model = T5ForConditionalGeneration(config)
    model = model.to(dtype).eval()
    float32_head(model)  # as models.load: logits in float32
    rng = np.random.default_rng(0)
    lengths = rng.integers(150, 260, size=n_prompts) if not args.tiny else rng.integers(10, 30, size=n_prompts)
    prompts = [rng.integers(5, config.vocab_size, size=int(k)).tolist() + [1] for k in lengths]
    order = np.argsort(lengths, kind="stable")  # as generate(): similar lengths together

    def run(batch_idx):
        width = max(len(prompts[i]) for i in batch_idx)
        ids = torch.zeros((len(batch_idx), width), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, i in enumerate(batch_idx):  # T5 pads on the right
            ids[r, :len(prompts[i])] = torch.tensor(prompts[i])
            mask[r, :len(prompts[i])] = 1
        with torch.inference_mode():
            return model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False,
                                  num_beams=1, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                  pad_token_id=0)

    run([0])  # warm-up
    sync(device)
    started = time.perf_counter()
    for i in range(single_timed):
        run([i])
    sync(device)
    single = (time.perf_counter() - started) / single_timed
    out = {"prompts": n_prompts, "new_tokens_each": new_tokens, "dtype": str(dtype).replace("torch.", ""),
           "prompt_tokens_mean": float(np.mean(lengths)),
           "one_at_a_time": {"prompts_timed": single_timed, "seconds_per_prompt": single,
                             "seconds_extrapolated": single * n_prompts}}
    log(f"t5 one at a time: {single:.2f} s/prompt -> {single * n_prompts:.0f} s (extrapolated)")
    out["batched"] = []
    for bs in sorted({full_batch, n_prompts}):
        sync(device)
        started = time.perf_counter()
        for start in range(0, n_prompts, bs):
            run([int(i) for i in order[start:start + bs]])
        sync(device)
        secs = time.perf_counter() - started
        out["batched"].append({"batch_size": bs, "seconds": secs, "is_full_config": bs == full_batch})
        log(f"t5 batched ({bs}): {secs:.1f} s")
    best = min(b["seconds"] for b in out["batched"])
    out["speedup"] = out["one_at_a_time"]["seconds_extrapolated"] / best
    out["target_seconds"] = 10.0
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="CPU, toy sizes (for the test suite)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "gpu.json"))
    parser.add_argument("--parts", default="bert,sam,t5")
    parser.add_argument("--bert-rows", type=int, default=120_000)
    parser.add_argument("--snippet-steps", type=int, default=150)
    parser.add_argument("--sam-images", type=int, default=206)
    parser.add_argument("--sam-naive-images", type=int, default=2)
    parser.add_argument("--t5-new-tokens", type=int, default=128)
    parser.add_argument("--t5-single-prompts", type=int, default=5)
    parser.add_argument("--loop-fraction", type=float, default=0.1,
                        help="part of an epoch the Trainer loop is timed on in the loop comparison (extrapolated)")
    parser.add_argument("--no-compile", action="store_true", help="the fast loop without torch.compile")
    parser.add_argument("--budget-s", type=float, default=270, help="optional parts are skipped past this")
    parser.add_argument("--work", default=None, help="scratch folder (Trainer output dirs)")
    args = parser.parse_args(argv)

    import tempfile

    import torch
    import transformers

    if args.tiny:
        torch.set_num_threads(1)  # a shared CPU: more threads wait on each other at every small op
    device = torch.device("cpu") if args.tiny or not torch.cuda.is_available() else torch.device("cuda")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 for the snippet's numbers
    transformers.logging.set_verbosity_error()
    result = {
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else f"cpu ({platform.processor() or platform.machine()})",
        "device_type": device.type, "torch": torch.__version__, "transformers": transformers.__version__,
        "python": platform.python_version(), "tiny": args.tiny,
        "note": "random weights of the real architectures, synthetic inputs with the real data's shapes",
    }
    log(f"device {result['device']}, torch {torch.__version__}, transformers {transformers.__version__}")
    with tempfile.TemporaryDirectory() as work:
        args.work = args.work or work
        parts = {"bert": bench_bert, "sam": bench_sam, "t5": bench_t5}
        for name in args.parts.split(","):
            result[name] = parts[name](args, device)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    result["total_seconds"] = time.perf_counter() - T0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    log(f"wrote {out}")
    summary = []
    if "bert" in result:
        summary.append(f"bert epoch: snippet {result['bert']['snippet']['epoch_seconds_extrapolated']:.0f} s (extrapolated), "
                       f"project {result['bert']['project']['epoch_seconds']:.1f} s (target 15)")
        for row in result["bert"]["loops"]["by_batch"]:
            summary.append(f"bert epoch at batch {row['batch_size']}: Trainer loop {row['trainer']['epoch_seconds']:.1f} s, "
                           f"fast loop {row['fast']['epoch_seconds']:.1f} s (x{row['ratio_trainer_over_fast']:.1f})")
    if "sam" in result:
        summary.append(f"sam {result['sam']['images']} images: naive {result['sam']['naive']['seconds_extrapolated']:.0f} s "
                       f"(extrapolated), project {result['sam']['project']['seconds']:.1f} s (target 30)")
    if "t5" in result:
        best = min(result["t5"]["batched"], key=lambda b: b["seconds"])
        summary.append(f"flan-t5 {result['t5']['prompts']} prompts: one at a time {result['t5']['one_at_a_time']['seconds_extrapolated']:.0f} s "
                       f"(extrapolated), batched {best['seconds']:.1f} s at batch {best['batch_size']} (target 10)")
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
