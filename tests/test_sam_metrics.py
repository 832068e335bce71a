"""Per-image F1 equals scikit-learn's on the flattened masks; edge cases; bootstrap."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from analysis.sam.metrics import bootstrap_ci, f1_score_mask, mean_std, summarize


@pytest.mark.parametrize("seed", range(5))
def test_f1_matches_sklearn_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(size=(64, 64)) > 0.6
    pred = rng.uniform(size=(64, 64)) > 0.3 + 0.1 * seed
    assert f1_score_mask(pred, gt) == pytest.approx(f1_score(gt.ravel(), pred.ravel()), abs=1e-12)


def test_f1_edge_cases():
    empty, full = np.zeros((8, 8), bool), np.ones((8, 8), bool)
    assert f1_score_mask(empty, empty) == 1.0  # both empty: documented convention
    assert f1_score(empty.ravel(), empty.ravel(), zero_division=1.0) == 1.0  # what sklearn calls it
    assert f1_score_mask(full, full) == 1.0
    assert f1_score_mask(empty, full) == 0.0 and f1_score_mask(full, empty) == 0.0
    half = np.zeros((8, 8), bool); half[:4] = True
    assert f1_score_mask(half, full) == pytest.approx(2 * 32 / (2 * 32 + 32))
    assert f1_score_mask(half.astype(np.uint8), full.astype(np.float32)) == f1_score_mask(half, full)
    with pytest.raises(ValueError, match="shape"):
        f1_score_mask(half, np.ones((4, 4), bool))


def test_mean_std_uses_ddof_1_and_bootstrap_brackets_the_mean():
    v = np.array([0.9, 0.8, 0.95, 0.7, 0.85])
    mean, std = mean_std(v)
    assert mean == pytest.approx(v.mean()) and std == pytest.approx(v.std(ddof=1))
    lo, hi = bootstrap_ci(v, seed=0)
    assert lo < mean < hi and lo >= v.min() and hi <= v.max()
    assert bootstrap_ci(v, seed=0) == bootstrap_ci(v, seed=0)  # seeded
    s = summarize([0.5])
    assert s["n"] == 1 and np.isnan(s["std"]) and s["ci_low"] == s["ci_high"] == 0.5
    assert np.isnan(summarize([])["mean"])
