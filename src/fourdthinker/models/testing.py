"""Helpers for tests and benchmarks: session-cached tiny adapters and synthetic frames.

>>> ad = tiny("qwen2.5-vl-tiny")            # doctest: +SKIP  (loaded once per process)
"""

from __future__ import annotations

import numpy as np

TINY_PRESETS = ("qwen2.5-vl-tiny", "qwen3-vl-tiny", "internvl3.5-tiny")
_ADAPTERS: dict = {}


def tiny(name: str):
    """The preset's adapter, loaded once per process (tests share it; do not train it in place)."""
    from fourdthinker.models import load

    if name not in _ADAPTERS:
        _ADAPTERS[name] = load(name)
    return _ADAPTERS[name]


def frames(n: int = 4, seed: int = 0, h: int = 112, w: int = 112) -> list[np.ndarray]:
    """``n`` random RGB uint8 frames."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def dift_batch(ad, prompt: dict, response: list[int], seed: int = 0) -> dict:
    """A DIFT training batch: every row of the encoded ``prompt`` batch followed by the token ids
    ``response`` (labels on the response, -100 on the prompt and latent slots), random targets z
    (seeded) for its latent slots, and record ids ``r0, r1, ...``."""
    import torch

    B = prompt["input_ids"].shape[0]
    r = torch.tensor([response] * B)
    batch = dict(prompt)
    batch["input_ids"] = torch.cat([prompt["input_ids"], r], 1)
    batch["attention_mask"] = torch.cat([prompt["attention_mask"], torch.ones_like(r)], 1)
    if "mm_token_type_ids" in prompt:
        tt = prompt["mm_token_type_ids"]
        batch["mm_token_type_ids"] = torch.cat([tt, torch.zeros_like(r).to(tt.dtype)], 1)
    labels = batch["input_ids"].clone()
    labels[:, : prompt["input_ids"].shape[1]] = -100
    labels[batch["input_ids"] == ad.latent_pad_id] = -100
    batch["labels"] = labels
    n = int((r == ad.latent_pad_id).sum())
    batch["latents"] = torch.randn(n, ad.hidden_size, generator=torch.Generator().manual_seed(seed))
    batch["ids"] = [f"r{i}" for i in range(B)]
    return batch
