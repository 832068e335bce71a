"""Attention extraction (shapes, row sums, padding), statistics, and the un-fine-tuned checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.bert import attention as A
from analysis.models import hf_source, load_tokenizer

TEXTS = ["Stocks rally as oil prices fall.", "Red Sox win the World Series!", "A short one", ""]


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("minilm_l6")


def tiny_bert(implementation="eager", classifier=False):
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=37, num_labels=4)
    torch.manual_seed(0)
    cls = BertForSequenceClassification if classifier else BertModel
    return cls._from_config(cfg, attn_implementation=implementation).eval()


def test_shapes_row_sums_and_tokens(tok):
    maps = A.extract_attention(tiny_bert(), tok, TEXTS[:3], batch_size=2)
    for text, m in zip(TEXTS, maps):
        ids = tok(text)["input_ids"]
        assert m.tokens == tok.convert_ids_to_tokens(ids)
        assert m.tokens[0] == "[CLS]" and m.tokens[-1] == "[SEP]"
        assert m.attn_lhtt.shape == (2, 4, len(ids), len(ids))
        assert m.last_layer_htt.shape == (4, len(ids), len(ids))
        np.testing.assert_allclose(m.attn_lhtt.sum(-1), 1.0, atol=1e-5)


def test_padding_in_a_batch_does_not_change_maps(tok):
    model = tiny_bert()
    batched = A.extract_attention(model, tok, TEXTS[:3], batch_size=3)
    single = [A.extract_attention(model, tok, [t], batch_size=1)[0] for t in TEXTS[:3]]
    for b, s in zip(batched, single):
        np.testing.assert_allclose(b.attn_lhtt, s.attn_lhtt, atol=1e-5)


def test_sdpa_model_is_refused(tok):
    with pytest.raises(ValueError, match="eager"):
        A.extract_attention(tiny_bert("sdpa"), tok, TEXTS[:1])


def test_divergence_and_entropy_values():
    p = np.array([[1.0, 0, 0, 0], [0.25, 0.25, 0.25, 0.25]])
    q = np.array([[0, 1.0, 0, 0], [0.25, 0.25, 0.25, 0.25]])
    np.testing.assert_allclose(A.js_divergence_bits(p, q), [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(A.entropy_bits(p), [0.0, 2.0])
    from scipy.spatial.distance import jensenshannon

    r = np.random.default_rng(0).dirichlet(np.ones(7), size=2)
    assert A.js_divergence_bits(r[0], r[1]) == pytest.approx(jensenshannon(r[0], r[1], base=2) ** 2)


def test_sentence_stats_masses(tok):
    model = tiny_bert()
    m = A.extract_attention(model, tok, ["Oil, gas and coal."])[0]
    s = A.sentence_stats(m, m)
    assert s["js"].shape == (2, 4) and np.allclose(s["js"], 0)
    punct = [i for i, t in enumerate(m.tokens) if A.is_punct(t)]
    assert [m.tokens[i] for i in punct] == [",", "."]
    np.testing.assert_allclose(s["cls_pre"], m.attn_lhtt[..., 0].mean(-1), rtol=1e-6)
    np.testing.assert_allclose(s["punct_pre"], m.attn_lhtt[..., punct].sum(-1).mean(-1), rtol=1e-6)
    total = s["cls_pre"] + s["sep_pre"] + s["punct_pre"]
    assert (total <= 1 + 1e-6).all()


def test_is_punct():
    assert A.is_punct(",") and A.is_punct("##.") and A.is_punct("#")
    assert not A.is_punct("[CLS]") and not A.is_punct("a.") and not A.is_punct("##s")


def test_pretrained_is_the_unfinetuned_checkpoint(tmp_path, tok):
    """The 'pre-trained' model's weights are the package's file, bit for bit; a fine-tuned copy differs."""
    from safetensors.torch import load_file

    from analysis.bert.train import load_finetuned

    pre = A.load_pretrained_encoder("minilm_l6", device=torch.device("cpu"))
    shipped = load_file(f"{hf_source('minilm_l6').path}/model.safetensors")
    state = pre.state_dict()
    compared = 0
    for name, tensor in shipped.items():
        key = name.removeprefix("bert.")
        if key in state:
            assert torch.equal(state[key], tensor), key
            compared += 1
    assert compared >= 90  # every encoder tensor
    # a "fine-tuned" copy: same architecture, one layer's query weights moved, saved like finetune() saves
    from transformers import AutoModelForSequenceClassification

    ft = AutoModelForSequenceClassification.from_pretrained(hf_source("minilm_l6").path, num_labels=4)
    with torch.no_grad():
        ft.bert.encoder.layer[-1].attention.self.query.weight.mul_(3.0)
    ft.save_pretrained(tmp_path)
    loaded = load_finetuned(tmp_path, eager=True, device=torch.device("cpu"))
    assert not torch.equal(loaded.bert.encoder.layer[-1].attention.self.query.weight,
                           pre.encoder.layer[-1].attention.self.query.weight)
    a = A.extract_attention(pre, tok, TEXTS[:2])
    b = A.extract_attention(loaded, tok, TEXTS[:2])
    s = A.sentence_stats(a[0], b[0])
    assert np.allclose(s["js"][:-1], 0, atol=1e-6)  # earlier layers untouched
    assert s["js"][-1].mean() > 1e-3  # the moved layer's attention changed
