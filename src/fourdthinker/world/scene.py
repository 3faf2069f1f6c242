"""Scene sampling: which labels a clip gets (balanced over the world), its objects, its camera plan.

Randomness: everything of clip ``i`` comes from ``numpy.random.default_rng([seed, i, attempt])``
(the label plan from ``[seed]`` only), so a clip is the same whatever the worker count or order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fourdthinker.labels import CAMERA_MOTIONS, DIRECTIONS, SPEEDS

PALETTE: dict[str, tuple[int, int, int]] = {
    "yellow": (240, 205, 40),
    "orange": (245, 135, 25),
    "cyan": (40, 200, 215),
    "pink": (245, 120, 190),
    "purple": (145, 70, 205),
    "white": (238, 238, 238),
    "blue": (45, 85, 225),
    "green": (35, 160, 65),
    "brown": (135, 85, 45),
    "red": (215, 35, 35),
    "black": (35, 35, 40),
    "gray": (130, 130, 135),
}
DYNAMIC_COLORS = ("yellow", "cyan", "pink", "purple", "white")  # no orange: the red overlay must show
STATIC_COLORS = ("blue", "green", "purple", "brown", "white", "cyan")
DYNAMIC_SHAPES = {"sphere": "ball", "box": "cube", "cylinder": "drum"}
STATIC_SHAPES = {"box": "crate", "cylinder": "pillar"}

GROUNDS = (  # (a, b, sky_top, sky_horizon, hill)
    ((96, 140, 70), (80, 122, 58), (70, 120, 205), (185, 210, 235), (85, 110, 95)),  # grass
    ((200, 180, 135), (180, 160, 115), (90, 140, 215), (215, 220, 230), (150, 125, 95)),  # sand
    ((150, 150, 150), (120, 120, 125), (100, 130, 190), (200, 205, 215), (105, 110, 120)),  # stone
    ((150, 110, 80), (125, 90, 62), (80, 120, 200), (220, 200, 180), (120, 90, 80)),  # clay
)

# Rates per camera-motion kind (per second): translations in metres, rotations in degrees.
TRANSLATION_TOTAL_M = (0.9, 1.3)  # per segment (2-3 s): 0.3-0.65 m/s, >= 0.075 m per SpatialVID step
PAN_TILT_RATE_DEG = (4.0, 5.0)
ROLL_RATE_DEG = (8.0, 12.0)
DRIFT_RATE_DEG = 0.6  # camera drift during the object window: below SpatialVID's 0.5 deg/step


@dataclass(frozen=True)
class LabelPlan:
    camera: tuple[str, ...]  # one label per segment, in time order
    direction: str
    speed: str


def label_plan(seed: int, index: int, n_segments: int) -> LabelPlan:
    """Balanced labels for clip ``index``: consecutive clips cycle through every class.

    Camera: segment j of clip i gets ``CAMERA_MOTIONS[(7 i + 5 j + o) % 12]`` (7 is coprime with 12,
    so first segments cycle through all 12; +5 keeps neighbours different). Direction cycles with
    period 11; speed cycles with period 6 over the *moving* clips only (a Stationary object has no
    speed profile), so every speed class gets ~1/6 of them; the speed index advances 11 per
    11-clip cycle (coprime with 6), so every (direction, speed) pair occurs within 66 clips. ``o``: offsets drawn from the seed.
    """
    o = np.random.default_rng([seed, 7919]).integers(0, 1000, size=3)
    cam = tuple(CAMERA_MOTIONS[(7 * index + 5 * j + int(o[0])) % 12] for j in range(n_segments))
    stationary = DIRECTIONS.index("Stationary")
    direction = DIRECTIONS[(index + int(o[1])) % 11]
    full = index // 11  # moving clips before this one: 10 per full 11-clip cycle + the rest
    moving_before = 10 * full + sum((j + int(o[1])) % 11 != stationary for j in range(11 * full, index))
    speed = SPEEDS[(moving_before + full + int(o[2])) % 6]  # + full: 11 per cycle, coprime with 6
    return LabelPlan(cam, direction, speed)
