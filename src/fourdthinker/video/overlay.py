"""Pure image functions: the mask overlay of Eq. 1 (docs/method.md#eq-1) and pixel-budget capping.

No I/O, no state: arrays in, arrays out.
"""

from __future__ import annotations

import math

import numpy as np

RED = (255, 0, 0)
BLUE = (0, 0, 255)


def overlay(
    frame: np.ndarray,
    mask: np.ndarray,
    alpha: float = 0.4,
    color: tuple[int, int, int] = RED,
) -> np.ndarray:
    """Highlight ``mask`` on ``frame`` (Eq. 1, paper Sec. 3.1)::

        O_t = (1 - a * M_t) * f_t + a * M_t * c

    per pixel and channel, with opacity ``a = alpha`` (paper: 0.4) and colour ``c`` (paper: red,
    RGB (255, 0, 0)). ``frame``: [H, W, 3] uint8 RGB. ``mask``: [H, W] bool, or float in [0, 1]
    (a soft mask blends proportionally). Returns a new [H, W, 3] uint8 array, rounded to the
    nearest integer (half to even, ``np.rint``). Example: f = 100, M = 1, a = 0.4, c = 255 ->
    0.6 * 100 + 0.4 * 255 = 162.
    """
    frame = np.asarray(frame)
    mask = np.asarray(mask)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"overlay: frame must be [H, W, 3], got shape {frame.shape}")
    if mask.shape != frame.shape[:2]:
        raise ValueError(f"overlay: mask shape {mask.shape} does not match frame shape {frame.shape[:2]}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay: alpha must be in [0, 1], got {alpha}")
    m = mask.astype(np.float64)
    if m.size and (m.min() < 0 or m.max() > 1):
        raise ValueError(f"overlay: mask values must be in [0, 1], got [{m.min()}, {m.max()}]")
    am = alpha * m[..., None]  # [H, W, 1]
    c = np.asarray(color, dtype=np.float64).reshape(1, 1, 3)
    out = (1.0 - am) * frame.astype(np.float64) + am * c  # [H, W, 3]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def capped_size(height: int, width: int, max_pixels: int | None) -> tuple[int, int]:
    """The (height, width) to resize to so that ``height * width <= max_pixels``, keeping the aspect
    ratio: scale = sqrt(max_pixels / (H * W)) when over budget, each side floored, at least 1.
    Sizes already within budget (or ``max_pixels=None``) come back unchanged; never upscales."""
    if height <= 0 or width <= 0:
        raise ValueError(f"cap_pixels: size must be positive, got {height}x{width}")
    if max_pixels is None or height * width <= max_pixels:
        return int(height), int(width)
    if max_pixels < 1:
        raise ValueError(f"cap_pixels: max_pixels must be >= 1, got {max_pixels}")
    s = math.sqrt(max_pixels / (height * width))
    h, w = max(1, int(height * s)), max(1, int(width * s))
    while h * w > max_pixels:  # float rounding guard
        if h >= w:
            h -= 1
        else:
            w -= 1
    return h, w


def cap_pixels(frame_or_size, max_pixels: int | None):
    """Cap a frame (or a size) to a pixel budget, like the paper's ``max_pixels``.

    ``frame_or_size``: an [H, W, 3] uint8 array -> a resized array (area-averaging, PIL BOX);
    or a ``(height, width)`` tuple -> the capped ``(height, width)``. See ``capped_size``.
    """
    if isinstance(frame_or_size, tuple | list) and len(frame_or_size) == 2:
        return capped_size(int(frame_or_size[0]), int(frame_or_size[1]), max_pixels)
    frame = np.asarray(frame_or_size)
    if frame.ndim < 2:
        raise ValueError(f"cap_pixels: expected an image array or (height, width), got shape {frame.shape}")
    h, w = capped_size(frame.shape[0], frame.shape[1], max_pixels)
    if (h, w) == frame.shape[:2]:
        return frame
    from PIL import Image

    return np.asarray(Image.fromarray(frame).resize((w, h), Image.Resampling.BOX))


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a bool mask [H, W]: inside pixels with a 4-neighbour outside (or on the border)."""
    m = np.asarray(mask, dtype=bool)
    p = np.pad(m, 1, constant_values=False)
    interior = p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return m & ~interior


def draw_outline(frame: np.ndarray, mask: np.ndarray, color: tuple[int, int, int] = RED) -> np.ndarray:
    """Paint ``mask``'s boundary in ``color`` (for pictures: Eq. 1 alone is faint on similar colours)."""
    out = np.array(frame, copy=True)
    out[mask_outline(mask)] = color
    return out
