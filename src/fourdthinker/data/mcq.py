"""Four-option MCQs with semantically related distractors and a balanced, seeded answer position.

Distractors (paper App. C; the reference's order, docs/reference.md#data-generation): first the opposite motion,
then related ones (the same direction by the other mechanism: Pan Left <-> Move Left; diagonal
neighbours for object directions), then the rest of the vocabulary in a seeded order. The answer's
position is ``(offset + index) % 4`` with a per-clip seeded offset and the record's index in
the clip, so letters are balanced by construction (not just in expectation); the distractors
fill the other slots in seeded order.

That recipe makes the answer recognisable from the options alone: it is the one option whose most
related labels (its opposite, its analog) are also offered. On the demo's benchmark a rule that
picks it scores ~70% with no video (docs/latent_feed_study.md#results). ``style="uniform"`` draws
the three distractors uniformly from the task's other labels instead, so the option set says
nothing about which option is the answer.
"""

from __future__ import annotations

import random

from fourdthinker.hashing import sha256_json
from fourdthinker.labels import LABELS_BY_TASK, OPPOSITE, OPTION_LETTERS

# the same image motion produced by the other mechanism (rotation vs translation)
_ANALOG = {
    "Pan Left": "Move Left",
    "Move Left": "Pan Left",
    "Pan Right": "Move Right",
    "Move Right": "Pan Right",
    "Tilt Up": "Move Up",
    "Move Up": "Tilt Up",
    "Tilt Down": "Move Down",
    "Move Down": "Tilt Down",
    "Move Forward": "Move Backward",
    "Move Backward": "Move Forward",
    "Roll Clockwise": "Pan Right",
    "Roll Counter-clockwise": "Pan Left",
}
_DIAGONALS = {
    "Moving Left": ("Moving Left-Up", "Moving Left-Down"),
    "Moving Right": ("Moving Right-Up", "Moving Right-Down"),
    "Moving Up": ("Moving Left-Up", "Moving Right-Up"),
    "Moving Down": ("Moving Left-Down", "Moving Right-Down"),
    "Moving Left-Up": ("Moving Left", "Moving Up"),
    "Moving Left-Down": ("Moving Left", "Moving Down"),
    "Moving Right-Up": ("Moving Right", "Moving Up"),
    "Moving Right-Down": ("Moving Right", "Moving Down"),
    "Moving Toward Camera": ("Stationary", "Moving Down"),
    "Moving Away from Camera": ("Stationary", "Moving Up"),
    "Stationary": ("Moving Toward Camera", "Moving Away from Camera"),
}
# The distance vocabulary has only 3 labels; the reference adds two-phase distractors.
DISTANCE_EXTRA = ("First Moving Toward Camera Then Away", "First Moving Away from Camera Then Toward")


def related_distractors(label: str, task: str) -> list[str]:
    """Ordered, de-duplicated candidates, most confusable first, excluding ``label``."""
    vocab = list(LABELS_BY_TASK[task])
    if label not in vocab:
        raise ValueError(f"{label!r} is not a {task} label; expected one of {vocab}")
    cands: list[str] = []
    if label in OPPOSITE:
        cands.append(OPPOSITE[label])
    if task == "camera":
        a = _ANALOG.get(label)
        if a:
            cands += [a, OPPOSITE.get(a, a)]
    elif task in ("direction", "bbox"):
        cands += list(_DIAGONALS.get(label, ()))
    elif task == "distance":
        cands += [v for v in vocab if v != label] + list(DISTANCE_EXTRA)
    out: list[str] = []
    for c in cands + vocab:
        if c != label and c not in out:
            out.append(c)
    return out


def clip_offset(clip_id: str, seed: int) -> int:
    return int(sha256_json([clip_id, seed])[:8], 16) % 4


MCQ_STYLES = ("paper", "uniform")


def build_mcq(label: str, task: str, *, position: int, rng: random.Random, n_related: int = 2,
              style: str = "paper") -> tuple[dict[str, str], str]:
    """Options A-D and the answer letter for ``label``. ``position`` in 0..3 is the answer slot.
    ``style="paper"``: the first ``n_related`` most-related distractors are always used, the last
    slot is drawn from the remaining related/vocabulary candidates with ``rng``. ``"uniform"``: the
    three distractors are drawn with ``rng`` uniformly from the task's other labels (distance: plus
    the two two-phase labels, as its vocabulary has only 3)."""
    if style not in MCQ_STYLES:
        raise ValueError(f"mcq style must be one of {MCQ_STYLES}, got {style!r}")
    cands = related_distractors(label, task)
    if style == "uniform":
        picked = rng.sample(cands, 3)
    else:
        picked = cands[:n_related]
        rest = cands[n_related:]
        while len(picked) < 3:
            picked.append(rest.pop(rng.randrange(len(rest))))
    rng.shuffle(picked)
    slots = picked[:]
    slots.insert(position % 4, label)
    return dict(zip(OPTION_LETTERS, slots, strict=True)), OPTION_LETTERS[position % 4]
