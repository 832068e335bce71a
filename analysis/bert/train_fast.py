"""The fine-tuning loop for one CUDA GPU: no Trainer, no per-step Python collation.

The Trainer loop (``train.finetune`` on CPU, MPS and under DDP) is host-bound on a fast GPU: every
step it draws 16-32 Python lists, pads them in a collator and copies them over, and the GPU waits
(``bench/results/gpu.json``: samples/s grow with the batch size on an H100). Here:

- the texts are **tokenised once into tensors** (``TokenTensors``: one right-padded id matrix, the
  lengths and the labels), moved to the GPU once;
- each epoch's batches are **grouped by length** (a seeded shuffle, then sorted by length inside
  chunks of 50 batches, and the batch order shuffled: what ``group_by_length`` does) and each batch
  is a slice ``ids[idx, :width]`` of the matrix on the GPU, its width the batch's longest row
  rounded up to a multiple of 8 (tensor cores); the attention mask is ``arange(width) < length``;
- the model runs under bf16 (or fp16 with loss scaling) autocast with fp32 master weights, a fused
  AdamW and the Trainer's schedule (linear warm-up, linear decay; no weight decay on biases and
  LayerNorm weights), and optionally ``torch.compile`` (on by default on CUDA; shapes vary in the
  width only, so Dynamo's automatic dynamic shapes compile it about twice);
- losses stay on the GPU between logging points: one synchronisation per ``logging_steps``.

The result has the layout ``train.finetune`` writes (``final/`` with ``train_state.json``, the same
log-history entries), so every reader is unchanged; ``train_state.json`` says ``"loop": "fast"``.
Resumable: a checkpoint (weights, optimizer, schedule, scaler, step) is written atomically at every
evaluation into ``fast-checkpoint/``; an interrupted run continues from it, skipping the batches of
the epoch it had done (the batch order is a function of seed and epoch).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

PAD_MULTIPLE = 8  # batch widths rounded up to this (tensor-core friendly, fewer distinct shapes)
COMPILE_ENV = "ANALYSIS_TORCH_COMPILE"  # "0": no torch.compile in the fast loop
FAST_ENV = "ANALYSIS_FAST_FINETUNE"  # "0": the Trainer loop on CUDA too; "1": the fast loop on any device
CHECKPOINT_DIR = "fast-checkpoint"


@dataclasses.dataclass
class TokenTensors:
    """Token ids of a split, right-padded to the longest row (pad id 0), with lengths and labels."""

    ids: "torch.Tensor"  # (n, max_len) int64  # noqa: F821
    lengths: "torch.Tensor"  # (n,) int64  # noqa: F821
    labels: "torch.Tensor"  # (n,) int64  # noqa: F821

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @classmethod
    def from_lists(cls, ids: list[list[int]], labels, pad_id: int = 0) -> "TokenTensors":
        import torch

        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        width = int(lengths.max()) if len(ids) else 1
        matrix = np.full((len(ids), width), pad_id, dtype=np.int64)
        for r, row in enumerate(ids):  # once per data set, not per step
            matrix[r, :len(row)] = row
        return cls(torch.from_numpy(matrix), torch.from_numpy(lengths), torch.tensor(np.asarray(labels), dtype=torch.long))

    @classmethod
    def from_texts(cls, texts: list[str], labels, tokenizer, max_length: int) -> "TokenTensors":
        enc = tokenizer(list(texts), truncation=True, max_length=max_length)
        return cls.from_lists(enc["input_ids"], labels, pad_id=tokenizer.pad_token_id or 0)

    def to(self, device) -> "TokenTensors":
        return TokenTensors(self.ids.to(device), self.lengths.to(device), self.labels.to(device))

    def width(self, lengths_np: np.ndarray) -> int:
        """The padded width of a batch with these row lengths: the longest, rounded up to PAD_MULTIPLE."""
        return min(int(math.ceil(lengths_np.max() / PAD_MULTIPLE) * PAD_MULTIPLE), int(self.ids.shape[1]))

    def batch(self, idx, lengths_np: np.ndarray | None = None, width: int | None = None) -> dict:
        """The rows ``idx`` (a tensor on the data's device) cut to ``width`` (default: their longest
        row, rounded up; from ``lengths_np``, their lengths on the host)."""
        import torch

        width = width if width is not None else self.width(lengths_np)
        ids = self.ids[idx, :width]
        mask = (torch.arange(width, device=ids.device)[None, :] < self.lengths[idx][:, None]).long()
        return {"input_ids": ids, "attention_mask": mask, "labels": self.labels[idx]}


def length_grouped_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int,
                           chunk_batches: int = 50) -> list[np.ndarray]:
    """The epoch's batches: a seeded permutation, sorted by length (longest first) inside chunks
    of ``chunk_batches`` batches, cut into batches, whose order is then shuffled (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    chunk = batch_size * chunk_batches
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[np.argsort(-lengths[part], kind="stable")]
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    perm = rng.permutation(len(batches))
    return [batches[i] for i in perm]


def use_fast_loop(device) -> bool:
    """The fast loop on a single CUDA process (``$ANALYSIS_FAST_FINETUNE`` overrides: 0 never, 1 always);
    the Trainer on CPU and MPS (whose results stay those of the stored offline runs) and under DDP."""
    choice = os.environ.get(FAST_ENV, "").strip()
    if choice in {"0", "1"}:
        return choice == "1"
    return device.type == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) == 1


def _param_groups(model, weight_decay: float) -> list[dict]:
    """The Trainer's split: no weight decay on biases and normalisation weights."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if name.endswith("bias") or "norm" in name.lower() else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def autocast_dtype(device, mixed_precision: bool):
    """bf16 where the GPU computes it natively, else fp16 on CUDA; None (fp32) elsewhere."""
    import torch

    from ..models import cuda_bf16_native

    if not mixed_precision or device.type != "cuda":
        return None
    return torch.bfloat16 if cuda_bf16_native() else torch.float16


def evaluate(model, data: TokenTensors, batch_size: int, device, amp_dtype) -> dict:
    """eval_loss (mean cross-entropy), eval_accuracy and eval_macro_f1 on ``data`` (length-sorted batches)."""
    import torch

    from ..data import agnews
    from . import metrics as M

    lengths = data.lengths.cpu().numpy()
    order = np.argsort(lengths, kind="stable")
    preds = torch.empty(len(data), dtype=torch.long, device=data.ids.device)
    loss_sum = torch.zeros((), device=device, dtype=torch.float32)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx_np = order[start:start + batch_size]
            idx = torch.as_tensor(idx_np, device=data.ids.device)
            batch = data.batch(idx, lengths[idx_np])
            labels = batch.pop("labels")
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(**batch).logits.float()
            loss_sum += torch.nn.functional.cross_entropy(logits, labels, reduction="sum")
            preds[idx] = logits.argmax(-1)
    model.train(was_training)
    y, p = data.labels.cpu().numpy(), preds.cpu().numpy()
    return {"eval_loss": float(loss_sum) / max(len(data), 1), "eval_accuracy": M.accuracy(y, p),
            "eval_macro_f1": M.macro_f1(y, p, len(agnews.LABELS))}


def _save_checkpoint(folder: Path, model, optimizer, scheduler, scaler, step: int, log_history: list) -> None:
    import torch

    tmp = folder.with_name(folder.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None, "step": step,
                "log_history": log_history}, tmp / "state.pt")
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    if old.exists():
        import shutil

        shutil.rmtree(old)


def _load_checkpoint(folder: Path):
    import torch

    for candidate in (folder, folder.with_name(folder.name + ".old")):  # .old: interrupted while replacing
        if (candidate / "state.pt").is_file():
            try:
                return torch.load(candidate / "state.pt", map_location="cpu", weights_only=False), candidate
            except (OSError, RuntimeError, EOFError):  # a truncated file: the other copy, or from scratch
                continue
    return None, None


@dataclasses.dataclass
class LoopResult:
    log_history: list
    global_step: int
    train_runtime_s: float
    train_samples_per_second: float
    resumed_from: str | None
    compiled: bool
    precision: str


def train_loop(model, train: TokenTensors, val: TokenTensors | None, *, device, epochs: float, batch_size: int,
               learning_rate: float, weight_decay: float = 0.01, warmup_ratio: float = 0.06, seed: int = 42,
               mixed_precision: bool = True, eval_steps: int | None = None, eval_batch_size: int = 256,
               logging_steps: int = 100, compile_model: bool | None = None, checkpoint_dir: Path | None = None,
               max_steps: int | None = None, on_step: Callable[[int], None] | None = None) -> LoopResult:
    """Train ``model`` (fp32 master weights, on ``device``) on ``train``; evaluate on ``val`` every
    ``eval_steps`` and at the end. ``max_steps`` stops early (benchmarks); ``on_step(step)`` is
    called after every optimizer step (benchmarks' clocks)."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    torch.manual_seed(seed)
    lengths = train.lengths.cpu().numpy()
    train = train.to(device)
    val = val.to(device) if val is not None else None
    steps_per_epoch = math.ceil(len(train) / batch_size)
    total = math.ceil(epochs * steps_per_epoch)
    stop = min(total, max_steps) if max_steps else total
    warmup = math.ceil(total * warmup_ratio) if warmup_ratio < 1 else int(warmup_ratio)
    fused = device.type == "cuda"
    optimizer = torch.optim.AdamW(_param_groups(model, weight_decay), lr=learning_rate, betas=(0.9, 0.999),
                                  eps=1e-8, **({"fused": True} if fused else {}))
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)
    amp_dtype = autocast_dtype(device, mixed_precision)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    if compile_model is None:
        compile_model = device.type == "cuda" and os.environ.get(COMPILE_ENV, "1") != "0"
    forward = torch.compile(model) if compile_model else model  # shares the parameters with ``model``

    step, log_history, resumed_from = 0, [], None
    if checkpoint_dir is not None:
        state, where = _load_checkpoint(checkpoint_dir)
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            if scaler is not None and state["scaler"] is not None:
                scaler.load_state_dict(state["scaler"])
            step, log_history, resumed_from = state["step"], state["log_history"], f"{where.name}/step-{state['step']}"
    if val is not None and step == 0:
        log_history.append({**evaluate(model, val, eval_batch_size, device, amp_dtype), "epoch": 0.0, "step": 0})

    model.train()
    loss_acc = torch.zeros((), device=device, dtype=torch.float32)
    n_acc, seen, started = 0, 0, time.perf_counter()
    first_step = step
    while step < stop:
        epoch = step // steps_per_epoch
        batches = length_grouped_batches(lengths, batch_size, seed, epoch)
        # the epoch's order on the device once, and each batch's width on the host: a step only slices
        order = torch.as_tensor(np.concatenate(batches), device=device)
        bounds = np.cumsum([0] + [len(b) for b in batches])
        widths = [train.width(lengths[b]) for b in batches]
        for i in range(step - epoch * steps_per_epoch, len(batches)):
            if step >= stop:
                break
            idx_np = batches[i]
            batch = train.batch(order[bounds[i]:bounds[i + 1]], width=widths[i])
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss = forward(**batch).loss
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # the Trainer's max_grad_norm
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_acc += loss.detach().float()
            n_acc += 1
            seen += len(idx_np)
            step += 1
            if on_step is not None:
                on_step(step)
            at_epoch = round(step / steps_per_epoch, 4)
            if step % logging_steps == 0 or step == stop:
                log_history.append({"loss": round(float(loss_acc) / n_acc, 4),  # the one sync per logging interval
                                    "learning_rate": scheduler.get_last_lr()[0], "epoch": at_epoch, "step": step})
                loss_acc.zero_()
                n_acc = 0
            if val is not None and ((eval_steps and step % eval_steps == 0) or step == stop):
                log_history.append({**evaluate(model, val, eval_batch_size, device, amp_dtype),
                                    "epoch": at_epoch, "step": step})
                if checkpoint_dir is not None and step < stop:
                    _save_checkpoint(checkpoint_dir, model, optimizer, scheduler, scaler, step, log_history)
    if device.type == "cuda":
        torch.cuda.synchronize()
    runtime = time.perf_counter() - started
    precision = {None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}[amp_dtype]
    return LoopResult(log_history, step, runtime, seen / runtime if runtime > 0 and step > first_step else 0.0,
                      resumed_from, bool(compile_model), precision)


def finetune_fast(cfg, root: Path, final: Path, device, train_df, val_df, model, weight_digests,
                  state_file: str) -> Path:
    """``train.finetune`` for one CUDA GPU: the same inputs and outputs, this module's loop.
    ``train.finetune`` hands in its splits, its fresh classifier, its weight-digest function and its
    state file name (this module does not import ``train``: no import circle)."""
    import json

    import torch

    from ..data import agnews
    from ..models import load_tokenizer

    tokenizer = load_tokenizer(cfg.model)
    train = TokenTensors.from_texts(train_df["text"].tolist(), train_df["label"].to_numpy(), tokenizer, cfg.max_length)
    val = TokenTensors.from_texts(val_df["text"].tolist(), val_df["label"].to_numpy(), tokenizer, cfg.max_length)
    model = model.to(device)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    try:
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True  # fp32 parts (head, loss) on tensor cores, while training
        result = train_loop(model, train, val, device=device, epochs=cfg.epochs, batch_size=cfg.batch_size,
                            learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay,
                            warmup_ratio=cfg.warmup_ratio, seed=cfg.seed, mixed_precision=cfg.mixed_precision,
                            eval_steps=cfg.eval_steps, eval_batch_size=cfg.eval_batch_size,
                            logging_steps=cfg.logging_steps, checkpoint_dir=root / CHECKPOINT_DIR)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32  # the experiments after this one compute as before
    final.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(final)
    tokenizer.save_pretrained(final)
    amp = autocast_dtype(device, cfg.mixed_precision)
    state = {
        "log_history": result.log_history,
        "train_runtime_s": result.train_runtime_s,
        "train_samples_per_second": result.train_samples_per_second,
        "global_step": result.global_step,
        "resumed_from": result.resumed_from,
        "n_train": len(train_df), "n_validation": len(val_df),
        "device": str(device), "bf16": amp == torch.bfloat16, "fp16": amp == torch.float16,
        "loop": "fast", "compiled": result.compiled,
        "config": dataclasses.asdict(cfg),
        "n_labels": len(agnews.LABELS),
    }
    state["weights"] = weight_digests(final)
    (final / state_file).write_text(json.dumps(state, indent=1, default=str))
    import shutil

    shutil.rmtree(root / CHECKPOINT_DIR, ignore_errors=True)
    return final
