"""Small fixture files in each benchmark's public format (field names from docs/benchmarks.md).

* DSR-Bench: TencentARC/DSR_Suite-Data ``benchmark.parquet`` (columns videoID, question, options,
  answer, type) + ``videos/{videoID}.mp4``.
* Dyn-Bench: yu2hi13/Dyn-Bench ``frames/{dataset}/{scene}/frame_XXXX.png`` +
  ``multi_json/{dataset}/{scene}_{qa|sceneqa|cameraqa}.json``.
* VLM4D: shijiezhou/VLM4D ``QA/real_mc.json`` (id, video URL, question_type, question, choices, answer text).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fourdthinker.eval.loaders import DSR_SUBTASKS


def make_dsr(root: Path, *, n_per_type: int = 2, missing_video: str | None = None, extra_rows=()) -> Path:
    import pandas as pd

    (root / "videos").mkdir(parents=True, exist_ok=True)
    rows = []
    for t in DSR_SUBTASKS:
        for k in range(n_per_type):
            vid = f"koala_{t}_{k}"
            if vid != missing_video:
                (root / "videos" / f"{vid}.mp4").write_bytes(b"\x00")  # loaders only check existence
            rows.append({
                "videoID": vid,
                "question": f"Between 2.0s and 8.0s, from the perspective of the man at 2.0s, how does {t} change ({k})?",
                "options": np.array(["A. (1) Become smaller.", "B. (1) Keep nearly constant.",
                                     "C. (1) Become larger. (2) Become smaller.", "D. (1) Become larger."]),
                "answer": "ABCD"[k % 4],
                "type": t,
            })
    rows += list(extra_rows)
    pd.DataFrame(rows).to_parquet(root / "benchmark.parquet")
    return root


def make_dyn(root: Path, *, n_frames: int = 3, missing_scene: str | None = None) -> Path:
    for dataset, scene in (("davis", "car-turn"), ("sintel", "alley")):
        fdir = root / "frames" / dataset / scene
        if scene != missing_scene:
            fdir.mkdir(parents=True, exist_ok=True)
            for i in range(n_frames):
                arr = np.full((32, 48, 3), 40 * i, np.uint8)
                arr[:, :, 0] = 200
                Image.fromarray(arr).save(fdir / f"frame_{i:04d}.png")
        qdir = root / "multi_json" / dataset
        qdir.mkdir(parents=True, exist_ok=True)
        for suffix, ans in (("qa", "A"), ("sceneqa", "B"), ("cameraqa", "C")):
            qa = [{"question": f"How does the {scene} object move ({suffix} {j})?",
                   "options": ["A. toward", "B. away", "C. left", "D. static"], "answer": ans} for j in range(2)]
            (qdir / f"{scene}_{suffix}.json").write_text(json.dumps(qa))
        (qdir / f"{scene}_objmask.json").write_text(json.dumps({"1": {"question": "segment it", "crop_caption": "c",
                                                                      "crop_category": "car"}}))
        (qdir / f"{scene}_frame_sampling.json").write_text("{}")
    return root


def make_vlm4d(root: Path, *, bad_answer: bool = False) -> Path:
    (root / "QA").mkdir(parents=True, exist_ok=True)
    (root / "videos_real" / "davis").mkdir(parents=True, exist_ok=True)
    (root / "videos_real" / "davis" / "city-ride.mp4").write_bytes(b"\x00")
    (root / "videos_synthetic").mkdir(parents=True, exist_ok=True)
    (root / "videos_synthetic" / "ball.mp4").write_bytes(b"\x00")
    real = [{"id": "validation_160",
             "video": "https://huggingface.co/datasets/shijiezhou/VLM4D/resolve/main/videos_real/davis/city-ride.mp4",
             "question_type": "multiple-choice",
             "question": "From the camera perspective, which direction are the cyclists moving toward?",
             "choices": {"A": "not moving", "B": "left", "C": "right", "D": "backwards"},
             "answer": "sideways" if bad_answer else "left"},
            {"id": "validation_161", "video": "videos_real/davis/city-ride.mp4", "question_type": "multiple-choice",
             "question": "Is the bus moving?", "choices": {"A": "yes", "B": "no", "C": "unsure", "D": "backwards"},
             "answer": "no"}]
    syn = [{"id": "synthetic_1", "video": "https://huggingface.co/datasets/shijiezhou/VLM4D/resolve/main/videos_synthetic/ball.mp4",
            "question_type": "multiple-choice", "question": "Where does the ball roll?",
            "choices": {"A": "left", "B": "right", "C": "up", "D": "down"}, "answer": "down"}]
    (root / "QA" / "real_mc.json").write_text(json.dumps(real))
    (root / "QA" / "synthetic_mc.json").write_text(json.dumps(syn))
    return root


@pytest.fixture
def dsr_root(tmp_path):
    return make_dsr(tmp_path / "dsr")


@pytest.fixture
def dyn_root(tmp_path):
    return make_dyn(tmp_path / "dyn")


@pytest.fixture
def vlm4d_root(tmp_path):
    return make_vlm4d(tmp_path / "vlm4d")


def make_world(root: Path, *, n: int = 6, seconds: int = 4, fps: int = 4) -> Path:
    """Clip folders in the world contract (world/truth.py): video.mp4, meta.json, truth.json,
    with labels cycling through the vocabularies (the video is a moving square on a gradient)."""
    from fourdthinker.labels import CAMERA_MOTIONS, DIRECTIONS, DISTANCES, SPEEDS
    from fourdthinker.video import write_video

    for k in range(n):
        d = root / f"clip_{k:03d}"
        d.mkdir(parents=True, exist_ok=True)
        nf = seconds * fps
        frames = []
        for t in range(nf):
            f = np.zeros((48, 64, 3), np.uint8)
            f[..., 1] = np.linspace(0, 255, 64, dtype=np.uint8)[None, :]
            x = 4 + (t * 3 + k * 5) % 48
            f[20:30, x:x + 10] = (255, 0, 0)
            frames.append(f)
        write_video(d / "video.mp4", frames, fps=fps)
        obj = {"name": "red cube", "description": "a small red cube", "shape": "cube", "color": [255, 0, 0],
               "size": 1.0, "center": [0.0, 0.5, 3.0]}
        truth = {
            "clip_id": d.name, "static_object": {**obj, "name": "blue cone", "description": "a blue cone"},
            "dynamic_object": {**obj, "trajectory": [[0.1 * t, 0.5, 3.0] for t in range(nf)]},
            "camera_segments": [
                {"start_frame": 0, "end_frame": 2 * fps, "start_s": 0.0, "end_s": 2.0, "label": CAMERA_MOTIONS[k % 12]},
                {"start_frame": 2 * fps, "end_frame": nf, "start_s": 2.0, "end_s": float(seconds),
                 "label": CAMERA_MOTIONS[(k + 5) % 12]}],
            "object_motion": {"active_start_frame": 0, "active_end_frame": nf - 1, "direction": DIRECTIONS[k % 11],
                              "distance": DISTANCES[k % 3], "speed": SPEEDS[k % 6]},
        }
        (d / "truth.json").write_text(json.dumps(truth))
        (d / "meta.json").write_text(json.dumps({"clip_id": d.name, "fps": fps, "width": 64, "height": 48,
                                                 "n_frames": nf, "duration_s": float(seconds)}))
    return root


class _Factories:
    dsr = staticmethod(make_dsr)
    dyn = staticmethod(make_dyn)
    vlm4d = staticmethod(make_vlm4d)
    world = staticmethod(make_world)


@pytest.fixture(scope="session")
def world_root(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("world"))


@pytest.fixture
def make():
    """Builders for fixture benchmarks with defects: ``make.dsr(root, missing_video=...)`` etc."""
    return _Factories
