"""Classification metrics in plain numpy (tested against scikit-learn)."""

from __future__ import annotations

import numpy as np


def confusion(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]``, shape (n_classes, n_classes)."""
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    out = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(out, (y_true, y_pred), 1)
    return out


def accuracy(y_true, y_pred) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(y_true == y_pred)) if len(y_true) else float("nan")


def per_class_f1(y_true, y_pred, n_classes: int) -> np.ndarray:
    """F1 per class, shape (n_classes,); 0 where a class is neither present nor predicted (as sklearn's zero_division=0)."""
    cm = confusion(y_true, y_pred, n_classes)
    tp = np.diag(cm).astype(float)
    denom = cm.sum(0) + cm.sum(1)  # predicted + true = 2tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros(n_classes), where=denom > 0)


def macro_f1(y_true, y_pred, n_classes: int) -> float:
    """Unweighted mean of per-class F1 over all ``n_classes`` classes."""
    return float(per_class_f1(y_true, y_pred, n_classes).mean())
