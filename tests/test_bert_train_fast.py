"""The fast fine-tuning loop of one CUDA GPU (analysis/bert/train_fast.py), exercised on CPU.

CUDA-only choices (bf16 autocast, fused AdamW, torch.compile) are off on CPU; what is tested is the
part that decides results: the batches (tensors cut to each batch's longest row), their order,
the mask, the schedule, the log history's shape, checkpoints and resuming, and the loop selection
(the Trainer stays the loop on CPU, so stored CPU results do not change).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.bert import train as T
from analysis.bert import train_fast as F
from analysis.bert.config import FineTuneConfig


def _tiny_bert(seed: int = 0):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    return BertForSequenceClassification(BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=1,
                                                    num_attention_heads=2, intermediate_size=37, num_labels=4))


def _rows(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = [[101] + rng.integers(200, 300, size=int(k)).tolist() + [102] for k in rng.integers(1, 40, size=n)]
    return ids, rng.integers(0, 4, size=n)


def test_length_grouped_batches_cover_every_row_once_and_cut_padding():
    lengths = np.random.default_rng(1).integers(5, 128, size=1000)
    batches = F.length_grouped_batches(lengths, 16, seed=42, epoch=0)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000)) and len(batches) == 63
    assert [b.tolist() for b in batches] == [b.tolist() for b in F.length_grouped_batches(lengths, 16, 42, 0)]
    other = F.length_grouped_batches(lengths, 16, 42, 1)
    assert [b.tolist() for b in other] != [b.tolist() for b in batches]  # a new order each epoch
    padded = np.mean([lengths[b].max() for b in batches])
    random_batches = np.array_split(np.random.default_rng(0).permutation(1000), 63)
    assert padded < 0.8 * np.mean([lengths[b].max() for b in random_batches])


def test_batch_slices_give_the_collators_logits():
    """A batch cut from the padded matrix (width rounded up to 8, mask from the lengths) gives the
    model the same logits as the Trainer's collator batch padded to its longest row."""
    from transformers import DataCollatorWithPadding

    from analysis.models import load_tokenizer

    tok = load_tokenizer("minilm_l6")
    ids, labels = _rows(12)
    data = F.TokenTensors.from_lists(ids, labels)
    idx_np = np.array([3, 7, 1, 10])
    batch = data.batch(torch.as_tensor(idx_np), data.lengths.numpy()[idx_np])
    assert batch["input_ids"].shape[1] % F.PAD_MULTIPLE == 0
    assert batch["attention_mask"].sum(1).tolist() == [len(ids[i]) for i in idx_np]
    ref = DataCollatorWithPadding(tok)([{"input_ids": ids[i], "label": int(labels[i])} for i in idx_np])
    model = _tiny_bert().eval()
    with torch.no_grad():
        got = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        want = model(input_ids=ref["input_ids"], attention_mask=ref["attention_mask"]).logits
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert batch["labels"].tolist() == ref["labels"].tolist()


def test_loop_learns_logs_like_the_trainer_and_resumes(tmp_path):
    ids, _ = _rows(96)
    labels = np.array([min(len(x) // 11, 3) for x in ids])  # learnable: the class is the length band
    train, val = F.TokenTensors.from_lists(ids[:80], labels[:80]), F.TokenTensors.from_lists(ids[80:], labels[80:])
    kw = dict(device=torch.device("cpu"), epochs=3, batch_size=8, learning_rate=1e-3, eval_steps=10, logging_steps=5,
              eval_batch_size=16, compile_model=False)
    full = F.train_loop(_tiny_bert(), train, val, **kw)
    assert full.global_step == 30 and full.precision == "fp32" and not full.compiled
    evals = [e for e in full.log_history if "eval_loss" in e]
    assert [e["step"] for e in evals] == [0, 10, 20, 30]
    assert {"eval_loss", "eval_accuracy", "eval_macro_f1", "epoch", "step"} <= set(evals[-1])
    losses = [e for e in full.log_history if "loss" in e]
    assert [e["step"] for e in losses] == [5, 10, 15, 20, 25, 30] and losses[-1]["epoch"] == 3.0
    assert losses[-1]["learning_rate"] == pytest.approx(0.0, abs=1e-12)  # linear decay to 0
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"]

    # interrupted after step 13: the checkpoint of step 10 is resumed, the history continues
    ckpt = tmp_path / "ckpt"

    def interrupt(step):
        if step == 13:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        F.train_loop(_tiny_bert(), train, val, checkpoint_dir=ckpt, on_step=interrupt, **kw)
    assert (ckpt / "state.pt").is_file()
    resumed = F.train_loop(_tiny_bert(seed=5), train, val, checkpoint_dir=ckpt, **kw)
    assert resumed.resumed_from == "ckpt/step-10" and resumed.global_step == 30
    assert [e["step"] for e in resumed.log_history if "eval_loss" in e] == [0, 10, 20, 30]
    # the first 10 steps are the uninterrupted run's (same seed, same batches)
    assert resumed.log_history[:4] == full.log_history[:4]


def test_finetune_selects_the_loop_and_writes_the_trainers_layout(tmp_path, monkeypatch, shared_data):
    monkeypatch.setenv("ANALYSIS_ARTIFACTS_DIR", str(tmp_path))
    monkeypatch.delenv(F.FAST_ENV, raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not F.use_fast_loop(torch.device("cpu")) and F.use_fast_loop(torch.device("cuda"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert not F.use_fast_loop(torch.device("cuda"))  # DDP: the Trainer
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.setenv(F.FAST_ENV, "1")
    cfg = FineTuneConfig(limit_train=48, n_validation=16, limit_test=16, max_length=32, batch_size=8,
                         eval_steps=2, logging_steps=1)
    final = T.finetune(cfg)
    state = T.train_state(final)
    assert state["loop"] == "fast" and state["global_step"] == 4 and state["resumed_from"] is None
    assert state["n_train"] == 32 and state["n_validation"] == 16 and state["bf16"] is False
    assert T._weights_intact(final) and not (T.model_dir(cfg) / F.CHECKPOINT_DIR).exists()
    model = T.load_finetuned(final, device="cpu")
    assert model.config.num_labels == 4
    curve = [e for e in T.dedupe_log_history(state["log_history"]) if "eval_loss" in e]
    assert [e["step"] for e in curve] == [0, 2, 4]
    assert T.finetune(cfg) == final  # reused
