"""The held-out synthetic benchmark built from world clips' true labels."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from fourdthinker.eval.loaders import BenchmarkFormatError, load_benchmark
from fourdthinker.eval.synthetic import build_synthetic_items, write_bench_jsonl
from fourdthinker.labels import OPPOSITE
from fourdthinker.models.inputs import FrameSettings, record_frames


def test_balanced_tasks_and_letters(world_root):
    items, skipped = build_synthetic_items(world_root, seed=0)
    assert not skipped and len(items) == 12
    tasks = Counter(it.subtask for it in items)
    assert tasks == {"camera": 6, "direction": 2, "distance": 2, "speed": 2}  # camera : object = 1 : 1
    for task in tasks:  # answer slot cycles within each task
        letters = [it.answer for it in items if it.subtask == task]
        assert max(Counter(letters).values()) - min(Counter(letters).get(L, 0) for L in "ABCD") <= 1 or len(letters) < 4
    cam = Counter(it.answer for it in items if it.subtask == "camera")
    assert set(cam) == set("ABCD") and max(cam.values()) == 2
    for it in items:
        truth = json.loads((world_root / it.meta["clip"] / "truth.json").read_text())
        label = it.options[it.answer]
        assert label == it.meta["label"]
        # the seconds the question names are the item's window_s (what span="window" samples)
        assert it.question.startswith(f"Between {it.window_s[0]:.1f}s and {it.window_s[1]:.1f}s,")
        if it.subtask == "camera":
            assert label in [s["label"] for s in truth["camera_segments"]]
            if label in OPPOSITE:
                assert OPPOSITE[label] in it.options.values()  # related distractor from the data MCQ builder
        else:
            assert label == truth["object_motion"][it.subtask]
    # deterministic per seed
    assert [it.model_dump() for it in build_synthetic_items(world_root, seed=0)[0]] == [it.model_dump() for it in items]


def test_frames_load_and_bench_jsonl_roundtrip(world_root, tmp_path):
    lr = load_benchmark("synthetic", world_root)
    frames = record_frames(lr.items[0], lr.root, FrameSettings(max_frames=3))
    assert len(frames) == 3 and frames[0].shape == (48, 64, 3)
    path = write_bench_jsonl(lr)
    try:
        again = load_benchmark("synthetic", path)
        assert [it.model_dump() for it in again.items] == [it.model_dump() for it in lr.items]
    finally:
        path.unlink()
    with pytest.raises(ValueError, match="must sit in the benchmark root"):
        write_bench_jsonl(lr, tmp_path / "bench.jsonl")


def test_bad_clips_are_skipped(tmp_path, make):
    root = make.world(tmp_path / "w", n=3)
    (root / "clip_001" / "video.mp4").unlink()
    (root / "clip_002" / "truth.json").write_text("{not json")
    items, skipped = build_synthetic_items(root)
    assert len(items) == 2
    reasons = {s["id"]: s["reason"] for s in skipped}
    assert reasons["clip_001"].startswith("missing video") and reasons["clip_002"].startswith("bad clip")
    with pytest.raises(BenchmarkFormatError, match="no clip folders"):
        build_synthetic_items(tmp_path)


def test_object_task_is_label_balanced():
    """The third 'same distance' clip in a row is asked about its direction instead: a majority
    label cannot dominate a task (pure choice function, hand-made counts)."""
    from fourdthinker.eval.synthetic import _balanced_task
    from fourdthinker.labels import DIRECTIONS, SPEEDS

    seen = {"direction": Counter(), "distance": Counter(), "speed": Counter()}
    asked = []
    for n in range(9):  # every clip: distance 'same', direction and speed all different
        labels = {"direction": DIRECTIONS[n], "distance": "Maintaining Roughly the Same Distance",
                  "speed": SPEEDS[n % len(SPEEDS)]}
        task = _balanced_task(n, labels, seen)
        seen[task][labels[task]] += 1
        asked.append(task)
    # distance (3 labels): 1st 'same' asked (0 <= 0/3+1), 2nd asked (1 <= 1/3+1), 3rd not (2 > 2/3+1): the
    # next task in the cycle (speed) is asked instead
    assert asked == ["direction", "distance", "speed", "direction", "distance", "speed", "direction", "speed", "speed"]
    assert _balanced_task(7, {"direction": "Moving Up", "distance": "Moving Toward Camera", "speed": "Slowing Down"},
                          seen) == "distance"  # a rare label is still asked
    # all three over-represented: the least over-represented one
    over = {"direction": Counter({"Moving Up": 5}), "distance": Counter({"Moving Toward Camera": 9}),
            "speed": Counter({"Slowing Down": 3})}
    assert _balanced_task(0, {"direction": "Moving Up", "distance": "Moving Toward Camera", "speed": "Slowing Down"},
                          over) == "speed"
