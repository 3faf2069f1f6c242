"""The held-out synthetic benchmark: MCQs on world clips' TRUE labels (``truth.json``).

Each clip gives one camera-motion question (one of its segments, seeded) and one object-motion
question (direction, distance or speed, cycling over clips), so camera and object tasks are
balanced 1:1. The object task is label-balanced: a clip whose label is already over-represented
in the cycled task (more than ``n / n_labels + 1`` of that task's ``n`` questions so far) is asked
the next task instead. Without it most distance questions would be "Maintaining Roughly the Same
Distance" (most objects move sideways), and a model that always says so would score ~80% there. Options come from the data pipeline's MCQ builder (``fourdthinker.data.mcq``:
opposite and related distractors first) and the answer position cycles through A-D within each
task from a per-seed offset, so answer letters are balanced by construction.

Generate the clips with a seed the training data did not use (``fourdthinker world --seed ...``)
to keep the benchmark held out.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from pathlib import Path

from pydantic import ValidationError

from fourdthinker.data.mcq import build_mcq, clip_offset
from fourdthinker.eval.loaders import BenchmarkFormatError, LoadResult, load_jsonl_bench
from fourdthinker.labels import LABELS_BY_TASK
from fourdthinker.records import BenchItem
from fourdthinker.world.truth import ClipMeta, ClipTruth

OBJECT_TASKS = ("direction", "distance", "speed")
SUBTASKS = ("camera", *OBJECT_TASKS)

QUESTIONS = {
    "camera": "Between {ts:.1f}s and {te:.1f}s, how does the camera move?",
    "direction": ("Between {ts:.1f}s and {te:.1f}s, in which direction does the {obj} move, as seen from the camera "
                  "with the camera's own motion removed?"),
    "distance": "Between {ts:.1f}s and {te:.1f}s, how does the distance between the {obj} and the camera change?",
    "speed": "Between {ts:.1f}s and {te:.1f}s, how does the speed of the {obj} change?",
}


def _clip_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("*/truth.json"))


def build_synthetic_items(world_dir: str | os.PathLike, *, seed: int = 0, check_media: bool = True,
                          mcq_style: str = "paper") -> tuple[list[BenchItem], list[dict]]:
    """BenchItems (camera + object questions, balanced) for every clip folder under ``world_dir``.
    Clips with a missing video or a broken truth/meta file are skipped with a reason.
    ``mcq_style``: the distractors (``data.mcq.build_mcq``: paper | uniform)."""
    root = Path(world_dir)
    clips = _clip_dirs(root)
    if not clips:
        raise BenchmarkFormatError(f"{root}: no clip folders with truth.json (make some with `fourdthinker world`)")
    items: list[BenchItem] = []
    skipped: list[dict] = []
    counters = {t: clip_offset("synthetic-bench", seed) for t in SUBTASKS}  # answer slot cycles per task
    n_obj = 0
    seen: dict[str, Counter] = {t: Counter() for t in OBJECT_TASKS}  # object-task label counts so far
    for d in clips:
        cid = d.name
        try:
            truth = ClipTruth.model_validate(json.loads((d / "truth.json").read_text(encoding="utf-8")))
            meta = ClipMeta.model_validate(json.loads((d / "meta.json").read_text(encoding="utf-8")))
        except (OSError, ValueError, ValidationError) as e:
            skipped.append({"id": cid, "reason": f"bad clip: {type(e).__name__}: {str(e).splitlines()[0]}"})
            continue
        if check_media and not (d / "video.mp4").is_file():
            skipped.append({"id": cid, "reason": f"missing video: {d / 'video.mp4'}"})
            continue
        rng = random.Random(f"{seed}:{cid}")
        obj = truth.dynamic_object.name
        questions = []
        if truth.camera_segments:
            si = rng.randrange(len(truth.camera_segments))
            seg = truth.camera_segments[si]
            questions.append(("camera", seg.label, QUESTIONS["camera"].format(ts=seg.start_s, te=seg.end_s),
                              f"{cid}/camera/{si}", (seg.start_s, seg.end_s)))
        om = truth.object_motion
        labels = {"direction": om.direction, "distance": om.distance, "speed": om.speed}
        task = _balanced_task(n_obj, labels, seen)
        n_obj += 1
        seen[task][labels[task]] += 1
        ts, te = om.active_start_frame / meta.fps, om.active_end_frame / meta.fps
        label = labels[task]
        questions.append((task, label, QUESTIONS[task].format(ts=ts, te=te, obj=obj), f"{cid}/{task}", (ts, te)))
        for task, label, q, iid, window in questions:
            options, answer = build_mcq(label, task, position=counters[task], rng=rng, style=mcq_style)
            counters[task] += 1
            items.append(BenchItem(id=iid, video=f"{cid}/video.mp4", question=q, options=options, answer=answer,
                                   subtask=task, bench="synthetic", meta={"label": label, "clip": cid},
                                   window_s=window))
    return items, skipped


def _balanced_task(n_obj: int, labels: dict[str, str], seen: dict[str, Counter]) -> str:
    """The object task to ask: the cycled one (``n_obj`` mod 3) unless this clip's label is
    over-represented in it (count > total / n_labels + 1), then the next task in the cycle that is
    not; when all are, the least over-represented one (first in cycle order on ties)."""
    order = [OBJECT_TASKS[(n_obj + k) % len(OBJECT_TASKS)] for k in range(len(OBJECT_TASKS))]

    def excess(task: str) -> float:
        return seen[task][labels[task]] - (sum(seen[task].values()) / len(LABELS_BY_TASK[task]) + 1)

    return next((t for t in order if excess(t) <= 0), min(order, key=excess))


def load_synthetic_bench(data: str | os.PathLike, *, check_media: bool = True, seed: int = 0,
                         mcq_style: str = "paper") -> LoadResult:
    """A world folder (clip folders with truth.json) -> items built on the fly (deterministic in
    ``seed``); or a ``bench.jsonl`` (file, or a folder holding one) written earlier."""
    path = Path(data)
    if path.is_file() or (path / "bench.jsonl").is_file():
        return load_jsonl_bench(path, check_media=check_media, bench="synthetic")
    items, skipped = build_synthetic_items(path, seed=seed, check_media=check_media, mcq_style=mcq_style)
    return LoadResult("synthetic", path, items, skipped)


def write_bench_jsonl(result: LoadResult, path: str | os.PathLike | None = None) -> Path:
    """Freeze the items to ``bench.jsonl`` inside the benchmark root (default ``root/bench.jsonl``),
    so later runs and the lmms-eval task read the exact same questions. Paths stay relative to the
    root, which must hold the file (paths inside data files never escape their root)."""
    from fourdthinker.io import write_jsonl

    path = Path(path) if path else result.root / "bench.jsonl"
    if path.resolve().parent != result.root.resolve():
        raise ValueError(f"{path}: bench.jsonl must sit in the benchmark root {result.root} (item paths are relative to it)")
    write_jsonl(path, [it.model_dump() for it in result.items])
    return path
