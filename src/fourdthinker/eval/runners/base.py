"""What every evaluation runner provides, and the shared visual loader.

A runner turns a batch of ``BenchItem``s into raw model outputs (text). Parsing, scoring,
resuming and reporting are done once, by ``fourdthinker.eval.evaluate``, for every runner.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from fourdthinker.data.records import BenchItem
from fourdthinker.io import resolve_inside

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class MissingMediaError(FileNotFoundError):
    """An item's video / frame folder is missing or unreadable (the item is quarantined)."""


class FatalRunnerError(RuntimeError):
    """The runner cannot work at all (model does not load, ...): stops the run with one clear error
    instead of quarantining every item."""


@dataclass
class RunOutput:
    text: str
    latency_s: float = 0.0
    n_latent_steps: int = 0
    imagery: list[str] = field(default_factory=list)  # optional image paths shown in the HTML report


@runtime_checkable
class Runner(Protocol):
    """``generate(items, root, seed=, do_sample=)`` -> one ``RunOutput`` per item, same order
    (or, in place, the exception of an item that failed on its own).

    A runner may also raise for a whole batch; ``evaluate`` then retries the items one by one and
    quarantines only the ones that still fail."""

    name: str
    batch_size: int

    def settings(self) -> dict: ...

    def generate(self, items: Sequence[BenchItem], root: Path, *, seed: int, do_sample: bool) -> list[RunOutput]: ...


def uniform_indices(n: int, k: int) -> list[int]:
    """k indices spread uniformly over range(n) including both ends (all of them if n <= k)."""
    if n <= k:
        return list(range(n))
    return [int(round(x)) for x in np.linspace(0, n - 1, k)]


def load_visuals(item: BenchItem, root: str | os.PathLike, *, fps: float = 1.0, max_frames: int = 16) -> list[np.ndarray]:
    """The frames a model sees for ``item``: RGB uint8 ``[H, W, 3]`` arrays, at most ``max_frames``.

    ``item.video`` is a video file (sampled at ``fps`` frames per second, then uniformly capped,
    like the reference's 1 FPS / 50-frame cap) or a folder of frame images (Dyn-Bench), which is
    uniformly subsampled. Raises ``MissingMediaError`` naming the path when it is absent."""
    path = resolve_inside(root, item.video) if not os.path.isabs(item.video) else Path(item.video)
    if not path.exists():
        raise MissingMediaError(f"{path}: video not found (item {item.id})")
    if path.is_dir():
        from PIL import Image

        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not files:
            raise MissingMediaError(f"{path}: no frame images (item {item.id})")
        return [np.asarray(Image.open(files[i]).convert("RGB")) for i in uniform_indices(len(files), max_frames)]
    from fourdthinker.video import VideoNotFoundError, sample_frames

    try:
        frames = sample_frames(path, fps=fps, max_frames=max_frames).frames  # VideoError names the file
    except VideoNotFoundError as e:
        raise MissingMediaError(str(e)) from None
    if not frames:
        raise MissingMediaError(f"{path}: no frames could be decoded (item {item.id})")
    return frames


class RandomRunner:
    """The chance baseline: a uniformly random letter per item (seeded by item id and seed).

    Useful as the "chance" row of a table and as a model-free check of the whole eval path."""

    name = "random"
    batch_size = 64

    def settings(self) -> dict:
        return {"runner": "random"}

    def generate(self, items: Sequence[BenchItem], root: Path, *, seed: int, do_sample: bool) -> list[RunOutput]:
        out = []
        for it in items:
            letter = random.Random(f"{seed}:{it.id}").choice(list(it.options))
            out.append(RunOutput(text=f"<think>chance baseline</think><answer>{letter}</answer>"))
        return out
