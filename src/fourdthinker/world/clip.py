"""Load a clip folder (see ``world.truth`` for the contract) into one object, with clear errors."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from fourdthinker.world.truth import ClipMeta, ClipTruth


class ClipError(ValueError):
    """A clip folder is missing a required part or holds a corrupt one. One line, naming the file."""


@dataclass
class ClipData:
    clip_dir: Path
    meta: ClipMeta
    truth: ClipTruth | None
    c2w: np.ndarray | None  # [N, 4, 4] float64 camera-to-world (OpenCV camera axes)
    K: np.ndarray | None  # [N, 3, 3] float64 intrinsics (pixels)
    masks_static: np.ndarray | None  # [N, H, W] bool
    masks_dynamic: np.ndarray | None  # [N, H, W] bool
    video_path: Path

    @property
    def n_frames(self) -> int:
        return self.meta.n_frames


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ClipError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None


def _load_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise ClipError(f"{path}: missing array(s) {missing} (has {z.files})")
            return {k: z[k] for k in keys}
    except ClipError:
        raise
    except Exception as e:  # noqa: BLE001 - zipfile/ValueError/OSError: all mean "corrupt"
        raise ClipError(f"{path}: corrupt or unreadable npz ({type(e).__name__}: {e})") from None


def load_clip(clip_dir: str | os.PathLike, *, load_masks: bool = True) -> ClipData:
    """Read ``meta.json`` (required), ``video.mp4`` (required), and when present ``truth.json``,
    ``poses.npz`` and ``masks.npz``. Shapes are checked against ``meta.n_frames`` / size.
    ``load_masks=False`` skips the (largest) masks file. Raises ``ClipError`` naming the bad file."""
    d = Path(clip_dir)
    if not d.is_dir():
        raise ClipError(f"{d}: clip folder does not exist")
    meta_p = d / "meta.json"
    if not meta_p.exists():
        raise ClipError(f"{meta_p}: missing (every clip folder needs meta.json)")
    try:
        meta = ClipMeta.model_validate(_read_json(meta_p))
    except ValidationError as e:
        raise ClipError(f"{meta_p}: invalid meta ({e.errors()[0]['loc']}: {e.errors()[0]['msg']})") from None
    video = d / "video.mp4"
    if not video.exists():
        raise ClipError(f"{video}: missing")
    truth = None
    truth_p = d / "truth.json"
    if truth_p.exists():
        try:
            truth = ClipTruth.model_validate(_read_json(truth_p))
        except ValidationError as e:
            err = e.errors()[0]
            raise ClipError(f"{truth_p}: invalid truth ({'.'.join(map(str, err['loc']))}: {err['msg']})") from None
    n, h, w = meta.n_frames, meta.height, meta.width
    c2w = K = None
    poses_p = d / "poses.npz"
    if poses_p.exists():
        z = _load_npz(poses_p, ("c2w", "K"))
        c2w, K = z["c2w"].astype(np.float64), z["K"].astype(np.float64)
        if c2w.shape != (n, 4, 4) or K.shape != (n, 3, 3):
            raise ClipError(f"{poses_p}: expected c2w [{n},4,4] and K [{n},3,3], got {c2w.shape} and {K.shape}")
    ms = md = None
    masks_p = d / "masks.npz"
    if load_masks and masks_p.exists():
        z = _load_npz(masks_p, ("static", "dynamic"))
        ms, md = z["static"].astype(bool), z["dynamic"].astype(bool)
        for name, m in (("static", ms), ("dynamic", md)):
            if m.shape != (n, h, w):
                raise ClipError(f"{masks_p}: '{name}' expected shape [{n},{h},{w}], got {list(m.shape)}")
    return ClipData(d, meta, truth, c2w, K, ms, md, video)


def is_complete_clip(clip_dir: str | os.PathLike) -> bool:
    """True when a folder holds every file the world writes and its truth parses (used to resume)."""
    d = Path(clip_dir)
    if not all((d / f).is_file() and (d / f).stat().st_size > 0
               for f in ("video.mp4", "meta.json", "poses.npz", "masks.npz", "truth.json")):
        return False
    try:
        ClipTruth.model_validate(json.loads((d / "truth.json").read_text(encoding="utf-8")))
        ClipMeta.model_validate(json.loads((d / "meta.json").read_text(encoding="utf-8")))
    except (ValueError, OSError):
        return False
    return True
