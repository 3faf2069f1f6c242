"""4DRL data: RL records refused before training (``load_rl_records``), prompt frames through the
shared input builder (``load_prompt_frames``), the seeded question schedule (``QuestionSchedule``,
``rank_questions``), the quarantine of records whose video fails mid-run (``usable_record``) and the
fixed probe questions (``pick_probe_records``)."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

from fourdthinker.data.records import RLRecord
from fourdthinker.io import append_jsonl, resolve_inside

__all__ = ["QuestionSchedule", "load_prompt_frames", "load_rl_records", "pick_probe_records", "rank_questions",
           "synthetic_rl_records", "usable_record"]


def load_rl_records(path: str | Path) -> tuple[list[RLRecord], Path, list[dict]]:
    """Read RL records, refusing bad ones BEFORE training: ``(records, dataset_root, rejected)``.

    A record is refused (with a one-line reason) when it is not JSON, fails the ``RLRecord``
    schema (missing/invalid ``answer``, answer not among the options, options not A-D, empty
    question), repeats an id, or names a video outside the dataset root or not on disk.
    Raises ``ValueError`` naming the file when nothing usable is left."""
    p = Path(path)
    if p.is_dir():
        cands = [p / "rl.jsonl", p / "records.jsonl"]
        found = [c for c in cands if c.exists()]
        if not found:
            raise ValueError(f"{p}: no rl.jsonl (or records.jsonl) in this folder")
        p = found[0]
    if not p.exists():
        raise ValueError(f"{p}: RL records file not found")
    root = p.parent
    rows: list[tuple[int, Any]] = []
    rejected: list[dict] = []
    with open(p, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append((i, json.loads(line)))
            except json.JSONDecodeError as e:
                rejected.append({"file": str(p), "line": i, "id": None, "reason": f"not JSON ({e.msg})"})
    from pydantic import ValidationError

    from fourdthinker.io import check_unique_ids

    lines = dict(rows)  # a duplicated id refuses the file, as every record reader does (docs/errors.md)
    check_unique_ids([lines.get(i) for i in range(1, max(lines, default=0) + 1)], p)
    records: list[RLRecord] = []
    seen: set[str] = set()
    for i, row in rows:
        rid = row.get("id") if isinstance(row, dict) else None
        if not isinstance(row, dict):
            rejected.append({"file": str(p), "line": i, "id": None, "reason": "not a JSON object"})
            continue
        if row.get("answer") in (None, ""):
            rejected.append({"file": str(p), "line": i, "id": rid, "reason": "missing answer"})
            continue
        try:
            rec = RLRecord.model_validate(row)
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(x) for x in err.get("loc", ()))
            rejected.append({"file": str(p), "line": i, "id": rid, "reason": f"{loc}: {err.get('msg')}".strip(": ")})
            continue
        if rec.id in seen:
            rejected.append({"file": str(p), "line": i, "id": rid, "reason": "duplicate id"})
            continue
        try:
            paths = [resolve_inside(root, fr) for fr in rec.frames] if rec.frames else [resolve_inside(root, rec.video)]
        except ValueError as e:
            rejected.append({"file": str(p), "line": i, "id": rid, "reason": str(e)})
            continue
        missing = [str(q) for q in paths if not q.exists()]
        if missing:
            rejected.append({"file": str(p), "line": i, "id": rid, "reason": f"video/frames not found: {missing[0]}"})
            continue
        seen.add(rec.id)
        records.append(rec)
    if not records:
        reasons = Counter(r["reason"] for r in rejected).most_common(3)
        raise ValueError(f"{p}: no usable RL records ({len(rejected)} refused; top reasons: {reasons})")
    return records, root, rejected


def load_prompt_frames(rec: RLRecord, root: Path, *, fps: float = 1.0, max_frames: int | None = 16,
                       max_pixels: int | None = 448 * 448, span: str = "video") -> list:
    """Frames of a record's video through the ONE input builder DIFT, infer and eval use
    (``fourdthinker.models.inputs.record_frames``: pre-extracted PNGs, a frame folder, or the video
    sampled at ``fps``; over the record's ``window_s`` only with ``span="window"``; capped at
    ``max_frames`` evenly and ``max_pixels``). Encoded with
    ``encode_prompts(..., fps=fps)``, this is ``models.inputs.build_prompt_batch`` of the records."""
    from fourdthinker.models.inputs import FrameSettings, record_frames

    return record_frames(rec, root, FrameSettings(fps, max_frames, max_pixels, span))


class QuestionSchedule:
    """Seeded epoch-by-epoch shuffle of record indices; position = step * questions_per_step."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed = n, seed

    def take(self, start: int, k: int) -> list[int]:
        out = []
        for j in range(start, start + k):
            epoch, pos = divmod(j, self.n)
            order = list(range(self.n))
            random.Random(self.seed * 100_003 + epoch).shuffle(order)
            out.append(order[pos])
        return out


def rank_questions(sched: QuestionSchedule, step: int, q: int, rank: int = 0, world: int = 1) -> list[int]:
    """Record indices process ``rank`` of ``world`` trains on at ``step`` (1-based): the step takes
    ``world * q`` consecutive schedule positions and each process gets its own block of ``q``, so
    the shares are disjoint and ``world == 1`` is the single-process schedule."""
    return sched.take((step - 1) * q * world, q * world)[rank * q : (rank + 1) * q]


def usable_record(records: list[RLRecord], i: int, bad: set[int], cache: dict, root: Path, cfg,
            out: Path, *, rank: int = 0) -> RLRecord:
    """Record ``i`` with its frames loaded; a record whose video cannot be read is quarantined
    (``rejected.jsonl``) and the next usable record takes its place, so one bad file never stops a run.
    With several processes each quarantines what it meets (one appended line each, tagged ``rank``)."""
    from fourdthinker.models.inputs import InputError
    from fourdthinker.video.errors import VideoError

    for j in [*range(i, len(records)), *range(0, i)]:
        if j in bad:
            continue
        rec = records[j]
        if rec.id in cache:
            return rec
        if len(cache) >= 256:  # bounded memory on big datasets: frames are re-read after a clear
            cache.clear()
        try:
            cache[rec.id] = load_prompt_frames(rec, root, fps=cfg.fps, max_frames=cfg.max_frames,
                                               max_pixels=cfg.max_pixels, span=cfg.frame_span or "video")
            return rec
        except (InputError, VideoError, OSError, ValueError) as e:
            bad.add(j)
            append_jsonl(out / "rejected.jsonl", {"id": rec.id, "reason": f"unreadable during training: {e}",
                                                  **({"rank": rank} if rank else {})})
    raise ValueError("every RL record failed to load its video; see rejected.jsonl")


def pick_probe_records(records: list[RLRecord], root: Path, cfg) -> tuple[list[RLRecord], dict[str, list]]:
    """``cfg.probe_questions`` records in a seeded order (``probe:<seed>``) whose frames load, with
    their frames. A record whose video fails is passed over here (the training loop quarantines it
    when it comes up)."""
    from fourdthinker.models.inputs import InputError
    from fourdthinker.video.errors import VideoError

    probe_recs: list[RLRecord] = []
    probe_frames: dict[str, list] = {}
    order = list(range(len(records)))
    random.Random(f"probe:{cfg.seed}").shuffle(order)
    for i in order:
        if len(probe_recs) >= cfg.probe_questions:
            break
        try:
            probe_frames[records[i].id] = load_prompt_frames(records[i], root, fps=cfg.fps, max_frames=cfg.max_frames,
                                                             max_pixels=cfg.max_pixels, span=cfg.frame_span or "video")
            probe_recs.append(records[i])
        except (InputError, VideoError, OSError, ValueError):
            continue
    return probe_recs, probe_frames


def synthetic_rl_records(root: str | Path, n: int = 4, frames: int = 2, size: int = 56, seed: int = 0) -> Path:
    """``n`` RL records of ``frames`` random ``size`` x ``size`` PNG frames each under ``root``
    (camera-motion questions, answers cycling A-D): data for smoke tests and benchmarks of the RL
    loop, where what the frames show does not matter. Returns the path of ``root/rl.jsonl``."""
    import numpy as np
    from PIL import Image

    from fourdthinker.labels import CAMERA_MOTIONS

    root = Path(root)
    rng = np.random.default_rng(seed)
    (root / "frames").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        fr = []
        for t in range(frames):
            p = f"frames/{i}_{t}.png"
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / p)
            fr.append(p)
        opts = dict(zip("ABCD", CAMERA_MOTIONS[i % 8 : i % 8 + 4], strict=True))
        rows.append({"id": f"q{i}", "video": fr[0], "frames": fr, "question": "What is the camera movement?",
                     "options": opts, "answer": "ABCD"[i % 4], "task": "camera"})
    path = root / "rl.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
