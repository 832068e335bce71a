"""Prompt geometry, the strategy registry and the ways of combining decoder outputs."""

import numpy as np
import pytest

from analysis.sam import prompts as P
from analysis.sam.evaluate import combine_outputs, evenly_spaced, apply_rule
from analysis.sam.metrics import f1_score_mask


def two_lungs(shape=(64, 64)):
    m = np.zeros(shape, bool)
    m[10:50, 8:26] = True  # image-left lung
    m[12:54, 38:58] = True  # image-right lung (larger)
    return m


def test_geometry_on_two_rectangles():
    m = two_lungs()
    left, right = P.lung_components(m)
    assert left[:, :30].any() and not left[:, 30:].any()
    assert P.box_of(right).tolist() == [38, 12, 57, 53]
    x, y = P.inner_point(right)
    assert right[int(y), int(x)]
    pts = P.spread_points(left, 4)
    assert pts.shape == (4, 2) and all(left[int(b), int(a)] for a, b in pts)
    assert len({tuple(p) for p in pts.tolist()}) == 4
    bx, by = P.between_point(left, right)
    assert 26 <= bx <= 38 and not m[int(by), int(bx)]
    rng = np.random.default_rng(0)
    assert np.allclose(P.jitter_box(P.box_of(right), 0.0, rng, m.shape), P.box_of(right))
    moved = P.jitter_box(P.box_of(right), 0.3, rng, m.shape)
    assert (moved >= 0).all() and moved[2] <= 63 and moved[0] <= moved[2] and moved[1] <= moved[3]


def test_every_strategy_builds_prompts_and_oracle_flags_are_right():
    m = two_lungs()
    prob, atlas = P.build_atlas(np.stack([m, m, np.zeros_like(m)]))
    assert prob.max() == pytest.approx(2 / 3) and (atlas == m).all()
    ctx = P.Context(gt=m, atlas=atlas, shape=m.shape)
    expected = {"point_larger": 1, "point_per_lung": 2, "points3_neg": 2, "box_per_lung": 2, "box_both": 1,
                "box_point_per_lung": 2, "atlas_point_per_lung": 2, "atlas_box_per_lung": 2, "atlas_box_both": 1}
    assert set(P.STRATEGIES) == set(expected)
    for name, n in expected.items():
        prompts = P.STRATEGIES[name].build(ctx)
        assert len(prompts) == n, name
        assert P.STRATEGIES[name].oracle == (not name.startswith("atlas"))
    neg = P.STRATEGIES["points3_neg"].build(ctx)[0]
    assert neg.labels.tolist() == [1, 1, 1, 0]
    # the atlas strategies never read the ground truth
    blind = P.Context(gt=None, atlas=atlas, shape=m.shape)
    assert len(P.STRATEGIES["atlas_box_per_lung"].build(blind)) == 2
    # an empty ground truth gives no prompts (and so an empty prediction)
    empty = P.Context(gt=np.zeros_like(m), atlas=atlas)
    assert all(P.STRATEGIES[s].build(empty) == [] for s in expected if P.STRATEGIES[s].oracle)


def test_combine_outputs_single_top_and_oracle():
    gt = two_lungs()
    left, right = P.lung_components(gt)
    masks = np.zeros((2, 4) + gt.shape, bool)
    masks[0, 0], masks[1, 0] = left, right  # single outputs: perfect
    masks[0, 1], masks[0, 2], masks[0, 3] = left, gt, np.zeros_like(gt)
    masks[1, 1], masks[1, 2], masks[1, 3] = np.zeros_like(gt), right, right
    ious = np.array([[0.9, 0.1, 0.2, 0.9], [0.9, 0.9, 0.1, 0.1]])
    out = combine_outputs(masks, ious, gt)
    assert f1_score_mask(out["single"], gt) == 1.0
    assert not out["mm_top"].any()  # the highest-scored outputs are the empty ones
    assert f1_score_mask(out["mm_oracle"], gt) == 1.0
    none = combine_outputs(np.zeros((0, 4) + gt.shape, bool), np.zeros((0, 4)), gt)
    assert not none["single"].any()


def test_rule_and_subsets():
    assert evenly_spaced(10, 3) == [0, 4, 9] or evenly_spaced(10, 3) == [0, 5, 9]
    assert evenly_spaced(5, None) == [0, 1, 2, 3, 4] and evenly_spaced(3, 10) == [0, 1, 2]
    gt = two_lungs()
    prob = gt.astype(np.float32)
    anns = [{"segmentation": gt}, {"segmentation": ~gt}]
    feats = [{"atlas": 1.0, "area_frac": gt.mean()}, {"atlas": 0.0, "area_frac": (~gt).mean()}]
    assert (apply_rule(anns, feats, 0.5, 0.9, 0.0, gt.shape) == gt).all()
    assert not apply_rule(anns, feats, 0.5, 0.01, 0.0, gt.shape).any()
    assert prob.shape == gt.shape
