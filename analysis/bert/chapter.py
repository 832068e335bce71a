"""What the BERT chapter's cells call: stored runs, tables and short descriptions."""

from __future__ import annotations

import pandas as pd

from ..data.agnews import LABELS
from ..experiments import get_or_run
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
    return df.rename(columns={"split": "Split", "n": "Texts", "words_mean": "Words (mean)", "chars_mean": "Characters (mean)",
                              "tokens_mean": "Tokens (mean)", "tokens_median": "Tokens (median)",
                              "tokens_p95": "Tokens (95th pct.)", "tokens_max": "Tokens (max)",
                              "over_max_length": "Over 128 tokens"})


def examples_table(stats_run, max_chars: int = 160) -> pd.DataFrame:
    df = stats_run.table("records")
    df["text"] = df["text"].map(lambda t: t if len(t) <= max_chars else t[: max_chars - 1] + "…")
    return df[["class", "tokens", "text"]].rename(columns={"class": "Class", "tokens": "Tokens", "text": "Text (title + description)"})


def per_class_table(ft_run) -> pd.DataFrame:
    return ft_run.table("per_class").rename(columns={"class": "Class", "f1": "F1", "recall": "Recall",
                                                     "precision": "Precision", "n": "Test items"})


def curve_table(ft_run) -> pd.DataFrame:
    c = ft_run.table("curve")
    c = c[c["kind"] == "validation"][["step", "epoch", "loss", "accuracy", "macro_f1"]]
    return c.rename(columns={"step": "Step", "epoch": "Epoch", "loss": "Validation loss",
                             "accuracy": "Validation accuracy", "macro_f1": "Validation macro-F1"})


def chosen_table(att_run) -> pd.DataFrame:
    rows = att_run.table("chosen")
    return pd.DataFrame({
        "#": range(1, len(rows) + 1), "Role": rows["role"], "True": rows["label"].map(lambda i: LABELS[i]),
        "Fine-tuned predicts": rows["pred"].map(lambda i: LABELS[i]), "Tokens": rows["tokens"].map(len),
        "JS last layer (bit)": rows["js_last"], "Text": rows["text"],
    })


def layer_table(att_run) -> pd.DataFrame:
    """Per layer (mean over heads and sentences): JS, and mass/entropy before -> after."""
    a = att_run.arrays
    out = {"Layer": range(1, a["stat_js"].shape[0] + 1), "JS (bit)": a["stat_js"].mean(1)}
    for key, name in (("cls", "[CLS] mass"), ("sep", "[SEP] mass"), ("punct", "punct. mass"), ("entropy", "entropy (bit)")):
        out[f"{name} pre"] = a[f"stat_{key}_pre"].mean(1)
        out[f"{name} fine-tuned"] = a[f"stat_{key}_ft"].mean(1)
    return pd.DataFrame(out)


def top_heads(att_run, n: int = 5) -> pd.DataFrame:
    """The ``n`` (layer, head) pairs whose attention fine-tuning changed most (JS divergence)."""
    a = att_run.arrays
    js = a["stat_js"]
    flat = js.ravel().argsort()[::-1][:n]
    rows = []
    for f in flat:
        l, h = divmod(int(f), js.shape[1])
        rows.append({"Layer": l + 1, "Head": h + 1, "JS (bit)": js[l, h],
                     "[CLS] pre": a["stat_cls_pre"][l, h], "[CLS] fine-tuned": a["stat_cls_ft"][l, h],
                     "[SEP] pre": a["stat_sep_pre"][l, h], "[SEP] fine-tuned": a["stat_sep_ft"][l, h],
                     "entropy pre": a["stat_entropy_pre"][l, h], "entropy fine-tuned": a["stat_entropy_ft"][l, h]})
    return pd.DataFrame(rows)


def fewshot_table(fs_run) -> pd.DataFrame:
    m = fs_run.metrics
    return pd.DataFrame([
        {"Method": f"{m['k']}-shot {model_title(fs_run.config['model'])}, label log-likelihood",
         "Accuracy": m["accuracy_raw"], "Macro-F1": m["macro_f1_raw"]},
        {"Method": "same, contextual calibration", "Accuracy": m["accuracy_calibrated"], "Macro-F1": m["macro_f1_calibrated"]},
        {"Method": f"fine-tuned {model_title(fs_run.config['finetune']['model'])}", "Accuracy": m["accuracy_encoder_same_items"],
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
    cm = np.asarray(ft_run.arrays["confusion"]).copy()
    best, worst = per.loc[per["f1"].idxmax()], per.loc[per["f1"].idxmin()]
    sym = cm + cm.T
    np.fill_diagonal(sym, -1)
    i, j = np.unravel_index(int(sym.argmax()), sym.shape)
    return (f"{best['class']} is the easiest class (F1 {best['f1']:.3f}) and {worst['class']} the hardest "
            f"(F1 {worst['f1']:.3f}); the pair confused most often is {LABELS[i]} and {LABELS[j]} "
            f"({cm[i, j]} + {cm[j, i]} test items in either direction)")


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
    return (f"bench/bench_bert.py trained {b['model']} on {b['device']} with both settings for "
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
                f"{cfg['epochs']:g} epoch(s), so the published figure is the yardstick it should meet.")
    return (f"The gap has two causes that this run cannot separate: a smaller model "
            f"({model_title(cfg['model'])}, {m['n_params'] / 1e6:.1f}M parameters against bert-base's 110M, "
            f"pre-trained as a sentence-embedding model rather than a masked-language model) and "
            f"{m['n_train']:,} training rows ({share:.1%} of the 120,000) for {cfg['epochs']:g} epoch(s). "
            f"The full profile measures bert-base-uncased with the same code.")
