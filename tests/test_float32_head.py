"""Scores in float32: every language model ``models.load`` returns computes its logits in float32,
even with the network in bf16 (at GPT-2's logit scale bf16 steps are 0.5: scores would tie)."""

import numpy as np
import pytest
import torch

from fixtures import standins


@pytest.fixture(scope="module")
def standin_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("standins")
    standins.build_gpt2(root / "gpt2")
    standins.build_t5(root / "google" / "flan-t5-base")
    return root


def _blow_up(model):
    """Logits at GPT-2's scale (tens to hundreds): scale the final norm feeding the head."""
    norm = model.transformer.ln_f if hasattr(model, "transformer") else model.decoder.final_layer_norm
    with torch.no_grad():
        norm.weight.mul_(400)


def _last_logits(name, model, tok):
    ids = torch.tensor([tok.encode("Reasoning: the team won the match", add_special_tokens=False)])
    with torch.inference_mode():
        if name == "gpt2":
            return model(input_ids=ids).logits[0, -1]
        start = torch.tensor([[model.config.decoder_start_token_id]])
        return model(input_ids=ids, decoder_input_ids=start).logits[0, -1]


@pytest.mark.parametrize("name,folder", [("gpt2", "gpt2"), ("flan_t5_base", "google/flan-t5-base")])
def test_bf16_model_scores_in_float32(name, folder, standin_dir, monkeypatch):
    from transformers import AutoTokenizer

    from analysis import models

    monkeypatch.setenv(models.STANDINS_ENV, str(standin_dir))
    assert models.hf_source(name).path == str(standin_dir / folder)  # the registry resolves the stand-in
    net = models.load(name, device=torch.device("cpu"), dtype="bfloat16")
    tok = AutoTokenizer.from_pretrained(standin_dir / folder)
    assert next(net.get_input_embeddings().parameters()).dtype == torch.bfloat16  # the body stays bf16
    assert isinstance(net.get_output_embeddings(), models.Float32Head)
    _blow_up(net)
    logits = _last_logits(name, net, tok)
    assert logits.dtype == torch.float32
    assert float(logits.abs().max()) > 50  # the scale where bf16 rounds to 0.5 or coarser
    # the control: the same bf16 network with a bf16 head ties many scores; the float32 head does not
    head = net.get_output_embeddings()
    bf16_logits = torch.nn.functional.linear(_hidden(name, net, tok).to(torch.bfloat16), head.weight.to(torch.bfloat16))
    n = logits.numel()
    assert len(np.unique(bf16_logits.float().numpy())) < 0.9 * n
    assert len(np.unique(logits.numpy())) > 0.99 * n


def _hidden(name, net, tok):
    """The head's input for the last position (captured by a hook)."""
    seen = {}
    handle = net.get_output_embeddings().register_forward_hook(lambda m, args, out: seen.setdefault("h", args[0]))
    try:
        _last_logits(name, net, tok)
    finally:
        handle.remove()
    return seen["h"][0, -1]
