"""Video interventions: does a model use the motion in its video? (``--frames`` on eval / probe)

Each intervention changes only the frames a model is shown (their count and size stay, the
question, options and decoding do not change):

* ``normal``    the sampled frames as they are;
* ``first``     the first frame repeated: the scene without its motion;
* ``reversed``  the frames in reverse order: every motion runs backwards, so a model that reads
  motion should flip its answers to the opposite label (Moving Left <-> Moving Right, Pan Left
  <-> Pan Right; ``labels.OPPOSITE``);
* ``shuffled``  the frames in a random order (seeded per item; never the identity when there are
  two or more distinct positions): appearance kept, temporal order destroyed;
* ``blank``     black frames: nothing to see.

:func:`opposite_label` names, for a direction/camera label, the answer a model that follows the
motion should give under ``reversed`` (``eval.probe`` reports the share of answers that flip to it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np

FrameIntervention = Literal["normal", "first", "reversed", "shuffled", "blank"]
FRAME_INTERVENTIONS: tuple[str, ...] = get_args(FrameIntervention)

__all__ = ["FRAME_INTERVENTIONS", "FrameIntervention", "check_frames", "intervene_frames", "opposite_label"]

def check_frames(kind: str) -> str:
    """Return ``kind`` if it is a known frame intervention, else raise a one-line ValueError."""
    if kind not in FRAME_INTERVENTIONS:
        raise ValueError(f"unknown frame intervention {kind!r}; choose one of {', '.join(FRAME_INTERVENTIONS)}")
    return kind


def _seed(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")


def intervene_frames(frames: Sequence[np.ndarray], kind: str, *, key: str = "") -> list[np.ndarray]:
    """The frames shown under ``kind`` (module docstring); ``key`` (the item id) seeds ``shuffled``.

    >>> f = [np.full((1, 1, 3), i, np.uint8) for i in range(3)]
    >>> [int(x[0, 0, 0]) for x in intervene_frames(f, "reversed")]
    [2, 1, 0]
    >>> [int(x[0, 0, 0]) for x in intervene_frames(f, "first")]
    [0, 0, 0]
    """
    check_frames(kind)
    frames = list(frames)
    n = len(frames)
    if kind == "normal" or n == 0:
        return frames
    if kind == "first":
        return [frames[0].copy() for _ in range(n)]
    if kind == "reversed":
        return frames[::-1]
    if kind == "blank":
        return [np.zeros_like(f) for f in frames]
    order = np.random.default_rng(_seed(key)).permutation(n)
    if n > 1 and (order == np.arange(n)).all():
        order = np.roll(order, 1)  # a shuffle that leaves the order intact would test nothing
    return [frames[i] for i in order]


def opposite_label(label: str) -> str | None:
    """The answer a motion-reading model should give when the video runs backwards: the label's
    opposite (``labels.OPPOSITE``: Moving Left <-> Moving Right, Pan Left <-> Pan Right, Speeding
    Up <-> Slowing Down, ...), or None for labels that time reversal leaves alone (Stationary,
    Maintaining a Constant Speed, ...).

    >>> opposite_label("Moving Left"), opposite_label("Pan Right"), opposite_label("Stationary")
    ('Moving Right', 'Pan Left', None)
    """
    from fourdthinker.labels import OPPOSITE

    return OPPOSITE.get(label.strip())
