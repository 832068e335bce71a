"""Flip table, McNemar's exact test and the bootstrap against hand-computed cases."""

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from analysis.cot.scoring import accuracy_by, flip_category, flip_table, mcnemar_exact, paired_bootstrap


def test_flip_table_hand_case():
    direct = [1, 1, 0, 0, 0, 1, 0, 0]
    cot = [1, 0, 1, 1, 0, 1, 0, 1]
    assert flip_table(direct, cot) == {"flip_to_correct": 3, "flip_to_incorrect": 1,
                                       "correct_correct": 2, "incorrect_incorrect": 2}
    assert flip_category(False, True) == "flip_to_correct"
    assert flip_table([], []) == dict.fromkeys(
        ["flip_to_correct", "flip_to_incorrect", "correct_correct", "incorrect_incorrect"], 0)


def test_mcnemar_hand_values():
    # b=3, c=1: P[X<=1 | n=4] = 5/16, two-sided 10/16
    assert mcnemar_exact(3, 1) == pytest.approx(10 / 16)
    # b=10, c=0: 2 / 2**10
    assert mcnemar_exact(10, 0) == pytest.approx(2 / 1024)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    for b, c in [(7, 19), (30, 12), (1, 9)]:
        assert mcnemar_exact(b, c) == pytest.approx(binomtest(b, b + c, 0.5).pvalue)


def test_bootstrap_brackets_accuracy():
    rng = np.random.default_rng(1)
    d = rng.random(200) < 0.4
    c = rng.random(200) < 0.6
    out = paired_bootstrap(d, c, n_boot=2000, seed=0)
    assert out["direct"][0] < d.mean() < out["direct"][1]
    assert out["cot"][0] < c.mean() < out["cot"][1]
    # width close to the normal approximation 2 * 1.96 * sqrt(p(1-p)/n)
    width = out["direct"][1] - out["direct"][0]
    assert width == pytest.approx(2 * 1.96 * math.sqrt(d.mean() * (1 - d.mean()) / 200), rel=0.15)
    assert paired_bootstrap(d, c, n_boot=500, seed=3) == paired_bootstrap(d, c, n_boot=500, seed=3)


def test_accuracy_by_group():
    recs = [{"subject": "a", "direct_correct": True, "cot_correct": False},
            {"subject": "a", "direct_correct": False, "cot_correct": False},
            {"subject": None, "direct_correct": True, "cot_correct": True}]
    rows = {r["subject"]: r for r in accuracy_by(recs, "subject")}
    assert rows["a"]["n"] == 2 and rows["a"]["acc_direct"] == 0.5 and rows["a"]["flip_to_incorrect"] == 1
    assert rows["unknown"]["acc_cot"] == 1.0
