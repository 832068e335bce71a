"""Metric functions against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from analysis.bert import metrics as M


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, 300)
    p = np.where(rng.random(300) < 0.6, y, rng.integers(0, 4, 300))
    assert M.accuracy(y, p) == pytest.approx(accuracy_score(y, p))
    assert M.macro_f1(y, p, 4) == pytest.approx(f1_score(y, p, average="macro", labels=range(4)))
    np.testing.assert_array_equal(M.confusion(y, p, 4), confusion_matrix(y, p, labels=range(4)))


def test_macro_f1_with_a_class_never_seen_or_predicted():
    y, p = np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0])
    expected = f1_score(y, p, average="macro", labels=range(4), zero_division=0)
    assert M.macro_f1(y, p, 4) == pytest.approx(expected)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        M.confusion([0, 1], [0], 4)
