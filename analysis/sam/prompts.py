"""The prompt-strategy registry.

Every strategy turns one image's context into a list of ``Prompt``s; the predicted mask is the
union of the prompts' masks. *Oracle* strategies read the ground-truth mask (as a clicking user
who can see the lungs would); *atlas* strategies never see it: they place the same boxes and
points on every image, taken from an atlas (the pixel-wise mean of the train split's masks).

Geometry: masks are (H, W) bool; points are (x, y) = (column, row); boxes are (x0, y0, x1, y1)
in pixels, inclusive, as ``SamPredictor`` takes them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from scipy import ndimage

from .engine import Prompt


# --- geometry helpers ------------------------------------------------------------------------


def lung_components(mask_hw: np.ndarray, max_parts: int = 2) -> list[np.ndarray]:
    """The (up to) two largest connected parts of a mask, ordered left to right in the image."""
    labels, n = ndimage.label(mask_hw)
    if n == 0:
        return []
    sizes = ndimage.sum(mask_hw, labels, index=range(1, n + 1))
    keep = np.argsort(sizes)[::-1][:max_parts] + 1
    parts = [labels == k for k in keep]
    # drop specks that are far smaller than the main part (annotation noise)
    parts = [p for p in parts if p.sum() >= 0.05 * parts[0].sum()]
    return sorted(parts, key=lambda p: np.nonzero(p)[1].mean())


def box_of(mask_hw: np.ndarray) -> np.ndarray:
    """Tight (x0, y0, x1, y1) box of a non-empty mask."""
    ys, xs = np.nonzero(mask_hw)
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float32)


def inner_point(mask_hw: np.ndarray) -> np.ndarray:
    """The point deepest inside the mask (maximum of the distance transform), as (x, y)."""
    dist = ndimage.distance_transform_edt(mask_hw)
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return np.array([x, y], dtype=np.float32)


def spread_points(mask_hw: np.ndarray, k: int) -> np.ndarray:
    """k points inside the mask: the deepest point, then farthest-point sampling over its interior.

    Deterministic (no random numbers). Only pixels at least 30% of the maximum depth count as
    interior, so points stay clear of the border. Returns (k, 2) (x, y).
    """
    dist = ndimage.distance_transform_edt(mask_hw)
    ys, xs = np.nonzero(dist >= 0.3 * dist.max())
    cand = np.stack([xs, ys], axis=1).astype(np.float32)
    chosen = [inner_point(mask_hw)]
    d = np.linalg.norm(cand - chosen[0], axis=1)
    for _ in range(1, k):
        j = int(np.argmax(d))
        chosen.append(cand[j])
        d = np.minimum(d, np.linalg.norm(cand - cand[j], axis=1))
    return np.stack(chosen)


def between_point(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """A background point between two lungs: mid-column between their inner edges, mean centroid row."""
    lx = np.nonzero(left)[1].max()
    rx = np.nonzero(right)[1].min()
    row = (np.nonzero(left)[0].mean() + np.nonzero(right)[0].mean()) / 2
    return np.array([(lx + rx) / 2, row], dtype=np.float32)


def jitter_box(box_xyxy: np.ndarray, frac: float, rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    """Move each box edge by U(-frac, frac) x the box's width (x) or height (y); clip to the image."""
    x0, y0, x1, y1 = box_xyxy
    w, h = x1 - x0 + 1, y1 - y0 + 1
    d = rng.uniform(-frac, frac, size=4) * np.array([w, h, w, h])
    out = np.array([x0, y0, x1, y1]) + d
    out[[0, 2]] = np.clip(np.sort(out[[0, 2]]), 0, hw[1] - 1)
    out[[1, 3]] = np.clip(np.sort(out[[1, 3]]), 0, hw[0] - 1)
    return out.astype(np.float32)


# --- context and registry --------------------------------------------------------------------


@dataclasses.dataclass
class Context:
    """What a strategy may look at: ``gt`` (oracle strategies only) and the train-split atlas."""

    gt: np.ndarray | None  # (H, W) bool ground truth
    atlas: np.ndarray | None  # (H, W) bool atlas mask (mean train mask > 0.5)
    shape: tuple[int, int] = (256, 256)


def _pts(points_xy, labels) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(points_xy, np.float32).reshape(-1, 2), np.asarray(labels, np.int64)


def point_on_larger(mask):
    parts = lung_components(mask)
    if not parts:
        return []
    big = max(parts, key=lambda p: p.sum())
    p, l = _pts(inner_point(big), [1])
    return [Prompt(points_xy=p, labels=l, group="larger")]


def point_per_lung(mask):
    out = []
    for i, part in enumerate(lung_components(mask)):
        p, l = _pts(inner_point(part), [1])
        out.append(Prompt(points_xy=p, labels=l, group=f"lung{i}"))
    return out


def k_points_per_lung(mask, k: int, negative: bool = True):
    parts = lung_components(mask)
    neg = between_point(parts[0], parts[1]) if negative and len(parts) == 2 else None
    out = []
    for i, part in enumerate(parts):
        pts = spread_points(part, k)
        labels = [1] * k
        if neg is not None:
            pts = np.vstack([pts, neg[None]])
            labels = labels + [0]
        p, l = _pts(pts, labels)
        out.append(Prompt(points_xy=p, labels=l, group=f"lung{i}"))
    return out


def box_per_lung(mask):
    return [Prompt(box_xyxy=box_of(part), group=f"lung{i}") for i, part in enumerate(lung_components(mask))]


def box_both(mask):
    return [Prompt(box_xyxy=box_of(mask), group="both")] if mask.any() else []


def box_and_point_per_lung(mask):
    out = []
    for i, part in enumerate(lung_components(mask)):
        p, l = _pts(inner_point(part), [1])
        out.append(Prompt(points_xy=p, labels=l, box_xyxy=box_of(part), group=f"lung{i}"))
    return out


@dataclasses.dataclass(frozen=True)
class Strategy:
    name: str
    label: str  # short human-readable description
    oracle: bool  # True: built from the ground truth
    kind: str  # point | box | box+point
    build: Callable[[Context], list[Prompt]]


STRATEGIES: dict[str, Strategy] = {}


def _add(name, label, oracle, kind, build):
    STRATEGIES[name] = Strategy(name, label, oracle, kind, build)


_add("point_larger", "1 point on the larger lung", True, "point", lambda c: point_on_larger(c.gt))
_add("point_per_lung", "1 point per lung", True, "point", lambda c: point_per_lung(c.gt))
_add("points3_neg", "3 points per lung + 1 negative between lungs", True, "point",
     lambda c: k_points_per_lung(c.gt, 3))
_add("box_per_lung", "1 box per lung", True, "box", lambda c: box_per_lung(c.gt))
_add("box_both", "1 box around both lungs", True, "box", lambda c: box_both(c.gt))
_add("box_point_per_lung", "box + centre point per lung", True, "box+point", lambda c: box_and_point_per_lung(c.gt))
_add("atlas_point_per_lung", "atlas: 1 point per lung", False, "point", lambda c: point_per_lung(c.atlas))
_add("atlas_box_per_lung", "atlas: 1 box per lung", False, "box", lambda c: box_per_lung(c.atlas))
_add("atlas_box_both", "atlas: 1 box around both lungs", False, "box", lambda c: box_both(c.atlas))



def build_atlas(train_masks: np.ndarray, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Atlas from train masks (N, H, W) bool: (probability map (H, W) float32, mask prob > threshold)."""
    prob = np.asarray(train_masks, dtype=np.float32).mean(axis=0)
    return prob, prob > threshold


def jitter_prompts(gt: np.ndarray, frac: float, rng: np.random.Generator) -> list[Prompt]:
    """Box per lung with each edge jittered by ``frac`` of the box size (robustness curve)."""
    return [Prompt(box_xyxy=jitter_box(p.box_xyxy, frac, rng, gt.shape), group=p.group) for p in box_per_lung(gt)]
