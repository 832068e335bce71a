"""Attention maps of a BERT encoder: extraction and summary statistics.

``output_attentions=True`` only returns maps with ``attn_implementation="eager"`` (the fused SDPA
and flash kernels never materialise them), so every model here is loaded eager.
"""

from __future__ import annotations

import dataclasses
import string

import numpy as np

from ..models import hf_source, pick_device

SPECIAL = ("[CLS]", "[SEP]")


@dataclasses.dataclass
class AttentionMap:
    """One sentence: ``tokens`` (T WordPiece strings incl. [CLS]/[SEP]) and ``attn_lhtt`` (layers, heads, T, T).

    Row ``q`` of ``attn_lhtt[l, h]`` is query token q's distribution over key tokens (sums to 1).
    """

    tokens: list[str]
    attn_lhtt: np.ndarray

    @property
    def last_layer_htt(self) -> np.ndarray:
        return self.attn_lhtt[-1]


def load_pretrained_encoder(model_name: str, device=None):
    """The un-fine-tuned checkpoint (``AutoModel``: encoder only, no classifier head), eager attention."""
    from transformers import AutoModel

    from .train import quiet_transformers

    quiet_transformers()
    source = hf_source(model_name)
    model = AutoModel.from_pretrained(source.path, **source.kwargs(), attn_implementation="eager")
    return model.to(device or pick_device()).eval()


def extract_attention(model, tokenizer, texts: list[str], *, max_length: int = 128,
                      batch_size: int = 16) -> list[AttentionMap]:
    """Attention of every layer and head for each text, unpadded (each map is T x T for its own T).

    Works with an encoder (``AutoModel``) or a classifier on top of one. Texts are batched by
    length; padded keys get zero weight from the mask, so slicing off padding keeps rows summing to 1.
    """
    import torch

    if getattr(model.config, "_attn_implementation", "eager") != "eager":
        raise ValueError("attention maps need attn_implementation='eager' (SDPA/flash return none); "
                         "load the model with attn_implementation='eager' or call model.set_attn_implementation('eager')")
    device = next(model.parameters()).device
    enc = tokenizer(list(texts), truncation=True, max_length=max_length)
    ids = enc["input_ids"]
    order = np.argsort([len(x) for x in ids], kind="stable")
    out: list[AttentionMap | None] = [None] * len(ids)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = tokenizer.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt").to(device)
            result = model(**batch, output_attentions=True)
            att = torch.stack([a.float() for a in result.attentions], dim=1).cpu().numpy()  # (B, L, H, T, T)
            for row, i in enumerate(idx):
                n = len(ids[i])
                out[i] = AttentionMap(tokenizer.convert_ids_to_tokens(ids[i]), att[row, :, :, :n, :n].copy())
    return out  # type: ignore[return-value]


def is_punct(token: str) -> bool:
    """A WordPiece token made only of punctuation (``##`` continuation marks stripped)."""
    core = token[2:] if token.startswith("##") else token
    return bool(core) and all(ch in string.punctuation for ch in core)


def entropy_bits(p: np.ndarray) -> np.ndarray:
    """Entropy in bits of distributions along the last axis."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log2(p), 0.0)
    return -terms.sum(-1)


def js_divergence_bits(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence in bits (0 = same, 1 = disjoint) along the last axis."""
    m = 0.5 * (p + q)
    return np.maximum(entropy_bits(m) - 0.5 * entropy_bits(p) - 0.5 * entropy_bits(q), 0.0)


def sentence_stats(pre: AttentionMap, ft: AttentionMap) -> dict[str, np.ndarray]:
    """Per layer and head (L, H), averaged over query rows of one sentence.

    ``js``: JS divergence pre vs fine-tuned; ``{cls,sep,punct}_{pre,ft}``: attention mass on those
    key tokens; ``entropy_{pre,ft}``: row entropy in bits.
    """
    if pre.tokens != ft.tokens:
        raise ValueError("pre-trained and fine-tuned maps must come from the same tokenisation")
    tokens = pre.tokens
    punct = np.array([is_punct(t) for t in tokens])
    cls = np.array([t == "[CLS]" for t in tokens])
    sep = np.array([t == "[SEP]" for t in tokens])
    out = {"js": js_divergence_bits(pre.attn_lhtt, ft.attn_lhtt).mean(-1)}
    for name, amap in (("pre", pre), ("ft", ft)):
        a = amap.attn_lhtt
        out[f"cls_{name}"] = a[..., cls].sum(-1).mean(-1)
        out[f"sep_{name}"] = a[..., sep].sum(-1).mean(-1)
        out[f"punct_{name}"] = a[..., punct].sum(-1).mean(-1)
        out[f"entropy_{name}"] = entropy_bits(a).mean(-1)
    return out
