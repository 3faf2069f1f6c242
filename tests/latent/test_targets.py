"""Latent-target cache: cached == computed, keyed by image hash + encoder weights + K."""

from __future__ import annotations

import pytest
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


@pytest.mark.parametrize("name", ["qwen2.5-vl-tiny", "qwen3-vl-tiny"])
def test_pair_embeddings_put_both_images_through_the_temporal_patch(name):
    """(a, a) is exactly a's single-image embedding (the processor repeats a lone image over the
    temporal patch); (a, b) differs from b's and changes with a: it holds both images."""
    ad = get_adapter(name)
    a, b, c = frames(3, seed=11, h=84, w=112)
    single = ad.image_embeddings([a, b])
    aa, ab, cb = ad.pair_embeddings([(a, a), (a, b), (c, b)])
    assert torch.equal(aa, single[0])
    assert ab.shape == single[1].shape
    assert (ab - single[1]).abs().max() > 1e-3 and (ab - cb).abs().max() > 1e-3


def test_pair_embeddings_errors():
    a, b = frames(2, seed=12)
    with pytest.raises(NotImplementedError, match="temporal patch"):
        get_adapter("internvl3.5-tiny").pair_embeddings([(a, b)])
    small = frames(1, seed=13, h=56, w=56)[0]
    with pytest.raises(ValueError, match="differ in size"):
        get_adapter("qwen2.5-vl-tiny").pair_embeddings([(a, small)])


def test_pair_targets_are_keyed_by_both_images(tmp_path):
    """With ``pairs`` the i-th target of a record encodes (image i-1, image i), the first paired
    with itself, in its own K<K>-pair folder: same first target as the plain cache, others differ."""
    ad = get_adapter("qwen2.5-vl-tiny")
    imgs = frames(3, seed=14)
    pc = LatentTargetCache(ad, 4, tmp_path, pairs=True)
    z = pc.get(imgs)
    want = [partition_mean_pool(e, 4) for e in ad.pair_embeddings([(imgs[0], imgs[0]), (imgs[0], imgs[1]), (imgs[1], imgs[2])])]
    assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(z, want, strict=True))
    plain = LatentTargetCache(ad, 4, tmp_path).get(imgs)
    assert torch.allclose(z[0], plain[0], atol=1e-6) and not torch.allclose(z[1], plain[1], atol=1e-3)
    assert pc.dir.name == "K4-pair" and len(list(pc.dir.rglob("*.safetensors"))) == 3
    # same image after another one: another key, another target
    z2 = pc.get([imgs[2], imgs[1]])
    assert not torch.allclose(z2[1], z[1], atol=1e-3)
    # training reads the cache only, by the same keys
    assert all(torch.equal(x, y) for x, y in zip(LatentTargetCache(ad, 4, tmp_path, pairs=True).cached(imgs), z, strict=True))
    with pytest.raises(ValueError, match="not in the cache"):
        LatentTargetCache(ad, 4, tmp_path, pairs=True).cached([imgs[1], imgs[0]])
