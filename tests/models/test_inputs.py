"""The one input builder (models/inputs.py): DIFT sample building, 4DRL prompt building, `infer` and the
eval runner give the SAME input_ids and pixel_values_videos for one record and the same settings.

Each path is run through its real entry point (``train.collate.build_sample``, ``train.rl.train_rl``,
the ``infer`` CLI, ``LatentModelRunner.generate``); the three decoding paths are stopped at their
first ``latent_generate`` call, which is where the prompt batch is captured."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from fourdthinker.models.inputs import (
    FrameSettings,
    MissingMediaError,
    build_prompt_batch,
    cap_frame,
    load_frames,
    record_frames,
    record_inputs,
    spread,
    trained_span,
)
from fourdthinker.models.testing import tiny

QUESTION = "What is the camera movement from 0s to 4s?"
OPTIONS = {"A": "Pan Left", "B": "Pan Right", "C": "Tilt Up", "D": "Tilt Down"}
# frames of 96x128 = 12,288 px, capped at 64*64 = 4,096: the pixel cap is exercised; 6 s at 1 FPS, cap 4
SETTINGS = FrameSettings(fps=1.0, max_frames=4, max_pixels=64 * 64)


class Captured(Exception):
    """Raised by the latent_generate stand-in once it has the prompt batch."""


def _clip(root, kind: str) -> str:
    """A 6-frame clip under ``root``: a video file (``video``) or a folder of frame PNGs (``folder``)."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(6)]
    d = root / "clips" / "c0"
    d.mkdir(parents=True)
    if kind == "video":
        from fourdthinker.video.write import write_video

        write_video(d / "video.mp4", frames, fps=1.0, gop=1)
        return "clips/c0/video.mp4"
    for i, f in enumerate(frames):
        Image.fromarray(f).save(d / f"{i:03d}.png")
    return "clips/c0"


@pytest.fixture
def capture(monkeypatch):
    """Stand-in for latent_generate that records the batch and stops the caller."""
    import fourdthinker.latent.decode as dec

    seen = []

    def fake(adapter, batch, **kw):
        seen.append({k: v.detach().clone() for k, v in batch.items() if torch.is_tensor(v)})
        raise Captured()

    monkeypatch.setattr(dec, "latent_generate", fake)
    return seen


def _same(a: dict, b: dict, what: str):
    ids_a, ids_b = a["input_ids"].cpu(), b["input_ids"].cpu()
    assert ids_a.shape == ids_b.shape and torch.equal(ids_a, ids_b), f"{what}: input_ids differ"
    pa, pb = a["pixel_values_videos"].cpu().float(), b["pixel_values_videos"].cpu().float()
    assert pa.shape == pb.shape and torch.equal(pa, pb), f"{what}: pixel_values_videos differ"
    assert torch.equal(a["video_grid_thw"].cpu(), b["video_grid_thw"].cpu()), f"{what}: video_grid_thw differ"


@pytest.mark.parametrize("kind", ["video", "folder"])
def test_four_paths_give_identical_inputs(tmp_path, capture, kind):
    from typer.testing import CliRunner

    from fourdthinker.cli import app
    from fourdthinker.data.records import BenchItem, DiftRecord, RLRecord
    from fourdthinker.eval.runners.model import LatentModelRunner
    from fourdthinker.train.collate import build_sample
    from fourdthinker.train.rl import RLConfig, train_rl

    ad = tiny("qwen2.5-vl-tiny")
    video = _clip(tmp_path, kind)
    common = dict(id="r0", video=video, question=QUESTION, options=OPTIONS, answer="B")
    # the reference batch: the builder itself
    ref = build_prompt_batch(ad, [RLRecord(**common)], tmp_path, SETTINGS)
    n_frames = len(record_inputs(RLRecord(**common), tmp_path, SETTINGS).frames)
    assert n_frames == 4 and int(ref["video_grid_thw"][0, 0]) == 2, "6 frames capped at 4 -> 2 temporal patches"
    h, w = (int(x) * 14 for x in ref["video_grid_thw"][0, 1:])
    assert h * w <= 64 * 64 + 28 * 28 * 4, "the pixel cap reached the processor"

    # 1. DIFT: build_sample's prompt part (cot mode: no imagery images needed)
    drec = DiftRecord(**common, reasoning="<think>the camera pans</think><answer>B</answer>", imagery=[])
    s = build_sample(ad, drec, tmp_path, mode="cot", fps=SETTINGS.fps, max_frames=SETTINGS.max_frames,
                     max_pixels=SETTINGS.max_pixels)
    L = s.meta["prompt_len"]
    _same({**s.enc, "input_ids": s.enc["input_ids"][:, :L]}, ref, "DIFT")

    # 2. 4DRL: train_rl's first rollout batch (one question, G=2)
    (tmp_path / "rl.jsonl").write_text(json.dumps({**common, "task": "camera"}) + "\n")
    cfg = RLConfig(data=str(tmp_path / "rl.jsonl"), out=str(tmp_path / "rl_out"), steps=1, questions_per_step=1,
                   num_generations=2, max_new_tokens=4, save_every=0, beta=0.0, samples_per_step=0, probe_questions=0,
                   fps=SETTINGS.fps, max_frames=SETTINGS.max_frames, max_pixels=SETTINGS.max_pixels, threads=1)
    with pytest.raises(Captured):  # prefix sharing (default): the question's prompt once, expanded to G rows
        train_rl(cfg, adapter=ad, progress=False)
    _same(capture[-1], ref, "4DRL")
    cfg.prefix_sharing, cfg.out = False, str(tmp_path / "rl_out_unshared")
    with pytest.raises(Captured):  # without sharing: the prompt G times
        train_rl(cfg, adapter=ad, progress=False)
    _same(capture[-1], build_prompt_batch(ad, [RLRecord(**common)] * 2, tmp_path, SETTINGS), "4DRL (unshared)")

    # 3. infer (CLI, user-given path)
    res = CliRunner().invoke(app, ["infer", "--model", "qwen2.5-vl-tiny", "--video", str(tmp_path / video),
                                   "-q", QUESTION, "-o", "|".join(OPTIONS.values()), "--fps", "1",
                                   "--max-frames", str(SETTINGS.max_frames), "--max-pixels", str(SETTINGS.max_pixels)])
    assert isinstance(res.exception, Captured), res.output
    _same(capture[-1], ref, "infer")

    # 4. eval: the latent model runner on a benchmark item
    item = BenchItem(**common, subtask="camera", bench="synthetic")
    runner = LatentModelRunner("tiny", adapter=ad, fps=SETTINGS.fps, max_frames=SETTINGS.max_frames,
                               max_pixels=SETTINGS.max_pixels)
    with pytest.raises(Captured):
        runner.generate([item], tmp_path, seed=0, do_sample=False)
    _same(capture[-1], ref, "eval")


def test_builder_caps_and_errors(tmp_path):
    frame = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    capped = cap_frame(frame, 64 * 64)
    assert capped.shape == (55, 73, 3) and capped.shape[0] * capped.shape[1] <= 64 * 64  # aspect kept
    assert cap_frame(frame, None) is frame and cap_frame(frame, 10**6) is frame  # never upscaled
    assert spread(list(range(10)), 4) == [0, 3, 6, 9] and spread([1, 2], 4) == [1, 2]
    with pytest.raises(MissingMediaError, match="video not found"):
        load_frames(tmp_path, "nope.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingMediaError, match="no frame images"):
        load_frames(tmp_path, "empty")
    with pytest.raises(ValueError, match="escapes dataset root"):
        load_frames(tmp_path, "../outside.mp4")
    with pytest.raises(ValueError, match="max_frames"):
        FrameSettings(max_frames=0)


def test_frame_span_window_takes_the_asked_seconds_only(tmp_path):
    """span="window": a record's frames come from its window_s only -- listed frames by their time
    (k / frames_fps), a frame folder by k / fps, a video sampled from the window's start; span="video"
    (the default) and a record without window_s keep the whole video."""
    from fourdthinker.records import BenchItem, DiftRecord

    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (32, 48, 3), dtype=np.uint8) for _ in range(6)]  # t = 0..5 s at 1 FPS
    (tmp_path / "f").mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / "f" / f"{i:03d}.png")
    from fourdthinker.video.write import write_video

    write_video(tmp_path / "v.mp4", frames, fps=1.0, gop=1)
    win = FrameSettings(fps=1.0, max_frames=8, max_pixels=None, span="window")
    listed = [f"f/{i:03d}.png" for i in range(6)]
    rec = DiftRecord(id="r", video="v.mp4", frames=listed, frames_fps=1.0, question="q", options=OPTIONS, answer="A",
                     reasoning="<answer>A</answer>", imagery=[], window_s=(2.0, 4.0))
    got = record_frames(rec, tmp_path, win)
    assert len(got) == 3 and all(np.array_equal(g, frames[i]) for g, i in zip(got, (2, 3, 4), strict=True))
    assert len(record_frames(rec, tmp_path, FrameSettings(max_frames=8, max_pixels=None))) == 6  # span video
    half = rec.model_copy(update={"frames_fps": 2.0})  # listed at 2 FPS: frame k at k / 2 s -> k = 4, 5 in [2, 4]
    assert [g.tobytes() for g in record_frames(half, tmp_path, win)] == [frames[4].tobytes(), frames[5].tobytes()]
    item = BenchItem(id="b", video="f", question="q", options=OPTIONS, answer="A", subtask="camera", bench="synthetic",
                     window_s=(1.0, 2.0))
    assert [g.tobytes() for g in record_frames(item, tmp_path, win)] == [frames[1].tobytes(), frames[2].tobytes()]
    vid = item.model_copy(update={"video": "v.mp4", "window_s": (3.0, 5.0)})
    assert len(record_frames(vid, tmp_path, win)) == 3  # decoded: t = 3, 4, 5 (lossy codec: not byte-equal)
    assert len(record_frames(item.model_copy(update={"window_s": None}), tmp_path, win)) == 6
    with pytest.raises(ValueError, match="no frame in the window"):
        load_frames(tmp_path, "f", settings=win, window=(1.2, 1.8))
    with pytest.raises(ValueError, match="span must be one of"):
        FrameSettings(span="segment")
    with pytest.raises(ValueError, match="0 <= start < end"):
        BenchItem(id="b", video="f", question="q", options=OPTIONS, answer="A", subtask="camera", bench="s",
                  window_s=(3.0, 1.0))


def test_trained_span_reads_the_model_config(tmp_path):
    assert trained_span("qwen2.5-vl-tiny") == "video"  # a preset / hub name: no folder
    (tmp_path / "config.json").write_text(json.dumps({"frame_span": "window"}))
    assert trained_span(tmp_path) == "window"
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    assert trained_span(tmp_path) == "video"
