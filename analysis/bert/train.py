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
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import agnews
from ..models import cuda_bf16_native, hf_source, load_tokenizer, pick_device
from ..paths import artifacts_dir
from ..store import canonical_json, sha256_file
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
    from ..models import identity

    payload = {"cfg": cfg, "data": agnews.fingerprint(cfg.source), "v": TRAIN_VERSION}
    if identity(cfg.model):  # hub models: their pinned commit (offline models: folder unchanged)
        payload["weights"] = identity(cfg.model)
    digest = hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:12]
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
    bf16 = cuda_bf16_native()
    return {"bf16": bf16, "fp16": not bf16}


def _distributed_cpu_flags() -> dict:
    """A distributed launch without GPUs (tests; CPU clusters): DDP over gloo on CPU processes.
    Nothing for a single process or for GPUs (accelerate picks NCCL there)."""
    import os

    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
        return {"use_cpu": True, "ddp_backend": "gloo"}
    return {}


def _compute_metrics(eval_pred) -> dict:
    logits, labels = eval_pred
    preds = np.asarray(logits).argmax(-1)
    return {"accuracy": M.accuracy(labels, preds), "macro_f1": M.macro_f1(labels, preds, len(agnews.LABELS))}


def _evaluated_at(log_history: list[dict], step: int) -> bool:
    return any("eval_loss" in entry and entry.get("step") == step for entry in log_history)


def dedupe_log_history(log_history: list[dict]) -> list[dict]:
    """The log history with one evaluation per step (the first; later copies have the same model).

    Runs trained before the fix evaluated the final step twice (the Trainer, then ``evaluate()``):
    their ``train_state.json`` holds the last point twice, so the curve is read through this.
    """
    seen, out = set(), []
    for entry in log_history:
        if "eval_loss" in entry:
            if entry.get("step") in seen:
                continue
            seen.add(entry.get("step"))
        out.append(entry)
    return out


def _training_args(cfg: FineTuneConfig, root: Path):
    """The Trainer's arguments: the config's schedule, evaluation and checkpoint cadence, precision."""
    from transformers import TrainingArguments

    return TrainingArguments(
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
        **_distributed_cpu_flags(),
    )


def _classifier(cfg: FineTuneConfig):
    """The pre-trained encoder with a freshly initialised 4-class head (seeded), fp32 master weights."""
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification

    transformers.set_seed(cfg.seed)  # the classifier head's initialisation
    source = hf_source(cfg.model)
    return AutoModelForSequenceClassification.from_pretrained(
        source.path, **source.kwargs(), num_labels=len(agnews.LABELS),
        id2label=dict(enumerate(agnews.LABELS)), label2id={l: i for i, l in enumerate(agnews.LABELS)},
        dtype=torch.float32,  # master weights fp32; autocast does the bf16/fp16 part
    )


def _save_final(trainer, tokenizer, final: Path, cfg: FineTuneConfig, *, result, initial, checkpoints,
                n_train: int, n_validation: int) -> None:
    """Write the fine-tuned weights, the tokenizer and ``STATE_FILE`` (curve, timing, device) to ``final``."""
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
        "n_train": n_train, "n_validation": n_validation,
        "device": str(pick_device()), **_precision_flags(cfg),
        "config": dataclasses.asdict(cfg),
    }
    world = trainer.args.world_size
    if world > 1:
        state["n_processes"] = world  # the effective batch is n_processes x batch_size
    state["weights"] = _weight_digests(final)  # checked before the weights are reused (_weights_intact)
    (final / STATE_FILE).write_text(json.dumps(state, indent=1, default=str))


def _weight_digests(final: Path) -> dict[str, list]:
    """``{file: [bytes, sha256]}`` of the saved weight files (``*.safetensors``, ``*.bin``)."""
    return {p.name: [p.stat().st_size, sha256_file(p)] for p in sorted(Path(final).iterdir())
            if p.suffix in (".safetensors", ".bin")}


def _weights_intact(final: Path) -> bool:
    """Whether the weight files in ``final`` are the ones saved (sizes and sha256 in the state file).
    States written before the digests were recorded name none: their safetensors files must at least
    read whole (a truncated one fails its own header check), and some weight file must exist."""
    recorded = train_state(final).get("weights")
    if recorded is not None:
        return _weight_digests(final) == {k: list(v) for k, v in recorded.items()}
    from safetensors import safe_open

    files = sorted(Path(final).glob("*.safetensors"))
    try:
        for path in files:
            with safe_open(str(path), framework="pt") as f:
                for name in f.keys():
                    f.get_slice(name)  # the header's offsets must lie inside the file
    except Exception:  # noqa: BLE001 - any failure to read means the file is not the one saved
        return False
    return bool(files) or any(Path(final).glob("*.bin"))


def finetune(cfg: FineTuneConfig, callbacks: list | None = None) -> Path:
    """Fine-tune (or resume, or reuse) and return the ``final/`` folder with model + tokenizer.

    Finished weights are reused; an interrupted run resumes from its last checkpoint. On a single
    CUDA GPU the loop is ``train_fast.finetune_fast`` (tensors on the GPU, length-bucketed batches,
    ``torch.compile``); on CPU, MPS and under DDP it is the Trainer below.
    """
    from transformers import DataCollatorWithPadding, Trainer

    quiet_transformers()
    root = model_dir(cfg)
    final = root / "final"
    if (final / STATE_FILE).exists():
        if _weights_intact(final):
            return final
        # a truncated or replaced weight file: never reused; train again (from the last checkpoint if any)
        print(f"finetune: {final} holds weights that differ from those saved (size or sha256); training again",
              file=sys.stderr)
        shutil.rmtree(final)
    from .train_fast import finetune_fast, use_fast_loop

    device = pick_device()
    if use_fast_loop(device):  # one CUDA GPU: tensors on the GPU, no Trainer (CPU keeps the Trainer loop)
        train_df, val_df, _ = load_splits(cfg)
        return finetune_fast(cfg, root, final, device, train_df, val_df, _classifier(cfg), _weight_digests, STATE_FILE)
    train, val, _ = load_splits(cfg)
    tokenizer = load_tokenizer(cfg.model)
    train_ds = tokenize_frame(train, tokenizer, cfg.max_length)
    val_ds = tokenize_frame(val, tokenizer, cfg.max_length)
    trainer = Trainer(
        model=_classifier(cfg),
        args=_training_args(cfg, root),
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
    if not _evaluated_at(trainer.state.log_history, trainer.state.global_step):
        # transformers >= 5 evaluates at the final step itself (eval_strategy="steps"); older
        # versions do not when it is not a multiple of eval_steps: then this is the curve's last point
        trainer.evaluate()
    if trainer.is_world_process_zero():  # one copy of the weights and the state, by the main process
        _save_final(trainer, tokenizer, final, cfg, result=result, initial=initial, checkpoints=checkpoints,
                    n_train=len(train), n_validation=len(val))
    if trainer.args.world_size > 1:  # DDP under torchrun / accelerate launch, one process per GPU
        trainer.accelerator.wait_for_everyone()  # the other processes read final/ after this
    return final


def is_main_process() -> bool:
    """False in the non-main processes of a distributed launch (torchrun / accelerate set ``RANK``)."""
    import os

    return int(os.environ.get("RANK", "0")) == 0


def leave_to_main_process(what: str) -> None:
    """End a non-main process of a distributed launch once training is done: the main process
    evaluates and stores the one result (the store never sees a second writer)."""
    import os

    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    except Exception:  # noqa: BLE001 - leaving anyway
        pass
    print(f"process {os.environ.get('RANK')}: {what} done; the main process evaluates and stores the run",
          file=sys.stderr)
    raise SystemExit(0)


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
        autocast_dtype = torch.bfloat16 if cuda_bf16_native() else torch.float16
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


def main(argv=None) -> int:
    """Fine-tune ``bert_finetune``'s config on every process of a distributed launch, then store
    its run from the main process only::

        torchrun --nproc_per_node 4 -m analysis.bert.train --profile full
        accelerate launch --num_processes 4 -m analysis.bert.train --profile full

    Every process trains (DDP: each on its share of every batch); the main process saves the
    weights, the others end after training, and the main process then evaluates on the test split
    and stores the one run through the result store, as ``python -m analysis run bert_finetune``
    would (it reuses the weights just trained).
    """
    import argparse

    from ..experiments import get, get_or_run
    from ..profiles import PROFILE_ENV, active_profile

    parser = argparse.ArgumentParser(prog="python -m analysis.bert.train", description=main.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=None, help="experiment profile (default: $QUARTO_PROFILE or offline)")
    args = parser.parse_args(argv)
    profile = active_profile(args.profile)
    import os

    os.environ[PROFILE_ENV] = profile
    cfg = get("bert_finetune").config(profile)
    finetune(cfg)
    if not is_main_process():
        leave_to_main_process("training")
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()  # the rest is single-process work
    except Exception:  # noqa: BLE001
        pass
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK", "ROLE_WORLD_SIZE"):
        os.environ.pop(var, None)
    run = get_or_run("bert_finetune", profile)
    print(f"bert_finetune [{profile}] {run.key}: stored -> {run.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
