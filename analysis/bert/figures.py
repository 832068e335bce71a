"""Figures of the BERT chapter; each takes stored runs and returns a matplotlib Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..data.agnews import LABELS

SPLITS = ("train", "validation", "test")

# Printed size: the PDF's text is about 16 cm (6.3 in) wide and figures are not scaled up, so a figure
# made at most WIDTH inches wide prints at its own size and every font below is its printed size.
WIDTH = 6.3
RC = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
      "legend.fontsize": 7, "figure.titlesize": 8}


def _house(fn):
    """Draw with the book's font sizes (>= 7 pt at print size)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with plt.rc_context(RC):
            return fn(*args, **kwargs)
    return wrapper


def _done(fig):
    """Detach the figure from pyplot: a Jupyter kernel would otherwise show it twice (once as the
    cell's value, once from pyplot's list of open figures)."""
    plt.close(fig)
    return fig


@_house
def fig_lengths(stats_run, max_length: int | None = None):
    """Token-length distributions per split (left) and per class in train (right)."""
    arr = stats_run.arrays
    max_length = max_length or stats_run.config["max_length"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(WIDTH, 2.9))
    top = max(int(arr[f"tokens_{s}"].max()) for s in SPLITS if f"tokens_{s}" in arr)
    bins = np.arange(0, top + 5, 4)
    for s in SPLITS:
        a.hist(arr[f"tokens_{s}"], bins=bins, density=True, histtype="step", lw=1.5, label=f"{s} (n={len(arr[f'tokens_{s}'])})")
    a.axvline(max_length, color="k", ls="--", lw=1)
    a.text(max_length, a.get_ylim()[1] * 0.9, f" cut {max_length}", fontsize=7)
    a.set(xlabel="tokens per text (incl. [CLS], [SEP])", ylabel="density", title="By split")
    a.legend()
    tok, lab = arr["tokens_train"], arr["labels_train"]
    data = [tok[lab == c] for c in range(len(LABELS))]
    words = arr["words_train"]
    ticks = [f"{name}\n{words[lab == c].mean():.0f} words" if len(data[c]) else name for c, name in enumerate(LABELS)]
    b.boxplot([d if len(d) else [np.nan] for d in data], tick_labels=ticks, showfliers=False)
    b.set(ylabel="tokens per text", title="By class (train; mean words below)")
    fig.tight_layout()
    return _done(fig)


@_house
def fig_learning_curve(ft_run):
    """Training and validation loss (left), validation accuracy and macro-F1 (right) per step."""
    curve = ft_run.table("curve")
    fig, (a, b) = plt.subplots(1, 2, figsize=(WIDTH, 2.9))
    tr, va = curve[curve["kind"] == "train"], curve[curve["kind"] == "validation"]
    a.plot(tr["step"], tr["loss"], label="training loss (running)", alpha=0.8)
    a.plot(va["step"], va["loss"], "o-", label="validation loss")
    a.set(xlabel="optimizer step", ylabel="cross-entropy", title="Loss")
    a.legend()
    b.plot(va["step"], va["accuracy"], "o-", label="accuracy")
    b.plot(va["step"], va["macro_f1"], "s--", label="macro-F1")
    b.axhline(0.25, color="gray", lw=0.8, ls=":", label="chance")
    b.set(xlabel="optimizer step", ylabel="validation score", ylim=(0, 1), title="Validation")
    b.legend(loc="lower right")
    if "epoch" in va and va["epoch"].notna().any():
        top = b.secondary_xaxis("top", functions=(
            lambda s: s / max(va["step"].max(), 1) * max(va["epoch"].max(), 1e-9),
            lambda e: e / max(va["epoch"].max(), 1e-9) * max(va["step"].max(), 1)))
        top.set_xlabel("epoch")
    fig.tight_layout()
    return _done(fig)


@_house
def fig_confusion(cm: np.ndarray, title: str = "Test confusion matrix"):
    """Row-normalised confusion matrix with counts (rows: true class)."""
    cm = np.asarray(cm)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(3.6, 3.2))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{cm[i, j]}\n{norm[i, j]:.0%}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(LABELS)), LABELS, rotation=30)
    ax.set_yticks(range(len(LABELS)), LABELS)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    return _done(fig)


def _chosen(att_run, i: int):
    row = att_run.rows("chosen")[i]
    n = len(row["tokens"])
    pre = att_run.arrays["chosen_pre_last"][i][:, :n, :n]
    ft = att_run.arrays["chosen_ft_last"][i][:, :n, :n]
    return row, row["tokens"], pre, ft


def _map(ax, a, tokens, title, cmap="viridis", vmin=0.0, vmax=None, fontsize=7, labels=True):
    im = ax.imshow(a, cmap=cmap, vmin=vmin, vmax=vmax)
    if labels:
        ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=fontsize)
        ax.set_yticks(range(len(tokens)), tokens, fontsize=fontsize)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_title(title, fontsize=8)
    return im


@_house
def fig_attention_heads(att_run, i: int = 0):
    """Last-layer attention of every head for chosen sentence ``i`` as thumbnails (no token labels; the
    first row and column are [CLS]): pre-trained heads in the top rows, fine-tuned below."""
    row, tokens, pre, ft = _chosen(att_run, i)
    n_heads = pre.shape[0]
    cols = 6
    rows_per = int(np.ceil(n_heads / cols))
    fig, axes = plt.subplots(2 * rows_per, cols, figsize=(WIDTH, 1.1 * 2 * rows_per + 0.3), squeeze=False)
    vmax = float(max(pre.max(), ft.max()))
    for block, (name, maps) in enumerate((("pre-trained", pre), ("fine-tuned", ft))):
        for h in range(rows_per * cols):
            ax = axes[block * rows_per + h // cols, h % cols]
            if h >= n_heads:
                ax.axis("off")
                continue
            _map(ax, maps[h], tokens, f"head {h + 1}", vmax=vmax, labels=False)
            if h % cols == 0:
                ax.set_ylabel(name, fontsize=7)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.01, top=0.95, wspace=0.05, hspace=0.35)
    return _done(fig)


def _pair(axes, att_run, i, cbar_fig=None):
    row, tokens, pre, ft = _chosen(att_run, i)
    a, b = pre.mean(0), ft.mean(0)
    vmax = float(max(a.max(), b.max()))
    truth, pred = LABELS[row["label"]], LABELS[row["pred"]]
    _map(axes[0], a, tokens, f"#{i + 1} pre-trained", vmax=vmax)
    im = _map(axes[1], b, tokens, f"#{i + 1} fine-tuned (true {truth}, pred. {pred})", vmax=vmax)
    axes[1].set_yticks([])
    return im


@_house
def fig_chosen_overview(att_run, which=None):
    """Head-averaged last-layer maps with token labels, pre-trained (left) vs fine-tuned (right), one row per
    chosen sentence in ``which`` (default: the first and the misclassified one); shared colour scale per row."""
    chosen = att_run.rows("chosen")
    if which is None:
        wrong = [k for k, r in enumerate(chosen) if r["role"] == "misclassified"]
        which = [0] + [w for w in wrong[:1] if w != 0]
    fig = plt.figure(figsize=(WIDTH, 3.3 * len(which)))
    gs = fig.add_gridspec(len(which), 3, width_ratios=[1, 1, 0.05], left=0.16, right=0.93,
                          bottom=0.9 / (3.3 * len(which)), top=0.97, wspace=0.06, hspace=0.45)
    for r, i in enumerate(which):
        axes = [fig.add_subplot(gs[r, 0]), fig.add_subplot(gs[r, 1])]
        im = _pair(axes, att_run, i)
        fig.colorbar(im, cax=fig.add_subplot(gs[r, 2]))
        axes[0].set_ylabel("query")
    return _done(fig)


@_house
def fig_attention_pair(att_run, i: int | None = None):
    """Fine-tuned minus pre-trained head-averaged last-layer attention (red: more after fine-tuning) for one
    chosen sentence (default: the misclassified one, else the first)."""
    chosen = att_run.rows("chosen")
    if i is None:
        i = next((k for k, r in enumerate(chosen) if r["role"] == "misclassified"), 0)
    _, tokens, pre, ft = _chosen(att_run, i % len(chosen))
    d = ft.mean(0) - pre.mean(0)
    lim = float(np.abs(d).max()) or 1.0
    fig, ax = plt.subplots(figsize=(4.4, 4.0))
    im = _map(ax, d, tokens, f"#{i % len(chosen) + 1}: fine-tuned minus pre-trained", cmap="RdBu_r", vmin=-lim, vmax=lim)
    fig.colorbar(im, ax=ax, shrink=0.8, pad=0.03, label="attention weight difference")
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query")
    fig.tight_layout()
    return _done(fig)


@_house
def fig_cls_rows(att_run):
    """What [CLS] attends to in the last layer, per head, for each chosen sentence: pre-trained vs fine-tuned."""
    chosen = att_run.rows("chosen")
    fig, axes = plt.subplots(len(chosen), 2, figsize=(WIDTH, 1.9 * len(chosen)), squeeze=False)
    for i, row in enumerate(chosen):
        _, tokens, pre, ft = _chosen(att_run, i)
        vmax = float(max(pre[:, 0].max(), ft[:, 0].max()))
        for j, (name, maps) in enumerate((("pre-trained", pre), ("fine-tuned", ft))):
            ax = axes[i, j]
            ax.imshow(maps[:, 0, :], cmap="magma", vmin=0, vmax=vmax, aspect="auto")
            ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=7)
            ax.set_yticks(range(0, maps.shape[0], 4), [f"h{h + 1}" for h in range(0, maps.shape[0], 4)], fontsize=7)
            ax.set_title(f"{row['role']}: {name}", fontsize=8)
    fig.subplots_adjust(left=0.04, right=0.99, bottom=0.08, top=0.97, wspace=0.08, hspace=0.75)
    return _done(fig)


@_house
def fig_attention_change(att_run):
    """Where fine-tuning changed attention: JS divergence per layer and head, and per-layer summaries."""
    arr = att_run.arrays
    js = arr["stat_js"]
    n_layers, n_heads = js.shape
    layers = np.arange(1, n_layers + 1)
    fig, axes = plt.subplots(2, 2, figsize=(WIDTH, 5.0))
    axes = axes.ravel()
    im = axes[0].imshow(js, cmap="viridis", aspect="auto")
    axes[0].set_xticks(range(n_heads), range(1, n_heads + 1), fontsize=7)
    axes[0].set_yticks(range(n_layers), layers, fontsize=7)
    axes[0].set(xlabel="head", ylabel="layer", title="JS divergence, pre vs fine-tuned (bit)")
    fig.colorbar(im, ax=axes[0], pad=0.02)
    for key, style in (("cls", "o-"), ("sep", "s-"), ("punct", "^-")):
        axes[1].plot(layers, arr[f"stat_{key}_pre"].mean(1), style, color="C0" if key == "cls" else "C1" if key == "sep" else "C2",
                     alpha=0.45, label=f"[{key.upper()}] pre" if key != "punct" else "punct. pre")
        axes[1].plot(layers, arr[f"stat_{key}_ft"].mean(1), style, color="C0" if key == "cls" else "C1" if key == "sep" else "C2",
                     label=f"[{key.upper()}] fine-tuned" if key != "punct" else "punct. fine-tuned", mfc="white")
    axes[1].set(xlabel="layer", ylabel="mass (mean over heads)", title="Mass on special tokens")
    axes[1].set_ylim(0, 1.65 * axes[1].get_ylim()[1])
    axes[1].legend(ncol=2, fontsize=7, loc="upper center", frameon=False)
    axes[2].plot(layers, arr["stat_entropy_pre"].mean(1), "o-", label="pre-trained")
    axes[2].plot(layers, arr["stat_entropy_ft"].mean(1), "s-", label="fine-tuned")
    axes[2].set(xlabel="layer", ylabel="row entropy (bit)", title="Attention entropy")
    axes[2].legend()
    axes[3].bar(layers, js.mean(1), color="C4")
    axes[3].errorbar(layers, js.mean(1), yerr=[js.mean(1) - js.min(1), js.max(1) - js.mean(1)], fmt="none", color="k", lw=0.8)
    axes[3].set(xlabel="layer", ylabel="JS (bit)", title="Change by layer (mean, min-max over heads)")
    fig.tight_layout()
    return _done(fig)


@_house
def fig_fewshot(fs_run):
    """Accuracy of the k-shot causal LM (raw, calibrated) vs the fine-tuned encoder on the same items, and predicted-label shares."""
    m = fs_run.metrics
    fig, (a, b) = plt.subplots(1, 2, figsize=(WIDTH, 2.9))
    names = [f"{m['k']}-shot LM", f"{m['k']}-shot LM\ncalibrated", "fine-tuned\nencoder"]
    vals = [m["accuracy_raw"], m["accuracy_calibrated"], m["accuracy_encoder_same_items"]]
    bars = a.bar(names, vals, color=["C1", "C2", "C0"])
    a.bar_label(bars, [f"{v:.1%}" for v in vals], fontsize=7)
    a.axhline(0.25, color="gray", ls=":", lw=1, label="chance")
    a.set(ylim=(0, 1.05), ylabel="accuracy", title=f"Same {m['n_items']} test items")
    a.legend(loc="upper left")
    x = np.arange(len(LABELS))
    truth = np.bincount(fs_run.table("records")["label"], minlength=len(LABELS)) / max(m["n_items"], 1)
    a_w = 0.27
    b.bar(x - a_w, truth, a_w, label="true", color="gray")
    b.bar(x, m["pred_share_raw"], a_w, label="predicted, raw", color="C1")
    b.bar(x + a_w, m["pred_share_calibrated"], a_w, label="predicted, calibrated", color="C2")
    b.set_xticks(x, LABELS)
    b.set(ylabel="share of items", title="Label bias, before and after calibration")
    b.legend()
    fig.tight_layout()
    return _done(fig)
