"""Figures of the BERT chapter; each takes stored runs and returns a matplotlib Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..data.agnews import LABELS

SPLITS = ("train", "validation", "test")

# Printed size: the PDF's text is about 15 cm (5.9 in) wide (measured: its figures print at 5.89 in) and
# wider figures are scaled down to it, so a figure whose tight bounding box is at most TEXT_WIDTH inches
# prints at its own size and every font below is its printed size. WIDTH leaves room for the tight box.
TEXT_WIDTH = 5.85
WIDTH = 5.7
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


def _legend_below(ax, ncol: int = 2, below_pt: float = 30.0):
    """The legend under the axes, ``below_pt`` points below their bottom edge (under the tick labels
    and the x label, whatever the figure's height), so it covers neither data nor the label."""
    from matplotlib.transforms import ScaledTranslation

    offset = ScaledTranslation(0, -below_pt / 72, ax.figure.dpi_scale_trans)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0), bbox_transform=ax.transAxes + offset,
              ncol=ncol, frameon=False)


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
    fig, (a, b) = plt.subplots(1, 2, figsize=(WIDTH, 2.8))
    top = max(int(arr[f"tokens_{s}"].max()) for s in SPLITS if f"tokens_{s}" in arr)
    bins = np.arange(0, top + 5, 4)
    for s in SPLITS:
        a.hist(arr[f"tokens_{s}"], bins=bins, density=True, histtype="step", lw=1.5, label=f"{s} (n={len(arr[f'tokens_{s}'])})")
    a.axvline(max_length, color="k", ls="--", lw=1)
    a.text(max_length, a.get_ylim()[1] * 0.9, f" cut {max_length}", fontsize=7)
    a.set(xlabel="tokens per text (incl. [CLS], [SEP])", ylabel="density", title="By split")
    _legend_below(a, 2)
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
    fig, (a, b) = plt.subplots(1, 2, figsize=(WIDTH, 2.5))
    tr, va = curve[curve["kind"] == "train"], curve[curve["kind"] == "validation"]
    a.plot(tr["step"], tr["loss"], label="training loss (running)", alpha=0.8)
    a.plot(va["step"], va["loss"], "o-", label="validation loss")
    a.set(xlabel="optimizer step", ylabel="cross-entropy", title="Loss")
    _legend_below(a)
    b.plot(va["step"], va["accuracy"], "o-", label="accuracy")
    b.plot(va["step"], va["macro_f1"], "s--", label="macro-F1")
    b.axhline(0.25, color="gray", lw=0.8, ls=":", label="chance")
    b.set(xlabel="optimizer step", ylabel="validation score", ylim=(0, 1), title="Validation")
    _legend_below(b, 3)
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


TOKEN_IN = 0.1  # inches per token on a labelled map axis: 7-pt labels (0.097 in) do not overlap
CHAR_IN = 0.058  # width of a 7-pt character (DejaVu Sans, generous), for the room token labels need


@_house
def fig_attention_heads(att_run, i: int = 0):
    """Where [CLS] attends in the last layer, every head, for chosen sentence ``i``: one row per head (the
    [CLS] query row of its map), one column per key token; pre-trained (left) and fine-tuned (right) on one
    colour scale with one colour bar."""
    row, tokens, pre, ft = _chosen(att_run, i)
    n_heads, n = pre.shape[0], len(tokens)
    vmax = float(max(pre[:, 0].max(), ft[:, 0].max()))
    bottom = 0.15 + CHAR_IN * max(len(t) for t in tokens)  # rotated token labels, in inches
    height = max(n_heads, 6) * TOKEN_IN + bottom + 0.3
    fig = plt.figure(figsize=(WIDTH, height))
    gs = fig.add_gridspec(1, 3, width_ratios=[1, 1, 0.04], left=0.45 / WIDTH, right=1 - 0.75 / WIDTH,
                          bottom=bottom / height, top=1 - 0.25 / height, wspace=0.06)
    for j, (name, maps) in enumerate((("pre-trained", pre), ("fine-tuned", ft))):
        ax = fig.add_subplot(gs[0, j])
        im = ax.imshow(maps[:, 0, :], cmap="viridis", vmin=0, vmax=vmax, aspect="auto")
        ax.set_xticks(range(n), tokens, rotation=90)
        ax.set_yticks(range(n_heads), [str(h + 1) for h in range(n_heads)] if j == 0 else [])
        ax.set_title(f"#{i + 1} {name}")
        if j == 0:
            ax.set_ylabel("head")
    fig.colorbar(im, cax=fig.add_subplot(gs[0, 2]), label="attention from [CLS]")
    return _done(fig)


OVERVIEW_ROWS = 2  # sentences per overview figure: two rows of labelled maps and a caption fit an A4 page


def overview_parts(att_run) -> list[list[int]]:
    """The chosen sentences in groups of ``OVERVIEW_ROWS``, one overview figure each (the first has the
    chapter's label, the others follow it)."""
    n = len(att_run.rows("chosen"))
    return [list(range(k, min(k + OVERVIEW_ROWS, n))) for k in range(0, n, OVERVIEW_ROWS)] or [[]]


def pair_index(att_run) -> int:
    """The chosen sentence @fig-bert-pair shows: the misclassified one, else the first."""
    chosen = att_run.rows("chosen")
    return next((k for k, r in enumerate(chosen) if r["role"] == "misclassified"), 0)


@_house
def fig_chosen_overview(att_run, part: int = 0):
    """Head-averaged last-layer maps with token labels, pre-trained (left) vs fine-tuned (right), one row per
    chosen sentence of ``overview_parts(att_run)[part]``; one colour scale and one (horizontal) colour bar per
    figure. Laid out in inches: maps of TOKEN_IN per token, room for the longest token's label."""
    which = overview_parts(att_run)[part] or [0]
    data = [_chosen(att_run, i) for i in which]
    vmax = float(max(max(pre.mean(0).max(), ft.mean(0).max()) for _, _, pre, ft in data))
    n_max = max(len(tokens) for _, tokens, _, _ in data)
    label = CHAR_IN * max(len(t) for _, tokens, _, _ in data for t in tokens)  # longest token label
    left, gap, title = 0.25 + label, 0.1, 0.25
    side = min(n_max * TOKEN_IN, (WIDTH - left - gap - 0.05) / 2)  # shrinks only for a very long sentence
    row_h = title + side + 0.1 + label
    cbar_h = 0.5
    height = row_h * len(which) + cbar_h + 0.05
    fig = plt.figure(figsize=(left + 2 * side + gap + 0.05, height))
    W = fig.get_figwidth()
    for r, (i, (row, tokens, pre, ft)) in enumerate(zip(which, data)):
        truth, pred = LABELS[row["label"]], LABELS[row["pred"]]
        top = height - r * row_h - title
        for j, (name, a) in enumerate((("pre-trained", pre), ("fine-tuned", ft))):
            ax = fig.add_axes(((left + j * (side + gap)) / W, (top - side) / height, side / W, side / height))
            im = _map(ax, a.mean(0), tokens, f"#{i + 1} {name}" + (f" (true {truth}, pred. {pred})" if j else ""),
                      vmax=vmax)
            if j:
                ax.set_yticks([])
            else:
                ax.set_ylabel("query")
    cax = fig.add_axes((left / W, 0.3 / height, (2 * side + gap) / W, 0.08 / height))
    fig.colorbar(im, cax=cax, orientation="horizontal", label="attention (mean over heads)")
    return _done(fig)


def fig_chosen_overview_more(att_run) -> list:
    """The overview figures after the first (the chosen sentences it has no room for); may be empty."""
    return [fig_chosen_overview(att_run, part) for part in range(1, len(overview_parts(att_run)))]


@_house
def fig_attention_pair(att_run, i: int | None = None):
    """Fine-tuned minus pre-trained head-averaged last-layer attention (red: more after fine-tuning) for one
    chosen sentence (default: ``pair_index``, the misclassified one, else the first)."""
    chosen = att_run.rows("chosen")
    i = pair_index(att_run) if i is None else i % len(chosen)
    _, tokens, pre, ft = _chosen(att_run, i)
    d = ft.mean(0) - pre.mean(0)
    lim = float(np.abs(d).max()) or 1.0
    labels = max((len(t) for t in tokens), default=1) * 0.06 + 0.5  # room for a rotated 7-pt token label
    side = max(len(tokens), 8) * TOKEN_IN * 1.1  # the map itself, as the overview's token pitch
    fig, ax = plt.subplots(figsize=(side + labels + 1.3, side + labels + 0.4))
    im = _map(ax, d, tokens, f"#{i + 1}: fine-tuned minus pre-trained", cmap="RdBu_r", vmin=-lim, vmax=lim)
    fig.colorbar(im, ax=ax, shrink=0.8, pad=0.03, label="attention weight difference")
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query")
    fig.tight_layout()
    return _done(fig)


@_house
def fig_attention_change(att_run):
    """Where fine-tuning changed attention: JS divergence per layer and head, and per-layer summaries."""
    arr = att_run.arrays
    js = arr["stat_js"]
    n_layers, n_heads = js.shape
    layers = np.arange(1, n_layers + 1)
    fig, axes = plt.subplots(2, 2, figsize=(WIDTH, 4.9))
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
    axes[1].set_ylim(0, None)
    axes[2].plot(layers, arr["stat_entropy_pre"].mean(1), "o-", label="pre-trained")
    axes[2].plot(layers, arr["stat_entropy_ft"].mean(1), "s-", label="fine-tuned")
    axes[2].set(xlabel="layer", ylabel="row entropy (bit)", title="Attention entropy")
    axes[2].legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2, frameon=False)
    axes[3].bar(layers, js.mean(1), color="C4")
    axes[3].errorbar(layers, js.mean(1), yerr=[js.mean(1) - js.min(1), js.max(1) - js.mean(1)], fmt="none", color="k", lw=0.8)
    axes[3].set(xlabel="layer", ylabel="JS (bit)", title="Change by layer (mean, min-max over heads)")
    for ax in axes[1:]:
        ax.set_xticks(layers)  # whole layers only
    # the mass legend above the panels, off the data
    fig.legend(*axes[1].get_legend_handles_labels(), loc="upper center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return _done(fig)


@_house
def fig_fewshot(fs_run):
    """Accuracy of the k-shot causal LM (raw, calibrated) vs the fine-tuned encoder on the same items, and predicted-label shares."""
    m = fs_run.metrics
    fig, (a, b) = plt.subplots(1, 2, figsize=(WIDTH, 2.5), gridspec_kw={"width_ratios": [1, 1.3]})
    names = [f"{m['k']}-shot LM", f"{m['k']}-shot LM\ncalibrated", "fine-tuned\nencoder"]
    vals = [m["accuracy_raw"], m["accuracy_calibrated"], m["accuracy_encoder_same_items"]]
    bars = a.bar(names, vals, color=["C1", "C2", "C0"])
    a.bar_label(bars, [f"{v:.1%}" for v in vals], fontsize=7)
    a.axhline(0.25, color="gray", ls=":", lw=1, label="chance")
    a.set(ylim=(0, 1.05), ylabel="accuracy", title=f"Same {m['n_items']} test items")
    _legend_below(a, 1)
    x = np.arange(len(LABELS))
    truth = np.bincount(fs_run.table("records")["label"], minlength=len(LABELS)) / max(m["n_items"], 1)
    a_w = 0.27
    b.bar(x - a_w, truth, a_w, label="true", color="gray")
    b.bar(x, m["pred_share_raw"], a_w, label="predicted, raw", color="C1")
    b.bar(x + a_w, m["pred_share_calibrated"], a_w, label="predicted, calibrated", color="C2")
    b.set_xticks(x, LABELS)
    b.set(ylabel="share of items", title="Label shares, before and after calibration")
    _legend_below(b, 3)
    fig.tight_layout()
    return _done(fig)
