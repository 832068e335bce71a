"""k-shot topic classification with a causal LM, labels scored by log-likelihood (3.x, go beyond).

The prompt is an instruction plus k labelled headlines; for a query the model's log-probability of
each label word after ``Topic:`` is the score. Contextual calibration (Zhao et al. 2021) divides the
label probabilities by those the same prompt gives a content-free input (``N/A``, ``""``, ``[MASK]``).
The shared prefix (instruction + demonstrations) is encoded once and its key/value cache reused.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

INSTRUCTION = "Classify each news article by topic: World, Sports, Business or Technology.\n\n"


def load_causal_lm(name: str, device=None):
    """(model, tokenizer) for registry model ``name``; GGUF models are dequantised once and cached.

    transformers dequantises a GGUF file tensor by tensor on every load (17 s on two idle cores,
    minutes on busy ones); the fp32 result is saved with ``save_pretrained`` under
    ``cache_dir()/models/<name>-dequantized`` and later loads read that folder.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..models import hf_source, load, load_tokenizer, pick_device, verify_dequantized, write_dequantized_manifest
    from ..paths import cache_dir
    from .train import quiet_transformers

    quiet_transformers()
    device = device or pick_device()
    source = hf_source(name)
    if not source.gguf_file:
        return load(name), load_tokenizer(name)
    folder = cache_dir() / "models" / f"{name}-dequantized"
    stamp = folder / "source.txt"
    # a folder whose manifest does not match its files (damaged, resized, half written) is rebuilt
    if not (stamp.exists() and stamp.read_text() == source.gguf_file and verify_dequantized(name, folder)):
        model, tok = load(name, device=torch.device("cpu")), load_tokenizer(name)
        tmp = folder.with_name(folder.name + ".tmp")
        # the weights are plain fp32 after dequantisation; the GGUF "quantizer" only blocks saving
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "source.txt").write_text(source.gguf_file)
        write_dequantized_manifest(tmp)
        if folder.exists():
            import shutil

            shutil.rmtree(folder)
        tmp.rename(folder)
        return model.to(device).eval(), tok
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    return model.to(device).eval(), AutoTokenizer.from_pretrained(folder)


def cut_words(text: str, max_words: int) -> str:
    words = str(text).split()
    return " ".join(words[:max_words]) + (" ..." if len(words) > max_words else "")


def demo_block(text: str, label_word: str) -> str:
    return f"Article: {text}\nTopic:{label_word}\n\n"


def query_block(text: str) -> str:
    return f"Article: {text}\nTopic:"


def pick_demonstrations(train: pd.DataFrame, k: int, seed: int) -> pd.DataFrame:
    """k training rows cycling through the classes (one per class per round), in a seeded order."""
    rng = np.random.default_rng(seed)
    n_classes = int(train["label"].max()) + 1
    picks = []
    for i in range(k):
        pool = train[train["label"] == i % n_classes]
        picks.append(pool.iloc[int(rng.integers(len(pool)))])
    demos = pd.DataFrame(picks).reset_index(drop=True)
    return demos.iloc[rng.permutation(len(demos))].reset_index(drop=True)


def build_prefix(demos: pd.DataFrame, label_words: tuple[str, ...], max_words: int) -> str:
    return INSTRUCTION + "".join(demo_block(cut_words(t, max_words), label_words[int(y)])
                                 for t, y in zip(demos["text"], demos["label"]))


def label_token_ids(tokenizer, label_words: tuple[str, ...]) -> list[list[int]]:
    ids = [tokenizer.encode(w, add_special_tokens=False) for w in label_words]
    if any(len(x) == 0 for x in ids):
        raise ValueError(f"a label word tokenises to nothing: {label_words}")
    return ids


def _kv_cache(out):
    """The KV cache of a forward pass (``out.cache``; ``past_key_values`` in older transformers)."""
    value = getattr(out, "cache", None)
    return value if value is not None else out.past_key_values


def label_logprobs(model, tokenizer, prefix: str, queries: list[str],
                   label_words: tuple[str, ...]) -> np.ndarray:
    """Log-probability of each label word after prefix + query, shape (n_queries, n_labels).

    Multi-token label words get the sum over their tokens. The prefix's KV cache is computed once
    and cropped back after every query.
    """
    import torch

    device = next(model.parameters()).device
    labels = label_token_ids(tokenizer, label_words)
    single = all(len(x) == 1 for x in labels)
    prefix_ids = tokenizer.encode(prefix, add_special_tokens=False)
    out = np.zeros((len(queries), len(labels)), dtype=np.float64)
    with torch.inference_mode():
        cache = _kv_cache(model(torch.tensor([prefix_ids], device=device), use_cache=True))
        n_prefix = len(prefix_ids)
        for qi, query in enumerate(queries):
            q_ids = tokenizer.encode(query, add_special_tokens=False)
            if single:
                logits = model(torch.tensor([q_ids], device=device), cache=cache, use_cache=True).logits
                logp = torch.log_softmax(logits[0, -1].float(), -1)
                out[qi] = [float(logp[x[0]]) for x in labels]
                _crop(cache, n_prefix)
                continue
            for li, lab in enumerate(labels):
                ids = q_ids + lab
                logits = model(torch.tensor([ids], device=device), cache=cache, use_cache=True).logits
                logp = torch.log_softmax(logits[0].float(), -1)
                # the label's tokens sit at the last len(lab) positions; each is predicted one step earlier
                positions = range(len(q_ids) - 1, len(ids) - 1)
                out[qi, li] = float(sum(logp[p, t] for p, t in zip(positions, lab)))
                _crop(cache, n_prefix)
    return out


def _crop(cache, n_keep: int) -> None:
    """Drop everything after the first ``n_keep`` positions (transformers 5 crops by a negative count)."""
    extra = cache.get_seq_length() - n_keep
    if extra > 0:
        cache.crop(-extra)


def label_probs(logprobs: np.ndarray) -> np.ndarray:
    """Log-probabilities of the label words renormalised over the labels, shape (n, n_labels)."""
    z = logprobs - logprobs.max(-1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(-1, keepdims=True)


def calibrated_probs(logprobs: np.ndarray, content_free_logprobs: np.ndarray) -> np.ndarray:
    """Contextual calibration: W = diag(p_cf)^-1, b = 0, with p_cf the mean over content-free inputs."""
    p_cf = label_probs(content_free_logprobs).mean(0)
    q = label_probs(logprobs) / p_cf
    return q / q.sum(-1, keepdims=True)
