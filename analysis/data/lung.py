"""Lung-field X-ray data: loader, validation, and the transform ``SamPredictor`` needs.

Two file layouts are accepted, unchanged:

- the course's file (JSRT/SCR): six keys ``x_train/x_val/x_test`` (float 0..1) and
  ``y_train/y_val/y_test`` (0/1), shapes (N, 256, 256, 1);
- the shared copy (Montgomery + Shenzhen): the same six keys stored as uint8 (images 0..255,
  masks 0/1) plus ``names_*`` (file names), ``source_*`` (``MCU``/``CHN``) and ``tb_*`` (1 = TB).

Everything is checked on load; bad files raise :class:`~analysis.errors.DataError` naming the
file, the problem and the fix. Arrays handed to the transforms are checked the same way. Refused,
not scored: an empty ground-truth mask (F1 would be 1.0 for an empty prediction and lift the mean),
a split with no images, splits of different resolutions (atlas prompts from train would miss).
:func:`fingerprint` validates the whole file before it hashes it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..paths import DATA_DIR_ENV, data_dir
from ..store import fingerprint_files

SPLITS = ("train", "val", "test")
FILE_NAME = "lung_field_dataset.npz"
DEFAULT_RELATIVE = Path("lung") / FILE_NAME


def default_path() -> Path:
    """``<data_dir>/lung/lung_field_dataset.npz``, else ``<data_dir>/lung_field_dataset.npz``."""
    root = data_dir()
    for candidate in (root / DEFAULT_RELATIVE, root / FILE_NAME):
        if candidate.exists():
            return candidate
    return root / DEFAULT_RELATIVE


@dataclasses.dataclass(frozen=True)
class LungSplit:
    """One split: images (N, 256, 256) uint8 0..255, masks (N, 256, 256) bool, and per-image metadata.

    ``ids`` are stable ("<split>/<name>"), ``source`` is MCU/CHN (``"unknown"`` for the course file),
    ``tb`` is 1/0 (-1 where the file does not say).
    """

    split: str
    images_u8: np.ndarray  # (N, H, W) uint8
    masks: np.ndarray  # (N, H, W) bool
    ids: tuple[str, ...]
    names: tuple[str, ...]
    source: tuple[str, ...]
    tb: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index) -> "LungSplit":
        index = list(index)
        return LungSplit(
            self.split, self.images_u8[index], self.masks[index],
            tuple(self.ids[i] for i in index), tuple(self.names[i] for i in index),
            tuple(self.source[i] for i in index), tuple(self.tb[i] for i in index),
        )


def _check_image_array(x: np.ndarray, where: str) -> None:
    if x.ndim != 4 or x.shape[-1] != 1 or x.shape[1] != x.shape[2]:
        raise DataError(where, f"image array has shape {x.shape}, expected (N, H, H, 1) grayscale",
                        "store images as (N, 256, 256, 1), as the course notebook's file does")
    if x.dtype == np.uint8:
        return
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(where, f"image dtype {x.dtype} is neither float (0..1) nor uint8 (0..255)",
                        "convert with x.astype(np.float32) / 255 or x.astype(np.uint8)")
    _require_unit_float(x, where)


def _require_unit_float(x: np.ndarray, where: str) -> None:
    """Float images: no NaN, every value in [0, 1]."""
    if np.isnan(x).any():
        raise DataError(where, f"{int(np.isnan(x).sum())} NaN pixel values", "fix or drop the image; NaNs cannot be segmented")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        raise DataError(where, f"float image values span [{lo:g}, {hi:g}], expected [0, 1] "
                        "(float images must lie in [0, 1]; uint8 ones in 0..255)",
                        "divide 0..255 images by 255, or store them as uint8")


def _require_binary(y: np.ndarray, where: str, fix: str) -> None:
    """A numeric mask must hold only 0 and 1 (NaN and other values are named in the error)."""
    if np.issubdtype(y.dtype, np.floating) and np.isnan(y).any():
        raise DataError(where, "mask contains NaN", "masks must be 0/1")
    if np.issubdtype(y.dtype, np.integer) and y.size and 0 <= y.min() and y.max() <= 1:
        return  # the common case, without sorting every pixel
    values = np.unique(y)
    if not np.isin(values, (0, 1)).all():
        shown = ", ".join(f"{v:g}" for v in values[:6])
        raise DataError(where, f"mask is not binary (values {shown}{'...' if len(values) > 6 else ''})", fix)


def _check_mask_array(y: np.ndarray, where: str, image_shape: tuple[int, ...] | None = None) -> None:
    if y.ndim != 4 or y.shape[-1] != 1:
        raise DataError(where, f"mask array has shape {y.shape}, expected (N, H, W, 1)",
                        "store masks like the images, with a trailing channel axis")
    if image_shape is not None and y.shape != image_shape:
        raise DataError(where, f"mask shape {y.shape} differs from image shape {image_shape}",
                        "masks and images must correspond one to one")
    if y.dtype != bool:
        _require_binary(y, where, "threshold the masks (y > 0.5) before saving")


def _not_found(path: Path) -> DataError:
    return DataError(path, "file not found",
                     f"put the course's lung_field_dataset.npz at {data_dir() / DEFAULT_RELATIVE} (the data "
                     f"directory, now {data_dir()}, is set by ${DATA_DIR_ENV} or --data-dir)")


def _member(npz, key: str, path: Path) -> np.ndarray:
    """One array of the .npz, with a clear error for object arrays and damaged zip members."""
    try:
        return npz[key]
    except ValueError as exc:  # "Object arrays cannot be loaded when allow_pickle=False"
        raise DataError(f"{path}[{key}]", f"cannot be read without pickle ({exc})",
                        "store plain numeric/string arrays (np.savez with dtype uint8/float32, names as str)") from None
    except Exception as exc:  # BadZipFile (CRC), zlib.error, EOFError, truncated members
        raise DataError(f"{path}[{key}]", f"damaged member ({exc.__class__.__name__}: {exc})",
                        "copy or download the file again; it is corrupt") from None


def load_lung(path: Path | str | None = None, splits=SPLITS) -> dict[str, LungSplit]:
    """Load and validate the lung file; returns {split: LungSplit} for the requested splits."""
    path = Path(path) if path is not None else default_path()
    if not path.exists():
        raise _not_found(path)
    if not path.is_file():
        raise DataError(path, "is not a file", f"put the .npz file itself at {path}")
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as exc:  # truncated zip, pickle-only arrays, ...
        raise DataError(path, f"cannot read as .npz ({exc.__class__.__name__}: {exc})",
                        "download/copy the file again; it may be truncated") from exc
    if not hasattr(npz, "files"):  # np.load of a .npy file returns an array
        raise DataError(path, "is a single .npy array, not an .npz archive",
                        "use the course's .npz file with keys x_/y_ train/val/test")
    out = {}
    with npz:
        for split in splits:
            missing = [k for k in (f"x_{split}", f"y_{split}") if k not in npz.files]
            if missing:
                raise DataError(path, f"missing keys {missing} (found {sorted(npz.files)})",
                                "use the course's file layout: x_/y_ train/val/test")
            x, y = _member(npz, f"x_{split}", path), _member(npz, f"y_{split}", path)
            _check_image_array(x, f"{path}[x_{split}]")
            _check_mask_array(y, f"{path}[y_{split}]", x.shape)
            n = len(x)
            if n == 0:
                raise DataError(f"{path}[x_{split}]", f"the {split} split has no images",
                                "use a file whose train, val and test splits each hold images")
            meta = {}
            for name in ("names", "source", "tb"):
                key = f"{name}_{split}"
                meta[name] = _member(npz, key, path) if key in npz.files else None
            try:
                names = tuple(str(s) for s in meta["names"]) if meta["names"] is not None else tuple(
                    f"{split}_{i:04d}" for i in range(n))
                source = tuple(str(s) for s in meta["source"]) if meta["source"] is not None else ("unknown",) * n
                tb = tuple(int(t) for t in meta["tb"]) if meta["tb"] is not None else (-1,) * n
            except (TypeError, ValueError) as exc:
                raise DataError(path, f"{split}: unreadable metadata ({exc})",
                                "names_*/source_* must be 1-D string arrays, tb_* 0/1 integers") from None
            if meta["tb"] is not None and not set(tb) <= {0, 1}:
                raise DataError(f"{path}[tb_{split}]", f"TB flags {sorted(set(tb) - {0, 1})[:5]} are not 0/1",
                                "store tb_* as 1 (tuberculosis) or 0 (normal)")
            if not (len(names) == len(source) == len(tb) == n):
                raise DataError(path, f"{split}: metadata lengths differ from {n} images", "rebuild the metadata keys")
            ids = tuple(f"{split}/{name}" for name in names)
            if len(set(ids)) != n:
                raise DataError(path, f"{split}: duplicate image names", "names_* must be unique")
            masks = to_bool_mask(y[..., 0], f"{path}[y_{split}]")
            empty = np.flatnonzero(~masks.reshape(n, -1).any(axis=1))
            if len(empty):
                shown = ", ".join(names[i] for i in empty[:3])
                raise DataError(f"{path}[y_{split}]", f"{len(empty)} empty lung mask(s) (e.g. {shown}); F1 against "
                                "an empty mask is undefined (an empty prediction would score 1.0)",
                                "remove those images or restore their masks")
            out[split] = LungSplit(split, to_uint8_gray(x[..., 0], f"{path}[x_{split}]"), masks,
                                   ids, names, source, tb)
    shapes = {s: v.images_u8.shape[1:] for s, v in out.items()}
    if len(set(shapes.values())) > 1:
        raise DataError(path, f"splits have different resolutions {shapes}",
                        "resize every split to one resolution (256x256 in the course's file); atlas prompts "
                        "from train masks only fit images of the same size")
    return out


_CHECKED: dict[tuple[str, int, int], None] = {}


def check_file(path: Path | str | None = None) -> Path:
    """Validate the whole lung file (every split); memoised on (path, size, mtime). Returns the path."""
    path = Path(path) if path is not None else default_path()
    if not path.exists():
        raise _not_found(path)
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo not in _CHECKED:
        load_lung(path)
        _CHECKED[memo] = None
    return path


def fingerprint(path: Path | str | None = None) -> str:
    """The data fingerprint for the result store: the file is validated first, then hashed."""
    return fingerprint_files([check_file(path)])


# --- the transforms the course notebook leaves as TODOs --------------------------------------


def to_uint8_gray(x: np.ndarray, name: str = "<array>") -> np.ndarray:
    """Grayscale float 0..1 or uint8 0..255, any leading shape -> uint8 0..255 of the same shape."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return x
    if x.dtype == bool or not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise DataError(name, f"image dtype {x.dtype} is not float 0..1 or uint8",
                        "pass float images scaled to [0, 1] or uint8 images")
    if np.issubdtype(x.dtype, np.integer):
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > 255:
            raise DataError(name, f"integer image values span [{lo}, {hi}], outside 0..255", "rescale to uint8")
        return x.astype(np.uint8)
    _require_unit_float(x, name)
    return np.round(x * 255.0).astype(np.uint8)


def to_rgb(x: np.ndarray, name: str = "<array>") -> np.ndarray:
    """What ``SamPredictor.set_image`` expects: (H, W, 3) uint8 RGB.

    Accepts one grayscale image (H, W), (H, W, 1), or a batch (N, H, W, 1) / (N, H, W) which
    gives (N, H, W, 3). Float input must be in [0, 1] (the course file), uint8 in 0..255.
    """
    x = np.asarray(x)
    if x.ndim == 4:
        if x.shape[-1] != 1:
            raise DataError(name, f"batch shape {x.shape}: expected (N, H, W, 1) grayscale", "select the channel")
        x = x[..., 0]
    elif x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    elif x.ndim == 3 and x.shape[-1] == 3:
        raise DataError(name, f"shape {x.shape} is already RGB", "pass the grayscale image (H, W, 1)")
    elif x.ndim not in (2, 3):
        raise DataError(name, f"shape {x.shape}: expected (H, W), (H, W, 1), (N, H, W) or (N, H, W, 1)",
                        "pass a grayscale image or a batch of them")
    if x.shape[-1] < 8 or x.shape[-2] < 8:
        raise DataError(name, f"shape {x.shape} is too small to be an image", "check the axis order (N, H, W, 1)")
    gray = to_uint8_gray(x, name)
    return np.repeat(gray[..., None], 3, axis=-1)


def to_bool_mask(y: np.ndarray, name: str = "<mask>") -> np.ndarray:
    """Binary mask (0/1 in any numeric dtype, or bool), optional trailing channel -> bool (..., H, W)."""
    y = np.asarray(y)
    if y.ndim >= 3 and y.shape[-1] == 1:
        y = y[..., 0]
    if y.ndim < 2:
        raise DataError(name, f"mask shape {y.shape}: expected (H, W) or (N, H, W[, 1])", "pass a 2-D mask")
    if y.dtype == bool:
        return y
    if not (np.issubdtype(y.dtype, np.floating) or np.issubdtype(y.dtype, np.integer)):
        raise DataError(name, f"mask dtype {y.dtype} is not numeric or bool", "pass 0/1 or bool masks")
    _require_binary(y, name, "threshold it first, e.g. mask > 0.5")
    return y.astype(bool)
