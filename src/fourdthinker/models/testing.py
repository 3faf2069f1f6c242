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
