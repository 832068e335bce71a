"""Compute functions of the SAM experiments (called through ``get_or_run``, never from chapters).

``compute_prompts``: every prompt strategy on every image of the evaluation split (one encoder
pass per image, all prompts of an image in batched decoder calls), multimask statistics,
robustness curves and the arrays the figures need. ``compute_auto``: the automatic mask
generator, a lung-picking rule tuned on train images only, its oracle upper bounds, and the
part-1 demo (point, box and automatic mode on three images).
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np

from ..data.lung import LungSplit, load_lung, to_rgb
from ..paths import data_dir
from ..progress import progress
from ..store import Output
from . import prompts as P
from .metrics import DDOF, f1_score_mask, summarize


def data_path(config) -> Path:
    return data_dir() / config.data_relpath


def evenly_spaced(n_total: int, n: int | None) -> list[int]:
    """``n`` indices spread evenly over ``range(n_total)`` (all of them when n is None or larger)."""
    if n is None or n >= n_total:
        return list(range(n_total))
    return sorted({int(round(v)) for v in np.linspace(0, n_total - 1, n)})


def load_predictor(model_name: str, use_cache: bool = True):
    from ..models import load
    from .engine import cached_predictor

    sam = load(model_name)
    return cached_predictor(sam, model_name, use_cache=use_cache)


def _union(masks_hw: np.ndarray, shape) -> np.ndarray:
    return masks_hw.any(axis=0) if len(masks_hw) else np.zeros(shape, dtype=bool)


def combine_outputs(masks: np.ndarray, ious: np.ndarray, gt: np.ndarray) -> dict[str, np.ndarray]:
    """The three ways to turn a strategy's prompts' outputs (P, 4, H, W) into one mask.

    ``single``: the single-mask token (output 0) of every prompt, united;
    ``mm_top``: per prompt the multimask output (1-3) with the highest predicted IoU, united;
    ``mm_oracle``: the combination of multimask outputs (one per prompt) with the best F1 against
    the ground truth (exhaustive: at most 3^2 combinations here).
    """
    shape = gt.shape
    if len(masks) == 0:
        empty = np.zeros(shape, dtype=bool)
        return {"single": empty, "mm_top": empty, "mm_oracle": empty}
    single = _union(masks[:, 0], shape)
    top = 1 + np.argmax(ious[:, 1:], axis=1)
    mm_top = _union(masks[np.arange(len(masks)), top], shape)
    best, best_f1 = None, -1.0
    for choice in itertools.product((1, 2, 3), repeat=len(masks)):
        cand = _union(masks[np.arange(len(masks)), list(choice)], shape)
        f1 = f1_score_mask(cand, gt)
        if f1 > best_f1:
            best, best_f1 = cand, f1
    return {"single": single, "mm_top": mm_top, "mm_oracle": best}


def _prompt_rows(prompts) -> list[dict]:
    return [{"points": None if p.points_xy is None else p.points_xy.tolist(),
             "labels": None if p.labels is None else p.labels.tolist(),
             "box": None if p.box_xyxy is None else p.box_xyxy.tolist(), "group": p.group} for p in prompts]


def _meta(split: LungSplit, i: int) -> dict:
    return {"image": split.ids[i], "name": split.names[i], "source": split.source[i], "tb": split.tb[i]}


def _prompt_jobs(config, ctx, gt: np.ndarray, i: int, robust: bool) -> list[tuple[str, object, list]]:
    """``(strategy or curve name, curve level or None, prompts)`` for one image: every strategy, and on
    the robustness images the jittered boxes and k points per lung."""
    jobs: list[tuple[str, object, list]] = [(s, None, P.STRATEGIES[s].build(ctx)) for s in config.strategies]
    if robust:
        for frac in config.jitter_levels:
            rng = np.random.default_rng([config.seed, i, int(round(frac * 1000))])
            jobs.append(("jitter", frac, P.jitter_prompts(gt, frac, rng)))
        for k in config.points_levels:
            jobs.append(("points", k, P.k_points_per_lung(gt, k, negative=True)))
    return jobs


def _score_image(split, i: int, gt: np.ndarray, jobs, masks_nk_hw: np.ndarray, ious_nk: np.ndarray,
                 records: list, curves: list, preds: dict) -> None:
    """Turn one image's decoder outputs (one row per prompt of ``jobs``, in order) into strategy records,
    curve points and packed single-mask predictions (appended to the lists and ``preds``)."""
    start = 0
    for name, level, ps in jobs:
        m, q = masks_nk_hw[start:start + len(ps)], ious_nk[start:start + len(ps)]
        start += len(ps)
        if name in ("jitter", "points"):
            f1 = f1_score_mask(_union(m[:, 0], gt.shape), gt)
            curves.append({"id": f"{split.ids[i]}|{name}|{level}", "curve": name, "level": level,
                           "image": split.ids[i], "f1": f1})
            continue
        out = combine_outputs(m, q, gt)
        preds[(i, name)] = np.packbits(out["single"])
        strat = P.STRATEGIES[name]
        records.append({
            "id": f"{split.ids[i]}|{name}", **_meta(split, i), "strategy": name, "label": strat.label,
            "oracle": strat.oracle, "kind": strat.kind, "n_prompts": len(ps),
            "f1": f1_score_mask(out["single"], gt), "f1_mm_top": f1_score_mask(out["mm_top"], gt),
            "f1_mm_oracle": f1_score_mask(out["mm_oracle"], gt),
            "pred_frac": float(out["single"].mean()), "gt_frac": float(gt.mean()),
        })


def _example_roles(config, split, by: dict[str, list]) -> list[tuple[str, int]]:
    """The images the figures show: the 2.1 example, the 2.2 typical (median) and worst image under the
    main strategy, and each gallery strategy's worst images, as ``(role, image index)``."""
    idx_of = {iid: k for k, iid in enumerate(split.ids)}
    main = sorted(by.get(config.main_strategy, []), key=lambda r: r["f1"])
    roles: list[tuple[str, int]] = []
    if main:
        roles.append(("example", evenly_spaced(len(split), 1)[0] if config.example_index is None
                      else min(config.example_index, len(split) - 1)))
        roles.append(("typical", idx_of[main[len(main) // 2]["image"]]))
        roles.append(("worst", idx_of[main[0]["image"]]))
    for s in config.gallery_strategies:
        for r in sorted(by.get(s, []), key=lambda r: r["f1"])[: config.gallery_per_strategy]:
            roles.append((f"gallery:{s}", idx_of[r["image"]]))
    return roles


def _strategy_summary(config, by: dict[str, list], metrics: dict) -> list[dict]:
    """Per strategy: mean, SD and bootstrap CI of F1, and the multimask means; adds the per-strategy and
    main-strategy numbers to ``metrics``."""
    summary = []
    for s in config.strategies:
        rows = by.get(s, [])
        summ = summarize([r["f1"] for r in rows], seed=config.seed)
        summary.append({"strategy": s, "label": P.STRATEGIES[s].label, "oracle": P.STRATEGIES[s].oracle,
                        **summ, "mm_top_mean": float(np.mean([r["f1_mm_top"] for r in rows])) if rows else None,
                        "mm_oracle_mean": float(np.mean([r["f1_mm_oracle"] for r in rows])) if rows else None})
        metrics[f"f1_mean/{s}"], metrics[f"f1_std/{s}"] = summ["mean"], summ["std"]
    main_summary = next((r for r in summary if r["strategy"] == config.main_strategy), None)
    if main_summary:
        metrics.update(f1_mean=main_summary["mean"], f1_std=main_summary["std"],
                       f1_ci_low=main_summary["ci_low"], f1_ci_high=main_summary["ci_high"])
    return summary


def compute_prompts(config) -> Output:
    """Every prompt strategy on the evaluated split (one embedding per image, all prompts batched),
    robustness curves on a subset, and the arrays the figures show."""
    started = time.perf_counter()
    data = load_lung(data_path(config), splits=(config.atlas_split, config.split))
    atlas_prob, atlas_mask = P.build_atlas(data[config.atlas_split].masks)
    split = data[config.split].subset(evenly_spaced(len(data[config.split]), config.max_images))
    robust_idx = set(evenly_spaced(len(split), config.robustness_max_images))
    predictor = load_predictor(config.model)
    strategies = list(config.strategies)
    records, curves, prompt_rows = [], [], []
    preds: dict[tuple[int, str], np.ndarray] = {}
    decoder_prompts = 0
    for i in progress(range(len(split)), desc=f"sam_prompts {config.model}"):
        gt = split.masks[i]
        predictor.set_image(to_rgb(split.images_u8[i], name=split.ids[i]))
        jobs = _prompt_jobs(config, P.Context(gt=gt, atlas=atlas_mask, shape=gt.shape), gt, i, i in robust_idx)
        flat = [p for _, _, ps in jobs for p in ps]
        masks, ious = predictor.predict_batch(flat) if flat else (np.zeros((0, 4) + gt.shape, bool), np.zeros((0, 4)))
        decoder_prompts += len(flat)
        _score_image(split, i, gt, jobs, masks, ious, records, curves, preds)
    # --- examples for the figures: 2.1 example, 2.2 typical + worst, failure gallery ---
    by: dict[str, list] = {}
    for r in records:
        by.setdefault(r["strategy"], []).append(r)
    roles = _example_roles(config, split, by)
    shown = sorted({i for _, i in roles})
    pos = {i: k for k, i in enumerate(shown)}
    hw = split.masks.shape[1:]
    ex_pred = np.zeros((len(shown), len(strategies)) + hw, dtype=bool)
    for i in shown:
        ctx = P.Context(gt=split.masks[i], atlas=atlas_mask, shape=hw)
        for s_k, s in enumerate(strategies):
            ex_pred[pos[i], s_k] = np.unpackbits(preds[(i, s)])[: hw[0] * hw[1]].reshape(hw).astype(bool)
            for row in _prompt_rows(P.STRATEGIES[s].build(ctx)):
                prompt_rows.append({"id": f"{split.ids[i]}|{s}|{len(prompt_rows)}", "slot": pos[i],
                                    "strategy": s, **row})
    examples = [{"id": f"{role}|{split.ids[i]}", "role": role, "slot": pos[i], **_meta(split, i)} for role, i in roles]
    metrics: dict = {"model": config.model, "split": config.split, "n_images": len(split),
                     "n_robustness_images": len(robust_idx), "ddof": DDOF, "main_strategy": config.main_strategy,
                     "encoder_calls": predictor.encoder_calls, "embedding_cache_hits": predictor.cache_hits,
                     "decoder_prompts": decoder_prompts, "atlas_train_images": len(data[config.atlas_split])}
    summary = _strategy_summary(config, by, metrics)
    metrics["compute_seconds"] = time.perf_counter() - started
    return Output(
        metrics=metrics,
        tables={"records": records, "curves": curves, "summary": summary, "examples": examples,
                "example_prompts": prompt_rows},
        arrays={"ex_images": split.images_u8[shown], "ex_gt": split.masks[shown], "ex_pred": ex_pred,
                "strategies": np.array(strategies), "atlas_prob": atlas_prob.astype(np.float16)},
    )


# --- automatic mode ----------------------------------------------------------------------------


def amg_candidates(generator, image_rgb: np.ndarray) -> list[dict]:
    """The automatic generator's masks for one image, largest first."""
    anns = generator.generate(image_rgb)
    return sorted(anns, key=lambda a: -a["area"])


def candidate_features(anns: list[dict], atlas_prob: np.ndarray) -> list[dict]:
    """Per mask: area fraction and mean atlas probability inside it (both ground-truth free)."""
    out = []
    total = atlas_prob.size
    for a in anns:
        m = a["segmentation"]
        area = int(m.sum())
        out.append({"area_frac": area / total, "atlas": float(atlas_prob[m].mean()) if area else 0.0,
                    "pred_iou": float(a["predicted_iou"]), "stability": float(a["stability_score"])})
    return out


def apply_rule(anns, feats, tau: float, amax: float, amin: float, shape) -> np.ndarray:
    """Union of the masks that lie mostly where the atlas expects lung (mean prob >= tau) and whose
    area fraction is in [amin, amax]."""
    keep = [a["segmentation"] for a, f in zip(anns, feats) if f["atlas"] >= tau and amin <= f["area_frac"] <= amax]
    return np.any(keep, axis=0) if keep else np.zeros(shape, dtype=bool)


def oracle_choices(anns, gt) -> tuple[float, float]:
    """Upper bounds: the best single mask's F1, and the F1 of the union of all masks whose pixels
    are at least half inside the lungs (both read the ground truth)."""
    if not anns:
        return f1_score_mask(np.zeros_like(gt), gt), f1_score_mask(np.zeros_like(gt), gt)
    best = max(f1_score_mask(a["segmentation"], gt) for a in anns)
    inside = [a["segmentation"] for a in anns if a["segmentation"].sum() and (a["segmentation"] & gt).sum() >= 0.5 * a["segmentation"].sum()]
    union = np.any(inside, axis=0) if inside else np.zeros_like(gt)
    return best, f1_score_mask(union, gt)


def demo_indices(split: LungSplit, n: int = 3) -> list[int]:
    """Three varied images: Montgomery normal, Shenzhen normal, Shenzhen TB (first of each), else the first n."""
    picks = []
    for src, tb in (("MCU", 0), ("CHN", 0), ("CHN", 1)):
        for i in range(len(split)):
            if split.source[i] == src and split.tb[i] == tb and i not in picks:
                picks.append(i)
                break
    for i in range(len(split)):
        if len(picks) >= n:
            break
        if i not in picks:
            picks.append(i)
    return picks[:n]


def label_map(anns, shape) -> np.ndarray:
    """Masks painted largest first into an (H, W) uint8 label image (0 = no mask)."""
    out = np.zeros(shape, dtype=np.uint8)
    for k, a in enumerate(anns[:255]):
        out[a["segmentation"]] = k + 1
    return out


def compute_auto(config) -> Output:
    from segment_anything import SamAutomaticMaskGenerator

    started = time.perf_counter()
    data = load_lung(data_path(config), splits=(config.tune_split, config.split))
    train, val = data[config.tune_split], data[config.split]
    atlas_prob, atlas_mask = P.build_atlas(train.masks)  # all train masks; never val
    tune = train.subset(evenly_spaced(len(train), config.tune_images))
    demo = demo_indices(val, config.demo_images)
    eval_idx = sorted(set(evenly_spaced(len(val), config.eval_images)) | set(demo))
    evals = val.subset(eval_idx)
    predictor = load_predictor(config.model)
    generator = SamAutomaticMaskGenerator(
        predictor.model, points_per_side=config.points_per_side, points_per_batch=config.points_per_batch,
        pred_iou_thresh=config.pred_iou_thresh, stability_score_thresh=config.stability_score_thresh,
        min_mask_region_area=0)
    generator.predictor = predictor  # embeddings from the shared disk cache
    hw = val.masks.shape[1:]

    def run_split(split):
        out = []
        for i in progress(range(len(split)), desc=f"sam_auto {split.split}"):
            rgb = to_rgb(split.images_u8[i], name=split.ids[i])
            anns = amg_candidates(generator, rgb)
            out.append((anns, candidate_features(anns, atlas_prob)))
        return out

    tune_out = run_split(tune)
    grid = []
    for tau, amax in itertools.product(config.tau_grid, config.amax_grid):
        f1s = [f1_score_mask(apply_rule(a, f, tau, amax, config.amin, hw), tune.masks[i]) for i, (a, f) in enumerate(tune_out)]
        grid.append({"id": f"tau={tau}|amax={amax}", "tau": tau, "amax": amax, "train_f1_mean": float(np.mean(f1s))})
    best = max(grid, key=lambda g: g["train_f1_mean"])  # first maximum in grid order on ties
    eval_out = run_split(evals)
    records = []
    for i, (anns, feats) in enumerate(eval_out):
        gt = evals.masks[i]
        pred = apply_rule(anns, feats, best["tau"], best["amax"], config.amin, hw)
        ob, ou = oracle_choices(anns, gt)
        records.append({"id": evals.ids[i], **_meta(evals, i), "n_masks": len(anns),
                        "f1_rule": f1_score_mask(pred, gt), "f1_oracle_best": ob, "f1_oracle_union": ou,
                        "pred_frac": float(pred.mean())})
    tune_rows = [{"id": tune.ids[i], "n_masks": len(a)} for i, (a, _) in enumerate(tune_out)]
    # --- part 1.2 demo: point, box, automatic on three images ---
    demo_rows, d_point, d_box, d_auto, d_img, d_gt = [], [], [], [], [], []
    for j, vi in enumerate(demo):
        k = eval_idx.index(vi)
        gt = val.masks[vi]
        predictor.set_image(to_rgb(val.images_u8[vi]))
        pt = P.point_on_larger(gt)
        bx = P.box_both(gt)
        masks, ious = predictor.predict_batch(pt + bx) if (pt or bx) else (np.zeros((0, 4) + hw, bool), np.zeros((0, 4)))
        mp = masks[0, 1 + int(np.argmax(ious[0, 1:]))] if pt else np.zeros(hw, bool)  # demo click: best-scored of 3
        mb = masks[len(pt), 0] if bx else np.zeros(hw, bool)
        anns = eval_out[k][0]
        d_img.append(val.images_u8[vi]); d_gt.append(gt); d_point.append(mp); d_box.append(mb)
        d_auto.append(label_map(anns, hw))
        demo_rows.append({"id": val.ids[vi], **_meta(val, vi), "slot": j,
                          "point": pt[0].points_xy.tolist() if pt else None, "box": bx[0].box_xyxy.tolist() if bx else None,
                          "f1_point": f1_score_mask(mp, gt), "f1_box": f1_score_mask(mb, gt),
                          "f1_auto_rule": records[k]["f1_rule"], "n_auto_masks": len(anns)})
    r = {key: [row[key] for row in records] for key in ("f1_rule", "f1_oracle_best", "f1_oracle_union", "n_masks")}
    metrics = {"model": config.model, "n_eval_images": len(evals), "n_tune_images": len(tune),
               "points_per_side": config.points_per_side, "rule_tau": best["tau"], "rule_amax": best["amax"],
               "rule_train_f1": best["train_f1_mean"], "mean_masks_per_image": float(np.mean(r["n_masks"])),
               "share_images_without_masks": float(np.mean(np.array(r["n_masks"]) == 0))}
    for key in ("f1_rule", "f1_oracle_best", "f1_oracle_union"):
        s = summarize(r[key], seed=config.seed)
        metrics[f"{key}_mean"], metrics[f"{key}_std"] = s["mean"], s["std"]
        metrics[f"{key}_ci_low"], metrics[f"{key}_ci_high"] = s["ci_low"], s["ci_high"]
    metrics["compute_seconds"] = time.perf_counter() - started
    return Output(
        metrics=metrics,
        tables={"records": records, "tuning": grid, "tune_images": tune_rows, "demo": demo_rows},
        arrays={"demo_images": np.stack(d_img), "demo_gt": np.stack(d_gt), "demo_point": np.stack(d_point),
                "demo_box": np.stack(d_box), "demo_auto": np.stack(d_auto)},
    )
