"""Embed once, prompt many times.

``CachedPredictor`` is a ``SamPredictor`` whose ``set_image`` looks the image embedding up in a
disk cache keyed by (model name, its weights, sha256 of the image bytes and shape) before running
the encoder (the weights part: the checkpoint's sha256, or "random-seed0", from ``sam.weights_id``;
LiteMedSAM, whose weights are fixed by its package version, keeps the model name alone),
so every strategy, every robustness level and the automatic mask generator (which calls
``predictor.set_image`` itself) reuse one encoder pass per image and model. ``predict_batch`` runs
many prompts on the current image in batched ``predict_torch`` calls.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..paths import cache_dir


def image_hash(image_rgb: np.ndarray) -> str:
    """sha256 of an image's shape, dtype and bytes (the embedding cache key's image part)."""
    a = np.ascontiguousarray(image_rgb)
    digest = hashlib.sha256(f"{a.shape}|{a.dtype}|".encode())
    digest.update(a.tobytes())
    return digest.hexdigest()[:24]


@dataclasses.dataclass
class Prompt:
    """One SAM prompt in image pixel coordinates (x, y).

    ``points_xy`` (n, 2) float with ``labels`` (n,) 1 = foreground, 0 = background; ``box_xyxy`` (4,).
    ``group`` names the part it segments (e.g. "left"/"right" lung), kept in the records; the
    evaluation unites a strategy's masks over all its prompts (``evaluate._union``).
    """

    points_xy: np.ndarray | None = None
    labels: np.ndarray | None = None
    box_xyxy: np.ndarray | None = None
    group: str = "all"

    def signature(self) -> tuple[int, bool]:
        return (0 if self.points_xy is None else len(self.points_xy), self.box_xyxy is not None)


def _make_predictor_class():
    import torch
    from segment_anything import SamPredictor

    class CachedPredictor(SamPredictor):
        """``SamPredictor`` with a disk cache for image embeddings (see module docstring)."""

        def __init__(self, sam_model, model_name: str, cache: Path | None = None, use_cache: bool = True):
            super().__init__(sam_model)
            self.model_name = model_name
            weights = getattr(sam_model, "weights_id", None)
            default = cache_dir() / "sam_embeddings" / model_name
            if weights:  # another checkpoint (or random weights) must not read this one's embeddings
                default = default / weights
            self.cache = Path(cache) if cache is not None else default
            self.use_cache = use_cache
            self.encoder_calls = 0
            self.cache_hits = 0

        def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
            if not self.use_cache:
                self.encoder_calls += 1
                return super().set_image(image, image_format)
            key = image_hash(image) + ("" if image_format == "RGB" else "_bgr")
            path = self.cache / key[:2] / f"{key}.pt"
            if path.exists():
                try:
                    blob = torch.load(path, map_location=self.device, weights_only=True)
                    self.reset_image()
                    self.features = blob["features"]
                    self.original_size = tuple(int(v) for v in blob["original_size"])
                    self.input_size = tuple(int(v) for v in blob["input_size"])
                    self.is_image_set = True
                    self.cache_hits += 1
                    return
                except Exception:  # truncated or foreign file: recompute and overwrite
                    path.unlink(missing_ok=True)
            self.encoder_calls += 1
            super().set_image(image, image_format)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            torch.save({"features": self.features.detach().cpu(), "original_size": list(self.original_size),
                        "input_size": list(self.input_size)}, tmp)
            tmp.replace(path)

        @torch.no_grad()
        def predict_batch(self, prompts: list[Prompt]):
            """All four decoder outputs for many prompts on the current image, in one pass each.

            Returns (masks (P, 4, H, W) bool, iou_pred (P, 4) float): output 0 is SAM's single-mask
            token (``multimask_output=False``), outputs 1-3 the three multimask tokens
            (``multimask_output=True``), exactly as ``predict_torch`` computes them; asking for both
            costs one decoder call. Prompts with the same (number of points, has box) are batched.
            """
            groups = defaultdict(list)
            for i, p in enumerate(prompts):
                groups[p.signature()].append(i)
            h, w = self.original_size
            masks = np.zeros((len(prompts), 4, h, w), dtype=bool)
            ious = np.zeros((len(prompts), 4), dtype=np.float32)
            model = self.model
            for (n_points, has_box), index in groups.items():
                points = boxes = None
                if n_points:
                    pts = np.stack([prompts[i].points_xy for i in index]).astype(np.float32)
                    coords = torch.as_tensor(self.transform.apply_coords(pts, self.original_size), device=self.device)
                    labels = torch.as_tensor(np.stack([prompts[i].labels for i in index]), device=self.device)
                    points = (coords, labels)
                if has_box:
                    bx = np.stack([prompts[i].box_xyxy for i in index]).astype(np.float32)
                    boxes = torch.as_tensor(self.transform.apply_boxes(bx, self.original_size), device=self.device)
                sparse, dense = model.prompt_encoder(points=points, boxes=boxes, masks=None)
                low_res, iou_pred = model.mask_decoder.predict_masks(
                    image_embeddings=self.features, image_pe=model.prompt_encoder.get_dense_pe(),
                    sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense)
                up = model.postprocess_masks(low_res, self.input_size, self.original_size)
                masks[index] = (up > model.mask_threshold).cpu().numpy()
                ious[index] = iou_pred.float().cpu().numpy()
            return masks, ious

    return CachedPredictor


_CLASS = None


def cached_predictor(sam_model, model_name: str, **kwargs):
    """A ``CachedPredictor`` (built lazily so importing this module does not import torch)."""
    global _CLASS
    if _CLASS is None:
        _CLASS = _make_predictor_class()
    return _CLASS(sam_model, model_name, **kwargs)
