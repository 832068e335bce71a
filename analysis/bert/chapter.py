"""What the BERT chapter's cells call: stored runs, tables, figures and the numbers its prose quotes.

The prose is in ``chapters/03-bert-attention.qmd``; helpers here return numbers, tables and at most a
few result-dependent words (``change``, ``gap``), never sentences."""

from __future__ import annotations

import pandas as pd

from ..data.agnews import LABELS
from ..experiments import get_or_run
from ..lab import widget
from ..models import spec
from . import experiments as _registered  # noqa: F401  (registers the experiments)
from .figures import (fig_attention_change, fig_attention_heads, fig_attention_pair,  # noqa: F401
                      fig_chosen_overview, fig_chosen_overview_more, fig_confusion, fig_fewshot, fig_learning_curve, fig_lengths,
                      overview_parts, pair_index)
from .metrics import macro_f1


def runs(profile: str | None = None) -> dict:
    """The four stored runs of the chapter (computed if missing): stats, finetune, attention, fewshot."""
    return {
        "stats": get_or_run("agnews_stats", profile),
        "finetune": get_or_run("bert_finetune", profile),
        "attention": get_or_run("bert_attention", profile),
        "fewshot": get_or_run("bert_fewshot", profile),
    }


def model_name(name: str) -> str:
    """A registry id as the chapter names it: 'minilm_l6' -> 'all-MiniLM-L6-v2'."""
    return spec(name).display


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


def examples_table(stats_run, max_chars: int = 160, per_class: int | None = None) -> pd.DataFrame:
    """The stored representative examples (per class, nearest the class's median token count first),
    at most ``per_class`` of each class, texts cut to ``max_chars``."""
    df = stats_run.table("records")
    if per_class is not None:
        df = df.groupby("class", sort=False).head(per_class).reset_index(drop=True)
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


def encoder_macro_f1(fs_run) -> float:
    """Macro-F1 of the fine-tuned encoder on the few-shot run's test items, from the stored per-item
    predictions (``records``: ``label``, ``pred_encoder``); the run stored only its accuracy."""
    rec = fs_run.table("records")
    return macro_f1(rec["label"], rec["pred_encoder"], len(LABELS))


def fewshot_table(fs_run) -> pd.DataFrame:
    m = fs_run.metrics
    return pd.DataFrame([
        {"Method": f"{m['k']}-shot {model_name(fs_run.config['model'])}, label log-likelihood",
         "Accuracy": m["accuracy_raw"], "Macro-F1": m["macro_f1_raw"]},
        {"Method": "same, contextual calibration", "Accuracy": m["accuracy_calibrated"], "Macro-F1": m["macro_f1_calibrated"]},
        {"Method": f"fine-tuned {model_name(fs_run.config['finetune']['model'])}",
         "Accuracy": m["accuracy_encoder_same_items"], "Macro-F1": encoder_macro_f1(fs_run)},
    ])


def demonstrations_table(fs_run, max_words: int | None = None) -> pd.DataFrame:
    """The few-shot prompt's demonstrations (as stored, already cut), shortened further to ``max_words``
    words (with an ellipsis) for the page."""
    df = fs_run.table("demonstrations")
    if max_words is not None:
        df["text"] = df["text"].map(lambda t: t if len(t.split()) <= max_words
                                    else " ".join(t.split()[:max_words]).rstrip(" .,;:") + " …")
    return df.rename(columns={"class": "Label", "text": "Demonstration (cut)"})


def change(before: float, after: float, fmt=None, up: str = "rose", down: str = "fell") -> str:
    """'rose from 0.12 to 0.34' / 'fell from ...' / 'stayed at ...' for prose about a measured change;
    the verb compares the printed values, so it never contradicts them."""
    fmt = fmt or (lambda x: f"{x:.3f}")
    if fmt(before) == fmt(after):
        return f"stayed at {fmt(after)}"
    return f"{up if after > before else down} from {fmt(before)} to {fmt(after)}"


def gap(a: float, b: float) -> str:
    """'5.2 points above' / 'below' / 'level with' (accuracy a vs b, in percentage points, 1 decimal)."""
    d = round(100 * (a - b), 1)
    if d == 0:
        return "level with"
    return f"{abs(d):.1f} points {'above' if d > 0 else 'below'}"


def epochs_text(epochs: float) -> str:
    """1.0 -> '1 epoch', 2.0 -> '2 epochs', 0.5 -> '0.5 epochs'."""
    e = float(epochs)
    return f"{e:g} epoch" + ("" if e == 1 else "s")


def precision(ft_run) -> str:
    """The precision the run trained in, from its recorded flags: 'bf16', 'fp16' or 'fp32'."""
    m = ft_run.metrics
    return "bf16" if m.get("bf16") else "fp16" if m.get("fp16") else "fp32"


def misclassified(att_run) -> dict | None:
    """The chosen sentence the fine-tuned model gets wrong, if there is one."""
    rows = [r for r in att_run.rows("chosen") if r["role"] == "misclassified"]
    return rows[0] if rows else None


def label_name(i: int) -> str:
    return LABELS[int(i)]


def mean_pooled(model: str) -> bool:
    """Whether the encoder was pre-trained to pool a sentence as the mean of its token vectors (not its
    [CLS] vector): then its [CLS] attention need not behave like BERT's (the chapter's caveat)."""
    return spec(model).pooling == "mean"


def is_assignment_model(model: str) -> bool:
    return spec(model).assignment


def confusion_facts(ft_run) -> dict:
    """From the test confusion matrix and per-class scores: the classes with the highest and lowest F1
    (``best``, ``worst`` with ``best_f1``, ``worst_f1``), the pair confused most often in either direction
    (``pair`` = (class, class), ``ij``/``ji`` its two counts), ``errors`` (all test errors) and ``share``
    (the pair's share of them)."""
    import numpy as np

    per = ft_run.table("per_class")
    cm = np.asarray(ft_run.arrays["confusion"]).astype(int)
    best, worst = per.loc[per["f1"].idxmax()], per.loc[per["f1"].idxmin()]
    sym = cm + cm.T
    np.fill_diagonal(sym, -1)
    i, j = np.unravel_index(int(sym.argmax()), sym.shape)
    errors = int(cm.sum() - np.trace(cm))
    return {"best": best["class"], "best_f1": float(best["f1"]), "worst": worst["class"],
            "worst_f1": float(worst["f1"]), "pair": (LABELS[i], LABELS[j]), "ij": int(cm[i, j]),
            "ji": int(cm[j, i]), "errors": errors, "share": (cm[i, j] + cm[j, i]) / max(errors, 1)}


def js_peak_layer(att_run) -> int:
    """The layer (1-based) with the largest mean Jensen-Shannon divergence between the two models."""
    js = att_run.metrics["js_by_layer"]
    return int(max(range(len(js)), key=js.__getitem__)) + 1


def label_shares(fs_run) -> dict:
    """Label shares of the few-shot items: ``true``, ``raw`` and ``calibrated`` predictions (each a list
    over LABELS), the label predicted most often raw (``top_raw``) and the total-variation distance of
    each prediction share from the true one (``tv_raw``, ``tv_calibrated``: 0 = same shares, 1 = disjoint)."""
    import numpy as np

    m = fs_run.metrics
    labels = fs_run.table("records")["label"].to_numpy()
    true = np.bincount(labels, minlength=len(LABELS)) / max(len(labels), 1)
    raw, cal = np.asarray(m["pred_share_raw"]), np.asarray(m["pred_share_calibrated"])
    top = int(raw.argmax())
    return {"true": true.tolist(), "raw": raw.tolist(), "calibrated": cal.tolist(), "top_raw": LABELS[top],
            "top_raw_share": float(raw[top]), "top_raw_true": float(true[top]),
            "tv_raw": float(np.abs(raw - true).sum() / 2), "tv_calibrated": float(np.abs(cal - true).sum() / 2)}


def content_free_top(fs_run) -> tuple[str, float]:
    """The label the content-free prompts favour most, and its probability."""
    p = fs_run.metrics["p_content_free"]
    top = max(range(len(p)), key=p.__getitem__)
    return LABELS[top], float(p[top])


def quoted(words) -> str:
    """Label words for a sentence: [' World', ' Sports'] -> '"World", "Sports"'."""
    return ", ".join(f'"{w.strip()}"' for w in words)


def bench_result() -> dict | None:
    """``bench/results/bert.json`` (written by ``bench/bench_bert.py``), or None if it was not run."""
    import json

    from ..paths import PROJECT_ROOT

    path = PROJECT_ROOT / "bench" / "results" / "bert.json"
    return json.loads(path.read_text()) if path.exists() else None


def gpu_bench() -> dict:
    """The BERT part of ``bench/results/gpu.json`` (``bench/bench_gpu.py``: the full profile's
    fine-tuning, random weights of bert-base-uncased's architecture, on a GPU): device, seconds per epoch
    of this project's settings and of the snippet's (extrapolated), and their ratio; NaN when it was
    not run."""
    import json

    from ..paths import PROJECT_ROOT

    path = PROJECT_ROOT / "bench" / "results" / "gpu.json"
    nan = float("nan")
    if not path.exists():
        return {"device": "no GPU benchmark yet", "project_s": nan, "snippet_s": nan, "speedup": nan,
                "batch_size": nan, "precision": "—", "rows": nan}
    g = json.loads(path.read_text())
    b = g["bert"]
    return {"device": g["device"], "project_s": b["project"]["epoch_seconds"],
            "snippet_s": b["snippet"]["epoch_seconds_extrapolated"], "speedup": b["speedup"],
            "batch_size": b["project"]["batch_size"], "precision": b["project"]["precision"], "rows": b["rows"]}


def bench_profile(bench: dict) -> str:
    """The profile whose fine-tuning config uses the benchmarked model with its real weights, or '' if none."""
    from .experiments import FINETUNE

    if bench.get("random_weights"):
        return ""
    return next((p for p, cfg in FINETUNE.items() if cfg.model == bench["model"]), "")


def bench_differences(bench: dict, ft_run) -> str:
    """How the benchmark's 'project' setting differs from this fine-tuning run, as a list for a sentence:
    'the batch size (64 there, 16 here) and ...'; 'nothing' when it is the run's configuration."""
    from ..envinfo import device_text

    p, cfg = bench["variants"]["project"], ft_run.config
    bench_model = model_name(bench["model"]) + (" with random weights" if bench.get("random_weights") else "")
    if bench["model"] != cfg["model"] and not spec(bench["model"]).assignment:
        bench_model += ", the offline profile's model,"
    pairs = [("model", bench_model, model_name(cfg["model"])),
             ("batch size", p["batch_size"], cfg["batch_size"]),
             ("precision", p["precision"], precision(ft_run)),
             ("device", device_text(bench["device"]), device_text(ft_run.env["device"]))]
    diff = [f"the {what} ({there} there, {here} here)" for what, there, here in pairs if str(there) != str(here)]
    if not diff:
        return "nothing"
    return diff[0] if len(diff) == 1 else ", ".join(diff[:-1]) + " and " + diff[-1]


def cls_counts(att_run, k: int = 3) -> dict:
    """Counted from @tbl-bert-cls at its printed precision (3 decimals): in how many chosen sentences the
    [CLS] row's mass on [CLS] and [SEP] ``fell`` / ``rose`` / stayed (``same``), of ``n``; and how many of
    the ``n_top`` top-k tokens are [CLS] or [SEP] before (``special_top_pre``) and after (``special_top_ft``)."""
    rows = cls_targets(att_run, k)
    pre = [round(r["special_pre"], 3) for r in rows]
    ft = [round(r["special_ft"], 3) for r in rows]
    special = ("[CLS]", "[SEP]")
    return {"n": len(rows), "fell": sum(b < a for a, b in zip(pre, ft)), "rose": sum(b > a for a, b in zip(pre, ft)),
            "same": sum(b == a for a, b in zip(pre, ft)), "n_top": sum(len(r["ft"]) for r in rows),
            "special_top_pre": sum(t in special for r in rows for t in r["pre"]),
            "special_top_ft": sum(t in special for r in rows for t in r["ft"])}


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
        special = [j for j, t in enumerate(toks) if t in ("[CLS]", "[SEP]")]
        out.append({"i": i + 1, "pre": top(pre), "ft": top(ft), "rose": top(ft - pre),
                    "special_pre": float(pre[special].sum()), "special_ft": float(ft[special].sum())})
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
    ft_model = model_name(att_run.config["finetune"]["model"])
    return {"model": ft_model, "n_layers": int(n_layers), "n_heads": int(n_heads), "scale": scale,
            "decimals": EXPLORER_DECIMALS, "sentences": sentences}


def attention_explorer(att_run) -> str:
    """Markdown for the HTML-only attention explorer (``output: asis``); the PDF shows nothing. Its
    explanation is in the chapter, above the cell."""
    return widget("attention", explorer_data(att_run), label="Attention explorer")
