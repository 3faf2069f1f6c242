"""The label vocabularies of the paper (paper Tab. 6, docs/method.md#object-questions), shared by every stage.

32 labels in all: 12 camera motions (SpatialVID's types in the paper's names), 11 object
directions, 3 distance changes and 6 speed profiles. The synthetic world produces them as truth,
the data pipeline derives them, the MCQ builder draws distractors from them, and evaluation
reports on them, so they live in exactly one place.
"""

from __future__ import annotations

CAMERA_MOTIONS: tuple[str, ...] = (
    "Move Forward",
    "Move Backward",
    "Move Left",
    "Move Right",
    "Move Up",
    "Move Down",
    "Pan Left",
    "Pan Right",
    "Tilt Up",
    "Tilt Down",
    "Roll Clockwise",
    "Roll Counter-clockwise",
)

DIRECTIONS: tuple[str, ...] = (
    "Moving Left",
    "Moving Right",
    "Moving Up",
    "Moving Down",
    "Moving Left-Up",
    "Moving Left-Down",
    "Moving Right-Up",
    "Moving Right-Down",
    "Moving Toward Camera",
    "Moving Away from Camera",
    "Stationary",
)

DISTANCES: tuple[str, ...] = (
    "Moving Toward Camera",
    "Moving Away from Camera",
    "Maintaining Roughly the Same Distance",
)

SPEEDS: tuple[str, ...] = (
    "Speeding Up",
    "Slowing Down",
    "Maintaining a Constant Speed",
    "First Speeding Up Then Slowing Down",
    "First Slowing Down Then Speeding Up",
    "Moving at Varying Speeds",
)

# SpatialVID's motion-instruction vocabulary (utils/get_instructions.py) -> the paper's names.
SPATIALVID_TO_CAMERA: dict[str, str] = {
    "Dolly In": "Move Forward",
    "Dolly Out": "Move Backward",
    "Truck Left": "Move Left",
    "Truck Right": "Move Right",
    "Pedestal Up": "Move Up",
    "Pedestal Down": "Move Down",
    "Pan Left": "Pan Left",
    "Pan Right": "Pan Right",
    "Tilt Up": "Tilt Up",
    "Tilt Down": "Tilt Down",
    "Roll CW": "Roll Clockwise",
    "Roll CCW": "Roll Counter-clockwise",
    "Roll Clockwise": "Roll Clockwise",
    "Roll Counter-Clockwise": "Roll Counter-clockwise",
    "Roll Counter-clockwise": "Roll Counter-clockwise",
}

# The opposite of each motion: the first, most confusable distractor (docs/reference.md#data-generation).
OPPOSITE: dict[str, str] = {
    "Move Forward": "Move Backward",
    "Move Backward": "Move Forward",
    "Move Left": "Move Right",
    "Move Right": "Move Left",
    "Move Up": "Move Down",
    "Move Down": "Move Up",
    "Pan Left": "Pan Right",
    "Pan Right": "Pan Left",
    "Tilt Up": "Tilt Down",
    "Tilt Down": "Tilt Up",
    "Roll Clockwise": "Roll Counter-clockwise",
    "Roll Counter-clockwise": "Roll Clockwise",
    "Moving Left": "Moving Right",
    "Moving Right": "Moving Left",
    "Moving Up": "Moving Down",
    "Moving Down": "Moving Up",
    "Moving Left-Up": "Moving Right-Down",
    "Moving Right-Down": "Moving Left-Up",
    "Moving Left-Down": "Moving Right-Up",
    "Moving Right-Up": "Moving Left-Down",
    "Moving Toward Camera": "Moving Away from Camera",
    "Moving Away from Camera": "Moving Toward Camera",
    "Speeding Up": "Slowing Down",
    "Slowing Down": "Speeding Up",
    "First Speeding Up Then Slowing Down": "First Slowing Down Then Speeding Up",
    "First Slowing Down Then Speeding Up": "First Speeding Up Then Slowing Down",
}

TASKS: tuple[str, ...] = ("camera", "direction", "bbox", "distance", "speed")

LABELS_BY_TASK: dict[str, tuple[str, ...]] = {
    "camera": CAMERA_MOTIONS,
    "direction": DIRECTIONS,
    "bbox": DIRECTIONS,
    "distance": DISTANCES,
    "speed": SPEEDS,
}

OPTION_LETTERS: tuple[str, ...] = ("A", "B", "C", "D")

ALL_LABELS: tuple[str, ...] = CAMERA_MOTIONS + DIRECTIONS + DISTANCES + SPEEDS
assert len(ALL_LABELS) == 32, len(ALL_LABELS)
