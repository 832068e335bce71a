"""Few-shot label scoring on a tiny random causal LM: the cached path equals the naive one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.bert import fewshot as F
from analysis.models import load_tokenizer


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("minilm_l6")  # any tokenizer works for a random model; this one is local


@pytest.fixture(scope="module")
def tiny_lm():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=30522, n_positions=512, n_embd=32, n_layer=2, n_head=2)
    return GPT2LMHeadModel(cfg).eval()


def naive_logprobs(model, tok, prefix, queries, words):
    out = np.zeros((len(queries), len(words)))
    pre = tok.encode(prefix, add_special_tokens=False)
    for qi, q in enumerate(queries):
        q_ids = tok.encode(q, add_special_tokens=False)
        for li, w in enumerate(words):
            lab = tok.encode(w, add_special_tokens=False)
            ids = pre + q_ids + lab
            with torch.no_grad():
                logp = torch.log_softmax(model(torch.tensor([ids])).logits[0], -1)
            start = len(pre) + len(q_ids)
            out[qi, li] = sum(float(logp[start + j - 1, t]) for j, t in enumerate(lab))
    return out


@pytest.mark.parametrize("words", [(" World", " Sports", " Business", " Technology"),
                                   (" World", " Sports", " Business", " Sci/Tech")])
def test_cached_scoring_equals_naive(tiny_lm, tok, words):
    demos = pd.DataFrame({"text": ["Oil up", "Team wins", "Bank merges", "Chip launched"], "label": [2, 1, 2, 3]})
    prefix = F.build_prefix(demos, words, max_words=10)
    queries = [F.query_block(t) for t in ["Rain in Paris", "Goal!", ""]]
    fast = F.label_logprobs(tiny_lm, tok, prefix, queries, words)
    slow = naive_logprobs(tiny_lm, tok, prefix, queries, words)
    assert fast.shape == (3, 4)
    np.testing.assert_allclose(fast, slow, atol=1e-4)


def test_calibration_formula():
    lp = np.log(np.array([[0.6, 0.2, 0.1, 0.1], [0.4, 0.4, 0.1, 0.1]]))
    uniform = np.log(np.full((3, 4), 0.25))
    np.testing.assert_allclose(F.calibrated_probs(lp, uniform), F.label_probs(lp))
    cf = np.log(np.array([[0.7, 0.1, 0.1, 0.1]]))
    cal = F.calibrated_probs(lp, cf)
    expected = np.array([0.6 / 0.7, 0.2 / 0.1, 0.1 / 0.1, 0.1 / 0.1])
    np.testing.assert_allclose(cal[0], expected / expected.sum())
    assert cal[0].argmax() == 1  # the biased first label loses after calibration


def test_demonstrations_cover_every_class():
    train = pd.DataFrame({"text": [f"t{i}" for i in range(40)], "label": [i % 4 for i in range(40)]})
    demos = F.pick_demonstrations(train, 8, seed=3)
    assert sorted(demos["label"].tolist()) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert demos.equals(F.pick_demonstrations(train, 8, seed=3))
    assert F.cut_words("a b c d", 2) == "a b ..."


def test_dequantized_cache_is_verified_and_rebuilt_when_damaged(tmp_path, monkeypatch):
    """The fp32 copy of the SmolLM2 GGUF is written with a manifest; a damaged copy is rebuilt,
    not loaded (a truncated weights file would otherwise load as garbage or crash)."""
    from analysis import paths
    from analysis.bert import fewshot
    from analysis.models import verify_dequantized

    monkeypatch.setenv(paths.CACHE_DIR_ENV, str(tmp_path))
    fewshot.load_causal_lm("smollm2_135m")
    folder = tmp_path / "models" / "smollm2_135m-dequantized"
    assert verify_dequantized("smollm2_135m", folder, rehash=True)
    weights = next(folder.glob("*.safetensors"))
    size = weights.stat().st_size
    with open(weights, "r+b") as fh:
        fh.truncate(size // 2)
    assert not verify_dequantized("smollm2_135m", folder)
    model, _ = fewshot.load_causal_lm("smollm2_135m")
    assert weights.stat().st_size == size and verify_dequantized("smollm2_135m", folder, rehash=True)
    assert model.config.vocab_size > 0
