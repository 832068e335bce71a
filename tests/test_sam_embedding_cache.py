"""The SAM embedding cache keys on the weights: another checkpoint (or random weights) never reads
embeddings computed by a different one; LiteMedSAM's cache folder is unchanged."""

import numpy as np
import torch

from analysis.sam.engine import cached_predictor
from analysis.sam.model import build_sam_arch

TINY = dict(encoder_embed_dim=16, encoder_depth=1, encoder_num_heads=1, encoder_global_attn_indexes=[0], image_size=256)


def _sam(seed, weights_id):
    torch.manual_seed(seed)
    sam = build_sam_arch(**TINY)
    if weights_id is not None:
        sam.weights_id = weights_id
    return sam


def test_cache_folder_depends_on_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("ANALYSIS_CACHE_DIR", str(tmp_path))
    image = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    a = cached_predictor(_sam(0, "aaaa"), "sam_vit_h")
    b = cached_predictor(_sam(1, "bbbb"), "sam_vit_h")
    assert a.cache != b.cache and a.cache.parent == b.cache.parent == tmp_path / "sam_embeddings" / "sam_vit_h"
    a.set_image(image)
    b.set_image(image)
    assert (a.encoder_calls, b.encoder_calls, b.cache_hits) == (1, 1, 0)  # no cross-checkpoint hit
    assert not torch.allclose(a.features, b.features)
    again = cached_predictor(_sam(0, "aaaa"), "sam_vit_h")
    again.set_image(image)
    assert (again.encoder_calls, again.cache_hits) == (0, 1)
    torch.testing.assert_close(again.features, a.features)
    # a model without weights_id (LiteMedSAM: weights fixed by its package version) keeps its folder
    assert cached_predictor(_sam(0, None), "litemedsam").cache == tmp_path / "sam_embeddings" / "litemedsam"
