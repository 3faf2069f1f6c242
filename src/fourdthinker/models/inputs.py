"""The ONE place a record becomes model inputs: frames + prompt text (DIFT, RL and eval share it).

* :func:`load_frames` — a record's video frames: the pre-extracted ``frames`` PNGs if listed, else a
  folder of images, else a video file sampled at ``fps`` with ``fourdthinker.video.sample_frames``.
  Frames are capped at ``max_frames`` (evenly spread, first and last kept) and ``max_pixels``.
* :func:`load_image` — one PNG/JPEG as RGB uint8 with a one-line error naming the file.
* :func:`record_prompt` — the user text, always ``data.records.build_question_text``.

Paths are resolved inside the dataset root (``io.resolve_inside``): records cannot read outside it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fourdthinker.data.records import build_question_text
from fourdthinker.io import resolve_inside

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
DEFAULT_MAX_FRAMES = 16
DEFAULT_MAX_PIXELS = 448 * 448


class InputError(ValueError):
    """A record's inputs cannot be loaded (missing file, bad image); the message names the file."""


def load_image(path: str | os.PathLike, *, max_pixels: int | None = None) -> np.ndarray:
    """RGB ``[H, W, 3]`` uint8 from an image file (any mode is converted; a clear error otherwise)."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: image file not found")
    try:
        with Image.open(p) as im:
            im = im.convert("RGB")
            if max_pixels and im.width * im.height > max_pixels:
                s = (max_pixels / (im.width * im.height)) ** 0.5
                im = im.resize((max(1, int(im.width * s)), max(1, int(im.height * s))), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError) as e:
        raise InputError(f"{p}: not a readable image ({e.__class__.__name__})") from None
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise InputError(f"{p}: image too small ({arr.shape[1]}x{arr.shape[0]})")
    return arr


def _spread(items: Sequence, n: int | None) -> list:
    if n is None or len(items) <= n:
        return list(items)
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in idx]


def load_frames(root: str | os.PathLike, video: str, frames: Sequence[str] | None = None, *, fps: float = 1.0,
                max_frames: int | None = DEFAULT_MAX_FRAMES, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> list[np.ndarray]:
    """Frames of one record (see the module docstring). ``root`` is the dataset root."""
    if frames:
        paths = [resolve_inside(root, f) for f in frames]
        return [load_image(p, max_pixels=max_pixels) for p in _spread(paths, max_frames)]
    vp = resolve_inside(root, video)
    if vp.is_dir():
        for name in ("video.mp4", "video.mkv", "video.avi"):
            if (vp / name).is_file():
                vp = vp / name
                break
        else:
            imgs = sorted(p for p in vp.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not imgs:
                raise InputError(f"{vp}: folder holds no video.mp4 and no frame images")
            return [load_image(p, max_pixels=max_pixels) for p in _spread(imgs, max_frames)]
    if not vp.exists():
        raise InputError(f"{vp}: video not found")
    from fourdthinker.video import sample_frames

    sf = sample_frames(vp, fps, max_pixels=max_pixels, max_frames=max_frames)
    if not sf.frames:
        raise InputError(f"{vp}: no frames decoded")
    return sf.frames


def record_prompt(record) -> str:
    """User text for a record (anything with ``question`` and ``options``)."""
    return build_question_text(record.question, record.options)


def record_inputs(record, root: str | os.PathLike, **kw) -> tuple[list[np.ndarray], str]:
    """(frames, prompt text) of a DiftRecord / RLRecord / BenchItem."""
    return load_frames(root, record.video, getattr(record, "frames", None), **kw), record_prompt(record)
