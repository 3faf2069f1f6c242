"""Object-motion labels from the dynamic object's mask trajectory (docs/method.md#object-questions).

The paper asks the oracle to judge the trajectory "accounting for both in-plane displacements and
apparent scale variations" while "separating the camera's own motion". We do it geometrically:

1. Per sampled frame, the mask's centroid ``c_t`` and apparent size ``s_t = sqrt(area_t)``.
2. **Camera compensation.** A background homography ``H_t`` (frame t -> t+1, fitted on tracked
   features outside the dynamic mask, RANSAC) models the image motion the camera alone causes
   (exact for rotations, the dominant plane for translations). Chaining them maps every frame
   back into the first active frame: ``c'_t = H_{0..t}^{-1}(c_t)``, and its local area change
   ``J_t = |det dH_{0..t}^{-1}/dx|`` rescales the size: ``s'_t = s_t * sqrt(J_t)``.
3. **3D up to scale** (:func:`reconstruct`): bearing from the compensated centroid, distance
   from the compensated size corrected for off-axis stretching, so each frame gives the object's
   centre ``P_t`` in the first active camera's frame in units of its first distance.
4. **Direction**: ``d = P_end - P_0`` classified by the world's own rule (Stationary / toward-away
   when depth dominates / 8 in-image sectors). **Distance**: ``|P_end| / |P_0| - 1`` in a band.
5. **Speed** profile: per-step ``|P_{t+1} - P_t|``, classified by the world's rule on per-second
   speeds (:func:`speed_label`).

Everything here is a pure function of masks (plus frames for the homographies); nothing reads the
world's truth. Thresholds are parameters with defaults tuned on the synthetic world.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fourdthinker.oracle.rule import valid_dynamic_frames  # noqa: F401  (the oracle's Eq. 2 check; re-exported)


def mask_centroid(mask: np.ndarray) -> tuple[float, float] | None:
    """Centroid (x, y) in pixels of a boolean mask, None when empty. c(M) = mean of (x, y) over M."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return float(xs.mean()), float(ys.mean())


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight box (x1, y1, x2, y2), inclusive pixel coordinates, None when empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def centroid_shift(mask_start: np.ndarray, mask_end: np.ndarray) -> tuple[float, float] | None:
    """Eq. 3 (docs/method.md#eq-3): Δc = c(M^s_{t_e}) - c(M^s_{t_s}), the static landmark's apparent displacement
    (pixels, x right, y down), caused by the camera alone. None if either mask is empty."""
    a, b = mask_centroid(mask_start), mask_centroid(mask_end)
    if a is None or b is None:
        return None
    return b[0] - a[0], b[1] - a[1]


def shift_words(dx: float, dy: float, min_px: float = 3.0) -> str:
    """'left', 'up and to the right', ... for an image displacement (y down); 'nowhere' if tiny."""
    parts = []
    if abs(dy) >= min_px and abs(dy) >= 0.4 * abs(dx):
        parts.append("up" if dy < 0 else "down")
    if abs(dx) >= min_px and abs(dx) >= 0.4 * abs(dy):
        parts.append("left" if dx < 0 else "right")
    if not parts:
        return "barely at all"
    return parts[0] if len(parts) == 1 else f"{parts[0]} and to the {parts[1]}"


# ------------------------------------------------------------------ camera compensation


def background_homographies(frames: list[np.ndarray], exclude: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """H_t mapping pixels of frame t to frame t+1 from tracked background features (dynamic object
    excluded). Identity where the fit fails (too few features)."""
    import cv2

    out = []
    grays = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames]
    for i in range(len(frames) - 1):
        mask = None
        if exclude is not None:
            ex = exclude[i] | exclude[i + 1]
            if ex.any():
                mask = (~cv2.dilate(ex.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)).astype(np.uint8) * 255
        w = grays[i].shape[1]
        pa = cv2.goodFeaturesToTrack(grays[i], maxCorners=400, qualityLevel=0.005, minDistance=max(3, w // 80), mask=mask)
        H = np.eye(3)
        if pa is not None and len(pa) >= 8:
            pb, st, _ = cv2.calcOpticalFlowPyrLK(grays[i], grays[i + 1], pa, None, winSize=(21, 21), maxLevel=4)
            ok = st[:, 0] == 1
            if ok.sum() >= 8:
                Hf, _ = cv2.findHomography(pa[ok], pb[ok], cv2.RANSAC, 2.0)
                if Hf is not None and np.isfinite(Hf).all():
                    H = Hf
        out.append(H)
    return out


def apply_h(H: np.ndarray, x: float, y: float) -> tuple[float, float]:
    p = H @ np.array([x, y, 1.0])
    return float(p[0] / p[2]), float(p[1] / p[2])


def h_area_scale(H: np.ndarray, x: float, y: float) -> float:
    """Local area magnification |det J| of the homography H at (x, y)."""
    p = H @ np.array([x, y, 1.0])
    w = p[2]
    # J = (H[:2,:2] * w - outer(p[:2], H[2,:2])) / w^2
    J = (H[:2, :2] * w - np.outer(p[:2], H[2, :2])) / (w * w)
    return float(abs(np.linalg.det(J)))


@dataclass
class Track:
    """The dynamic object's compensated trajectory over its valid sampled frames."""

    frames: list[int]  # positions in the sampled-frame list
    centroids: list[tuple[float, float]]  # raw, each in its own frame
    sizes: list[float]  # raw sqrt(area)
    comp_centroids: list[tuple[float, float]]  # in the first valid frame's image coordinates
    comp_sizes: list[float]
    camera_shift: tuple[float, float] = (0.0, 0.0)  # where the camera alone carries the start point
    info: dict = field(default_factory=dict)


def compensated_track(masks: list[np.ndarray], valid: list[int], homs: list[np.ndarray] | None) -> Track:
    """Steps 1-2 of the module docstring. ``homs[t]`` maps frame t -> t+1 (None: static camera)."""
    if len(valid) < 2:
        raise ValueError(f"need >= 2 valid frames of the dynamic object, got {len(valid)}")
    t0 = valid[0]
    cum = np.eye(3)  # maps frame t0 -> frame t
    cums = {t0: cum.copy()}
    for t in range(t0, valid[-1]):
        if homs is not None:
            cum = homs[t] @ cum
        cums[t + 1] = cum.copy()
    cents, sizes, cc, cs = [], [], [], []
    for t in valid:
        c = mask_centroid(masks[t])
        if c is None:
            raise ValueError(f"dynamic mask of sampled frame {t} is empty but marked valid")
        s = math.sqrt(float(masks[t].sum()))
        inv = np.linalg.inv(cums[t])
        x, y = apply_h(inv, *c)
        cents.append(c)
        sizes.append(s)
        cc.append((x, y))
        cs.append(s * math.sqrt(max(h_area_scale(inv, *c), 1e-9)))
    c0 = cents[0]
    carried = apply_h(cums[valid[-1]], *c0)
    return Track(list(valid), cents, sizes, cc, cs, camera_shift=(carried[0] - c0[0], carried[1] - c0[1]))


# ------------------------------------------------------------------ labels


def reconstruct(track: Track, K: np.ndarray) -> np.ndarray:
    """Step 3: the object's 3D centre per frame, in the first active camera's frame, in units of
    its first distance D_0 (scale cannot be known from one camera).

    Bearing ``b_t = K^-1 [c'_t, 1]``, off-axis angle ``cos θ_t = 1 / |b_t|``. An object of fixed
    size at distance D seen at angle θ covers an image area ∝ 1 / (D^2 cos^3 θ) (perspective
    stretching away from the centre), so ``q_t = s'_t cos^1.5 θ_t ∝ 1 / D_t`` and
    ``P_t = (q_0 / q_t) b_t / |b_t|``. Returns [T, 3] (x right, y down, z forward)."""
    Ki = np.linalg.inv(np.asarray(K, dtype=np.float64))
    out, q0 = [], None
    for (x, y), s in zip(track.comp_centroids, track.comp_sizes, strict=True):
        b = Ki @ np.array([x, y, 1.0])
        nb = float(np.linalg.norm(b))
        q = s * (1.0 / nb) ** 1.5
        q0 = q if q0 is None else q0
        out.append((q0 / q) * b / nb)
    return np.asarray(out)


def direction_label(track: Track, K: np.ndarray, *, stationary: float = 0.05, depth_ratio: float = 1.5) -> tuple[str, dict]:
    """Direction of ``d = P_end - P_0`` (:func:`reconstruct`, camera frame of the first active
    frame, units of D_0), the rule that defines the world's truth (``world/motion.py``):
    |d| < ``stationary`` -> Stationary; |dz| > ``depth_ratio`` x hypot(dx, dy) -> Toward (dz < 0) /
    Away; else the 45-degree sector of (dx, -dy): Right, Right-Up, Up, ... (y points down)."""
    P = reconstruct(track, K)
    dx, dy, dz = (float(v) for v in P[-1] - P[0])
    (x0, y0), (x1, y1) = track.comp_centroids[0], track.comp_centroids[-1]
    info = {"dx": dx, "dy": dy, "dz": dz, "dx_px": x1 - x0, "dy_px": y1 - y0}
    if math.sqrt(dx * dx + dy * dy + dz * dz) < stationary:
        return "Stationary", info
    if abs(dz) > depth_ratio * math.hypot(dx, dy):
        return ("Moving Toward Camera" if dz < 0 else "Moving Away from Camera"), info
    ang = math.degrees(math.atan2(-dy, dx))
    sectors = {0: "Moving Right", 45: "Moving Right-Up", 90: "Moving Up", 135: "Moving Left-Up", 180: "Moving Left",
               -135: "Moving Left-Down", -90: "Moving Down", -45: "Moving Right-Down"}
    best = min(sectors, key=lambda c: abs((ang - c + 180) % 360 - 180))
    return sectors[best], info


def distance_label(track: Track, K: np.ndarray, *, band: float = 0.2) -> tuple[str, dict]:
    """Relative change of the distance to the (first) camera centre, r = D_end / D_0 - 1
    (:func:`reconstruct`): r < -band -> Toward, r > band -> Away, else the same distance.
    The world defines the classes at -0.15 / 0.15 but samples |r| < 0.04 or > 0.25; the size-based
    estimate of r is off by up to ~0.15 for non-spherical shapes (measured on 60 world clips:
    "same" estimates within +-0.16, toward/away beyond +-0.35), hence the wider band."""
    P = reconstruct(track, K)
    r = float(np.linalg.norm(P[-1]) / np.linalg.norm(P[0]) - 1.0)
    s_ratio = track.sizes[-1] / max(track.sizes[0], 1e-9)
    info = {"r": r, "size_ratio": s_ratio}
    if r < -band:
        return "Moving Toward Camera", info
    if r > band:
        return "Moving Away from Camera", info
    return "Maintaining Roughly the Same Distance", info


def step_speeds(track: Track, K: np.ndarray) -> list[float]:
    """Per-step 3D speed |P_{t+1} - P_t| / (sampled-frame gap), units of D_0 per step (per
    second at 1 FPS), from :func:`reconstruct`."""
    P = reconstruct(track, K)
    return [float(np.linalg.norm(P[i + 1] - P[i])) / max(track.frames[i + 1] - track.frames[i], 1)
            for i in range(len(P) - 1)]


def speed_label(speeds: list[float], *, flat: float = 0.25, step: float = 0.15) -> tuple[str, dict]:
    """Classify a per-second speed profile v_1..v_m (mean mu), the rule the world's truth uses:

    * (max - min) / mu < ``flat``                          -> Maintaining a Constant Speed
    * else the signs of the steps with |v_{k+1} - v_k| >= ``step`` * mu, equal neighbours merged:
      ``+`` Speeding Up, ``-`` Slowing Down, ``+-`` First Speeding Up Then Slowing Down,
      ``-+`` First Slowing Down Then Speeding Up, three or more runs Moving at Varying Speeds
      (no significant step: constant).
    """
    v = np.asarray(speeds, dtype=float)
    if len(v) < 2:
        raise ValueError(f"need >= 2 speed steps to judge a profile, got {len(v)}")
    mu = float(v.mean())
    info = {"speeds": [round(float(x), 5) for x in v], "mean": mu}
    if mu <= 0 or (v.max() - v.min()) / mu < flat:
        return "Maintaining a Constant Speed", info
    signs = [1 if d > 0 else -1 for d in np.diff(v) if abs(d) >= step * mu]
    runs = [x for k, x in enumerate(signs) if k == 0 or x != signs[k - 1]]
    info["runs"] = runs
    names = {(1,): "Speeding Up", (-1,): "Slowing Down", (1, -1): "First Speeding Up Then Slowing Down",
             (-1, 1): "First Slowing Down Then Speeding Up"}
    if len(runs) >= 3:
        return "Moving at Varying Speeds", info
    return names.get(tuple(runs), "Maintaining a Constant Speed"), info


def choose_active(frames: list[int], speeds: list[float], still: list[bool] | None = None, *, rel: float = 0.1,
                  abs_min: float = 0.015, min_frames: int = 4) -> list[int]:
    """The object's active interval inside a run of valid frames (``speeds[i]``: step frames[i] -> frames[i+1]).

    A step is *moving* when its speed >= max(rel x the 75th-percentile speed, abs_min). The interval is the
    longest run of consecutive moving steps taken while the camera holds (``still[i]``; the
    background-homography compensation is exact for rotations but only approximate while the camera
    translates, so a static object seems to move then); if that run has fewer than ``min_frames``
    frames, a run of ``min_frames`` with the camera holding and the object not moving (Stationary);
    else the longest moving run regardless of the camera; if nothing moves, the whole run.
    """
    n = len(speeds)
    if n == 0:
        return list(frames)
    still = still if still is not None else [True] * n
    pool = [v for v, s in zip(speeds, still, strict=True) if s] or list(speeds)
    th = max(rel * float(np.percentile(pool, 75)), abs_min)  # robust to one outlier step (a bad mask)
    moving = [v >= th for v in speeds]

    def longest(ok: list[bool]) -> list[int]:
        best, cur = (0, -1), None
        for i, m in enumerate(ok + [False]):
            if m and cur is None:
                cur = i
            elif not m and cur is not None:
                if i - cur > best[1] - best[0] + 1:
                    best = (cur, i - 1)
                cur = None
        return [] if best[1] < best[0] else list(frames[best[0]: best[1] + 2])

    run = longest([m and s for m, s in zip(moving, still, strict=True)])
    if len(run) >= min_frames:
        return run
    calm = longest([s and not m for m, s in zip(moving, still, strict=True)])
    if len(calm) >= min_frames:  # the camera holds long enough and the object does not move: Stationary
        return calm
    run2 = longest(moving)
    if len(run2) >= min_frames:
        return run2
    if not any(moving):
        return list(frames)
    return run2 if len(run2) > len(run) else run


def longest_run(idx: list[int]) -> list[int]:
    """The longest run of consecutive integers in a sorted list (the object's active interval)."""
    best: list[int] = []
    cur: list[int] = []
    for i in idx:
        if cur and i == cur[-1] + 1:
            cur.append(i)
        else:
            cur = [i]
        if len(cur) > len(best):
            best = list(cur)
    return best
