"""Fine-tuning plumbing: dynamic padding, batched prediction order, and resuming an interrupted run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.bert import train as T
from analysis.bert.config import FineTuneConfig
from analysis.models import load_tokenizer


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("minilm_l6")


def test_tokenize_frame_leaves_padding_to_the_collator(tok):
    df = pd.DataFrame({"text": ["short", "a much longer headline " * 20], "label": [0, 3]})
    ds = T.tokenize_frame(df, tok, max_length=16)
    assert ds["length"] == [3, 16]  # truncated at max_length, not padded
    assert [len(x) for x in ds["input_ids"]] == [3, 16]
    assert ds["label"] == [0, 3]


def test_predict_logits_keeps_input_order(tok):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=37, num_labels=4)).eval()
    texts = ["one two three four five six", "a", "sports and more sports", "x y"]
    batched = T.predict_logits(model, tok, texts, batch_size=3)
    with torch.no_grad():
        single = np.stack([model(**tok(t, return_tensors="pt")).logits[0].numpy() for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_interrupted_training_resumes_from_last_checkpoint(tmp_path, monkeypatch):
    from transformers import TrainerCallback

    monkeypatch.setenv("ANALYSIS_ARTIFACTS_DIR", str(tmp_path))
    cfg = FineTuneConfig(limit_train=48, n_validation=16, limit_test=16, max_length=32, batch_size=8,
                         eval_steps=2, logging_steps=1)

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt("simulated interruption")

    with pytest.raises(KeyboardInterrupt):
        T.finetune(cfg, callbacks=[Interrupt()])
    root = T.model_dir(cfg)
    assert str(root).startswith(str(tmp_path))
    assert [p.name for p in (root / "checkpoints").glob("checkpoint-*")] == ["checkpoint-2"]
    final = T.finetune(cfg)
    state = T.train_state(final)
    assert state["resumed_from"] == "checkpoint-2" and state["global_step"] == 4
    assert (final / "model.safetensors").exists() and (final / "tokenizer.json").exists()
    assert T.finetune(cfg) == final  # finished weights are reused, not retrained
    model = T.load_finetuned(final, device=torch.device("cpu"))
    assert model.config.num_labels == 4 and model.config.id2label[3] == "Sci/Tech"
    # a truncated weight file is never reused: the fine-tuning runs again (from its checkpoint)
    weights = final / "model.safetensors"
    size = weights.stat().st_size
    weights.write_bytes(weights.read_bytes()[: size // 2])
    assert not T._weights_intact(final)
    again = T.finetune(cfg)
    assert again == final and weights.stat().st_size == size and T._weights_intact(again)
    T.load_finetuned(again, device=torch.device("cpu"))


def test_final_step_evaluated_once(tmp_path, monkeypatch):
    """The Trainer evaluates at the last step itself; the curve must not get that point twice."""
    monkeypatch.setenv("ANALYSIS_ARTIFACTS_DIR", str(tmp_path))
    cfg = FineTuneConfig(limit_train=56, n_validation=16, limit_test=16, max_length=16, batch_size=8,
                         eval_steps=2, logging_steps=1)  # 40 rows / 8 = 5 steps: 5 is not a multiple of 2
    state = T.train_state(T.finetune(cfg))
    assert state["global_step"] == 5
    eval_steps = [e["step"] for e in state["log_history"] if "eval_loss" in e]
    assert eval_steps == [0, 2, 4, 5]


def test_old_runs_with_a_duplicate_last_point_read_once():
    from analysis.bert.compute import curve_frame

    history = [{"eval_loss": 1.0, "step": 0}, {"loss": 0.9, "step": 1}, {"eval_loss": 0.8, "step": 1},
               {"eval_loss": 0.8, "step": 1}]
    assert [e.get("step") for e in T.dedupe_log_history(history)] == [0, 1, 1]  # train + one eval at step 1

    class Run:
        def table(self, name):
            return pd.DataFrame([{"step": 0, "kind": "validation", "loss": 1.0}, {"step": 1, "kind": "train", "loss": 0.9},
                                 {"step": 1, "kind": "validation", "loss": 0.8}, {"step": 1, "kind": "validation", "loss": 0.8}])

    curve = curve_frame(Run())
    assert list(zip(curve["step"], curve["kind"])) == [(0, "validation"), (1, "train"), (1, "validation")]
