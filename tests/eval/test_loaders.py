"""Loaders on fixture files in each benchmark's public format (see conftest.py for the sources)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from fourdthinker.eval.loaders import (
    DSR_SUBTASKS,
    BenchmarkFormatError,
    load_benchmark,
    load_dsr_bench,
    load_dyn_bench,
    load_vlm4d,
    options_from_list,
)


def test_options_from_list_strips_prefixes_only_when_all_lettered():
    assert options_from_list(["A. x", "B) y", "(C) z", "D: w"]) == {"A": "x", "B": "y", "C": "z", "D": "w"}
    # "A lot" is not a prefix; unlettered lists get letters in order
    assert options_from_list(["A lot", "none", "some", "few"]) == {"A": "A lot", "B": "none", "C": "some", "D": "few"}
    with pytest.raises(ValueError, match="expected 4 options"):
        options_from_list(["A. x", "B. y"])


def test_dsr_bench_13_subtasks(dsr_root):
    res = load_dsr_bench(dsr_root)
    assert len(res.items) == 26 and not res.skipped
    assert {it.subtask for it in res.items} == set(DSR_SUBTASKS.values())
    it = res.items[0]
    assert it.options["A"] == "(1) Become smaller." and it.answer == "A" and it.bench == "dsr-bench"
    assert it.video == "videos/koala_abs_dis_0.mp4" and (dsr_root / it.video).is_file()
    # the parquet file itself is accepted too, and via the registry
    assert len(load_benchmark("dsr-bench", dsr_root / "benchmark.parquet").items) == 26


def test_dsr_missing_video_is_skipped_with_reason(tmp_path, make):
    root = make.dsr(tmp_path, missing_video="koala_rel_dir_1")
    res = load_dsr_bench(root)
    assert len(res.items) == 25
    assert res.skipped == [{"id": "dsr_00015", "reason": res.skipped[0]["reason"]}]
    assert res.skipped[0]["reason"].startswith("missing video: koala_rel_dir_1.mp4")


def test_dsr_answer_not_among_options_is_skipped(tmp_path, make):
    bad = {"videoID": "koala_abs_dis_0", "question": "q?", "options": ["A. a", "B. b", "C. c", "D. d"],
           "answer": "E", "type": "abs_dis", "id": "bad"}
    root = make.dsr(tmp_path, extra_rows=[bad])
    res = load_dsr_bench(root)
    assert len(res.items) == 26
    assert res.skipped[0]["id"] == "bad" and "answer not among options: 'E'" in res.skipped[0]["reason"]


def test_dsr_missing_field_names_file_and_field(tmp_path, make):
    root = make.dsr(tmp_path)
    df = pd.read_parquet(root / "benchmark.parquet").drop(columns=["type"])
    df.to_parquet(root / "benchmark.parquet")
    with pytest.raises(BenchmarkFormatError, match=r"benchmark.parquet row 0: missing field 'type'"):
        load_dsr_bench(root)


def test_dsr_duplicated_id_is_an_error(tmp_path, make):
    root = make.dsr(tmp_path)
    df = pd.read_parquet(root / "benchmark.parquet")
    df["id"] = ["same"] * len(df)
    df.to_parquet(root / "benchmark.parquet")
    with pytest.raises(BenchmarkFormatError, match="duplicated id 'same'"):
        load_dsr_bench(root)


def test_dyn_bench_axes_and_frame_folders(dyn_root):
    res = load_dyn_bench(dyn_root)
    assert len(res.items) == 12 and not res.skipped  # 2 scenes x 3 axes x 2; mask/frame_sampling files ignored
    by = {}
    for it in res.items:
        by.setdefault(it.subtask, []).append(it)
    assert sorted(by) == ["Cam-Obj", "Inter-Obj", "Obj-Scene"]
    assert {it.answer for it in by["Cam-Obj"]} == {"C"}
    it = by["Inter-Obj"][0]
    assert it.video == "frames/davis/car-turn" and it.options == {"A": "toward", "B": "away", "C": "left", "D": "static"}


def test_dyn_bench_missing_frames_skipped(tmp_path, make):
    res = load_dyn_bench(make.dyn(tmp_path, missing_scene="alley"))
    assert len(res.items) == 6 and len(res.skipped) == 6
    assert all(s["reason"].startswith("missing video: no frames") for s in res.skipped)


def test_dyn_bench_missing_field(tmp_path, make):
    root = make.dyn(tmp_path)
    f = root / "multi_json" / "davis" / "car-turn_qa.json"
    f.write_text(json.dumps([{"question": "q", "options": ["a", "b", "c", "d"]}]))
    with pytest.raises(BenchmarkFormatError, match=r"car-turn_qa.json item 0: missing field 'answer'"):
        load_dyn_bench(root)


def test_vlm4d_full_text_answer_to_letter(vlm4d_root):
    res = load_vlm4d(vlm4d_root)
    assert [(it.id, it.answer, it.subtask) for it in res.items] == [
        ("real/validation_160", "B", "real"), ("real/validation_161", "B", "real"), ("synthetic/synthetic_1", "D", "synthetic")]
    assert res.items[0].video == "videos_real/davis/city-ride.mp4"
    assert res.items[2].video == "videos_synthetic/ball.mp4"


def test_vlm4d_answer_not_in_choices(tmp_path, make):
    res = load_vlm4d(make.vlm4d(tmp_path, bad_answer=True))
    assert [s["id"] for s in res.skipped] == ["real/validation_160"]
    assert "answer not among options: 'sideways'" in res.skipped[0]["reason"]


def test_unreachable_hub_id_and_missing_path_give_clear_errors(tmp_path, monkeypatch, make):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BenchmarkFormatError, match="not a local path, and the hub dataset could not be fetched"):
        load_benchmark("dsr-bench", "TencentARC/DSR_Suite-Data")
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        load_benchmark("dyn-bench", str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="unknown benchmark"):
        load_benchmark("mmlu", tmp_path)


def test_vlm4d_duplicated_id(tmp_path, make):
    root = make.vlm4d(tmp_path)
    rows = json.loads((root / "QA" / "real_mc.json").read_text())
    rows[1]["id"] = rows[0]["id"]
    (root / "QA" / "real_mc.json").write_text(json.dumps(rows))
    with pytest.raises(BenchmarkFormatError, match=r"real_mc.json item 1: duplicated id 'real/validation_160'"):
        load_vlm4d(root)
