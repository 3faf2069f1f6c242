"""Tiny world-like DIFT datasets for tests and benchmarks (no world renderer needed).

Each record: 4 frames of a textured background that pans left or right (or tilts up/down) with a
static red-highlighted landmark, the overlays (Eq. 1: red, opacity 0.4) of the landmark at the
segment's two boundary frames as imagery, an MCQ over camera motions, and an imagery CoT with one
``<imagery>`` per overlay. Frames are saved as PNGs beside ``dift.jsonl`` (``frames`` field), the
way the data pipeline writes pre-extracted frames.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

MOTIONS = {"Pan Left": (6, 0), "Pan Right": (-6, 0), "Tilt Up": (0, 6), "Tilt Down": (0, -6)}


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = rng.integers(0, 255, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    return np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))[:h, :w]


def make_toy_dift(out_dir: str | os.PathLike, n: int = 8, *, size: int = 112, n_frames: int = 4,
                  seed: int = 0) -> Path:
    """Write ``n`` toy DIFT records (+ PNGs) to ``out_dir``; returns the ``dift.jsonl`` path."""
    from PIL import Image

    from fourdthinker.io import write_jsonl

    out = Path(out_dir)
    (out / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = list(MOTIONS)
    rows = []
    for i in range(n):
        label = names[i % len(names)]
        dx, dy = MOTIONS[label]
        big = _texture(rng, size + 64, size + 64)
        frames, masks = [], []
        for t in range(n_frames):
            x0, y0 = 32 + dx * t, 32 + dy * t
            f = big[y0 : y0 + size, x0 : x0 + size].copy()
            m = np.zeros((size, size), bool)
            cy, cx = size // 2 - dy * t, size // 2 - dx * t
            m[max(cy - 10, 0) : cy + 10, max(cx - 10, 0) : cx + 10] = True
            f[m] = (f[m] * 0.3 + np.array([240, 240, 240]) * 0.7).astype(np.uint8)
            frames.append(f)
            masks.append(m)
        fpaths = []
        for t, f in enumerate(frames):
            p = f"img/{i:04d}_f{t}.png"
            Image.fromarray(f).save(out / p)
            fpaths.append(p)
        imgs = []
        for t in (0, n_frames - 1):
            a = 0.4 * masks[t][..., None]
            o = ((1 - a) * frames[t] + a * np.array([255, 0, 0])).astype(np.uint8)
            p = f"img/{i:04d}_o{t}.png"
            Image.fromarray(o).save(out / p)
            imgs.append(p)
        opts = [label] + [x for x in names if x != label][:3]
        order = rng.permutation(4)
        options = {k: opts[j] for k, j in zip("ABCD", order, strict=False)}
        ans = next(k for k, v in options.items() if v == label)
        reasoning = (f"<think>The white block is static. At 0s it is here <imagery> and at {n_frames - 1}s it is "
                     f"there <imagery>, so the camera moved: {label}.</think><answer>{ans}. {label}</answer>")
        rows.append({"id": f"toy{i:04d}", "video": "img", "frames": fpaths, "frames_fps": 1.0,
                     "question": f"What is the camera movement from 0s to {n_frames - 1}s?", "options": options,
                     "answer": ans, "task": "camera", "reasoning": reasoning, "imagery": imgs, "source": "toy"})
    path = out / "dift.jsonl"
    write_jsonl(path, rows)
    return path
