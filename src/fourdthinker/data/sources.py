"""Clip sources: one loader for the synthetic world's clip folders and SpatialVID-style real clips.

* World clip (``meta.json`` present): ``world.load_clip`` (video, poses.npz, masks.npz, truth.json).
* SpatialVID-style clip (no ``meta.json``): a folder with one video (``video.mp4`` or ``*.mp4``),
  optional ``poses.npy`` (or ``reconstructions/poses.npy``) N x 7 world-to-camera
  ``[tx, ty, tz, qx, qy, qz, qw]``, optional ``intrinsics.npy`` ([3,3], [N,3,3], [4] or [N,4] as
  fx, fy, cx, cy; values <= 2 are taken as normalised by width/height), optional
  ``instructions.json``. SpatialVID poses are estimated at 5 FPS (every 0.2 s); we place pose i at
  ``i * pose_dt_s`` seconds (``indexes.txt`` overrides: lines "seq frame_idx").

Both become a :class:`Clip`: per-pose video-frame indices (``pose_frames``) keep the two apart.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class ClipSourceError(ValueError):
    """A clip folder cannot be read; the message names the file and the problem."""


@dataclass
class Clip:
    clip_id: str
    clip_dir: Path
    video_path: Path
    fps: float
    n_frames: int
    width: int
    height: int
    source: str
    truth: Any = None  # world ClipTruth or None
    c2w: np.ndarray | None = None  # [P, 4, 4]
    K: np.ndarray | None = None  # [P, 3, 3]
    pose_frames: np.ndarray | None = None  # [P] video-frame index of each pose
    masks_static: np.ndarray | None = None  # [N, H, W] bool (world only)
    masks_dynamic: np.ndarray | None = None
    instructions: dict | None = None


def list_clips(root: str | os.PathLike) -> list[Path]:
    """Clip folders under ``root`` (sorted by name): every sub-folder holding a video."""
    root = Path(root)
    if not root.is_dir():
        raise ClipSourceError(f"{root}: videos folder does not exist")
    if (root / "meta.json").exists() or list(root.glob("*.mp4")):
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and ((p / "meta.json").exists() or any(p.glob("*.mp4"))))


def open_clip(clip_dir: str | os.PathLike) -> Clip:
    d = Path(clip_dir)
    if (d / "meta.json").exists():
        from fourdthinker.world.clip import load_clip

        c = load_clip(d)
        n = c.meta.n_frames
        return Clip(c.meta.clip_id, d, c.video_path, float(c.meta.fps), n, c.meta.width, c.meta.height, c.meta.source,
                    truth=c.truth, c2w=c.c2w, K=c.K, pose_frames=None if c.c2w is None else np.arange(n),
                    masks_static=c.masks_static, masks_dynamic=c.masks_dynamic)
    return open_spatialvid_clip(d)


def open_spatialvid_clip(d: Path, pose_dt_s: float = 0.2) -> Clip:
    from fourdthinker.data.camera import spatialvid_w2c_to_c2w
    from fourdthinker.video import probe

    vids = [d / "video.mp4"] if (d / "video.mp4").exists() else sorted(d.glob("*.mp4"))
    if not vids:
        raise ClipSourceError(f"{d}: no video (.mp4) in clip folder")
    info = probe(vids[0])
    fps = float(info.fps)
    n = int(getattr(info, "n_frames", 0) or round(info.duration_s * fps))
    clip = Clip(d.name, d, vids[0], fps, n, int(info.width), int(info.height), "spatialvid")
    pp = d / "poses.npy" if (d / "poses.npy").exists() else d / "reconstructions" / "poses.npy"
    if pp.exists():
        try:
            raw = np.load(pp, allow_pickle=False)
        except Exception as e:  # noqa: BLE001
            raise ClipSourceError(f"{pp}: unreadable ({type(e).__name__}: {e})") from None
        try:
            clip.c2w = spatialvid_w2c_to_c2w(raw)
        except ValueError as e:
            raise ClipSourceError(f"{pp}: {e}") from None
        idx_p = d / "indexes.txt"
        if idx_p.exists():
            fr = [int(line.split()[-1]) for line in idx_p.read_text().splitlines() if line.strip()]
            if len(fr) != len(raw):
                raise ClipSourceError(f"{idx_p}: {len(fr)} lines for {len(raw)} poses")
            clip.pose_frames = np.asarray(fr)
        else:
            clip.pose_frames = np.round(np.arange(len(raw)) * pose_dt_s * fps).astype(int)
        clip.K = _intrinsics(d / "intrinsics.npy", len(raw), clip.width, clip.height)
    ip = d / "instructions.json"
    if ip.exists():
        try:
            clip.instructions = json.loads(ip.read_text())
        except json.JSONDecodeError as e:
            raise ClipSourceError(f"{ip}: not valid JSON ({e.msg})") from None
    return clip


def _intrinsics(p: Path, n: int, w: int, h: int) -> np.ndarray | None:
    if not p.exists():
        return None
    k = np.asarray(np.load(p, allow_pickle=False), dtype=np.float64)
    if k.shape == (3, 3):
        k = np.repeat(k[None], n, 0)
    elif k.shape[-1] == 4:
        k = np.atleast_2d(k)
        if k.max() <= 2.0:  # normalised
            k = k * np.array([w, h, w, h])
        Ks = np.tile(np.eye(3), (len(k), 1, 1))
        Ks[:, 0, 0], Ks[:, 1, 1], Ks[:, 0, 2], Ks[:, 1, 2] = k[:, 0], k[:, 1], k[:, 2], k[:, 3]
        k = np.repeat(Ks, n, 0) if len(Ks) == 1 else Ks
    if k.shape != (n, 3, 3):
        raise ClipSourceError(f"{p}: intrinsics shape {k.shape} does not fit {n} poses")
    return k
