"""Audit: compare every label the pipeline derived (from masks/poses/frames) with the world's truth.

Per task, agreement in percent and a confusion matrix (truth rows x derived columns):

* camera: each derived, questioned segment (``labels.json`` ``camera_segments`` that have a
  camera record) against the truth segment covering most of its frames;
* direction, distance, speed: the clip's derived object labels against ``truth.object_motion``
  (speed only where the truth says it is defined, i.e. the object moves).

Only clips that produced labels are audited; the derived labels never came from truth.json.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from fourdthinker.io import read_jsonl

AUDIT_TASKS = ("camera", "direction", "distance", "speed")


@dataclass
class TaskAudit:
    pairs: list[tuple[str, str]] = field(default_factory=list)  # (truth, derived)

    @property
    def n(self) -> int:
        return len(self.pairs)

    @property
    def agreement(self) -> float:
        return 100.0 * sum(t == d for t, d in self.pairs) / self.n if self.n else float("nan")

    def confusion(self) -> Counter:
        return Counter(self.pairs)


def truth_label_for_segment(truth, start: int, end: int) -> str:
    """The truth camera label covering most of video frames [start, end - 1] (motion steps);
    ``"Stay"`` when no truth segment overlaps (the pipeline saw motion where the camera held)."""
    best, best_overlap = "Stay", 0
    for seg in truth.camera_segments:
        ov = min(end - 1, seg.end_frame) - max(start, seg.start_frame)
        if ov > best_overlap:
            best, best_overlap = seg.label, ov
    return best


def audit(videos: str | Path, data: str | Path) -> dict[str, TaskAudit]:
    from fourdthinker.world.clip import load_clip

    videos, data = Path(videos), Path(data)
    clips_dir = data / "clips"
    if not clips_dir.is_dir():
        raise FileNotFoundError(f"{clips_dir}: no built clips (run `fourdthinker data build` first)")
    out = {t: TaskAudit() for t in AUDIT_TASKS}
    for cdir in sorted(p for p in clips_dir.iterdir() if (p / "labels.json").exists()):
        src = videos / cdir.name
        if not (src / "truth.json").exists():
            continue
        truth = load_clip(src, load_masks=False).truth
        labels = json.loads((cdir / "labels.json").read_text())
        recs = read_jsonl(cdir / "dift.jsonl") if (cdir / "dift.jsonl").exists() else []
        asked = {(r["meta"]["segment"]["start_frame"], r["meta"]["segment"]["end_frame"]) for r in recs if r["task"] == "camera"}
        for s in labels.get("camera_segments") or []:
            if (s["start_frame"], s["end_frame"]) not in asked:
                continue
            out["camera"].pairs.append((truth_label_for_segment(truth, s["start_frame"], s["end_frame"]), s["label"]))
        ob = labels.get("object")
        if ob:
            om = truth.object_motion
            out["direction"].pairs.append((om.direction, ob["direction"]))
            out["distance"].pairs.append((om.distance, ob["distance"]))
            if getattr(om, "speed_defined", om.direction != "Stationary") and ob.get("speed") is not None:
                out["speed"].pairs.append((om.speed, ob["speed"]))
    return out


def confusion_table(name: str, ta: TaskAudit):
    from rich.table import Table

    conf = ta.confusion()
    truths = sorted({t for t, _ in ta.pairs})
    derived = sorted({d for _, d in ta.pairs})
    t = Table(title=f"{name}: {ta.agreement:.1f}% agreement on {ta.n} labels (rows truth, columns derived)",
              caption=", ".join(f"{_short(x)}={x}" for x in sorted(set(truths) | set(derived))))
    t.add_column("truth")
    for d in derived:
        t.add_column(_short(d), justify="right")
    for tr in truths:
        t.add_row(_short(tr), *[str(conf.get((tr, d), 0) or ".") for d in derived])
    return t


SHORT: dict[str, str] = {
    "Move Forward": "Fwd", "Move Backward": "Back", "Move Left": "MvL", "Move Right": "MvR", "Move Up": "MvUp",
    "Move Down": "MvDn", "Pan Left": "PanL", "Pan Right": "PanR", "Tilt Up": "TiltU", "Tilt Down": "TiltD",
    "Roll Clockwise": "RollCW", "Roll Counter-clockwise": "RollCCW",
    "Moving Left": "L", "Moving Right": "R", "Moving Up": "U", "Moving Down": "D", "Moving Left-Up": "LU",
    "Moving Left-Down": "LD", "Moving Right-Up": "RU", "Moving Right-Down": "RD", "Moving Toward Camera": "Toward",
    "Moving Away from Camera": "Away", "Stationary": "Still", "Maintaining Roughly the Same Distance": "Same",
    "Speeding Up": "Faster", "Slowing Down": "Slower", "Maintaining a Constant Speed": "Const",
    "First Speeding Up Then Slowing Down": "Up>Down", "First Slowing Down Then Speeding Up": "Down>Up",
    "Moving at Varying Speeds": "Vary", "Stay": "Stay",
}


def _short(s: str) -> str:
    return SHORT.get(s, s[:10])
