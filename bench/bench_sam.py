"""Benchmark: the course notebook's loop vs embed-once + batched prompts, same images, one run.

naive   : for every image and every strategy, ``SamPredictor.set_image`` (an encoder pass), then one
          ``predict(multimask_output=False)`` call per prompt, as the course notebook does;
design  : one encoder pass per image (``CachedPredictor``, disk cache in a fresh temporary folder:
          "cold"), all prompts of the image in batched decoder calls; then the same again with the
          cache filled ("warm": no encoder pass at all).

Prints a table and writes bench/results/sam.json. Usage:
    .venv/bin/python bench/bench_sam.py [--images 2] [--model litemedsam]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2, help="validation images (first N)")
    parser.add_argument("--model", default="litemedsam")
    parser.add_argument("--random-weights", action="store_true", help="build the architecture without weights (GPU timing)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "sam.json"))
    args = parser.parse_args(argv)

    import torch
    from segment_anything import SamPredictor

    from analysis.data.lung import load_lung, to_rgb
    from analysis.envinfo import device_description
    from analysis.models import load
    from analysis.sam import prompts as P
    from analysis.sam.engine import cached_predictor
    from analysis.sam.experiments import ALL_STRATEGIES
    from analysis.sam.metrics import f1_score_mask

    data = load_lung(splits=("train", "val"))
    _, atlas = P.build_atlas(data["train"].masks)
    val = data["val"].subset(range(args.images))
    sam = load(args.model, random_weights=args.random_weights)
    jobs = []  # (image index, strategy, prompts)
    for i in range(len(val)):
        ctx = P.Context(gt=val.masks[i], atlas=atlas, shape=val.masks[i].shape)
        jobs += [(i, s, P.STRATEGIES[s].build(ctx)) for s in ALL_STRATEGIES]
    n_prompts = sum(len(ps) for _, _, ps in jobs)

    def sync():
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    # --- naive: set_image per image and strategy, one predict per prompt ---
    naive_masks = {}
    plain = SamPredictor(sam)
    sync(); t0 = time.perf_counter()
    for i, s, ps in jobs:
        plain.set_image(to_rgb(val.images_u8[i]))
        m = np.zeros(val.masks[i].shape, bool)
        for p in ps:
            out, _, _ = plain.predict(point_coords=p.points_xy, point_labels=p.labels, box=p.box_xyxy,
                                      multimask_output=False)
            m |= out[0]
        naive_masks[(i, s)] = m
    sync(); naive = time.perf_counter() - t0

    # --- design: embed once per image (disk cache), batched prompts; cold then warm ---
    def design(pred):
        masks = {}
        sync(); t = time.perf_counter()
        for i in range(len(val)):
            pred.set_image(to_rgb(val.images_u8[i]))
            mine = [(s, ps) for j, s, ps in jobs if j == i]
            flat = [p for _, ps in mine for p in ps]
            out, _ = pred.predict_batch(flat)
            k = 0
            for s, ps in mine:
                masks[(i, s)] = out[k:k + len(ps), 0].any(axis=0) if ps else np.zeros(val.masks[i].shape, bool)
                k += len(ps)
        sync()
        return time.perf_counter() - t, masks

    with tempfile.TemporaryDirectory() as tmp:
        pred = cached_predictor(sam, args.model, cache=Path(tmp))
        cold, design_masks = design(pred)
        warm, _ = design(pred)
        encoder_calls = pred.encoder_calls
    same = [np.array_equal(naive_masks[k], design_masks[k]) for k in naive_masks]
    agree = [f1_score_mask(naive_masks[k], design_masks[k]) for k in naive_masks]
    result = {
        "model": args.model, "random_weights": args.random_weights, "n_images": len(val),
        "n_strategies": len(ALL_STRATEGIES), "n_prompts": n_prompts, "device": device_description(),
        "torch_threads": torch.get_num_threads(), "load_average_at_end": os.getloadavg()[0],
        "naive_encoder_calls": len(jobs), "design_encoder_calls": encoder_calls,
        "naive_seconds": naive, "design_cold_seconds": cold, "design_warm_seconds": warm,
        "ratio_cold": naive / cold, "ratio_warm": naive / warm,
        "masks_identical_share": float(np.mean(same)), "min_f1_naive_vs_design": float(min(agree)),
        "python": platform.python_version(), "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(f"{'variant':<28} {'seconds':>9} {'ratio':>7}")
    print(f"{'naive (course loop)':<28} {naive:9.1f} {1:7.1f}")
    print(f"{'design, cold cache':<28} {cold:9.1f} {naive / cold:7.1f}")
    print(f"{'design, warm cache':<28} {warm:9.1f} {naive / warm:7.1f}")
    print(f"{len(val)} images x {len(ALL_STRATEGIES)} strategies = {n_prompts} prompts on {result['device']}; "
          f"identical masks {100 * result['masks_identical_share']:.1f}%")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
