"""End to end on a tiny world: build -> records valid -> datasets loads -> audit -> show; resume; bad inputs."""

import json
import shutil

import numpy as np
import pytest

from fourdthinker.data.config import BuildConfig
from fourdthinker.data.records import DiftRecord, RLRecord
from fourdthinker.data.runner import build
from fourdthinker.data.validate import validate_cot
from fourdthinker.io import read_jsonl, resolve_inside


def _files(out):
    return {n: (out / n).read_bytes() for n in ("dift.jsonl", "rl.jsonl", "quarantine.jsonl")}


def test_build_end_to_end(world3, tmp_path):
    out = tmp_path / "d"
    s = build(world3, out, BuildConfig(), workers=1, progress=False)
    assert s.clips_ok == 3 and s.clips_quarantined == 0
    dift, rl = read_jsonl(out / "dift.jsonl"), read_jsonl(out / "rl.jsonl")
    assert len(dift) >= 5 * 3 and len(rl) == len(dift)
    assert {r["task"] for r in dift} == {"camera", "direction", "bbox", "distance", "speed"}
    assert [r["id"] for r in dift] == sorted(r["id"] for r in dift), "deterministic order"
    for r in dift:
        rec = DiftRecord(**r)
        ok, why = validate_cot(rec.reasoning, rec.options, len(rec.imagery), rec.meta["times_s"], expected=rec.answer)
        assert ok, (rec.id, why)
        assert rec.options[rec.answer] == rec.answer_text
        assert rec.window_s == (rec.meta["start_s"], rec.meta["end_s"])  # the seconds the question asks about
        video, imgs = rec.resolve(out)
        assert video.is_file() and all(p.is_file() for p in imgs)
        assert all(resolve_inside(out, f).is_file() for f in rec.frames)
        assert rec.reasoning.index("<imagery>") < rec.reasoning.index("</think>")
    for r, d in zip(rl, dift, strict=True):
        assert RLRecord(**r).window_s == DiftRecord(**d).window_s
    import datasets

    ds = datasets.load_dataset("json", data_files=str(out / "dift.jsonl"), split="train")
    assert len(ds) == len(dift) and ds[0]["reasoning"].startswith("<think>")

    # audit against the world's truth: poses are exact
    from fourdthinker.data.audit import audit

    res = audit(world3, out)
    assert res["camera"].n >= 3 and res["camera"].agreement == 100.0
    assert res["direction"].n == 3

    # show renders a PNG
    from fourdthinker.data.show import find_record, render_record

    rec, root = find_record(out, dift[0]["id"])
    png = render_record(rec, root, tmp_path / "r.png")
    assert png.stat().st_size > 10_000

    # rerun = resume: nothing rebuilt, identical files
    before = _files(out)
    s2 = build(world3, out, BuildConfig(), workers=1, progress=False)
    assert s2.clips_skipped_done == 3 and _files(out) == before
    # other settings into the same folder are refused
    with pytest.raises(RuntimeError, match="other settings"):
        build(world3, out, BuildConfig(seed=1), workers=1, progress=False)


def test_bad_inputs_are_quarantined_and_the_run_goes_on(world_copy, tmp_path):
    clips = sorted(p for p in world_copy.iterdir() if p.is_dir())
    (clips[0] / "video.mp4").write_bytes(b"\x00not a video" * 100)  # corrupt clip
    with np.load(clips[1] / "masks.npz") as z:  # empty masks
        np.savez(clips[1] / "masks.npz", static=np.zeros_like(z["static"]), dynamic=np.zeros_like(z["dynamic"]))
    (clips[2] / "poses.npz").unlink()  # no poses, but --camera-labels poses
    out = tmp_path / "d"
    s = build(world_copy, out, BuildConfig(camera_labels="poses"), workers=1, progress=False)
    q = {r["clip"]: r["reason"] for r in read_jsonl(out / "quarantine.jsonl")}
    assert s.clips_quarantined == 3 and len(q) == 3
    assert "video.mp4" in q[clips[0].name]
    assert "empty masks" in q[clips[1].name]
    assert "no camera poses" in q[clips[2].name]
    # the clip without poses works with frames-based camera labels
    out2 = tmp_path / "d2"
    build(world_copy, out2, BuildConfig(camera_labels="auto"), workers=1, progress=False, limit=None)
    recs = [r for r in read_jsonl(out2 / "dift.jsonl") if r["id"].startswith(clips[2].name)]
    cam = [r for r in recs if r["task"] == "camera"]
    assert cam and all(r["meta"]["label_source"] == "frames" for r in cam)


def test_oracle_naming_a_missing_object_is_refused(world3):
    from fourdthinker.data.pipeline import process_clip
    from fourdthinker.data.sources import open_clip
    from fourdthinker.oracle import Landmark, Landmarks
    from fourdthinker.oracle.rule import RuleOracle
    from fourdthinker.segment import SegmentationError, make_segmenter

    class Hallucinating(RuleOracle):
        def select_landmarks(self, frames, *, clip=None):
            real = super().select_landmarks(frames, clip=clip)
            return Landmarks(real.static, Landmark("purple giraffe", "a purple giraffe dancing"))

    clip = open_clip(sorted(world3.iterdir())[0])
    with pytest.raises(SegmentationError, match="purple giraffe"):
        process_clip(clip, BuildConfig(), Hallucinating(), make_segmenter("gt"))


def test_spatialvid_style_clip(world3, tmp_path):
    """A real-source clip folder: video + poses.npy (w2c, xyzw quaternions) + intrinsics.npy, no truth."""
    from scipy.spatial.transform import Rotation

    from fourdthinker.data import camera as cam
    from fourdthinker.data.sources import open_clip

    src = sorted(world3.iterdir())[0]
    d = tmp_path / "svid" / "clipA"
    d.mkdir(parents=True)
    shutil.copy(src / "video.mp4", d / "video.mp4")
    z = np.load(src / "poses.npz")
    w2c = np.linalg.inv(z["c2w"])
    np.save(d / "poses.npy", np.c_[w2c[:, :3, 3], Rotation.from_matrix(w2c[:, :3, :3]).as_quat()])
    K = z["K"][0]
    np.save(d / "intrinsics.npy", np.array([K[0, 0], K[1, 1], K[0, 2], K[1, 2]]))
    (d / "indexes.txt").write_text("".join(f"{i} {i}\n" for i in range(len(w2c))))
    clip = open_clip(d)
    np.testing.assert_allclose(clip.c2w, z["c2w"], atol=1e-9)
    assert clip.truth is None and clip.K.shape == (len(w2c), 3, 3)
    assert cam.segments_from_poses(clip.c2w) == cam.segments_from_poses(z["c2w"])
    # the offline rule oracle cannot name objects without truth: quarantined with that reason
    out = tmp_path / "d"
    build(tmp_path / "svid", out, BuildConfig(), workers=1, progress=False)
    (row,) = read_jsonl(out / "quarantine.jsonl")
    assert "rule oracle needs the world's truth" in row["reason"]


def test_cli_help():
    from typer.testing import CliRunner

    from fourdthinker.cli import app

    for cmd in (["data", "--help"], ["data", "build", "--help"], ["data", "audit", "--help"], ["data", "import", "--help"]):
        r = CliRunner().invoke(app, cmd)
        assert r.exit_code == 0 and "Usage" in r.output, r.output


def test_summary_json(world3, tmp_path):
    out = tmp_path / "d"
    build(world3, out, BuildConfig(), workers=1, progress=False, limit=1)
    s = json.loads((out / "summary.json").read_text())
    assert s["clips_in"] == 1 and s["records"] >= 5 and set(s["answer_letters"]) <= set("ABCD")


def test_record_path_escaping_the_root_is_refused(tmp_path):
    from fourdthinker.data.show import render_record
    from fourdthinker.io import UnsafePathError

    rec = DiftRecord(id="x", video="clips/x/video.mp4", question="q?", options={"A": "a", "B": "b", "C": "c", "D": "d"},
                     answer="A", reasoning="<think><imagery></think><answer>A</answer>", imagery=["../../etc/passwd"])
    with pytest.raises(UnsafePathError, match="escapes dataset root"):
        rec.resolve(tmp_path)
    with pytest.raises(UnsafePathError, match="escapes dataset root"):
        render_record(rec.model_dump(), tmp_path, tmp_path / "x.png")


def test_an_object_active_for_under_two_seconds_drops_only_its_speed_question(world3, tmp_path, monkeypatch):
    """choose_active may keep just two 1-FPS frames of the object's motion (met 8 times in a 6,000-clip
    build): one speed step, so no speed profile can be judged. That quarantined the whole clip; now
    only the speed question is dropped, with its reason, and the clip's other questions stay."""
    from fourdthinker.data import objects

    monkeypatch.setattr(objects, "choose_active", lambda active, *a, **k: list(active[:2]))
    s = build(world3, tmp_path / "d", BuildConfig(), workers=1, progress=False)
    assert s.clips_ok == 3 and s.clips_quarantined == 0
    assert "speed" not in s.records and s.records["camera"] >= 3 and s.records["direction"] == 3
    assert s.drops["speed: fewer than 2 one-second steps"] + s.drops.get("speed: stationary object", 0) == 3
