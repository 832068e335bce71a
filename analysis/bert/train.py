"""Fine-tuning an encoder on AG News with the Trainer API, resumable, and batched evaluation.

Layout under ``artifacts_dir()/bert/<hash>/`` (git-ignored; ``<hash>`` covers config and data):
``checkpoints/checkpoint-<step>/`` (Trainer checkpoints, the last kept, for resuming an interrupted
run) and ``final/`` (``save_pretrained`` model + tokenizer, and ``train_state.json`` with the log
history, written last: its presence means training finished).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import agnews
from ..models import hf_source, load_tokenizer, pick_device
from ..paths import artifacts_dir
from ..store import canonical_json
from . import metrics as M
from .config import FineTuneConfig

TRAIN_VERSION = "1"  # bump when training code changes what the weights are
STATE_FILE = "train_state.json"


def quiet_transformers() -> None:
    """No load reports or progress bars from transformers inside a rendered chapter."""
    import transformers

    transformers.logging.set_verbosity_error()


def _in_kernel() -> bool:
    return "ipykernel" in sys.modules


def model_dir(cfg: FineTuneConfig) -> Path:
    """Where this config's weights live (a hash of config, data and training-code version)."""
    digest = hashlib.sha256(
        canonical_json({"cfg": cfg, "data": agnews.fingerprint(cfg.source), "v": TRAIN_VERSION}).encode()
    ).hexdigest()[:12]
    return artifacts_dir() / "bert" / f"{cfg.model}-{digest}"


def load_splits(cfg: FineTuneConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, validation, test) frames; validation is a stratified hold-out of train."""
    train = agnews.load("train", cfg.source, cfg.limit_train, cfg.seed)
    test = agnews.load("test", cfg.source, cfg.limit_test, cfg.seed)
    train, val = agnews.train_validation_split(train, cfg.n_validation, cfg.seed)
    return train, val, test


def tokenize_frame(df: pd.DataFrame, tokenizer, max_length: int):
    """A ``datasets.Dataset`` with input_ids, attention_mask, label and ``length`` (for length grouping).

    No padding here: the data collator pads each batch to its own longest row (dynamic padding).
    """
    import datasets

    ds = datasets.Dataset.from_pandas(df[["text", "label"]].reset_index(drop=True), preserve_index=False)

    def encode(batch):
        enc = tokenizer(batch["text"], truncation=True, max_length=max_length)
        enc["length"] = [len(ids) for ids in enc["input_ids"]]
        return enc

    return ds.map(encode, batched=True, remove_columns=["text"], desc=None)


def _precision_flags(cfg: FineTuneConfig) -> dict:
    """bf16 where the GPU supports it, else fp16 on CUDA, else fp32 (CPU, MPS)."""
    import torch

    if not cfg.mixed_precision or not torch.cuda.is_available():
        return {"bf16": False, "fp16": False}
    bf16 = torch.cuda.is_bf16_supported()
    return {"bf16": bf16, "fp16": not bf16}


def _compute_metrics(eval_pred) -> dict:
    logits, labels = eval_pred
    preds = np.asarray(logits).argmax(-1)
    return {"accuracy": M.accuracy(labels, preds), "macro_f1": M.macro_f1(labels, preds, len(agnews.LABELS))}


def finetune(cfg: FineTuneConfig, callbacks: list | None = None) -> Path:
    """Fine-tune (or resume, or reuse) and return the ``final/`` folder with model + tokenizer.

    Finished weights are reused; an interrupted run resumes from its last checkpoint.
    """
    import torch
    import transformers
    from transformers import (AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer,
                              TrainingArguments)

    quiet_transformers()
    root = model_dir(cfg)
    final = root / "final"
    if (final / STATE_FILE).exists():
        return final
    train, val, _ = load_splits(cfg)
    tokenizer = load_tokenizer(cfg.model)
    train_ds = tokenize_frame(train, tokenizer, cfg.max_length)
    val_ds = tokenize_frame(val, tokenizer, cfg.max_length)

    transformers.set_seed(cfg.seed)  # the classifier head's initialisation
    source = hf_source(cfg.model)
    model = AutoModelForSequenceClassification.from_pretrained(
        source.path, **source.kwargs(), num_labels=len(agnews.LABELS),
        id2label=dict(enumerate(agnews.LABELS)), label2id={l: i for i, l in enumerate(agnews.LABELS)},
        dtype=torch.float32,  # master weights fp32; autocast does the bf16/fp16 part
    )
    args = TrainingArguments(
        output_dir=str(root / "checkpoints"),
        eval_strategy="steps",
        eval_steps=cfg.eval_steps,
        save_strategy="steps",
        save_steps=cfg.eval_steps,
        save_total_limit=1,  # the latest checkpoint is all a resume needs
        logging_strategy="steps",
        logging_steps=cfg.logging_steps,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio of the total steps in transformers 5
        lr_scheduler_type="linear",
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        length_column_name="length",
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to="none",
        disable_tqdm=_in_kernel(),
        dataloader_num_workers=0,
        **_precision_flags(cfg),
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        data_collator=DataCollatorWithPadding(tokenizer),  # pads each batch to its longest row
        processing_class=tokenizer,
        compute_metrics=_compute_metrics,
        callbacks=callbacks,
    )
    checkpoints = sorted((root / "checkpoints").glob("checkpoint-*"))
    initial = None
    if not checkpoints:
        initial = trainer.evaluate()  # step 0: the untrained head, the curve's first point
    result = trainer.train(resume_from_checkpoint=bool(checkpoints) or None)
    if trainer.state.global_step % cfg.eval_steps:
        trainer.evaluate()  # the curve's last point at the final step
    final.mkdir(parents=True, exist_ok=True)
    trainer.model.save_pretrained(final)
    tokenizer.save_pretrained(final)
    history = list(trainer.state.log_history)
    if initial is not None:
        history.insert(0, {**initial, "step": 0, "epoch": 0.0})
    state = {
        "log_history": history,
        "train_runtime_s": result.metrics.get("train_runtime"),
        "train_samples_per_second": result.metrics.get("train_samples_per_second"),
        "global_step": trainer.state.global_step,
        "resumed_from": checkpoints[-1].name if checkpoints else None,
        "n_train": len(train), "n_validation": len(val),
        "device": str(pick_device()), **_precision_flags(cfg),
        "config": dataclasses.asdict(cfg),
    }
    (final / STATE_FILE).write_text(json.dumps(state, indent=1, default=str))
    return final


def train_state(final: Path) -> dict:
    return json.loads((Path(final) / STATE_FILE).read_text())


def load_finetuned(final: Path, *, eager: bool = False, device=None):
    """The fine-tuned classifier from ``final/`` (eager attention if attention maps are wanted)."""
    from transformers import AutoModelForSequenceClassification

    quiet_transformers()
    kwargs = {"attn_implementation": "eager"} if eager else {}
    model = AutoModelForSequenceClassification.from_pretrained(str(final), **kwargs)
    return model.to(device or pick_device()).eval()


def predict_logits(model, tokenizer, texts: list[str], *, max_length: int = 128, batch_size: int = 64,
                   mixed_precision: bool = True) -> np.ndarray:
    """Logits, shape (n_texts, n_labels), in the input order.

    Texts are sorted by length and batched, so each batch pads only to its own longest text.
    """
    import torch

    device = next(model.parameters()).device
    enc = tokenizer(list(texts), truncation=True, max_length=max_length)
    ids = enc["input_ids"]
    order = np.argsort([len(x) for x in ids], kind="stable")
    out = np.zeros((len(ids), model.config.num_labels), dtype=np.float32)
    autocast_dtype = None
    if mixed_precision and device.type == "cuda":
        autocast_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = tokenizer.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt").to(device)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                logits = model(**batch).logits
            out[idx] = logits.float().cpu().numpy()
    return out


def token_lengths(tokenizer, texts: list[str]) -> np.ndarray:
    """Untruncated token counts including [CLS] and [SEP], shape (n,)."""
    enc = tokenizer(list(texts), truncation=False)
    return np.array([len(x) for x in enc["input_ids"]], dtype=np.int32)
