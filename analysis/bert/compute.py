"""Compute functions of the BERT chapter's experiments (each returns a store ``Output``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ..data import agnews
from ..models import load_tokenizer
from ..store import Output
from . import metrics as M
from .attention import extract_attention, load_pretrained_encoder, sentence_stats
from .config import AttentionConfig, DataStatsConfig, FewShotConfig, FineTuneConfig
from .fewshot import (build_prefix, load_causal_lm, calibrated_probs, cut_words, label_logprobs, label_probs,
                      pick_demonstrations, query_block)
from .train import (dedupe_log_history, finetune, load_finetuned, load_splits, predict_logits, quiet_transformers,
                    token_lengths, train_state)

N_CLASSES = len(agnews.LABELS)


def _relative(path) -> str:
    """A path relative to the project root when it is inside it (stored results stay machine-neutral)."""
    import os

    from ..paths import PROJECT_ROOT

    rel = os.path.relpath(path, PROJECT_ROOT)
    return str(path) if rel.startswith("..") else rel


def _stored_finetune(cfg: FineTuneConfig):
    """The fine-tuning run for ``cfg``, stored under the profile whose config it is (not the env's)."""
    from ..experiments import get, get_or_run

    exp = get("bert_finetune")
    profile = next((p for p, c in exp.configs.items() if c == cfg), None)
    return get_or_run(cfg, profile)


# ---------------------------------------------------------------- 3.1-3.2 data statistics
def compute_data_stats(cfg: DataStatsConfig) -> Output:
    quiet_transformers()
    tok = load_tokenizer(cfg.tokenizer)
    train = agnews.load("train", cfg.source, cfg.limit_train, cfg.seed)
    test = agnews.load("test", cfg.source, cfg.limit_test, cfg.seed)
    train_part, val = agnews.train_validation_split(train, cfg.n_validation, cfg.seed)
    frames = {"train": train_part, "validation": val, "test": test}
    counts, lengths, arrays = [], [], {}
    for split, df in frames.items():
        n_tok = token_lengths(tok, df["text"].tolist())
        n_words = df["text"].str.split().str.len().to_numpy()
        arrays[f"tokens_{split}"] = n_tok.astype(np.int16)
        arrays[f"labels_{split}"] = df["label"].to_numpy().astype(np.int8)
        arrays[f"words_{split}"] = n_words.astype(np.int16)
        for c, name in enumerate(agnews.LABELS):
            counts.append({"split": split, "class": name, "n": int((df["label"] == c).sum())})
        for c, name in enumerate([*agnews.LABELS, "all"]):
            sel = df["label"].to_numpy() == c if name != "all" else np.ones(len(df), bool)
            t = n_tok[sel]
            if len(t) == 0:
                continue
            lengths.append({"split": split, "class": name, "n": int(sel.sum()),
                            "words_mean": float(n_words[sel].mean()), "chars_mean": float(df["text"].str.len().to_numpy()[sel].mean()),
                            "tokens_mean": float(t.mean()), "tokens_median": float(np.median(t)),
                            "tokens_p95": float(np.percentile(t, 95)), "tokens_max": int(t.max()),
                            "over_max_length": int((t > cfg.max_length).sum())})
    # representative examples: training rows whose token count is nearest the class median
    n_tok_train = arrays["tokens_train"].astype(int)
    examples = []
    for c, name in enumerate(agnews.LABELS):
        idx = np.flatnonzero(train_part["label"].to_numpy() == c)
        if len(idx) == 0:
            continue
        med = np.median(n_tok_train[idx])
        nearest = idx[np.argsort(np.abs(n_tok_train[idx] - med), kind="stable")[: cfg.examples_per_class]]
        for i in nearest:
            examples.append({"id": train_part["id"].iloc[i], "class": name, "tokens": int(n_tok_train[i]),
                             "text": train_part["text"].iloc[i]})
    all_tok = np.concatenate([arrays[f"tokens_{s}"] for s in frames])
    metrics = {
        "n_train_file": len(train), "n_train": len(train_part), "n_validation": len(val), "n_test": len(test),
        "tokens_mean": float(all_tok.mean()), "tokens_median": float(np.median(all_tok)),
        "tokens_p99": float(np.percentile(all_tok, 99)), "tokens_max": int(all_tok.max()),
        "frac_over_max_length": float((all_tok > cfg.max_length).mean()),
        "n_over_max_length": int((all_tok > cfg.max_length).sum()),
    }
    return Output(metrics, {"records": examples, "counts": counts, "lengths": lengths}, arrays)


# ---------------------------------------------------------------- 3.3 fine-tuning
def compute_finetune(cfg: FineTuneConfig) -> Output:
    """Fine-tune, then evaluate on the test split (one process; several GPUs: ``python -m
    analysis.bert.train`` under torchrun trains on all, then stores this run from the main one)."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from ..errors import ConfigError

        # the store's per-run lock lets one process in, the others wait for it, while DDP training
        # waits for all of them: launching the CLI itself on several processes would hang
        raise ConfigError("bert_finetune is launched on several processes through the CLI; use "
                          "`torchrun --nproc_per_node N -m analysis.bert.train --profile P` "
                          "(trains on all, stores one run from the main process)")
    final = finetune(cfg)
    state = train_state(final)
    _, val, test = load_splits(cfg)
    model = load_finetuned(final)
    tok = load_tokenizer(cfg.model)
    logits = predict_logits(model, tok, test["text"].tolist(), max_length=cfg.max_length,
                            batch_size=cfg.eval_batch_size, mixed_precision=cfg.mixed_precision)
    pred = logits.argmax(-1)
    y = test["label"].to_numpy()
    cm = M.confusion(y, pred, N_CLASSES)
    f1 = M.per_class_f1(y, pred, N_CLASSES)
    records = [{"id": i, "label": int(t), "pred": int(p), "correct": bool(t == p),
                "logits": [round(float(v), 4) for v in lg]} for i, t, p, lg in zip(test["id"], y, pred, logits)]
    curve = []
    for entry in dedupe_log_history(state["log_history"]):
        if "loss" in entry and "eval_loss" not in entry:
            curve.append({"step": entry["step"], "epoch": entry.get("epoch"), "kind": "train", "loss": entry["loss"]})
        elif "eval_loss" in entry:
            curve.append({"step": entry["step"], "epoch": entry.get("epoch"), "kind": "validation",
                          "loss": entry["eval_loss"], "accuracy": entry.get("eval_accuracy"),
                          "macro_f1": entry.get("eval_macro_f1")})
    per_class = [{"class": name, "f1": float(f1[c]), "recall": float(cm[c, c] / max(cm[c].sum(), 1)),
                  "precision": float(cm[c, c] / max(cm[:, c].sum(), 1)), "n": int(cm[c].sum())}
                 for c, name in enumerate(agnews.LABELS)]
    metrics = {
        "test_accuracy": M.accuracy(y, pred), "test_macro_f1": M.macro_f1(y, pred, N_CLASSES),
        "n_train": state["n_train"], "n_validation": state["n_validation"], "n_test": len(test),
        "train_runtime_s": state["train_runtime_s"], "train_samples_per_second": state["train_samples_per_second"],
        "global_step": state["global_step"], "resumed_from": state["resumed_from"], "device": state["device"],
        "bf16": state["bf16"], "fp16": state["fp16"], **({"n_processes": state["n_processes"]} if "n_processes" in state else {}),
        "n_params": int(sum(p.numel() for p in model.parameters())),
        "weights_dir": _relative(final),
    }
    return Output(metrics, {"records": records, "curve": curve, "per_class": per_class}, {"confusion": cm})


def curve_frame(ft_run) -> pd.DataFrame:
    """A stored run's learning curve with one row per (step, kind): runs stored before the
    duplicate final evaluation was fixed hold the last validation point twice."""
    curve = ft_run.table("curve")
    return curve.drop_duplicates(subset=["step", "kind"], keep="first").reset_index(drop=True)


# ---------------------------------------------------------------- 3.4-3.5 attention
def choose_sentences(test: pd.DataFrame, records: pd.DataFrame, n_tokens: np.ndarray, max_tokens: int,
                     seed: int) -> list[dict]:
    """One correctly classified short test sentence per class and one the fine-tuned model gets wrong."""
    rng = np.random.default_rng(seed)
    df = test.assign(pred=records.set_index("id").loc[test["id"], "pred"].to_numpy(), n_tokens=n_tokens)
    short = df[df["n_tokens"] <= max_tokens]
    chosen = []
    for c, name in enumerate(agnews.LABELS):
        pool = short[(short["label"] == c) & (short["pred"] == c)]
        if len(pool) == 0:
            pool = df[(df["label"] == c) & (df["pred"] == c)].nsmallest(1, "n_tokens")
        if len(pool):
            row = pool.iloc[int(rng.integers(len(pool)))]
            chosen.append({"id": row["id"], "role": f"{name} (correct)", "label": int(row["label"]),
                           "pred": int(row["pred"]), "text": row["text"]})
    wrong = short[short["label"] != short["pred"]]
    if len(wrong) == 0:
        wrong = df[df["label"] != df["pred"]].nsmallest(1, "n_tokens")
    if len(wrong):
        row = wrong.iloc[int(rng.integers(len(wrong)))]
        chosen.append({"id": row["id"], "role": "misclassified", "label": int(row["label"]),
                       "pred": int(row["pred"]), "text": row["text"]})
    return chosen


def compute_attention(cfg: AttentionConfig) -> Output:
    ft_cfg = cfg.finetune
    ft_run = _stored_finetune(ft_cfg)
    final = finetune(ft_cfg)  # reuses the saved weights (retrains only if artifacts/ was deleted)
    _, _, test = load_splits(ft_cfg)
    tok = load_tokenizer(ft_cfg.model)
    pre_model = load_pretrained_encoder(ft_cfg.model)
    ft_model = load_finetuned(final, eager=True)
    records = ft_run.table("records")
    n_tok = np.minimum(token_lengths(tok, test["text"].tolist()), ft_cfg.max_length)

    # summary statistics over a seeded sample of test sentences
    sample = agnews.stratified_sample(test, min(cfg.n_sentences, len(test)), cfg.seed)
    pre_maps = extract_attention(pre_model, tok, sample["text"].tolist(), max_length=ft_cfg.max_length)
    ft_maps = extract_attention(ft_model, tok, sample["text"].tolist(), max_length=ft_cfg.max_length)
    per_sentence = [sentence_stats(p, f) for p, f in zip(pre_maps, ft_maps)]
    arrays = {f"stat_{k}": np.mean([s[k] for s in per_sentence], axis=0).astype(np.float32) for k in per_sentence[0]}
    rec_by_id = records.set_index("id")
    rows = []
    for (_, r), s, p in zip(sample.iterrows(), per_sentence, pre_maps):
        rows.append({"id": r["id"], "label": int(r["label"]), "pred": int(rec_by_id.loc[r["id"], "pred"]),
                     "n_tokens": len(p.tokens), "js_mean": float(s["js"].mean()), "js_last": float(s["js"][-1].mean()),
                     "cls_pre_last": float(s["cls_pre"][-1].mean()), "cls_ft_last": float(s["cls_ft"][-1].mean()),
                     "sep_pre_last": float(s["sep_pre"][-1].mean()), "sep_ft_last": float(s["sep_ft"][-1].mean()),
                     "entropy_pre_last": float(s["entropy_pre"][-1].mean()), "entropy_ft_last": float(s["entropy_ft"][-1].mean())})

    # chosen sentences, both models, padded with NaN to a common T: the last layer's maps in float32
    # (the static figures and tables) and every layer's in float16 (the HTML attention explorer lets
    # the reader pick any layer; float16 keeps ~3 significant digits, enough for values shown to 3
    # decimals, at half the size)
    chosen = choose_sentences(test, records, n_tok, cfg.max_tokens_shown, cfg.seed)
    texts = [c["text"] for c in chosen]
    pre_c = extract_attention(pre_model, tok, texts, max_length=ft_cfg.max_length)
    ft_c = extract_attention(ft_model, tok, texts, max_length=ft_cfg.max_length)
    t_max = max(len(m.tokens) for m in pre_c)
    n_layers, n_heads = pre_c[0].attn_lhtt.shape[:2]
    pre_all = np.full((len(chosen), n_layers, n_heads, t_max, t_max), np.nan, np.float32)  # (S, L, H, T, T)
    ft_all = np.full_like(pre_all, np.nan)
    for i, (p, f) in enumerate(zip(pre_c, ft_c)):
        n = len(p.tokens)
        pre_all[i, :, :, :n, :n] = p.attn_lhtt
        ft_all[i, :, :, :n, :n] = f.attn_lhtt
        chosen[i]["tokens"] = p.tokens
        chosen[i]["js_last"] = float(sentence_stats(p, f)["js"][-1].mean())
    arrays["chosen_pre_last"] = pre_all[:, -1].copy()  # (S, H, T, T) float32, as before
    arrays["chosen_ft_last"] = ft_all[:, -1].copy()
    arrays["chosen_pre_all"] = pre_all.astype(np.float16)  # (S, L, H, T, T)
    arrays["chosen_ft_all"] = ft_all.astype(np.float16)
    js = arrays["stat_js"]
    layer, head = np.unravel_index(int(np.argmax(js)), js.shape)
    metrics = {
        "n_sentences": len(sample), "n_layers": int(js.shape[0]), "n_heads": int(js.shape[1]),
        "js_mean": float(js.mean()), "js_max": float(js.max()), "js_max_layer": int(layer) + 1, "js_max_head": int(head) + 1,
        "js_by_layer": [float(v) for v in js.mean(1)],
        **{f"{k}_last": float(arrays[f"stat_{k}"][-1].mean()) for k in
           ("cls_pre", "cls_ft", "sep_pre", "sep_ft", "punct_pre", "punct_ft", "entropy_pre", "entropy_ft")},
        **{f"{k}_all": float(arrays[f"stat_{k}"].mean()) for k in
           ("cls_pre", "cls_ft", "sep_pre", "sep_ft", "punct_pre", "punct_ft", "entropy_pre", "entropy_ft")},
    }
    return Output(metrics, {"records": rows, "chosen": chosen}, arrays)


# ---------------------------------------------------------------- few-shot baseline
def fewshot_items(cfg: FewShotConfig) -> pd.DataFrame:
    _, _, test = load_splits(cfg.finetune)
    return agnews.stratified_sample(test, min(cfg.n_items, len(test)), cfg.seed + 1)


def compute_fewshot(cfg: FewShotConfig) -> Output:
    quiet_transformers()
    ft_run = _stored_finetune(cfg.finetune)
    enc_pred = ft_run.table("records").set_index("id")["pred"]
    train, _, _ = load_splits(cfg.finetune)
    items = fewshot_items(cfg)
    demos = pick_demonstrations(train, cfg.k, cfg.seed)
    prefix = build_prefix(demos, cfg.label_words, cfg.max_words)
    model, tok = load_causal_lm(cfg.model)
    queries = [query_block(cut_words(t, cfg.max_words)) for t in items["text"]]
    lp = label_logprobs(model, tok, prefix, queries, cfg.label_words)
    lp_cf = label_logprobs(model, tok, prefix, [query_block(t) for t in cfg.content_free], cfg.label_words)
    p_raw, p_cal = label_probs(lp), calibrated_probs(lp, lp_cf)
    y = items["label"].to_numpy()
    raw, cal = p_raw.argmax(-1), p_cal.argmax(-1)
    enc = enc_pred.loc[items["id"]].to_numpy()
    records = [{"id": i, "label": int(t), "pred_raw": int(a), "pred_calibrated": int(b), "pred_encoder": int(e),
                "logprobs": [round(float(v), 4) for v in l]}
               for i, t, a, b, e, l in zip(items["id"], y, raw, cal, enc, lp)]
    metrics = {
        "n_items": len(items), "k": cfg.k,
        "accuracy_raw": M.accuracy(y, raw), "accuracy_calibrated": M.accuracy(y, cal),
        "macro_f1_raw": M.macro_f1(y, raw, N_CLASSES), "macro_f1_calibrated": M.macro_f1(y, cal, N_CLASSES),
        "accuracy_encoder_same_items": M.accuracy(y, enc),
        "p_content_free": [float(v) for v in label_probs(lp_cf).mean(0)],
        "pred_share_raw": [float(np.mean(raw == c)) for c in range(N_CLASSES)],
        "pred_share_calibrated": [float(np.mean(cal == c)) for c in range(N_CLASSES)],
        "prompt_tokens": len(tok.encode(prefix, add_special_tokens=False)),
    }
    demo_rows = [{"class": agnews.LABELS[int(r.label)], "text": cut_words(r.text, cfg.max_words)} for r in demos.itertuples()]
    return Output(metrics, {"records": records, "demonstrations": demo_rows, "prompt": [{"prefix": prefix}]},
                  {"confusion_raw": M.confusion(y, raw, N_CLASSES), "confusion_calibrated": M.confusion(y, cal, N_CLASSES)})
