"""Latent targets z_1..z_K of imagery images (Eq. 5, docs/method.md#eq-5), computed once and cached on disk.

The frozen visual encoder (+ merger/projector) maps an overlay image to its LM-space embeddings
(``VLMAdapter.image_embeddings``); ``pooling.partition_mean_pool`` turns them into K vectors.
Because the encoder is frozen, the targets never change during training: they are cached as
safetensors at ``<cache_dir>/<encoder hash>/K<K>/<image hash>.safetensors``, keyed by

* the image's pixel hash (sha256 of shape + RGB bytes, so a re-encoded identical image hits),
* a hash of the encoder + projector weights (a different checkpoint never reads stale targets),
* K.

Writes are atomic (temp file + rename), so concurrent or killed runs never leave a torn entry.

Training reads targets with :meth:`LatentTargetCache.cached` (disk only, never the encoder), so
DataLoader workers need no model; ``train.collate.prepare_targets`` fills the cache first.

``pairs=True`` (``train dift --latent-target pair``, beyond the paper) encodes each imagery image
together with the one before it in the record, as a 2-frame clip through the vision tower's
temporal patch (``VLMAdapter.pair_embeddings``), so each z holds how the scene changed between the
two images, not only one image. The first image is paired with itself, which for Qwen-VL is
exactly its single-image target (the image processor repeats an image over the temporal patch).
Such targets live in ``K<K>-pair`` and are keyed by both images' hashes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from fourdthinker.latent.pooling import partition_mean_pool


def image_hash(img: np.ndarray) -> str:
    """sha256 over the RGB uint8 pixels and their shape."""
    a = np.ascontiguousarray(np.asarray(img, dtype=np.uint8))
    h = hashlib.sha256(str(a.shape).encode())
    h.update(a.tobytes())
    return h.hexdigest()


def state_dict_hash(sd: dict[str, torch.Tensor]) -> str:
    """sha256 over names, shapes, dtypes and bytes of a state dict (sorted by name)."""
    h = hashlib.sha256()
    for k in sorted(sd):
        t = sd[k].detach().cpu().contiguous()
        h.update(f"{k}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class LatentTargetCache:
    """``get(images) -> list[[K, D]]`` with a disk cache; ``cache_dir=None`` disables caching.

    ``hits``/``misses`` count lookups (a benchmark reports them)."""

    def __init__(self, adapter, k: int, cache_dir: str | os.PathLike | None = None, batch_size: int = 16,
                 pairs: bool = False):
        if k < 1:
            raise ValueError(f"latent size K must be >= 1, got {k}")
        self.adapter = adapter
        self.k = k
        self.batch_size = batch_size
        self.pairs = pairs
        self.encoder_hash = state_dict_hash(adapter.encoder_state_dict())
        sub = f"K{k}-pair" if pairs else f"K{k}"
        self.dir = Path(cache_dir) / self.encoder_hash[:24] / sub if cache_dir is not None else None
        self.hits = 0
        self.misses = 0

    def _path(self, h: str) -> Path:
        assert self.dir is not None
        return self.dir / h[:2] / f"{h}.safetensors"

    def _load(self, h: str) -> torch.Tensor | None:
        if self.dir is None:
            return None
        p = self._path(h)
        if not p.exists():
            return None
        from safetensors.torch import load_file

        try:
            z = load_file(str(p))["z"]
        except Exception:  # a corrupt entry is recomputed, never trusted
            return None
        return z if z.shape[0] == self.k else None

    def _save(self, h: str, z: torch.Tensor) -> None:
        if self.dir is None:
            return
        from safetensors.torch import save_file

        from fourdthinker.io import atomic_path

        p = self._path(h)
        with atomic_path(p) as tmp:
            save_file({"z": z.detach().cpu().contiguous()}, str(tmp))

    def keys(self, hashes: Sequence[str]) -> list[str]:
        """The cache key of each image of one record, from the images' hashes: the hash itself, or
        with ``pairs`` a hash of (previous image's hash, this one's), the first paired with itself."""
        if not self.pairs:
            return list(hashes)
        return [hashlib.sha256(f"{hashes[max(i - 1, 0)]}:{h}".encode()).hexdigest() for i, h in enumerate(hashes)]

    def items(self, images: Sequence[np.ndarray]) -> list:
        """What :meth:`compute` encodes for each image of one record: the image, or with ``pairs``
        the (previous image, image) pair."""
        return [(images[max(i - 1, 0)], im) for i, im in enumerate(images)] if self.pairs else list(images)

    def compute(self, items: Sequence) -> list[torch.Tensor]:
        """Targets without the cache: encoder -> Eq. 5 pooling, ``[K, D]`` per item (fp32, CPU).
        Items are images, or with ``pairs`` (previous image, image) pairs (see :meth:`items`)."""
        out: list[torch.Tensor] = []
        embed = self.adapter.pair_embeddings if self.pairs else self.adapter.image_embeddings
        for i in range(0, len(items), self.batch_size):
            embs = embed(list(items[i : i + self.batch_size]))
            out.extend(partition_mean_pool(e.float(), self.k).cpu() for e in embs)
        return out

    def has(self, h: str) -> bool:
        """True when the target under key ``h`` (see :meth:`keys`) is on disk (no read)."""
        return self.dir is not None and self._path(h).exists()

    def put(self, keys: Sequence[str], items: Sequence) -> None:
        """Compute and store the targets of ``items`` (images, or pairs with ``pairs``) under ``keys``."""
        if self.dir is None:
            raise ValueError("LatentTargetCache.put: the cache has no directory")
        for h, z in zip(keys, self.compute(items), strict=True):
            self._save(h, z)
        self.misses += len(items)

    def cached(self, images: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """The targets of one record's imagery images, from the disk cache only (the encoder never
        runs): what training reads, in the DataLoader workers too. A miss is a ``ValueError`` naming
        the key."""
        out = []
        for h in self.keys([image_hash(im) for im in images]):
            z = self._load(h)
            if z is None:
                raise ValueError(f"latent target {h[:12]} is not in the cache {self.dir} "
                                 "(image changed since the target pass?)")
            out.append(z)
        self.hits += len(out)
        return out

    def get(self, images: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """The targets of one record's imagery images, computed and cached where missing."""
        keys = self.keys([image_hash(im) for im in images])
        res: list[torch.Tensor | None] = [self._load(h) for h in keys]
        todo = [i for i, z in enumerate(res) if z is None]
        self.hits += len(images) - len(todo)
        self.misses += len(todo)
        if todo:
            items = self.items(images)
            for i, z in zip(todo, self.compute([items[i] for i in todo]), strict=False):
                res[i] = z
                self._save(keys[i], z)
        return res  # type: ignore[return-value]
