"""Figures of the chain-of-thought chapter (each returns a matplotlib Figure from a stored run)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..models import spec
from .scoring import FLIPS

# Figures are drawn at most TEXT_WIDTH inches wide, the A4 PDF's text width, so they print at their
# drawn size and a FONT-point label stays FONT points on the page (the house minimum is 7).
TEXT_WIDTH = 5.6
FONT = 8

def _subplots(**kwargs):
    """pyplot subplots, closed at once: a kernel displays the returned figure once, not twice
    (the backend is the environment's: inline in a kernel, Agg headless)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(**kwargs)
    plt.close(fig)
    return fig, ax


FLIP_LABELS = {"flip_to_correct": "flip to\ncorrect", "flip_to_incorrect": "flip to\nincorrect",
               "correct_correct": "correct\nboth", "incorrect_incorrect": "incorrect\nboth"}
FLIP_COLORS = {"flip_to_correct": "#2a9d8f", "flip_to_incorrect": "#e76f51",
               "correct_correct": "#8ab17d", "incorrect_incorrect": "#9e9e9e"}


def flip_bars(run):
    """Bar plot of the four flip counts (direct answer -> CoT answer)."""
    counts = [run.metrics[f"n_{k}"] for k in FLIPS]
    fig, ax = _subplots(figsize=(TEXT_WIDTH, 2.6))
    bars = ax.bar([FLIP_LABELS[k] for k in FLIPS], counts, color=[FLIP_COLORS[k] for k in FLIPS])
    ax.bar_label(bars, padding=2, fontsize=FONT + 1)
    ax.set_ylabel("questions")
    ax.set_ylim(0, max(counts + [1]) * 1.18)
    ax.set_title(f"{run.metrics['n']} questions, {spec(run.config['model']).display}", fontsize=FONT + 1)
    return _finish(fig, ax)


def accuracy_by_group(run, table: str = "by_group", key: str = "group", top: int = 8):
    """Accuracy without and with CoT for the largest groups (subject, topic or question stem)."""
    df = run.table(table).sort_values("n", ascending=False).head(top).iloc[::-1]
    fig, ax = _subplots(figsize=(TEXT_WIDTH, 0.3 * len(df) + 1.1))
    y = np.arange(len(df))
    ax.barh(y + 0.2, df["acc_direct"], height=0.4, label="without CoT", color="#9e9e9e")
    ax.barh(y - 0.2, df["acc_cot"], height=0.4, label="with CoT", color="#2a9d8f")
    labels = [f"{_short(str(g).removeprefix('stem: '), 40)} (n={n})" for g, n in zip(df[key], df["n"])]
    ax.set_yticks(y, labels, fontsize=FONT)
    ax.axvline(0.25, color="k", lw=0.8, ls=":", label="chance (1/4)")
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy")
    return _finish(fig, ax, legend_loc="above")


def early_answering(run):
    """Agreement of the early answer (chain cut after k steps) with the final CoT answer."""
    probe = run.table("probe")
    # None (no valid final answer for any item with that cut, e.g. every CoT answer INVALID) -> NaN
    agree = pd.to_numeric(probe["agree"], errors="coerce").astype(float)
    agree_all = pd.to_numeric(probe.get("agree_all_cuts", pd.Series([np.nan] * len(probe))), errors="coerce")
    n_all = pd.to_numeric(probe.get("n_all_cuts", pd.Series([0] * len(probe))), errors="coerce").fillna(0)
    fig, ax = _subplots(figsize=(TEXT_WIDTH, 2.7))
    ax.plot(probe["steps_kept"], agree, "o-", color="#264653", label="all items with that cut")
    if n_all.max() > 0:
        ax.plot(probe["steps_kept"], agree_all.astype(float), "s--", color="#e9c46a",
                label=f"items with all cuts (n={int(n_all.max())})")
    if "chance" in probe:  # what the two answers' letter frequencies alone give (Cohen's kappa's p_e)
        chance = pd.to_numeric(probe["chance"], errors="coerce").astype(float)
        ax.plot(probe["steps_kept"], chance, "^:", color="#e76f51", label="chance (letter frequencies)")
    control = (run.metrics.get("control") or {}).get("probe_control")
    if control and any(np.isfinite(float(r["agree"])) for r in control if r["agree"] is not None):
        ax.plot([r["steps_kept"] for r in control], [np.nan if r["agree"] is None else r["agree"] for r in control],
                "d-.", color="#8e6c8a", label=f"options rotated (first {run.metrics['variant_n']})")
    for k, a, n in zip(probe["steps_kept"], agree, probe["n"]):
        if np.isfinite(a):
            ax.annotate(f"n={n}", (k, a), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=FONT)
    if not np.isfinite(agree).any():
        ax.text(0.5, 0.5, "no valid final CoT answer to compare with", transform=ax.transAxes,
                ha="center", va="center", fontsize=FONT + 1, color="#666666")
    ax.set_xticks(probe["steps_kept"])
    ax.set_xlabel("reasoning steps kept before asking for the answer")
    ax.set_ylabel("agrees with final CoT answer")
    ax.set_ylim(0, 1.08)
    return _finish(fig, ax, legend_loc="below" if np.isfinite(agree).any() else None)


def letter_distribution(run):
    """How often each letter is the gold answer and each condition's prediction."""
    df = run.table("letters")
    fig, ax = _subplots(figsize=(TEXT_WIDTH, 2.5))
    x = np.arange(len(df))
    for off, col, color, label in [(-0.27, "gold", "#264653", "gold"), (0, "direct", "#9e9e9e", "without CoT"),
                                   (0.27, "cot", "#2a9d8f", "with CoT")]:
        ax.bar(x + off, df[col], width=0.27, color=color, label=label)
    ax.set_xticks(x, df["letter"])
    ax.set_ylabel("questions")
    return _finish(fig, ax, legend_loc="above")


def _short(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, an ellipsis marking a cut."""
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _finish(fig, ax, legend_loc: str | None = None):
    """The house style of every figure: legend (if any) and tick labels at FONT points or more, no
    top/right spines, tight layout."""
    if legend_loc == "above":  # one row above the axes: inside them it would cover the tallest bars
        ax.legend(fontsize=FONT, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
    elif legend_loc == "below":  # under the axis label, off the data
        ax.legend(fontsize=FONT, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=2, frameon=False)
    elif legend_loc:
        ax.legend(fontsize=FONT, loc=legend_loc)
    ax.tick_params(labelsize=FONT)
    ax.xaxis.label.set_size(FONT + 1)
    ax.yaxis.label.set_size(FONT + 1)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig
