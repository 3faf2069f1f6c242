"""The offline ``rule`` oracle: deterministic, no network, answers from the synthetic world.

* Landmarks come from the clip's truth (the world knows its objects' names and descriptions):
  this stands in for the oracle *looking at* the video. Labels are never taken from the truth;
  the pipeline derives them from masks/poses/frames and passes them in.
* Consistency checks are mask statistics (non-empty, not clipped by the border, area stable).
* The CoT is written from several templates per step, picked by a seeded RNG (record id +
  attempt), following the paper's flow: temporal localisation -> reference/strategy ->
  visualisation (one ``<imagery>`` per overlay, chronological) -> analysis (with the camera
  compensation step for object motion) -> the motion named in words -> ``<answer>X</answer>``.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from fourdthinker.hashing import sha256_json
from fourdthinker.oracle.base import CotRequest, Landmark, Landmarks, OracleError, OracleUsage
from fourdthinker.qa import IMAGERY as IM

LABEL_WORDS: dict[str, str] = {
    "Move Forward": "the camera travels forward, closer into the scene",
    "Move Backward": "the camera travels backward, away from the scene",
    "Move Left": "the camera slides sideways to the left without turning",
    "Move Right": "the camera slides sideways to the right without turning",
    "Move Up": "the camera rises straight up",
    "Move Down": "the camera sinks straight down",
    "Pan Left": "the camera turns (yaws) to the left in place",
    "Pan Right": "the camera turns (yaws) to the right in place",
    "Tilt Up": "the camera tilts its view upward in place",
    "Tilt Down": "the camera tilts its view downward in place",
    "Roll Clockwise": "the camera rolls clockwise about its viewing axis",
    "Roll Counter-clockwise": "the camera rolls counter-clockwise about its viewing axis",
    "Moving Left": "it moves to the left",
    "Moving Right": "it moves to the right",
    "Moving Up": "it moves upward",
    "Moving Down": "it moves downward",
    "Moving Left-Up": "it moves diagonally up and to the left",
    "Moving Left-Down": "it moves diagonally down and to the left",
    "Moving Right-Up": "it moves diagonally up and to the right",
    "Moving Right-Down": "it moves diagonally down and to the right",
    "Moving Toward Camera": "it comes toward the camera",
    "Moving Away from Camera": "it goes away from the camera",
    "Stationary": "it stays in place",
    "Maintaining Roughly the Same Distance": "its distance to the camera stays about the same",
    "Speeding Up": "it keeps getting faster",
    "Slowing Down": "it keeps getting slower",
    "Maintaining a Constant Speed": "it keeps a steady pace",
    "First Speeding Up Then Slowing Down": "it first accelerates and then decelerates",
    "First Slowing Down Then Speeding Up": "it first decelerates and then accelerates",
    "Moving at Varying Speeds": "its pace changes irregularly",
}

_CAM_OPEN = (
    "The question is about the camera between {ts:.0f}s and {te:.0f}s.",
    "I need to work out how the camera itself moves from {ts:.0f}s to {te:.0f}s.",
    "Let me focus on the interval from {ts:.0f}s to {te:.0f}s and the camera's own motion.",
)
_CAM_STRATEGY = (
    "The {s} does not move, so any change in where it appears must come from the camera.",
    "I anchor on the {s}: it is static, so its apparent displacement is caused by the camera alone.",
    "A stationary reference helps here; the {s} stays put in the world, so I use it to read the camera motion.",
)
_CAM_VIS = (
    "I picture the {s} at {ts:.0f}s {im}{mid} and again at {te:.0f}s {im}.",
    "I imagine the {s} highlighted at the start {im}{mid} and at the end of the interval {im}.",
    "My mental image of the {s} at {ts:.0f}s {im}{mid} can be set against the one at {te:.0f}s {im}.",
)
_CAM_ANALYSIS = (
    "In the image it shifts {shift} (about {dx:+d} px horizontally, {dy:+d} px vertically){size}.",
    "The landmark drifts {shift} on screen (dx {dx:+d} px, dy {dy:+d} px){size}.",
    "Between the two images the {s} has moved {shift} by roughly {mag:.0f} px{size}.",
)
_CAM_CONCLUDE = (
    "{reason} So {words}: {label}.",
    "{reason} That means {words}, i.e. {label}.",
    "{reason} Therefore {words} — {label}.",
)
_OBJ_OPEN = (
    "I track the {d} from {ts:.0f}s to {te:.0f}s.",
    "The question concerns the {d}; its active interval runs from {ts:.0f}s to {te:.0f}s.",
    "Let me follow the {d} over {ts:.0f}s-{te:.0f}s.",
)
_OBJ_VIS = (
    "I imagine it highlighted frame by frame: {ims}.",
    "Visualising its mask over time {ims}, I can follow its path.",
    "My mental imagery of the {d} across the interval: {ims}.",
)
_OBJ_COMP = (
    "Camera compensation: {cam}. On its own the camera would carry the {d}'s starting spot {cshift}, so I remove that before judging the object.",
    "First I separate the camera's motion: {cam}, which by itself would move the starting point {cshift}; I discount it.",
    "Before judging the {d} I account for the camera: {cam}; that alone shifts the view {cshift}, which I subtract.",
)
_OBJ_CONCLUDE = (
    "So {words}: {label}.",
    "Hence {words}, which is {label}.",
    "In short, {words} — {label}.",
)


def valid_dynamic_frames(masks: list[np.ndarray], *, min_frac: float = 0.001, min_rel: float = 0.35,
                         border: int = 0) -> list[int]:
    """Per-frame validity (Eq. 2's dynamic variant) from mask statistics: area >= ``min_frac`` of
    the image and >= ``min_rel`` x the median non-empty area (a sliver = the object entering the
    view or hidden, whose centroid and size would mislead); optionally not touching the border."""
    areas = np.array([float(m.sum()) for m in masks])
    nz = areas[areas > 0]
    med = float(np.median(nz)) if len(nz) else 0.0
    out = []
    for i, m in enumerate(masks):
        if areas[i] < min_frac * m.size or areas[i] < min_rel * med:
            continue
        if border and (m[:border].any() or m[-border:].any() or m[:, :border].any() or m[:, -border:].any()):
            continue
        out.append(i)
    return out


def _pick(rng: random.Random, options: tuple[str, ...]) -> str:
    return options[rng.randrange(len(options))]


def _chain(ims: int) -> str:
    return ", then ".join([IM] * ims)


class RuleOracle:
    """Offline oracle. ``min_area_frac``: masks smaller than this fraction count as missing."""

    name = "rule"

    def __init__(self, min_area_frac: float = 0.001, seed: int = 0) -> None:
        self.min_area_frac = min_area_frac
        self.seed = seed
        self.usage = OracleUsage()

    # -- 1. landmarks --------------------------------------------------------------------------
    def select_landmarks(self, frames: list[np.ndarray], *, clip: Any = None) -> Landmarks:
        truth = getattr(clip, "truth", None)
        if truth is None:
            raise OracleError("rule oracle needs the world's truth.json to name the landmarks; "
                              "use --oracle openai for clips without truth")
        self.usage.calls += 1
        s, d = truth.static_object, truth.dynamic_object
        return Landmarks(Landmark(s.name, s.description), Landmark(d.name, d.description))

    # -- 2./3. consistency (Eq. 2) ---------------------------------------------------------------
    def verify_static(self, overlays, landmark: Landmark, masks: list[np.ndarray]) -> tuple[bool, str]:
        self.usage.calls += 1
        areas = np.array([m.mean() for m in masks])
        if (areas < self.min_area_frac).any():
            return False, f"static mask of {landmark.name!r} missing in {int((areas < self.min_area_frac).sum())} frames"
        return True, "ok"

    def verify_dynamic(self, overlays, landmark: Landmark, masks: list[np.ndarray]) -> list[int]:
        self.usage.calls += 1
        return valid_dynamic_frames(masks, min_frac=self.min_area_frac)

    # -- 4. imagery CoT --------------------------------------------------------------------------
    def write_cot(self, req: CotRequest) -> str:
        self.usage.calls += 1
        rng = random.Random(int(sha256_json([self.seed, req.record_id, req.attempt])[:12], 16))
        f = req.facts
        body = self._camera(rng, req, f) if req.task == "camera" else self._object(rng, req, f)
        return f"<think>{body}</think><answer>{req.answer}</answer>"

    def _camera(self, rng: random.Random, req: CotRequest, f: dict) -> str:
        ts, te = req.times[0], req.times[-1]
        s = f["static"]
        mid = "".join(f", then {IM}" for _ in range(req.n_images - 2))  # intermediate imagery, chronological
        vis = _pick(rng, _CAM_VIS).format(s=s, ts=ts, te=te, im=IM, mid=mid)
        dx, dy = int(round(f.get("shift_dx", 0.0))), int(round(f.get("shift_dy", 0.0)))
        size = ""
        if f.get("size_ratio") is not None and abs(f["size_ratio"] - 1) > 0.08:
            size = ", and it looks " + ("larger" if f["size_ratio"] > 1 else "smaller")
        ana = _pick(rng, _CAM_ANALYSIS).format(s=s, shift=f.get("shift_words", "slightly"), dx=dx, dy=dy,
                                               mag=(dx * dx + dy * dy) ** 0.5, size=size)
        reason = f.get("reason", "")
        words = LABEL_WORDS.get(req.answer_text, req.answer_text)
        parts = [_pick(rng, _CAM_OPEN).format(ts=ts, te=te), _pick(rng, _CAM_STRATEGY).format(s=s), vis, ana,
                 _pick(rng, _CAM_CONCLUDE).format(reason=reason, words=words, label=req.answer_text)]
        return " ".join(p.strip() for p in parts if p.strip())

    def _object(self, rng: random.Random, req: CotRequest, f: dict) -> str:
        ts, te = req.times[0], req.times[-1]
        d = f["dynamic"]
        if req.task == "bbox":
            d = f"object in the box {f['bbox']}" if "bbox" in f else d
        parts = [_pick(rng, _OBJ_OPEN).format(d=d, ts=ts, te=te),
                 _pick(rng, _OBJ_VIS).format(d=d, ims=_chain(req.n_images)),
                 _pick(rng, _OBJ_COMP).format(d=d, cam=f.get("camera", "the camera holds still"),
                                              cshift=f.get("camera_shift_words", "barely at all"))]
        obs = f.get("observation")
        if obs:
            parts.append(obs)
        words = LABEL_WORDS.get(req.answer_text, req.answer_text)
        parts.append(_pick(rng, _OBJ_CONCLUDE).format(words=words, label=req.answer_text))
        return " ".join(p.strip() for p in parts if p.strip())
