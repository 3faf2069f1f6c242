"""SpatialVID's per-step camera-motion rule (``utils/get_instructions.py``, docs/benchmarks.md#spatialvid) on c2w poses.

The world (``world.camera`` re-exports it; the world's tests check it recovers every rendered
segment's label) and the data stage (``data.camera``, labels from poses) share it, so it lives in
the earlier of the two layers; ``world.camera``'s docstring gives the sign conventions.
Each step's relative motion is thresholded component by component: translation along the camera
axes -> Dolly/Truck/Pedestal, rotation -> Pan/Tilt/Roll (SpatialVID's names, mapped to ours by
``labels.SPATIALVID_TO_CAMERA``).
"""

from __future__ import annotations

import math

import numpy as np

from fourdthinker.labels import CAMERA_MOTIONS, SPATIALVID_TO_CAMERA

__all__ = ["CAMERA_TO_SPATIALVID", "STAY", "spatialvid_instructions", "spatialvid_motion", "spatialvid_step_commands"]

STAY = "Stay"

# (component name, sign) -> paper label. Components: tx ty tz (camera frame), yaw pitch roll (deg).
_COMPONENT_LABELS: dict[tuple[str, int], str] = {
    ("tz", 1): "Move Forward",
    ("tz", -1): "Move Backward",
    ("tx", 1): "Move Right",
    ("tx", -1): "Move Left",
    ("ty", -1): "Move Up",  # y points down
    ("ty", 1): "Move Down",
    ("yaw", 1): "Pan Right",
    ("yaw", -1): "Pan Left",
    ("pitch", 1): "Tilt Up",
    ("pitch", -1): "Tilt Down",
    ("roll", 1): "Roll Clockwise",
    ("roll", -1): "Roll Counter-clockwise",
}
CAMERA_TO_SPATIALVID: dict[str, str] = {
    "Move Forward": "Dolly In",
    "Move Backward": "Dolly Out",
    "Move Left": "Truck Left",
    "Move Right": "Truck Right",
    "Move Up": "Pedestal Up",
    "Move Down": "Pedestal Down",
    "Pan Left": "Pan Left",
    "Pan Right": "Pan Right",
    "Tilt Up": "Tilt Up",
    "Tilt Down": "Tilt Down",
    "Roll Clockwise": "Roll CW",
    "Roll Counter-clockwise": "Roll CCW",
}
assert set(_COMPONENT_LABELS.values()) == set(CAMERA_MOTIONS)


def spatialvid_step_commands(motion: dict[str, float], trans_th: float, rot_th_deg: float) -> list[str]:
    """SpatialVID's rule on one step: every component over its threshold gives a command.

    Returns SpatialVID names (``Dolly In``, ``Pan Left`` ...), ``["Stay"]`` when nothing passes.
    """
    cmds = []
    for comp in ("tz", "tx", "ty"):
        v = motion[comp]
        if abs(v) > trans_th:
            cmds.append(CAMERA_TO_SPATIALVID[_COMPONENT_LABELS[(comp, 1 if v > 0 else -1)]])
    for comp in ("yaw", "pitch", "roll"):
        v = motion[comp]
        if abs(v) > rot_th_deg:
            cmds.append(CAMERA_TO_SPATIALVID[_COMPONENT_LABELS[(comp, 1 if v > 0 else -1)]])
    return cmds or [STAY]


def spatialvid_motion(c2w_a: np.ndarray, c2w_b: np.ndarray) -> dict[str, float]:
    """Relative motion a -> b computed the way SpatialVID's ``utils/get_instructions.py`` does,
    returned in :func:`relative_motion`'s keys, units (degrees) and signs.

    With w2c rotations ``W = R^T``: ``delta = W_b W_a^-1``, ``(yaw, pitch, roll) = euler_yxz(delta)``
    (scipy, extrinsic), ``(tx, ty, tz) = W_a (p_b - p_a)`` (the same translation as
    :func:`relative_motion`). SpatialVID's angles describe the inverse rotation, so its yaw > 0 is a
    Pan Left while ours is a Pan Right: the angles are negated. For a motion about one axis the
    result equals :func:`relative_motion`'s; for compound rotations ``roll`` differs slightly
    (Euler roll vs the new right axis' angle), which is why both exist: this one reproduces
    SpatialVID's labels, :func:`relative_motion` keeps hand-checkable geometry for our own rule."""
    from scipy.spatial.transform import Rotation

    c2w_a, c2w_b = np.asarray(c2w_a, dtype=np.float64), np.asarray(c2w_b, dtype=np.float64)
    wa, wb = c2w_a[:3, :3].T, c2w_b[:3, :3].T
    yaw, pitch, roll = Rotation.from_matrix(wb @ wa.T).as_euler("yxz")
    dx, dy, dz = wa @ (c2w_b[:3, 3] - c2w_a[:3, 3])
    return {"tx": float(dx), "ty": float(dy), "tz": float(dz),
            "yaw": -math.degrees(yaw), "pitch": -math.degrees(pitch), "roll": -math.degrees(roll)}


def _ema_filter(pos: np.ndarray, quat: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """SpatialVID's pose smoothing: EMA of positions, sign-aligned normalised EMA of quaternions."""
    fp, fq = pos.copy(), quat.copy()
    for i in range(1, len(pos)):
        fp[i] = alpha * pos[i] + (1 - alpha) * fp[i - 1]
        q = quat[i] if np.dot(fq[i - 1], quat[i]) >= 0 else -quat[i]
        qi = (1 - alpha) * fq[i - 1] + alpha * q
        fq[i] = qi / np.linalg.norm(qi)
    return fp, fq


def spatialvid_instructions(
    c2w: np.ndarray,
    interval: int = 2,
    translation_thresh: float = 0.02,
    rotation_thresh_deg: float = 0.5,
    alpha: float | None = None,
) -> list[list[str]]:
    """SpatialVID's per-step camera-motion rule (``poses_to_multi_instructions``), on c2w poses [N, 4, 4].

    Poses are subsampled every ``interval`` frames (and EMA-filtered if ``alpha``, as SpatialVID
    does with 0.1); each consecutive pair (t, t+1) gives :func:`spatialvid_motion`, thresholded by
    :func:`spatialvid_step_commands` (SpatialVID's 0.02 and 0.5 deg by default). Returns one list
    of **our** labels per step (``labels.SPATIALVID_TO_CAMERA``), ``["Stay"]`` when none fires.
    (``world.camera`` and ``data.camera`` re-export this function.)
    """
    from scipy.spatial.transform import Rotation

    c2w = np.asarray(c2w, dtype=np.float64)[::interval]
    if alpha is not None:
        quat = Rotation.from_matrix(np.transpose(c2w[:, :3, :3], (0, 2, 1))).as_quat()  # w2c rotations
        centres, quat = _ema_filter(c2w[:, :3, 3], quat, alpha)
        c2w = np.tile(np.eye(4), (len(c2w), 1, 1))
        c2w[:, :3, :3] = np.transpose(Rotation.from_quat(quat).as_matrix(), (0, 2, 1))
        c2w[:, :3, 3] = centres
    out: list[list[str]] = []
    for t in range(len(c2w) - 1):
        cmds = spatialvid_step_commands(spatialvid_motion(c2w[t], c2w[t + 1]), translation_thresh, rotation_thresh_deg)
        out.append([STAY] if cmds == [STAY] else [SPATIALVID_TO_CAMERA[c] for c in cmds])
    return out
