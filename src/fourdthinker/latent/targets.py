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

    def __init__(self, adapter, k: int, cache_dir: str | os.PathLike | None = None, batch_size: int = 16):
        if k < 1:
            raise ValueError(f"latent size K must be >= 1, got {k}")
        self.adapter = adapter
        self.k = k
        self.batch_size = batch_size
        self.encoder_hash = state_dict_hash(adapter.encoder_state_dict())
        self.dir = Path(cache_dir) / self.encoder_hash[:24] / f"K{k}" if cache_dir is not None else None
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

    def compute(self, images: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Targets without the cache: encoder -> Eq. 5 pooling, ``[K, D]`` per image (fp32, CPU)."""
        out: list[torch.Tensor] = []
        for i in range(0, len(images), self.batch_size):
            embs = self.adapter.image_embeddings(list(images[i : i + self.batch_size]))
            out.extend(partition_mean_pool(e.float(), self.k).cpu() for e in embs)
        return out

    def has(self, h: str) -> bool:
        """True when the target of the image with hash ``h`` is on disk (no read)."""
        return self.dir is not None and self._path(h).exists()

    def put(self, hashes: Sequence[str], images: Sequence[np.ndarray]) -> None:
        """Compute and store the targets of ``images`` (their hashes given)."""
        if self.dir is None:
            raise ValueError("LatentTargetCache.put: the cache has no directory")
        for h, z in zip(hashes, self.compute(images), strict=True):
            self._save(h, z)
        self.misses += len(images)

    def cached(self, images: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Targets from the disk cache only (the encoder never runs): what training reads, in the
        DataLoader workers too. A miss is a ``ValueError`` naming the image hash."""
        out = []
        for im in images:
            h = image_hash(im)
            z = self._load(h)
            if z is None:
                raise ValueError(f"latent target of image {h[:12]} is not in the cache {self.dir} "
                                 "(image changed since the target pass?)")
            out.append(z)
        self.hits += len(out)
        return out

    def get(self, images: Sequence[np.ndarray]) -> list[torch.Tensor]:
        hashes = [image_hash(im) for im in images]
        res: list[torch.Tensor | None] = [self._load(h) for h in hashes]
        todo = [i for i, z in enumerate(res) if z is None]
        self.hits += len(images) - len(todo)
        self.misses += len(todo)
        if todo:
            for i, z in zip(todo, self.compute([images[i] for i in todo]), strict=False):
                res[i] = z
                self._save(hashes[i], z)
        return res  # type: ignore[return-value]
