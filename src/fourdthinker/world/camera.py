"""Camera geometry and the 12 camera motions, with SpatialVID's sign conventions.

Conventions (all exact, all tested):

* World: right-handed, **y up**, ground plane y = 0.
* Camera (OpenCV): x right, y down, z forward. ``c2w`` is 4x4 camera-to-world; its rotation's columns
  are the camera axes in world coordinates, its translation the camera centre.
* Pixels: pixel (u, v) (column, row) covers [u, u+1) x [v, v+1); its centre is (u+0.5, v+0.5).
  A camera-frame point (x, y, z) projects to (fx x / z + cx, fy y / z + cy); the pixel that
  contains it is the floor of that.
* Motions are applied in the camera's **own** frame, at a constant rate within a segment, one at a
  time, so each segment is a pure motion:

  ========================  ===========================================  =====================
  label                     c2w update over an elapsed angle/distance s  SpatialVID name
  ========================  ===========================================  =====================
  Move Forward / Backward   centre += R0 @ (0, 0, +s / -s)               Dolly In / Out
  Move Right / Left         centre += R0 @ (+s / -s, 0, 0)               Truck Right / Left
  Move Up / Down            centre += R0 @ (0, -s / +s, 0)  (y is down)  Pedestal Up / Down
  Pan Left / Right          R = R0 @ Ry(-s / +s)  (view turns left)      Pan Left / Right
  Tilt Up / Down            R = R0 @ Rx(+s / -s)  (view turns up)        Tilt Up / Down
  Roll Clockwise / CCW      R = R0 @ Rz(+s / -s)  (camera turns CW as    Roll CW / CCW
                            seen from behind it; image content turns CCW)
  ========================  ===========================================  =====================

  These are exactly the signs of SpatialVID's ``utils/get_instructions.py``
  (https://github.com/NJU-3DV/SpatialVID): with w2c poses, ``delta_rot = R_{t+1} R_t^-1``,
  ``local = R_t (c_{t+1} - c_t)``, euler ``'yxz'`` -> (yaw, pitch, roll); dz > th -> Dolly In,
  dx > th -> Truck Right, dy > th -> Pedestal Down, yaw > th -> Pan Left, pitch > th -> Tilt Down,
  roll > th -> Roll CCW. ``spatialvid_instructions`` (implemented once, in
  ``fourdthinker.world.spatialvid``, and re-exported here) applies that rule to our poses and the tests
  check it recovers every segment's label.
"""

from __future__ import annotations

import math

import numpy as np

from fourdthinker.world.spatialvid import spatialvid_instructions

__all__ = [
    "MOTIONS", "WORLD_UP", "apply_motion", "intrinsics", "look_rotation", "make_c2w", "project", "rot_axis",
    "spatialvid_instructions",
]

WORLD_UP = np.array([0.0, 1.0, 0.0])

# label -> (kind, axis index, sign) in the camera's own frame; see the module table.
MOTIONS: dict[str, tuple[str, int, float]] = {
    "Move Forward": ("t", 2, +1.0),
    "Move Backward": ("t", 2, -1.0),
    "Move Right": ("t", 0, +1.0),
    "Move Left": ("t", 0, -1.0),
    "Move Up": ("t", 1, -1.0),
    "Move Down": ("t", 1, +1.0),
    "Pan Left": ("r", 1, -1.0),
    "Pan Right": ("r", 1, +1.0),
    "Tilt Up": ("r", 0, +1.0),
    "Tilt Down": ("r", 0, -1.0),
    "Roll Clockwise": ("r", 2, +1.0),
    "Roll Counter-clockwise": ("r", 2, -1.0),
}


def rot_axis(axis: int, angle: float) -> np.ndarray:
    """Right-handed rotation matrix about x (0), y (1) or z (2) by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    if axis == 0:
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)
    if axis == 1:
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)


def look_rotation(forward: np.ndarray) -> np.ndarray:
    """c2w rotation [3, 3] of an upright (no roll) OpenCV camera looking along ``forward`` (world)."""
    f = np.asarray(forward, dtype=np.float64)
    f = f / np.linalg.norm(f)
    right = np.cross(f, WORLD_UP)
    right /= np.linalg.norm(right)
    down = np.cross(f, right)
    return np.stack([right, down, f], axis=1)


def intrinsics(width: int, height: int, fov_deg: float) -> np.ndarray:
    """Pinhole K [3, 3]: square pixels, ``fx = fy = (W/2) / tan(fov/2)``, principal point at the image centre."""
    f = (width / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def apply_motion(R0: np.ndarray, c0: np.ndarray, label: str, amount: float) -> tuple[np.ndarray, np.ndarray]:
    """Pose after performing ``label`` by ``amount`` (metres or radians, >= 0) from (R0, c0)."""
    kind, axis, sign = MOTIONS[label]
    if kind == "t":
        d = np.zeros(3)
        d[axis] = sign * amount
        return R0.copy(), c0 + R0 @ d
    return R0 @ rot_axis(axis, sign * amount), c0.copy()


def make_c2w(R: np.ndarray, c: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, c
    return T


def project(points_w: np.ndarray, c2w: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project world points [M, 3] with one pose -> (uv [M, 2] continuous pixel coords, depth z [M])."""
    R, c = c2w[:3, :3], c2w[:3, 3]
    pc = (np.asarray(points_w, dtype=np.float64) - c) @ R  # [M, 3] = R^T (p - c)
    z = pc[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K[0, 0] * pc[:, 0] / z + K[0, 2]
        v = K[1, 1] * pc[:, 1] / z + K[1, 2]
    return np.stack([u, v], axis=1), z
