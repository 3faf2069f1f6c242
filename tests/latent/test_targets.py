"""Latent-target cache: cached == computed, keyed by image hash + encoder weights + K."""

from __future__ import annotations

import torch

from fourdthinker.latent.pooling import partition_mean_pool
from fourdthinker.latent.targets import LatentTargetCache, image_hash
from fourdthinker.models.testing import frames
from fourdthinker.models.testing import tiny as get_adapter


def test_targets_cached_equal_computed(tmp_path):
    ad = get_adapter("qwen2.5-vl-tiny")
    imgs = frames(3, seed=5)
    c = LatentTargetCache(ad, 4, tmp_path)
    z1 = c.get(imgs)
    assert (c.hits, c.misses) == (0, 3)
    assert all(z.shape == (4, ad.hidden_size) for z in z1)
    # Eq. 5 on the encoder output
    assert torch.allclose(z1[0], partition_mean_pool(ad.image_embeddings(imgs[:1])[0], 4), atol=1e-6)
    c2 = LatentTargetCache(ad, 4, tmp_path)
    z2 = c2.get(imgs)
    assert (c2.hits, c2.misses) == (3, 0)
    assert all(torch.equal(a, b) for a, b in zip(z1, z2, strict=False))
    files = list(tmp_path.rglob("*.safetensors"))
    assert len(files) == 3 and image_hash(imgs[0]) in {f.stem for f in files}
    # another K -> another key
    c3 = LatentTargetCache(ad, 2, tmp_path)
    assert c3.get(imgs[:1])[0].shape[0] == 2 and c3.misses == 1


def test_targets_key_includes_encoder_weights(tmp_path):
    ad = get_adapter("qwen2.5-vl-tiny")
    imgs = frames(1, seed=6)
    h1 = LatentTargetCache(ad, 4, tmp_path).encoder_hash
    p = next(ad.core.visual.parameters())
    saved = p.detach().clone()
    with torch.no_grad():
        p.add_(1.0)
    try:
        c = LatentTargetCache(ad, 4, tmp_path)
        assert c.encoder_hash != h1
        c.get(imgs)
        assert c.misses == 1
    finally:
        with torch.no_grad():
            p.copy_(saved)
    assert LatentTargetCache(ad, 4, tmp_path).encoder_hash == h1


def test_corrupt_entry_is_recomputed(tmp_path):
    ad = get_adapter("internvl3.5-tiny")
    imgs = frames(1, seed=7)
    c = LatentTargetCache(ad, 4, tmp_path)
    z = c.get(imgs)[0]
    f = next(tmp_path.rglob("*.safetensors"))
    f.write_bytes(b"garbage")
    c2 = LatentTargetCache(ad, 4, tmp_path)
    assert torch.equal(c2.get(imgs)[0], z) and c2.misses == 1
