"""Camera-motion labels (docs/method.md#camera-questions): from poses or from the frames alone.

Two label sources, one output shape (a list of :class:`CameraSegment`):

* ``poses``  SpatialVID's rule (``utils/get_instructions.py``, docs/benchmarks.md#spatialvid) on the relative
  pose of consecutive frames: translation along the camera axes -> Dolly/Truck/Pedestal,
  rotation -> Pan/Tilt/Roll, each over a threshold. We keep the rule's thresholding but express
  it in explicit camera-frame quantities (OpenCV camera: x right, y down, z forward) instead of
  its Euler-angle code, so the signs are checkable by hand:

  - ``t = R_a^T (p_b - p_a)``  camera displacement in camera-a coordinates;
  - ``f = R_a^T R_b e_z``       the new viewing direction; yaw = atan2(f_x, f_z) (> 0: view turns
    right = Pan Right), pitch = atan2(-f_y, |f_xz|) (> 0: view turns up = Tilt Up);
  - ``r = R_a^T R_b e_x``       the new right axis; roll = atan2(r_y, r_x) (> 0: the camera turns
    clockwise as seen from behind it, so image content turns counter-clockwise = Roll Clockwise).

* ``frames`` relative motion estimated from the pixels (no poses): Shi-Tomasi corners tracked with
  pyramidal Lucas-Kanade, essential matrix + ``recoverPose`` for the rotation; the flow that is
  left after de-rotating (``K R K^-1``) is parallax, and its focus of expansion / mean direction
  gives the translation. A rotation explains a whole-image flow without parallax, which is how a
  pan is told from a truck (one landmark's centroid shift, Eq. 3, cannot: it serves the reasoning
  and a consistency check only).

Per-step labels are merged into runs of one motion; runs shorter than ``min_len`` steps are
absorbed by their neighbours. The world's truth (``world/truth.py``) has one motion per segment;
SpatialVID allows several at once, for which :func:`spatialvid_step_commands` returns them all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fourdthinker.labels import SPATIALVID_TO_CAMERA

# SpatialVID's rule lives in the world layer (its truth check uses it too); re-exported for callers.
from fourdthinker.world.spatialvid import (  # noqa: F401
    _COMPONENT_LABELS,
    CAMERA_TO_SPATIALVID,
    STAY,
    spatialvid_instructions,
    spatialvid_motion,
    spatialvid_step_commands,
)


@dataclass(frozen=True)
class CameraSegment:
    """One contiguous stretch of one camera motion, in video-frame indices (end exclusive)."""

    start_frame: int
    end_frame: int
    label: str

    def to_dict(self) -> dict:
        return {"start_frame": self.start_frame, "end_frame": self.end_frame, "label": self.label}


def relative_motion(c2w_a: np.ndarray, c2w_b: np.ndarray) -> dict[str, float]:
    """Relative camera motion a -> b in camera-a coordinates (OpenCV axes).

    ``t = R_a^T (p_b - p_a)``; yaw/pitch from ``f = R_a^T R_b e_z``; roll from ``r = R_a^T R_b e_x``
    (module docstring). Returns ``{tx, ty, tz, yaw, pitch, roll}`` with angles in degrees.
    """
    ra, rb = np.asarray(c2w_a)[:3, :3], np.asarray(c2w_b)[:3, :3]
    t = ra.T @ (np.asarray(c2w_b)[:3, 3] - np.asarray(c2w_a)[:3, 3])  # [3]
    rel = ra.T @ rb  # [3, 3]
    return rotation_angles(rel) | {"tx": float(t[0]), "ty": float(t[1]), "tz": float(t[2])}


def rotation_angles(rel: np.ndarray) -> dict[str, float]:
    """Yaw, pitch, roll (degrees) of a relative rotation ``rel`` (columns = new axes in old frame)."""
    f, r = rel[:, 2], rel[:, 0]
    yaw = math.degrees(math.atan2(f[0], f[2]))
    pitch = math.degrees(math.atan2(-f[1], math.hypot(f[0], f[2])))
    roll = math.degrees(math.atan2(r[1], r[0]))
    return {"yaw": yaw, "pitch": pitch, "roll": roll}


def dominant_motion(motion: dict[str, float], trans_th: float, rot_th_deg: float) -> str:
    """The one paper label whose component exceeds its threshold by the largest factor, or Stay.

    score(c) = |c| / threshold(c); the label of argmax if its score > 1.
    """
    best, best_score = STAY, 1.0
    for comp in ("tx", "ty", "tz", "yaw", "pitch", "roll"):
        th = trans_th if comp.startswith("t") else rot_th_deg
        score = abs(motion[comp]) / max(th, 1e-12)
        if score > best_score:
            best, best_score = _COMPONENT_LABELS[(comp, 1 if motion[comp] > 0 else -1)], score
    return best


def adaptive_translation_threshold(c2w: np.ndarray, factor: float = 0.25, floor: float = 1e-3) -> float:
    """SpatialVID-enhanced-style adaptive threshold: a fraction of the clip's mean step length.

    MegaSaM poses have no metric scale, so an absolute threshold is meaningless; SpatialVID uses
    ``max(mean_step / 1.1, 0.01)``. We take ``max(factor * max_step, floor)`` so that a clip that
    pans for most of its length still labels its truck segment.
    """
    p = np.asarray(c2w)[:, :3, 3]
    steps = np.linalg.norm(np.diff(p, axis=0), axis=1) if len(p) > 1 else np.zeros(1)
    return max(factor * float(steps.max(initial=0.0)), floor)


def merge_runs(step_labels: list[str], min_len: int = 2) -> list[CameraSegment]:
    """Contiguous runs of equal step labels -> segments over frames; short runs are absorbed.

    Step i is the motion from frame i to frame i+1, so a run of steps [a, b) covers frames
    a..b, i.e. ``CameraSegment(a, b + 1)``. Runs shorter than ``min_len`` join the longer
    neighbour (repeated until none is left), then equal neighbours merge.
    """
    runs: list[list] = []  # [label, start_step, end_step)
    for i, lab in enumerate(step_labels):
        if runs and runs[-1][0] == lab:
            runs[-1][2] = i + 1
        else:
            runs.append([lab, i, i + 1])
    changed = True
    while changed and len(runs) > 1:
        changed = False
        for j, (_lab, s, e) in enumerate(runs):
            if e - s >= min_len:
                continue
            left = runs[j - 1] if j > 0 else None
            right = runs[j + 1] if j + 1 < len(runs) else None
            tgt = max((r for r in (left, right) if r is not None), key=lambda r: r[2] - r[1])
            tgt[1], tgt[2] = min(tgt[1], s), max(tgt[2], e)
            del runs[j]
            changed = True
            break
        merged: list[list] = []
        for r in runs:
            if merged and merged[-1][0] == r[0]:
                merged[-1][2] = r[2]
            else:
                merged.append(r)
        runs = merged
    return [CameraSegment(s, e + 1, lab) for lab, s, e in runs]


def segments_from_poses(
    c2w: np.ndarray, *, step: int = 1, rot_th_deg: float = 0.25, trans_th: float | None = None, min_len: int = 2
) -> list[CameraSegment]:
    """Camera segments from per-frame camera-to-world poses [N, 4, 4] (SpatialVID rule, one label
    per step = the dominant component). ``step`` subsamples the poses (SpatialVID's ``interval``);
    returned frame indices are in the original numbering. ``Stay`` segments are included."""
    c2w = np.asarray(c2w, dtype=np.float64)
    if c2w.ndim != 3 or c2w.shape[1:] != (4, 4):
        raise ValueError(f"poses must be [N,4,4] camera-to-world, got {c2w.shape}")
    if len(c2w) < 2:
        return []
    idx = list(range(0, len(c2w), step))
    if idx[-1] != len(c2w) - 1:
        idx.append(len(c2w) - 1)
    sub = c2w[idx]
    th = trans_th if trans_th is not None else adaptive_translation_threshold(sub)
    labels = [dominant_motion(relative_motion(sub[i], sub[i + 1]), th, rot_th_deg) for i in range(len(sub) - 1)]
    segs = merge_runs(labels, min_len=min_len)
    return [CameraSegment(idx[s.start_frame], idx[s.end_frame - 1] + 1, s.label) for s in segs]


# ---------------------------------------------------------------- frames-only estimation (OpenCV)


def default_intrinsics(width: int, height: int, fov_deg: float = 60.0) -> np.ndarray:
    """Pinhole K for a raw video with unknown calibration: horizontal FOV ``fov_deg``, centred."""
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=np.float64)


def estimate_step_motion(
    img_a: np.ndarray, img_b: np.ndarray, K: np.ndarray, *, exclude: np.ndarray | None = None
) -> dict[str, float] | None:
    """Relative camera motion between two RGB frames, from the pixels alone.

    Tracks Shi-Tomasi corners a -> b (pyramidal LK, forward-backward checked; ``exclude`` masks
    out moving objects) and returns

    * ``flow``: median feature displacement (px);
    * ``yaw, pitch, roll``: the best pure rotation (Kabsch on bearing vectors; same conventions as
      :func:`relative_motion`);
    * ``rot_ratio``: median residual of that rotation / ``flow``. A rotation moves every pixel
      consistently whatever its depth (ratio ~ 0); a translation moves near points faster than
      far ones (parallax), which no rotation explains (ratio >> 0). This is what tells a pan
      from a truck;
    * ``parallax``: that residual in px (a translation leaves >= ~1 px at 2 FPS in the world, a
      rotation <= 0.6 px);
    * ``tx, ty, tz``: unit translation direction from a shift + divergence fit of the raw flow
      (:func:`_translation_direction`); meaningful when the step is a translation. A step that
      mixes rotation and translation gets the dominant one only (the labels are single motions).

    ``None`` when fewer than 12 features track.
    """
    import cv2

    ga = cv2.cvtColor(np.ascontiguousarray(img_a), cv2.COLOR_RGB2GRAY)
    gb = cv2.cvtColor(np.ascontiguousarray(img_b), cv2.COLOR_RGB2GRAY)
    h, w = ga.shape
    mask = None
    if exclude is not None and exclude.any():
        mask = (~cv2.dilate(exclude.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)).astype(np.uint8) * 255
    pa = cv2.goodFeaturesToTrack(ga, maxCorners=500, qualityLevel=0.003, minDistance=max(3, w // 80), mask=mask)
    if pa is None or len(pa) < 12:
        return None
    pb, st, _ = cv2.calcOpticalFlowPyrLK(ga, gb, pa, None, winSize=(21, 21), maxLevel=4)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(gb, ga, pb, None, winSize=(21, 21), maxLevel=4)
    ok = (st[:, 0] == 1) & (st2[:, 0] == 1) & (np.linalg.norm((back - pa)[:, 0], axis=1) < 0.7)
    a, b = pa[ok, 0].astype(np.float64), pb[ok, 0].astype(np.float64)  # [M, 2]
    if len(a) < 12:
        return None
    flow = float(np.median(np.linalg.norm(b - a, axis=1)))
    R = _rotation_only_fit(a, b, K)
    res = float(np.median(np.linalg.norm(b - _rotate_points(a, K, R), axis=1)))
    out = rotation_angles(R) | {"flow": flow, "rot_ratio": res / max(flow, 1e-9), "parallax": res}
    # Translation direction from the raw flow (shift + divergence fit). The essential matrix was
    # tried first and was worse here: with small baselines over a dominant ground plane it confuses
    # vertical translation with tilt (measured on the world: Move Down read as Up).
    tdir = _translation_direction(a, b, K)
    out["tx"], out["ty"], out["tz"] = tdir
    return out


def _rotate_points(a: np.ndarray, K: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Where pixels ``a`` land when the camera only rotates by R (camera's own rotation):
    x_b ~ K R^T K^-1 x_a."""
    H = K @ R.T @ np.linalg.inv(K)
    ah = np.c_[a, np.ones(len(a))] @ H.T
    return ah[:, :2] / ah[:, 2:3]


def _residual(a: np.ndarray, b: np.ndarray, K: np.ndarray, R: np.ndarray) -> float:
    return float(np.median(np.linalg.norm(b - _rotate_points(a, K, R), axis=1)))


def _rotation_only_fit(a: np.ndarray, b: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Least-squares pure rotation (Kabsch on bearing vectors) mapping a -> b; camera rotation R
    with bearings_b ~ R^T bearings_a."""
    Ki = np.linalg.inv(K)
    va = np.c_[a, np.ones(len(a))] @ Ki.T
    vb = np.c_[b, np.ones(len(b))] @ Ki.T
    va /= np.linalg.norm(va, axis=1, keepdims=True)
    vb /= np.linalg.norm(vb, axis=1, keepdims=True)
    # find Q minimising |vb - Q va|, Q = R^T
    u, _, vt = np.linalg.svd(vb.T @ va)
    d = np.sign(np.linalg.det(u @ vt))
    Q = u @ np.diag([1, 1, d]) @ vt
    return Q.T


def _translation_direction(a: np.ndarray, b: np.ndarray, K: np.ndarray) -> tuple[float, float, float]:
    """Camera translation direction from a purely translational flow a -> b.

    For a camera moving by T (camera frame), a static point's image moves away from the focus of
    expansion K T. Lateral motion: mean flow opposite to T_xy; forward motion: radial outward flow.
    We fit flow ~ -s*(T_x, T_y) * f + d * (x - c) per point (a translation + divergence model) and
    return the normalised (T_x, T_y, T_z) with T_z from the divergence term.
    """
    f = K[0, 0]
    c = np.array([K[0, 2], K[1, 2]])
    flow = b - a  # [M, 2]
    rel = (a - c) / f  # normalised image coords
    # Model: flow/f = -u + w * rel, with u=(Tx,Ty)/Z and w=Tz/Z (average inverse depth). Least squares.
    A = np.zeros((2 * len(a), 3))
    A[0::2, 0] = -1
    A[1::2, 1] = -1
    A[0::2, 2] = rel[:, 0]
    A[1::2, 2] = rel[:, 1]
    y = (flow / f).reshape(-1)
    sol, *_ = np.linalg.lstsq(A, y, rcond=None)
    # Divergence of a translation flow is weaker than its shift at the same speed (it scales with the
    # distance from the centre); weigh it by the mean radius so both compete fairly.
    radius = float(np.mean(np.linalg.norm(rel, axis=1))) or 1.0
    v = np.array([sol[0], sol[1], sol[2] * radius])
    n = np.linalg.norm(v)
    return tuple(float(x) for x in (v / n if n > 0 else v))  # type: ignore[return-value]


def classify_frame_motion(m: dict[str, float] | None, *, rot_th_deg: float = 1.0, min_flow: float = 0.4,
                          ratio_th: float = 0.25, parallax_px: float = 0.8) -> str:
    """One label from :func:`estimate_step_motion`: Stay when the image barely moves (median flow
    < ``min_flow`` px); a translation when no rotation explains the flow (residual >=
    ``parallax_px`` px and >= ``ratio_th`` of the flow) along the dominant axis of
    ``(tx, ty, tz)``; else a rotation (largest of yaw/pitch/roll, Stay under ``rot_th_deg``).
    Defaults are per step at 2 FPS on 192x144 frames (measured on the world)."""
    if m is None or m["flow"] < min_flow:
        return STAY
    if not (m["parallax"] >= parallax_px and m["rot_ratio"] >= ratio_th):
        comp = max(("yaw", "pitch", "roll"), key=lambda c: abs(m[c]))
        if abs(m[comp]) < rot_th_deg:
            return STAY
        return _COMPONENT_LABELS[(comp, 1 if m[comp] > 0 else -1)]
    comp = max(("tx", "ty", "tz"), key=lambda c: abs(m[c]))
    return _COMPONENT_LABELS[(comp, 1 if m[comp] > 0 else -1)]


def segments_from_frames(
    frames: list[np.ndarray], frame_indices: list[int], K: np.ndarray, *, exclude: list[np.ndarray] | None = None,
    min_len: int = 2, **classify_kw: float,
) -> list[CameraSegment]:
    """Camera segments from a list of frames (no poses). ``frame_indices`` are the video-frame
    numbers of ``frames``; segment bounds are returned in that numbering."""
    if len(frames) != len(frame_indices):
        raise ValueError(f"{len(frames)} frames but {len(frame_indices)} frame indices")
    labels = []
    for i in range(len(frames) - 1):
        ex = None
        if exclude is not None:
            ex = exclude[i] | exclude[i + 1]
        labels.append(classify_frame_motion(estimate_step_motion(frames[i], frames[i + 1], K, exclude=ex), **classify_kw))
    segs = merge_runs(labels, min_len=min_len)
    return [CameraSegment(frame_indices[s.start_frame], frame_indices[s.end_frame - 1] + 1, s.label) for s in segs]


# ---------------------------------------------------------------- SpatialVID annotations


def spatialvid_w2c_to_c2w(poses: np.ndarray) -> np.ndarray:
    """SpatialVID ``poses.npy`` rows ``[tx, ty, tz, qx, qy, qz, qw]`` (world-to-camera, scipy xyzw
    quaternion order; docs/benchmarks.md#spatialvid) -> camera-to-world [N, 4, 4]."""
    from scipy.spatial.transform import Rotation

    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] != 7:
        raise ValueError(f"SpatialVID poses must be N x 7 [tx,ty,tz,qx,qy,qz,qw], got {poses.shape}")
    R_w2c = Rotation.from_quat(poses[:, 3:7]).as_matrix()  # [N, 3, 3]
    out = np.tile(np.eye(4), (len(poses), 1, 1))
    out[:, :3, :3] = np.transpose(R_w2c, (0, 2, 1))
    out[:, :3, 3] = -np.einsum("nji,nj->ni", R_w2c, poses[:, :3])  # -R^T t
    return out


def parse_spatialvid_instructions(instr: dict[str, list[str]]) -> list[CameraSegment]:
    """SpatialVID ``instructions.json`` ``{"0->12": ["Dolly In"], ...}`` -> single-motion segments
    in the paper's names. Steps with several motions or "Stay" are skipped (our questions have
    one motion per segment). Indices stay in SpatialVID's step units."""
    segs = []
    for key, cmds in instr.items():
        try:
            a, b = (int(x) for x in key.split("->"))
        except ValueError:
            raise ValueError(f"instructions.json: bad segment key {key!r}, want 'start->end'") from None
        names = [c for c in cmds if c != STAY]
        if len(names) != 1:
            continue
        if names[0] not in SPATIALVID_TO_CAMERA:
            raise ValueError(f"instructions.json: unknown motion {names[0]!r} in segment {key}")
        segs.append(CameraSegment(a, b, SPATIALVID_TO_CAMERA[names[0]]))
    return sorted(segs, key=lambda s: s.start_frame)
