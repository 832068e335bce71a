"""Figures of the SAM chapters. Each function takes stored runs and returns a matplotlib Figure."""

from __future__ import annotations

import numpy as np

from . import prompts as P

PRED_COLOR = (0.95, 0.25, 0.2)
GT_COLOR = "#2bd92b"

# Printed size: the PDF's text block is 425 pt (5.9 in) wide (A4, the book template's margins; measured
# in the rendered PDF) and Typst scales a wider image down to it but never scales one up. So a figure
# at most WIDTH inches wide, saved with a tight bounding box no wider, prints at its own size and every
# font size below is its printed size (at 6.3 in, 7 pt printed as 6.6 pt).
WIDTH = 5.9
RC = {"font.size": 8, "axes.titlesize": 7.5, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
      "legend.fontsize": 7, "figure.titlesize": 8}
# Short strategy names for panel titles (the tables use the registry's full labels).
SHORT = {"point_larger": "1 point, larger lung", "point_per_lung": "1 point per lung",
         "points3_neg": "3 points/lung + neg.", "box_per_lung": "1 box per lung", "box_both": "1 box, both lungs",
         "box_point_per_lung": "box + point per lung", "atlas_point_per_lung": "atlas point/lung",
         "atlas_box_per_lung": "atlas box per lung", "atlas_box_both": "atlas box, both"}


def _short(strategy: str) -> str:
    return SHORT.get(strategy, P.STRATEGIES[strategy].label)


def _house(fn):
    """Draw with the book's font sizes (>= 7 pt at print size)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _plt().rc_context(RC):
            return fn(*args, **kwargs)
    return wrapper


def _plt():
    import matplotlib.pyplot as plt  # backend chosen by the environment (inline in a kernel, Agg headless)

    return plt


def _subplots(nrows=1, ncols=1, figsize=None, squeeze=True):
    """pyplot subplots, closed at once: a kernel then displays the returned figure once, not twice."""
    plt = _plt()
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=squeeze)
    plt.close(fig)
    return fig, axes


def show_mask(ax, mask_hw, color=PRED_COLOR, alpha=0.45):
    rgba = np.zeros(mask_hw.shape + (4,), dtype=float)
    rgba[mask_hw] = (*color, alpha)
    ax.imshow(rgba, interpolation="nearest")


def show_contour(ax, mask_hw, color=GT_COLOR, lw=1.0):
    if mask_hw.any():
        ax.contour(mask_hw.astype(float), levels=[0.5], colors=[color], linewidths=lw)


def show_prompts(ax, rows):
    """Draw prompt rows (dicts with points, labels, box) as markers and rectangles."""
    from matplotlib.patches import Rectangle

    for r in rows:
        if r.get("box"):
            x0, y0, x1, y1 = r["box"]
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="#1e90ff", lw=1.5))
        if r.get("points"):
            for (x, y), lab in zip(r["points"], r["labels"]):
                ax.scatter([x], [y], s=60, marker="*" if lab == 1 else "X",
                           c="#ffd700" if lab == 1 else "#ff00ff", edgecolors="black", linewidths=0.6, zorder=5)


def _blank(ax):
    ax.set_xticks([]); ax.set_yticks([])


def _prompt_rows(run, slot, strategy):
    return [r for r in run.rows("example_prompts") if r["slot"] == slot and r["strategy"] == strategy]


def _strategies(run) -> list[str]:
    return [str(s) for s in run.arrays["strategies"]]


@_house
def overlay(run, role: str = "example", strategy: str | None = None):
    """2.1: image, prompt and predicted mask (with the ground-truth outline) for one image."""
    plt = _plt()
    strategy = strategy or run.config["main_strategy"]
    ex = next(r for r in run.rows("examples") if r["role"] == role)
    a = run.arrays
    s = _strategies(run).index(strategy)
    img, gt, pred = a["ex_images"][ex["slot"]], a["ex_gt"][ex["slot"]], a["ex_pred"][ex["slot"], s]
    fig, axes = _subplots(1, 3, figsize=(WIDTH * 0.85, 2.2))
    for ax in axes:
        ax.imshow(img, cmap="gray", vmin=0, vmax=255); _blank(ax)
    axes[0].set_title("input (uint8 RGB)")
    show_prompts(axes[1], _prompt_rows(run, ex["slot"], strategy)); axes[1].set_title(f"prompt: {_short(strategy)}")
    show_mask(axes[2], pred); show_contour(axes[2], gt); show_prompts(axes[2], _prompt_rows(run, ex["slot"], strategy))
    from .metrics import f1_score_mask
    axes[2].set_title(f"prediction (red), truth (green)\nF1 = {f1_score_mask(pred, gt):.3f}")
    fig.tight_layout()
    return fig


@_house
def examples_grid(run, roles=("typical", "worst"), strategies=None):
    """2.2: rows = selected images, columns = strategies (prediction red, truth green, prompts drawn)."""
    plt = _plt()
    from .metrics import f1_score_mask

    names = _strategies(run)
    strategies = strategies or [s for s in ("point_per_lung", "points3_neg", "box_per_lung", "box_both", "atlas_box_per_lung") if s in names]
    exs = [r for role in roles for r in run.rows("examples") if r["role"] == role]
    if not exs:
        fig, ax = _subplots(figsize=(4, 1)); ax.axis("off"); ax.text(0, 0.5, "no examples in this run"); return fig
    a = run.arrays
    side = (WIDTH - 0.3) / len(strategies)
    fig, axes = _subplots(len(exs), len(strategies), figsize=(WIDTH, (side + 0.35) * len(exs)), squeeze=False)
    for i, ex in enumerate(exs):
        for j, s in enumerate(strategies):
            ax = axes[i, j]
            gt, pred = a["ex_gt"][ex["slot"]], a["ex_pred"][ex["slot"], names.index(s)]
            ax.imshow(a["ex_images"][ex["slot"]], cmap="gray", vmin=0, vmax=255)
            show_mask(ax, pred); show_contour(ax, gt); show_prompts(ax, _prompt_rows(run, ex["slot"], s)); _blank(ax)
            ax.set_title(f"{_short(s)}\nF1 {f1_score_mask(pred, gt):.2f}", fontsize=7)
            if j == 0:
                ax.set_ylabel(f"{ex['role']}\n{ex['name']}", fontsize=7)
    fig.tight_layout()
    return fig


@_house
def gallery(run):
    """Failure gallery: the worst images of the gallery strategies."""
    plt = _plt()
    from .metrics import f1_score_mask

    names = _strategies(run)
    exs = [r for r in run.rows("examples") if r["role"].startswith("gallery:")]
    if not exs:
        fig, ax = _subplots(figsize=(4, 1)); ax.axis("off"); ax.text(0, 0.5, "no gallery in this run"); return fig
    cols = 3
    rows = int(np.ceil(len(exs) / cols))
    fig, axes = _subplots(rows, cols, figsize=(WIDTH * 0.7, (WIDTH * 0.7 / cols + 0.35) * rows), squeeze=False)
    a = run.arrays
    for ax in axes.flat:
        ax.axis("off")
    for ax, ex in zip(axes.flat, exs):
        s = ex["role"].split(":", 1)[1]
        gt, pred = a["ex_gt"][ex["slot"]], a["ex_pred"][ex["slot"], names.index(s)]
        ax.imshow(a["ex_images"][ex["slot"]], cmap="gray", vmin=0, vmax=255)
        show_mask(ax, pred); show_contour(ax, gt); show_prompts(ax, _prompt_rows(run, ex["slot"], s))
        ax.set_title(f"{_short(s)}\n{ex['name']}, F1 {f1_score_mask(pred, gt):.2f}", fontsize=7)
    fig.tight_layout()
    return fig


@_house
def robustness(curves_df):
    """F1 vs box jitter and vs points per lung: mean with 95% bootstrap band (from chapter.curve_summary)."""
    plt = _plt()
    fig, axes = _subplots(1, 2, figsize=(WIDTH - 0.1, 2.2))
    for ax, (curve, xlabel) in zip(axes, [("jitter", "box jitter (fraction of box size)"),
                                          ("points", "positive points per lung (+1 negative)")]):
        d = curves_df[curves_df["curve"] == curve].sort_values("level")
        if len(d):
            ax.plot(d["level"], d["mean"], "o-", color="C0")
            ax.fill_between(d["level"].astype(float), d["ci_low"], d["ci_high"], alpha=0.25, color="C0")
        ax.set_xlabel(xlabel); ax.set_ylabel("F1 (mean, 95% CI)"); ax.set_ylim(-0.02, 1.02); ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


@_house
def atlas(run):
    """The train-split atlas (mean mask) and the ground-truth-free prompts placed from it."""
    plt = _plt()
    prob = run.arrays["atlas_prob"].astype(np.float32)
    mask = prob > 0.5
    fig, axes = _subplots(1, 2, figsize=(4.2, 2.1))
    im = axes[0].imshow(prob, cmap="magma", vmin=0, vmax=1); _blank(axes[0]); axes[0].set_title("atlas: mean train mask")
    fig.colorbar(im, ax=axes[0], fraction=0.046)
    axes[1].imshow(prob, cmap="gray", vmin=0, vmax=1); _blank(axes[1]); axes[1].set_title("atlas prompts (boxes, points)")
    ctx = P.Context(gt=None, atlas=mask, shape=mask.shape)
    rows = []
    for s in ("atlas_box_per_lung", "atlas_point_per_lung"):
        for p in P.STRATEGIES[s].build(ctx):
            rows.append({"points": None if p.points_xy is None else p.points_xy.tolist(),
                         "labels": None if p.labels is None else p.labels.tolist(),
                         "box": None if p.box_xyxy is None else p.box_xyxy.tolist()})
    show_prompts(axes[1], rows)
    fig.tight_layout()
    return fig


@_house
def demo(auto_run):
    """Part 1.2: the web demo's three modes reproduced in code; one row per mode, one column per image."""
    plt = _plt()
    from matplotlib.colors import ListedColormap

    a = auto_run.arrays
    rows = auto_run.rows("demo")
    n = len(rows)
    side = min(1.55, (WIDTH - 0.4) / max(n, 1))
    fig, axes = _subplots(3, n, figsize=(side * n + 0.4, 3 * (side + 0.3) + 0.15), squeeze=False)
    rng = np.random.default_rng(0)
    colors = np.vstack([[0, 0, 0, 0], np.c_[rng.uniform(0.2, 1, (255, 3)), np.full(255, 0.55)]])
    cmap = ListedColormap(colors)
    for j, r in enumerate(rows):
        img = a["demo_images"][j]
        for i in range(3):
            axes[i, j].imshow(img, cmap="gray", vmin=0, vmax=255); _blank(axes[i, j])
        gt = a["demo_gt"][j]
        show_mask(axes[0, j], a["demo_point"][j]); show_contour(axes[0, j], gt)
        show_prompts(axes[0, j], [{"points": r["point"], "labels": [1]}] if r["point"] else [])
        show_mask(axes[1, j], a["demo_box"][j]); show_contour(axes[1, j], gt)
        show_prompts(axes[1, j], [{"box": r["box"]}] if r["box"] else [])
        axes[2, j].imshow(a["demo_auto"][j], cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
        tb = {1: "TB", 0: "normal"}.get(r["tb"], "?")
        source = {"MCU": "Montgomery", "CHN": "Shenzhen"}.get(r["source"], r["source"])
        axes[0, j].set_title(f"{r['name']}\n({source}, {tb})\npoint: F1 {r['f1_point']:.2f}", fontsize=7)
        axes[1, j].set_title(f"box: F1 {r['f1_box']:.2f}", fontsize=7)
        axes[2, j].set_title(f"automatic: {r['n_auto_masks']} masks", fontsize=7)
    for i, mode in enumerate(("point", "box", "automatic")):
        axes[i, 0].set_ylabel(mode)
    fig.tight_layout()
    return fig


@_house
def screenshots(paths):
    """The group's own web-demo screenshots, in a grid (paths sorted)."""
    plt = _plt()
    n = len(paths)
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    fig, axes = _subplots(rows, cols, figsize=(WIDTH, WIDTH / cols * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, p in zip(axes.flat, paths):
        ax.imshow(plt.imread(p)); ax.set_title(p.stem, fontsize=7)
    fig.tight_layout()
    return fig
