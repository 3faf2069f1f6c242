"""Contact sheets: a grid of frames with a caption under each, for looking at samples and overlays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def contact_sheet(
    frames: Sequence[np.ndarray],
    captions: Sequence[str] | None = None,
    *,
    cols: int = 4,
    scale: int = 1,
    title: str | None = None,
    pad: int = 4,
) -> np.ndarray:
    """Tile [H, W, 3] uint8 frames (all the same size) into one RGB image, ``cols`` per row,
    each enlarged ``scale`` times (nearest neighbour, so pixels stay crisp), caption below."""
    from PIL import Image, ImageDraw, ImageFont

    if not frames:
        raise ValueError("contact_sheet: no frames")
    h, w = frames[0].shape[:2]
    h, w = h * scale, w * scale
    font = ImageFont.load_default()
    cap_h = 14 if captions else 0
    title_h = 18 if title else 0
    cols = max(1, min(cols, len(frames)))
    rows = (len(frames) + cols - 1) // cols
    W = cols * (w + pad) + pad
    H = title_h + rows * (h + cap_h + pad) + pad
    sheet = Image.new("RGB", (W, H), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, 3), title, fill=(0, 0, 0), font=font)
    for i, f in enumerate(frames):
        if f.shape[:2] != frames[0].shape[:2]:
            raise ValueError(f"contact_sheet: frame {i} has size {f.shape[:2]}, expected {frames[0].shape[:2]}")
        r, c = divmod(i, cols)
        x, y = pad + c * (w + pad), title_h + pad + r * (h + cap_h + pad)
        img = Image.fromarray(np.asarray(f, dtype=np.uint8))
        if scale != 1:
            img = img.resize((w, h), Image.Resampling.NEAREST)
        sheet.paste(img, (x, y))
        if captions:
            draw.text((x, y + h + 1), str(captions[i]), fill=(0, 0, 0), font=font)
    return np.asarray(sheet)


def save_png(path, image: np.ndarray) -> None:
    """Save an RGB array as PNG atomically."""
    from PIL import Image

    from fourdthinker.io import atomic_path

    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
        tmp.chmod(0o644)  # temp files are created 0600
