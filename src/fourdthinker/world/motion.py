"""Object-motion truth: the label rules (pure functions) and the speed profiles that realise them.

The rules below *define* the labels in ``truth.json``; the generator samples motions well inside
each class (margins noted) and then re-checks every clip with these same functions.

Direction (``direction_label``), from the displacement ``d = (dx, dy, dz)`` of the object's centre
over its active interval, expressed in the camera frame of the interval's **first** frame (OpenCV
axes; the camera's own motion is thus removed):

1. ``|d| < 0.05`` m -> Stationary (sampled: exactly 0, or >= 1.1 m).
2. ``|dz| > 1.5 * hypot(dx, dy)`` -> Toward Camera (dz < 0) / Away from Camera (dz > 0)
   (sampled: ratio >= 6.7 for toward/away, <= 0.1 for in-plane motions).
3. else the 8-way in-image direction of ``(dx, -dy)``: 45-degree sectors centred on Right (0 deg),
   Right-Up (45), Up (90), Left-Up (135), Left (180), Left-Down (-135), Down (-90), Right-Down (-45)
   (sampled within +-12 deg of a sector centre, i.e. >= 10.5 deg from a boundary).

Distance (``distance_label``): relative change ``r = (|p_end - c| - |p_start - c|) / |p_start - c|``
of the object's distance to the camera centre ``c`` of the interval's first frame: r < -0.15
Toward, r > 0.15 Away, |r| < 0.05 Maintaining (sampled: |r| < 0.04 or |r| > 0.25); the band
0.05..0.15 is undefined (``ValueError``) and never sampled.

Speed (``speed_label``), from the object's mean world speed in each whole second of the interval
``v_1..v_m`` (what 1-FPS sampling sees), mean ``mu``: (max - min) / mu < 0.25 -> Maintaining a
Constant Speed (sampled <= 0.08); else the signs of the steps with ``|v_{k+1} - v_k| >= 0.15 mu``
(sampled >= 0.2 mu), runs merged: ``+`` Speeding Up, ``-`` Slowing Down, ``+-`` First Speeding Up
Then Slowing Down, ``-+`` First Slowing Down Then Speeding Up, three or more runs Moving at Varying
Speeds. A Stationary object's speed is reported as Maintaining a Constant Speed with
``speed_defined = False`` (questions about its speed should not be asked).
"""

from __future__ import annotations

import math

import numpy as np

SECTORS = {
    0: "Moving Right", 45: "Moving Right-Up", 90: "Moving Up", 135: "Moving Left-Up",
    180: "Moving Left", -135: "Moving Left-Down", -90: "Moving Down", -45: "Moving Right-Down",
}
SECTOR_OF = {v: k for k, v in SECTORS.items()}


def direction_label(d_cam: np.ndarray) -> str:
    """Direction class of a camera-frame displacement (module docstring, rules 1-3)."""
    dx, dy, dz = (float(x) for x in d_cam)
    if math.sqrt(dx * dx + dy * dy + dz * dz) < 0.05:
        return "Stationary"
    lateral = math.hypot(dx, dy)
    if abs(dz) > 1.5 * lateral:
        return "Moving Toward Camera" if dz < 0 else "Moving Away from Camera"
    ang = math.degrees(math.atan2(-dy, dx))
    best = min(SECTORS, key=lambda c: abs((ang - c + 180) % 360 - 180))
    return SECTORS[best]


def distance_change(p_start: np.ndarray, p_end: np.ndarray, cam_centre: np.ndarray) -> float:
    """``r = (|p_end - c| - |p_start - c|) / |p_start - c|``."""
    d0 = float(np.linalg.norm(np.asarray(p_start) - cam_centre))
    d1 = float(np.linalg.norm(np.asarray(p_end) - cam_centre))
    return (d1 - d0) / d0


def distance_label(r: float) -> str:
    """Distance class of a relative change ``r`` (module docstring)."""
    if r < -0.15:
        return "Moving Toward Camera"
    if r > 0.15:
        return "Moving Away from Camera"
    if abs(r) < 0.05:
        return "Maintaining Roughly the Same Distance"
    raise ValueError(f"distance change {r:+.3f} is in the undefined band 0.05..0.15")


def speed_label(speeds: np.ndarray) -> str:
    """Speed-profile class of per-second speeds ``v_1..v_m`` (module docstring)."""
    v = np.asarray(speeds, dtype=np.float64)
    if v.size < 2:
        raise ValueError(f"speed_label needs >= 2 per-second speeds, got {v.size}")
    mu = float(v.mean())
    if mu <= 0 or (v.max() - v.min()) / mu < 0.25:
        return "Maintaining a Constant Speed"
    steps = np.diff(v)
    signs = [1 if s > 0 else -1 for s in steps if abs(s) >= 0.15 * mu]
    runs = [s for i, s in enumerate(signs) if i == 0 or s != signs[i - 1]]
    if runs == [1]:
        return "Speeding Up"
    if runs == [-1]:
        return "Slowing Down"
    if runs == [1, -1]:
        return "First Speeding Up Then Slowing Down"
    if runs == [-1, 1]:
        return "First Slowing Down Then Speeding Up"
    if len(runs) >= 3:
        return "Moving at Varying Speeds"
    return "Maintaining a Constant Speed"


def speed_knots(label: str, m: int, rng: np.random.Generator) -> np.ndarray:
    """Relative per-second speeds [m] (mean ~1) whose ``speed_label`` is ``label``, with margins."""
    k = np.arange(m, dtype=np.float64)
    if label == "Maintaining a Constant Speed":
        v = 1.0 + rng.uniform(-0.03, 0.03, m)
    elif label in ("Speeding Up", "Slowing Down"):
        v = np.linspace(0.35, 1.65, m) + rng.uniform(-0.02, 0.02, m)
        if label == "Slowing Down":
            v = v[::-1]
    elif label in ("First Speeding Up Then Slowing Down", "First Slowing Down Then Speeding Up"):
        p = int(rng.integers(1, m - 1))  # peak (or trough) strictly inside
        tri = 1.0 - np.abs(k - p) / max(p, m - 1 - p)
        v = 0.45 + 1.1 * tri if label.startswith("First Speeding") else 1.65 - 1.1 * tri
        v = v + rng.uniform(-0.02, 0.02, m)
    elif label == "Moving at Varying Speeds":
        lo, hi = rng.uniform(0.4, 0.55), rng.uniform(1.35, 1.6)
        start_hi = bool(rng.integers(0, 2))
        v = np.where((k % 2 == 0) == start_hi, hi, lo) + rng.uniform(-0.03, 0.03, m)
    else:
        raise ValueError(f"unknown speed label {label!r}")
    return v / v.mean()


def progress_curve(knots: np.ndarray, times_s: np.ndarray) -> np.ndarray:
    """Fraction of the path covered at ``times_s`` (seconds from the interval start, 0..m) for
    per-second speeds ``knots``: a monotone cubic (PCHIP) through the cumulative sums, so the
    displacement over each whole second is exactly ``knots[k] / sum(knots)``."""
    from scipy.interpolate import PchipInterpolator

    cum = np.concatenate([[0.0], np.cumsum(knots)])
    f = PchipInterpolator(np.arange(len(cum), dtype=np.float64), cum / cum[-1])
    return np.clip(f(np.clip(times_s, 0, len(knots))), 0.0, 1.0)
