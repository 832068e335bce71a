"""Scoring (separate from prompting and extraction): correctness, the flip table, McNemar's
exact test, paired bootstrap intervals, accuracy by group."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

FLIPS = ("flip_to_correct", "flip_to_incorrect", "correct_correct", "incorrect_incorrect")
FLIP_TITLES = {
    "flip_to_correct": "flip to correct (wrong without CoT, right with)",
    "flip_to_incorrect": "flip to incorrect (right without CoT, wrong with)",
    "correct_correct": "correct both times",
    "incorrect_incorrect": "incorrect both times",
}


def flip_category(direct_correct: bool, cot_correct: bool) -> str:
    """One of ``FLIPS`` (an INVALID CoT answer counts as incorrect)."""
    if direct_correct:
        return "correct_correct" if cot_correct else "flip_to_incorrect"
    return "flip_to_correct" if cot_correct else "incorrect_incorrect"


def flip_table(direct_correct, cot_correct) -> dict[str, int]:
    """Counts of the four categories (every category present, possibly 0)."""
    counts = Counter(flip_category(bool(d), bool(c)) for d, c in zip(direct_correct, cot_correct))
    return {name: int(counts.get(name, 0)) for name in FLIPS}


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts ``b`` and ``c``:
    ``min(1, 2 * P[X <= min(b, c)])`` with ``X ~ Binomial(b + c, 1/2)`` (McNemar 1947)."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired_bootstrap(direct_correct, cot_correct, n_boot: int = 10_000, seed: int = 0, level: float = 0.95):
    """Percentile intervals for both accuracies and their difference (items resampled jointly)."""
    d = np.asarray(direct_correct, dtype=float)
    c = np.asarray(cot_correct, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(n_boot, len(d)))
    acc_d, acc_c = d[idx].mean(1), c[idx].mean(1)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100

    def ci(x):
        return [float(np.percentile(x, lo)), float(np.percentile(x, hi))]

    return {"direct": ci(acc_d), "cot": ci(acc_c), "difference": ci(acc_c - acc_d), "n_boot": n_boot, "level": level}


def accuracy_by(records: list[dict], key: str) -> list[dict]:
    """Per value of ``key``: n, accuracy without and with CoT, and the four flip counts."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(str(r.get(key) or "unknown"), []).append(r)
    rows = []
    for name, rs in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        table = flip_table([r["direct_correct"] for r in rs], [r["cot_correct"] for r in rs])
        rows.append({
            key: name, "n": len(rs),
            "acc_direct": float(np.mean([r["direct_correct"] for r in rs])),
            "acc_cot": float(np.mean([r["cot_correct"] for r in rs])),
            **table,
        })
    return rows
