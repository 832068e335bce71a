"""The lung loader and the transforms SamPredictor needs: formats, shapes, and bad input."""

import numpy as np
import pytest

from analysis.data.lung import load_lung, to_bool_mask, to_rgb, to_uint8_gray
from analysis.errors import DataError


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def _course_file(tmp_path, n=(3, 2, 2), **override):
    """A tiny file in the course's layout: float images 0..1, float 0/1 masks, six keys only."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, k in zip(("train", "val", "test"), n):
        arrays[f"x_{split}"] = rng.uniform(0, 1, (k, 32, 32, 1)).astype(np.float32)
        arrays[f"y_{split}"] = (rng.uniform(0, 1, (k, 32, 32, 1)) > 0.5).astype(np.float32)
    arrays.update(override)
    return _write(tmp_path / "lung.npz", **arrays)


def test_course_layout_loads_with_generated_ids(tmp_path):
    path = _course_file(tmp_path)
    data = load_lung(path)
    val = data["val"]
    assert val.images_u8.dtype == np.uint8 and val.images_u8.shape == (2, 32, 32)
    assert val.masks.dtype == bool
    assert val.ids == ("val/val_0000", "val/val_0001")
    assert val.source == ("unknown", "unknown") and val.tb == (-1, -1)
    x = np.load(path)["x_val"][..., 0]
    np.testing.assert_array_equal(val.images_u8, np.round(x * 255).astype(np.uint8))


def test_shared_copy_loads_with_metadata(shared_data):
    data = load_lung(splits=("val",))
    val = data["val"]
    assert len(val) == 106 and val.images_u8.shape == (106, 256, 256)
    assert set(val.source) == {"MCU", "CHN"} and set(val.tb) == {0, 1}
    assert val.masks.any(axis=(1, 2)).all()  # no validation image has an empty mask
    assert len(set(val.ids)) == 106


@pytest.mark.parametrize("override, problem", [
    ({"x_val": np.zeros((2, 32, 32), np.float32)}, "expected (N, H, H, 1)"),
    ({"x_val": np.full((2, 32, 32, 1), 2.0, np.float32)}, "must lie in [0, 1]"),
    ({"x_val": np.full((2, 32, 32, 1), np.nan, np.float32)}, "NaN"),
    ({"y_val": np.full((2, 32, 32, 1), 0.5, np.float32)}, "not binary"),
    ({"y_val": np.zeros((3, 32, 32, 1), np.float32)}, "differs from image shape"),
    ({"x_val": np.zeros((2, 32, 32, 1), np.int64)}, "neither float"),
])
def test_bad_files_raise_data_error_with_path_problem_fix(tmp_path, override, problem):
    path = _course_file(tmp_path, **override)
    with pytest.raises(DataError) as err:
        load_lung(path)
    assert problem in err.value.problem
    assert str(path) in str(err.value.path) and err.value.fix


def test_missing_key_and_missing_file(tmp_path):
    path = _write(tmp_path / "x.npz", x_train=np.zeros((1, 8, 8, 1), np.uint8))
    with pytest.raises(DataError, match="missing keys"):
        load_lung(path)
    with pytest.raises(DataError, match="file not found"):
        load_lung(tmp_path / "nope.npz")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="cannot read"):
        load_lung(tmp_path / "broken.npz")


def test_to_rgb_float_and_uint8_agree():
    x = np.linspace(0, 1, 256 * 256, dtype=np.float32).reshape(256, 256, 1)
    rgb = to_rgb(x)
    assert rgb.shape == (256, 256, 3) and rgb.dtype == np.uint8
    assert rgb.min() == 0 and rgb.max() == 255
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    np.testing.assert_array_equal(to_rgb((x * 255).round().astype(np.uint8)), rgb)
    batch = to_rgb(np.stack([x, x]))
    assert batch.shape == (2, 256, 256, 3)
    assert to_rgb(x[..., 0]).shape == (256, 256, 3)


@pytest.mark.parametrize("x, problem", [
    (np.zeros((256, 256, 3), np.uint8), "already RGB"),
    (np.zeros((2, 256, 256, 3), np.uint8), "expected (N, H, W, 1)"),
    (np.zeros((256,), np.uint8), "expected (H, W)"),
    (np.zeros((1, 256, 256), np.uint8)[:, :4, :4], "too small"),
    (np.full((16, 16), 1.5, np.float32), "expected [0, 1]"),
    (np.full((16, 16), -0.1, np.float64), "expected [0, 1]"),
    (np.full((16, 16), np.nan, np.float32), "NaN"),
    (np.full((16, 16), 300, np.int32), "outside 0..255"),
    (np.zeros((16, 16), bool), "not float"),
])
def test_to_rgb_refuses_bad_input(x, problem):
    with pytest.raises(DataError) as err:
        to_rgb(x, name="img")
    assert problem in err.value.problem and str(err.value.path) == "img"


def test_to_bool_mask():
    y = np.array([[0, 1], [1, 0]], np.float32)[..., None]
    out = to_bool_mask(y)
    assert out.dtype == bool and out.shape == (2, 2) and out.sum() == 2
    assert to_bool_mask(np.array([[True, False]])).dtype == bool
    for bad, problem in ((np.array([[0, 0.5]]), "not binary"), (np.array([[0, 2]]), "not binary"),
                         (np.array([[np.nan, 1.0]]), "NaN"), (np.zeros(4), "expected (H, W)")):
        with pytest.raises(DataError) as err:
            to_bool_mask(bad)
        assert problem in err.value.problem


def test_uint8_gray_rounds_floats():
    assert to_uint8_gray(np.array([0.0, 0.5, 1.0])).tolist() == [0, 128, 255]
