"""Per-image F1 (Dice) and bootstrap intervals.

F1 = 2 TP / (2 TP + FP + FN) on the flattened binary masks: equal to
``sklearn.metrics.f1_score(gt.ravel(), pred.ravel())``. When both masks are empty the ratio is
0/0; we count that as 1.0 (a correct "nothing here"), which is what
``f1_score(..., zero_division=1.0)`` returns. Means and standard deviations are over images;
standard deviations use ddof=1 (the sample standard deviation).
"""

from __future__ import annotations

import numpy as np

DDOF = 1  # sample standard deviation over images, stated in the chapters


def f1_score_mask(pred: np.ndarray, gt: np.ndarray) -> float:
    """F1 of two same-shape binary masks (bool or 0/1); both empty -> 1.0."""
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth shape {gt.shape}")
    pred = pred.astype(bool)
    gt = gt.astype(bool)
    tp = int(np.count_nonzero(pred & gt))
    fp = int(np.count_nonzero(pred & ~gt))
    fn = int(np.count_nonzero(~pred & gt))
    denom = 2 * tp + fp + fn
    return 1.0 if denom == 0 else 2.0 * tp / denom


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; NaN std for a single value)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=DDOF)) if len(v) > 1 else float("nan")


def bootstrap_ci(values, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over images (Efron and Tibshirani 1994)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan")
    if len(v) == 1:
        return float(v[0]), float(v[0])
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def summarize(values, seed: int = 0) -> dict:
    """n, mean, std (ddof=1), 95% bootstrap CI of the mean, min, median."""
    v = np.asarray(values, dtype=float)
    mean, std = mean_std(v)
    lo, hi = bootstrap_ci(v, seed=seed)
    return {"n": int(len(v)), "mean": mean, "std": std, "ci_low": lo, "ci_high": hi,
            "min": float(v.min()) if len(v) else float("nan"),
            "median": float(np.median(v)) if len(v) else float("nan")}
