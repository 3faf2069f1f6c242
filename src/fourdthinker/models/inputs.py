"""The ONE input builder: a record (or a video + question) becomes model inputs the same way in DIFT,
4DRL, ``infer`` and ``eval`` -- same frames, same frame cap, same pixel cap, same prompt (docs/models.md).

* :class:`FrameSettings` -- ``fps``, ``max_frames``, ``max_pixels``, ``span``; defaults :data:`DEFAULT_FPS`,
  :data:`DEFAULT_MAX_FRAMES`, :data:`DEFAULT_MAX_PIXELS` (1 FPS, 16 frames, 448x448), which every
  stage's own defaults point at, and ``span="video"`` (``"window"``: only the seconds a record's
  ``window_s`` names; :func:`record_window`, :func:`in_window`).
* :func:`load_frames` -- a video's frames: the pre-extracted ``frames`` images if listed, else a
  folder (its ``video.mp4`` or its frame images), else a video file sampled at ``fps`` with
  ``fourdthinker.video.sample_frames``. At most ``max_frames`` (evenly spread, first and last kept),
  each capped at ``max_pixels`` with the video decoder's rule (``video.overlay.capped_size``: aspect
  kept, never upscaled) and area resampling, whether it comes from a PNG or a decoded video.
* :func:`prompt_text` / :func:`record_prompt` -- the user text, always ``data.records.build_question_text``
  (a bare question when there are no options: ``infer`` without ``--options``).
* :func:`record_inputs` -> :class:`PromptInputs` (frames, text, fps) of a DiftRecord / RLRecord /
  BenchItem; :func:`encode_inputs` / :func:`build_prompt_batch` -- the left-padded prompt batch
  (``VLMAdapter.encode_one`` per sample, then ``left_pad_batch``); DIFT extends
  ``encode_inputs([x])`` with the response.
* :func:`load_image` -- one imagery PNG/JPEG as RGB uint8, with a one-line error naming the file.

The processor's frame rate (temporal M-RoPE spacing) is the record's ``frames_fps`` when it lists
pre-extracted frames (DiftRecord; what they were extracted at), else ``settings.fps``.
Paths in records are resolved inside the dataset root (``io.resolve_inside``); ``root=None`` means
a path the user typed (``infer --video``), used as given.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fourdthinker.data.records import build_question_text
from fourdthinker.io import resolve_inside

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
VIDEO_NAMES = ("video.mp4", "video.mkv", "video.avi", "video.webm", "video.mov")
DEFAULT_FPS = 1.0
DEFAULT_MAX_FRAMES = 16
DEFAULT_MAX_PIXELS = 448 * 448
SPANS = ("video", "window")


class InputError(ValueError):
    """A record's inputs cannot be loaded (bad image, unreadable video); the message names the file."""


class MissingMediaError(InputError, FileNotFoundError):
    """A video / frame file or folder is missing or holds no frames (an eval item is quarantined)."""


@dataclass(frozen=True)
class FrameSettings:
    """What a stage feeds the model per video: frame rate, frame cap, pixel cap per frame."""

    fps: float = DEFAULT_FPS
    max_frames: int | None = DEFAULT_MAX_FRAMES
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    span: str = "video"
    """``video``: frames over the whole video (the paper). ``window``: a record with ``window_s``
    (the seconds its question asks about) gets frames from that span only (docs/models.md#frame-span-the-whole-video-or-the-asked-window)."""

    def __post_init__(self):
        if self.span not in SPANS:
            raise ValueError(f"span must be one of {'|'.join(SPANS)}, got {self.span!r}")
        if not self.fps or self.fps <= 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1 (or None), got {self.max_frames}")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1 (or None), got {self.max_pixels}")


@dataclass
class PromptInputs:
    """One prompt before encoding: frames (RGB uint8), user text, the frames' rate for the processor."""

    frames: list[np.ndarray]
    text: str
    fps: float


def load_image(path: str | os.PathLike, *, max_pixels: int | None = None) -> np.ndarray:
    """RGB ``[H, W, 3]`` uint8 from an image file (any mode is converted; a clear error otherwise),
    downscaled to at most ``max_pixels`` with :func:`cap_frame`."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise MissingMediaError(f"{p}: image file not found")
    try:
        with Image.open(p) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError) as e:
        raise InputError(f"{p}: not a readable image ({e.__class__.__name__})") from None
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise InputError(f"{p}: image too small ({arr.shape[1]}x{arr.shape[0]})")
    return cap_frame(arr, max_pixels)


def cap_frame(frame: np.ndarray, max_pixels: int | None) -> np.ndarray:
    """``frame`` resized to ``video.overlay.capped_size`` (H*W <= ``max_pixels``, aspect kept, never
    upscaled) with area (box) resampling, as the video decoder resizes decoded frames."""
    from PIL import Image

    from fourdthinker.video.overlay import capped_size

    h, w = capped_size(frame.shape[0], frame.shape[1], max_pixels)
    if (h, w) == frame.shape[:2]:
        return frame
    return np.asarray(Image.fromarray(frame).resize((w, h), Image.BOX), dtype=np.uint8)


def spread(items: Sequence, n: int | None) -> list:
    """At most ``n`` of ``items`` evenly spread, first and last kept (all of them if ``n`` is None)."""
    if n is None or len(items) <= n:
        return list(items)
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in idx]


def _path(root: str | os.PathLike | None, rel: str | os.PathLike) -> Path:
    return Path(rel) if root is None else resolve_inside(root, rel)


def trained_span(model: str | os.PathLike) -> str:
    """The frame span a model was trained with (``frame_span`` in its folder's ``config.json``, written
    by ``train dift`` / ``train rl``); ``video`` for a hub name or a model without it. Read without
    loading the weights, so a finished eval rerun stays cheap."""
    import json

    cfg = Path(model) / "config.json"
    if not cfg.is_file():
        return "video"
    try:
        span = json.loads(cfg.read_text(encoding="utf-8")).get("frame_span")
    except (OSError, ValueError):
        return "video"
    return span if span in SPANS else "video"


def in_window(items: Sequence, rate: float, window: tuple[float, float] | None) -> list:
    """The ``items`` (frame ``k`` at ``k / rate`` seconds) whose time lies in ``window = (a, b)``
    (all of them when ``window`` is None). An empty span is an error naming it."""
    if window is None:
        return list(items)
    a, b = float(window[0]), float(window[1])
    kept = [x for k, x in enumerate(items) if a - 1e-6 <= k / rate <= b + 1e-6]
    if not kept:
        raise InputError(f"no frame in the window {a:g}s-{b:g}s ({len(items)} frames at {rate:g} FPS)")
    return kept


def load_frames(root: str | os.PathLike | None, video: str | os.PathLike, frames: Sequence[str] | None = None, *,
                settings: FrameSettings | None = None, window: tuple[float, float] | None = None,
                frames_fps: float | None = None) -> list[np.ndarray]:
    """Frames of one video (see the module docstring). ``root``: the dataset root the paths are
    inside (None: ``video`` is a path the user gave). ``window = (a, b)``: only the frames in those
    seconds (listed ``frames`` are at ``frames_fps``, a folder's images at ``settings.fps``, a video
    is sampled at ``settings.fps`` from ``a``), then at most ``max_frames`` spread over them."""
    s = settings or FrameSettings()
    if frames:
        listed = in_window(list(frames), frames_fps or s.fps, window)
        return [load_image(_path(root, f), max_pixels=s.max_pixels) for f in spread(listed, s.max_frames)]
    vp = _path(root, video)
    if vp.is_dir():
        for name in VIDEO_NAMES:
            if (vp / name).is_file():
                vp = vp / name
                break
        else:
            imgs = sorted(p for p in vp.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not imgs:
                raise MissingMediaError(f"{vp}: folder holds no video.mp4 and no frame images")
            imgs = in_window(imgs, s.fps, window)
            return [load_image(p, max_pixels=s.max_pixels) for p in spread(imgs, s.max_frames)]
    if not vp.exists():
        raise MissingMediaError(f"{vp}: video not found")
    from fourdthinker.video import VideoError, sample_frames
    from fourdthinker.video.errors import VideoNotFoundError

    try:
        sf = sample_frames(vp, s.fps, max_pixels=s.max_pixels, max_frames=s.max_frames, window=window)
    except VideoNotFoundError as e:
        raise MissingMediaError(str(e).splitlines()[0] if str(e) else f"{vp}: video not found") from None
    except VideoError as e:
        raise InputError(str(e).splitlines()[0] if str(e) else f"{vp}: unreadable video") from None
    except ValueError as e:  # a window outside the video (target_times)
        raise InputError(f"{vp}: {e}") from None
    except Exception as e:  # noqa: BLE001 - any decoder failure is an unreadable file to the user
        first = str(e).splitlines()[0] if str(e) else ""
        raise InputError(f"{vp}: unreadable video ({type(e).__name__}: {first})") from None
    if not sf.frames:
        raise MissingMediaError(f"{vp}: no frames decoded")
    return sf.frames


def prompt_text(question: str, options: dict[str, str] | None) -> str:
    """The user text: ``build_question_text(question, options)``, or the bare question without options."""
    return build_question_text(question, options) if options else str(question).strip()


def record_prompt(record) -> str:
    """User text for a record (anything with ``question`` and ``options``)."""
    return prompt_text(record.question, record.options)


def record_fps(record, settings: FrameSettings) -> float:
    """The processor's frame rate for a record: its ``frames_fps`` when it lists pre-extracted frames,
    else the rate the video is sampled at (``settings.fps``)."""
    if getattr(record, "frames", None) and getattr(record, "frames_fps", None):
        return float(record.frames_fps)
    return float(settings.fps)


def record_frames(record, root: str | os.PathLike | None, settings: FrameSettings | None = None, *,
                  allow_absolute: bool = False) -> list[np.ndarray]:
    """The frames of a DiftRecord / RLRecord / BenchItem. ``allow_absolute``: an absolute ``video``
    is used as given (benchmark loaders that point at a separate video folder); otherwise every path
    stays inside ``root``."""
    s = settings or FrameSettings()
    if allow_absolute and os.path.isabs(str(record.video)):
        root = None
    return load_frames(root, record.video, getattr(record, "frames", None), settings=s, window=record_window(record, s),
                       frames_fps=getattr(record, "frames_fps", None))


def record_window(record, settings: FrameSettings) -> tuple[float, float] | None:
    """The span a record's frames come from: its ``window_s`` when ``settings.span == "window"``,
    else None (the whole video; also for a record without ``window_s``)."""
    w = getattr(record, "window_s", None)
    return (float(w[0]), float(w[1])) if settings.span == "window" and w is not None else None


def record_inputs(record, root: str | os.PathLike | None, settings: FrameSettings | None = None, *,
                  allow_absolute: bool = False) -> PromptInputs:
    """(frames, prompt text, fps) of a DiftRecord / RLRecord / BenchItem."""
    s = settings or FrameSettings()
    return PromptInputs(record_frames(record, root, s, allow_absolute=allow_absolute), record_prompt(record),
                        record_fps(record, s))


def encode_inputs(adapter, inputs: Sequence[PromptInputs]) -> dict[str, Any]:
    """LEFT-padded prompt batch (``VLMAdapter.encode_one`` per prompt, then ``left_pad_batch``, exactly
    what ``VLMAdapter.encode_prompts`` does); a single prompt comes back unpadded ``[1, L]``."""
    from fourdthinker.models.base import left_pad_batch

    if not inputs:
        raise ValueError("encode_inputs: no prompts")
    encs = [adapter.encode_one(x.frames, x.text, fps=x.fps) for x in inputs]
    return left_pad_batch(encs, adapter.pad_id)


def build_prompt_batch(adapter, records: Sequence, root: str | os.PathLike | None,
                       settings: FrameSettings | None = None, *, allow_absolute: bool = False) -> dict[str, Any]:
    """The prompt batch of ``records``: :func:`record_inputs` then :func:`encode_inputs`."""
    return encode_inputs(adapter, [record_inputs(r, root, settings, allow_absolute=allow_absolute) for r in records])


__all__ = [
    "DEFAULT_FPS",
    "DEFAULT_MAX_FRAMES",
    "DEFAULT_MAX_PIXELS",
    "FrameSettings",
    "InputError",
    "MissingMediaError",
    "PromptInputs",
    "SPANS",
    "build_prompt_batch",
    "cap_frame",
    "encode_inputs",
    "in_window",
    "load_frames",
    "load_image",
    "prompt_text",
    "record_frames",
    "record_inputs",
    "record_window",
    "record_prompt",
    "spread",
    "trained_span",
]
