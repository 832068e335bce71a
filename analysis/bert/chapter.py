"""What the BERT chapter's cells call: stored runs, tables and short descriptions."""

from __future__ import annotations

import pandas as pd

from ..data.agnews import LABELS
from ..experiments import get_or_run
from ..lab import widget
from ..models import spec
from . import experiments as _registered  # noqa: F401  (registers the experiments)
from .figures import (fig_attention_change, fig_attention_heads, fig_attention_pair,  # noqa: F401
                      fig_chosen_overview, fig_cls_rows, fig_confusion, fig_fewshot, fig_learning_curve,
                      fig_lengths)


def runs(profile: str | None = None) -> dict:
    """The four stored runs of the chapter (computed if missing): stats, finetune, attention, fewshot."""
    return {
        "stats": get_or_run("agnews_stats", profile),
        "finetune": get_or_run("bert_finetune", profile),
        "attention": get_or_run("bert_attention", profile),
        "fewshot": get_or_run("bert_fewshot", profile),
    }


def model_title(name: str) -> str:
    return spec(name).title


def counts_table(stats_run) -> pd.DataFrame:
    """Samples per class (rows) and split (columns), with totals."""
    df = stats_run.table("counts").pivot(index="class", columns="split", values="n")
    df = df.reindex(index=list(LABELS), columns=[c for c in ("train", "validation", "test") if c in df.columns])
    df.loc["total"] = df.sum()
    return df.reset_index().rename(columns={"class": "Class"})


def lengths_table(stats_run) -> pd.DataFrame:
    df = stats_run.table("lengths")
    df = df[df["class"] == "all"].drop(columns=["class"])
    max_length = stats_run.config["max_length"]
    cols = {"split": "Split", "n": "Texts", "words_mean": "Words, mean", "chars_mean": "Chars, mean",
            "tokens_mean": "Tokens, mean", "tokens_median": "Tokens, median", "tokens_p95": "Tokens, p95",
            "tokens_max": "Tokens, max", "over_max_length": f"Over {max_length}"}
    return df[[c for c in cols if c in df.columns]].rename(columns=cols)


def examples_table(stats_run, max_chars: int = 160) -> pd.DataFrame:
    df = stats_run.table("records")
    df["text"] = df["text"].map(lambda t: t if len(t) <= max_chars else t[: max_chars - 1] + "…")
    return df[["class", "tokens", "text"]].rename(columns={"class": "Class", "tokens": "Tokens", "text": "Text (title + description)"})


def per_class_table(ft_run) -> pd.DataFrame:
    t = ft_run.table("per_class")
    t = t[[c for c in ("class", "precision", "recall", "f1", "n") if c in t.columns]]
    return t.rename(columns={"class": "Class", "f1": "F1", "recall": "Recall", "precision": "Precision",
                             "n": "Test items"})


def curve_table(ft_run) -> pd.DataFrame:
    c = ft_run.table("curve")
    c = c[c["kind"] == "validation"][["step", "epoch", "loss", "accuracy", "macro_f1"]]
    return c.rename(columns={"step": "Step", "epoch": "Epoch", "loss": "Validation loss",
                             "accuracy": "Validation accuracy", "macro_f1": "Validation macro-F1"})


def chosen_table(att_run) -> pd.DataFrame:
    rows = att_run.table("chosen")
    return pd.DataFrame({
        "#": range(1, len(rows) + 1), "True": rows["label"].map(lambda i: LABELS[i]),
        "Predicted": rows["pred"].map(lambda i: LABELS[i]), "Tokens": rows["tokens"].map(len),
        "JS (bit)": rows["js_last"], "Text": rows["text"],
    })


def layer_table(att_run) -> pd.DataFrame:
    """Per layer (mean over heads and sentences): JS, and mass/entropy before -> after."""
    a = att_run.arrays
    out = {"Layer": range(1, a["stat_js"].shape[0] + 1), "JS": a["stat_js"].mean(1)}
    for key, name in (("cls", "[CLS]"), ("sep", "[SEP]"), ("punct", "punct."), ("entropy", "H")):
        out[f"{name} pre"] = a[f"stat_{key}_pre"].mean(1)
        out[f"{name} ft"] = a[f"stat_{key}_ft"].mean(1)
    return pd.DataFrame(out)


def top_heads(att_run, n: int = 5) -> pd.DataFrame:
    """The ``n`` (layer, head) pairs whose attention fine-tuning changed most (JS divergence)."""
    a = att_run.arrays
    js = a["stat_js"]
    flat = js.ravel().argsort()[::-1][:n]
    rows = []
    for f in flat:
        l, h = divmod(int(f), js.shape[1])
        rows.append({"Layer": l + 1, "Head": h + 1, "JS": js[l, h],
                     "[CLS] pre": a["stat_cls_pre"][l, h], "[CLS] ft": a["stat_cls_ft"][l, h],
                     "[SEP] pre": a["stat_sep_pre"][l, h], "[SEP] ft": a["stat_sep_ft"][l, h],
                     "H pre": a["stat_entropy_pre"][l, h], "H ft": a["stat_entropy_ft"][l, h]})
    return pd.DataFrame(rows)


def fewshot_table(fs_run) -> pd.DataFrame:
    m = fs_run.metrics
    return pd.DataFrame([
        {"Method": f"{m['k']}-shot {model_short(fs_run.config['model'])}, label log-likelihood",
         "Accuracy": m["accuracy_raw"], "Macro-F1": m["macro_f1_raw"]},
        {"Method": "same, contextual calibration", "Accuracy": m["accuracy_calibrated"], "Macro-F1": m["macro_f1_calibrated"]},
        {"Method": f"fine-tuned {model_short(fs_run.config['finetune']['model'])}", "Accuracy": m["accuracy_encoder_same_items"],
         "Macro-F1": float("nan")},
    ])


def demonstrations_table(fs_run) -> pd.DataFrame:
    return fs_run.table("demonstrations").rename(columns={"class": "Label", "text": "Demonstration (cut)"})


def change(before: float, after: float, fmt=None, up: str = "rose", down: str = "fell") -> str:
    """'rose from 0.12 to 0.34' / 'fell from ...' / 'stayed at ...' for prose about a measured change."""
    fmt = fmt or (lambda x: f"{x:.3f}")
    if fmt(before) == fmt(after):
        return f"stayed at {fmt(after)}"
    return f"{up if after > before else down} from {fmt(before)} to {fmt(after)}"


def gap(a: float, b: float) -> str:
    """'5.2 points above' / 'below' (accuracy a vs b, in percentage points)."""
    d = 100 * (a - b)
    return f"{abs(d):.1f} points {'above' if d >= 0 else 'below'}"


def misclassified(att_run) -> dict | None:
    """The chosen sentence the fine-tuned model gets wrong, if there is one."""
    rows = [r for r in att_run.rows("chosen") if r["role"] == "misclassified"]
    return rows[0] if rows else None


def label_name(i: int) -> str:
    return LABELS[int(i)]


def confusion_sentence(ft_run) -> str:
    """The easiest and hardest class by test F1 and the most confused pair, as a sentence."""
    import numpy as np

    per = ft_run.table("per_class")
    cm = np.asarray(ft_run.arrays["confusion"]).astype(int)
    best, worst = per.loc[per["f1"].idxmax()], per.loc[per["f1"].idxmin()]
    sym = cm + cm.T
    np.fill_diagonal(sym, -1)
    i, j = np.unravel_index(int(sym.argmax()), sym.shape)
    return (f"{best['class']} is the easiest class (F1 {best['f1']:.3f}) and {worst['class']} the hardest "
            f"(F1 {worst['f1']:.3f}); the pair confused most often is {LABELS[i]} and {LABELS[j]} "
            f"({cm[i, j]} + {cm[j, i]} test items in either direction, "
            f"{(cm[i, j] + cm[j, i]) / max(int(cm.sum() - np.trace(cm)), 1):.0%} of all {int(cm.sum() - np.trace(cm)):,} "
            "test errors)")


def js_layer_sentence(att_run) -> str:
    """Where (by layer) fine-tuning moved attention most, as a sentence."""
    js = att_run.metrics["js_by_layer"]
    top = int(max(range(len(js)), key=js.__getitem__)) + 1
    rising = all(b >= a for a, b in zip(js, js[1:]))
    shape = ("grows with depth, from the first layer to the last" if rising
             else f"peaks in layer {top} of {len(js)}")
    return f"the divergence {shape}"


def bias_sentence(fs_run) -> str:
    m = fs_run.metrics
    p = m["p_content_free"]
    top = max(range(len(p)), key=p.__getitem__)
    strength = "far from uniform" if max(p) > 0.4 else "not uniform"
    share = m["pred_share_raw"]
    over = max(range(len(share)), key=share.__getitem__)
    return (f"{strength} (most on {LABELS[top]}); uncalibrated, the model predicts {LABELS[over]} for "
            f"{share[over]:.0%} of the items (a quarter are {LABELS[over]})")


def bench_result() -> dict | None:
    """``bench/results/bert.json`` (written by ``bench/bench_bert.py``), or None if it was not run."""
    import json

    from ..paths import PROJECT_ROOT

    path = PROJECT_ROOT / "bench" / "results" / "bert.json"
    return json.loads(path.read_text()) if path.exists() else None


def bench_sentence() -> str:
    b = bench_result()
    if b is None:
        return "The throughput benchmark (bench/bench_bert.py) has not been run on this machine."
    s, p = b["variants"]["snippet"], b["variants"]["project"]
    try:
        bench_model = model_short(b["model"])
    except Exception:  # a model name the registry does not know: print it as stored
        bench_model = b["model"]
    return (f"bench/bench_bert.py trained {bench_model} on {b['device']} with both settings for "
            f"{s['samples']} samples each: the snippet's settings (batch {s['batch_size']}, {s['precision']}) fed "
            f"{s['tokens_per_sample']:.0f} tokens per sample of which {s['padding_share']:.0%} padding and ran at "
            f"{s['samples_per_s']:.1f} samples/s; this chapter's (batch {p['batch_size']}, {p['precision']}, dynamic "
            f"padding, length-grouped) fed {p['tokens_per_sample']:.0f} tokens per sample with {p['padding_share']:.0%} "
            f"padding at {p['samples_per_s']:.1f} samples/s, {b['ratio']:.2f} times the throughput.")


def published_comparison(ft_run) -> str:
    """How this run differs from published bert-base-uncased, from its config (model and data size)."""
    cfg, m = ft_run.config, ft_run.metrics
    share = m["n_train"] / 120_000
    if cfg["model"] == "bert_base_uncased":
        return (f"This run uses the same model with {share:.0%} of the 120,000 training rows for "
                f"{epochs_text(cfg['epochs'])}, so the published figure is the yardstick it should meet.")
    return (f"The gap has two causes that this run cannot separate: a smaller model "
            f"({model_short(cfg['model'])}, {m['n_params'] / 1e6:.1f}M parameters against bert-base's 110M, "
            f"pre-trained as a sentence-embedding model rather than a masked-language model) and "
            f"{m['n_train']:,} training rows ({share:.1%} of the 120,000) for {epochs_text(cfg['epochs'])}. "
            f"The full profile measures bert-base-uncased with the same code.")


# ---- prose that must stay true under every profile (offline, full, smoke) -------------------------

FULL_TRAIN_ROWS = 120_000  # AG News's official training split (Zhang et al. 2015), a property of the data set
CITATION = {"minilm_l6": "@wang2020minilm; @reimers2019sbert", "bert_base_uncased": "@devlin2019bert",
            "smollm2_135m": "@allal2025smollm2", "gpt2": "@radford2019gpt2"}


def model_short(name: str) -> str:
    """The registry title without its description: 'all-MiniLM-L6-v2', 'bert-base-uncased', 'GPT-2'."""
    return model_title(name).split(" (")[0]


def epochs_text(epochs: float) -> str:
    """1.0 -> '1 epoch', 2.0 -> '2 epochs', 0.5 -> '0.5 epochs'."""
    e = float(epochs)
    return f"{e:g} epoch" + ("" if e == 1 else "s")


def precision_text(ft_run) -> str:
    """Which precision the run trained in, from its recorded flags: 'bf16 autocast', 'fp16 ...', 'fp32'."""
    m = ft_run.metrics
    if m.get("bf16"):
        return "bf16 autocast"
    if m.get("fp16"):
        return "fp16 autocast with loss scaling"
    return "fp32 (no autocast)"


def setup_text(ft_run) -> str:
    """What produced the chapter's numbers: encoder, data size, device, and how it differs from the assignment.

    Markdown (bold, citations): print it from an ``output: asis`` cell, not an inline expression."""
    cfg, m = ft_run.config, ft_run.metrics
    name = model_short(cfg["model"])
    base = (f"**What produced the numbers below.** Profile `{ft_run.profile}`: the encoder is **{name}** [{CITATION.get(cfg['model'], '')}] with "
            f"{m['n_params']:,} parameters, fine-tuned on {m['n_train']:,} training rows (with "
            f"{m['n_validation']:,} more held out for validation) for {epochs_text(cfg['epochs'])} on "
            f"{ft_run.env.get('device', m['device'])}, in {precision_text(ft_run)}, and tested on "
            f"{m['n_test']:,} rows of the official test split.")
    if cfg["model"] == "bert_base_uncased":
        extra = " This is the assignment's model."
    else:
        extra = (f" It stands in for the assignment's bert-base-uncased, whose weights the `{ft_run.profile}` "
                 f"profile cannot download: a smaller BERT ({m['n_params'] / 1e6:.1f}M parameters against 110M) "
                 "with exactly bert-base-uncased's WordPiece vocabulary. Every number below that a reader could "
                 f"take for BERT's is {name}'s; the `full` profile runs bert-base-uncased through the same code.")
    if m["n_train"] < FULL_TRAIN_ROWS and cfg.get("source") != "hub":
        extra += (f" The {m['n_train'] + m['n_validation']:,} training-file rows are those available offline, "
                  f"{(m['n_train'] + m['n_validation']) / FULL_TRAIN_ROWS:.1%} of AG News's {FULL_TRAIN_ROWS:,}.")
    if ft_run.profile == "smoke":
        extra += " The `smoke` profile runs every cell on a handful of rows: its numbers mean nothing."
    return base + extra


def fewshot_model_text(fs_run) -> str:
    """The few-shot model with its citation, and whether it is the assignment's GPT-2."""
    name = fs_run.config["model"]
    cite = CITATION.get(name, "")
    if name == "gpt2":
        return f"GPT-2 [{cite}], the assignment's model,"
    return (f"{model_short(name)} [{cite}], standing in for the assignment's GPT-2 [@radford2019gpt2] under the "
            f"`{fs_run.profile}` profile (the `full` profile runs GPT-2),")


def cls_targets(att_run, k: int = 3) -> list[dict]:
    """Per chosen sentence, the ``k`` tokens the last layer's [CLS] row attends to most (mean over heads),
    before and after fine-tuning, and the tokens whose [CLS] attention rose most. Read from the stored maps."""
    import numpy as np

    out = []
    for i, row in enumerate(att_run.rows("chosen")):
        n = len(row["tokens"])
        pre = np.asarray(att_run.arrays["chosen_pre_last"][i])[:, 0, :n].mean(0)
        ft = np.asarray(att_run.arrays["chosen_ft_last"][i])[:, 0, :n].mean(0)
        toks = list(row["tokens"])
        top = lambda v: [toks[j] for j in np.argsort(v)[::-1][:k]]  # noqa: E731
        out.append({"i": i + 1, "pre": top(pre), "ft": top(ft), "rose": top(ft - pre),
                    "special_pre": float(pre[[j for j, t in enumerate(toks) if t in ("[CLS]", "[SEP]")]].sum()),
                    "special_ft": float(ft[[j for j, t in enumerate(toks) if t in ("[CLS]", "[SEP]")]].sum())})
    return out


def cls_table(att_run, k: int = 3) -> pd.DataFrame:
    """Where [CLS] looks in the last layer (head average), per chosen sentence, before and after."""
    rows = cls_targets(att_run, k)
    return pd.DataFrame({
        "#": [r["i"] for r in rows],
        "pre-trained: top tokens": [", ".join(r["pre"]) for r in rows],
        "fine-tuned: top tokens": [", ".join(r["ft"]) for r in rows],
        "largest rise": [", ".join(r["rose"]) for r in rows],
        "special, pre": [r["special_pre"] for r in rows],
        "special, ft": [r["special_ft"] for r in rows],
    })


def cls_sentence(att_run) -> str:
    """What the [CLS]-row table shows, counted from it (a sentence for the chapter)."""
    rows = cls_targets(att_run)
    fell = sum(r["special_ft"] < r["special_pre"] for r in rows)
    m = att_run.metrics
    return (f"in {fell} of the {len(rows)} chosen sentences the [CLS] row's mass on [CLS] and [SEP] fell "
            f"after fine-tuning, and the tokens it attends to most are then mostly words of the headline; over the "
            f"{m['n_sentences']} sampled sentences the last layer's mass on punctuation "
            f"{change(m['punct_pre_last'], m['punct_ft_last'])}, so the attention that left the special tokens "
            "did not go to punctuation")


# ---- HTML attention explorer (lab/attention.js) -------------------------------------------------

EXPLORER_DECIMALS = 3  # values shown to 3 decimals: the float16 maps hold ~3 significant digits


def explorer_maps(att_run, model: str, i: int) -> "np.ndarray":
    """Chosen sentence ``i``'s stored maps of ``model`` ('pre' or 'ft'), unpadded, with the head
    average appended as one more head: shape (L, H + 1, T, T), float32, T = the sentence's tokens."""
    import numpy as np

    if model not in ("pre", "ft"):
        raise ValueError(f"model must be 'pre' or 'ft', not {model!r}")
    name = f"chosen_{model}_all"
    if name not in att_run.arrays:
        raise KeyError(f"bert_attention run {att_run.key} has no {name} (stored before code_version 2, "
                       "which added every layer's maps): recompute it with `python -m analysis run bert_attention`")
    rows = att_run.rows("chosen")
    if not 0 <= i < len(rows):
        raise IndexError(f"chosen sentence {i} out of range (the run has {len(rows)})")
    n = len(rows[i]["tokens"])
    maps = np.asarray(att_run.arrays[name][i], dtype=np.float32)[:, :, :n, :n]  # (L, H, T, T)
    if np.isnan(maps).any():
        raise ValueError(f"{name}[{i}] has NaN inside its {n} tokens: the stored padding does not match the tokens")
    return np.concatenate([maps, maps.mean(1, keepdims=True)], axis=1)


def explorer_data(att_run) -> dict:
    """The attention explorer's data, all read from the stored run.

    ``sentences[i]``: tokens, true/predicted class, role, and ``maps = {"pre": ..., "ft": ...}``, each
    nested as [layer][head][row * T + col] in units of ``1 / scale`` (integers keep the inline JSON
    small); head index H (the last) is the mean over the H heads.
    """
    import numpy as np

    scale = 10 ** EXPLORER_DECIMALS
    sentences = []
    for i, row in enumerate(att_run.rows("chosen")):
        maps = {m: np.rint(explorer_maps(att_run, m, i) * scale).astype(int) for m in ("pre", "ft")}
        sentences.append({
            "role": row["role"], "label": LABELS[int(row["label"])], "pred": LABELS[int(row["pred"])],
            "text": row["text"], "tokens": list(row["tokens"]),
            "maps": {m: [[h.ravel().tolist() for h in layer] for layer in a] for m, a in maps.items()},
        })
    if not sentences:
        raise ValueError(f"bert_attention run {att_run.key} has no chosen sentences to explore")
    layers = sentences[0]["maps"]["pre"]
    n_layers, n_heads = len(layers), len(layers[0]) - 1  # the last "head" is the average
    ft_model = model_short(att_run.config["finetune"]["model"])
    return {"model": ft_model, "n_layers": int(n_layers), "n_heads": int(n_heads), "scale": scale,
            "decimals": EXPLORER_DECIMALS, "sentences": sentences}


def attention_explorer(att_run) -> str:
    """Markdown for the HTML-only attention explorer (``output: asis``); the PDF shows nothing."""
    data = explorer_data(att_run)
    note = (f"**Attention explorer.** Pick a chosen sentence, a layer (1 to {data['n_layers']}) and a head "
            f"(1 to {data['n_heads']}, or their average): the pre-trained and the fine-tuned {data['model']} "
            "are drawn side by side on one colour scale (rows: query tokens, columns: key tokens). Hover or "
            "focus a token to highlight its row in both maps and list where it attends; the values are the "
            f"stored run's, rounded to {data['decimals']} decimals.")
    return widget("attention", data, label="Attention explorer: pre-trained vs fine-tuned, any layer and head",
                  note=note)
