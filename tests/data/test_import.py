"""Import of the official 4DThinker DIFT/RL JSONL (docs/reference.md#data-formats), including a path escaping the root."""

import json

from typer.testing import CliRunner

from fourdthinker.cli import app
from fourdthinker.data.importer import import_dift, import_rl, split_text_input
from fourdthinker.data.records import DiftRecord, RLRecord
from fourdthinker.io import read_jsonl

TEXT_IN = "How does the camera move from 2s to 5s?\n\nA. Pan Left\nB. Pan Right\nC. Move Left\nD. Tilt Up"


def _rows():
    good = {"id": "vid1_0->3", "text_input": TEXT_IN,
            "text_output": "<thinking>I look at the sign <output_image> and again <output_image>; it slides left, so the "
                           "camera pans right.</thinking>\n<answer>B. Pan Right</answer>",
            "image_input": ["data/vid1/frames/frame_0000.jpg", "data/vid1/frames/frame_0001.jpg"],
            "image_output": ["data/vid1/masked/0.jpg", "data/vid1/masked/1.jpg"]}
    escape = dict(good, id="evil", image_output=["../../etc/passwd", "data/x.jpg"])
    mismatch = dict(good, id="vid2_dynamic_speed", image_output=["data/a.jpg"])
    noanswer = dict(good, id="vid3", text_output="<think>no answer</think>")
    return [good, escape, mismatch, noanswer]


def test_split_text_input():
    q, opts = split_text_input(TEXT_IN + "\nFirst, think about ...")
    assert q == "How does the camera move from 2s to 5s?" and opts["B"] == "Pan Right"


def test_import_dift(tmp_path):
    p = tmp_path / "dift_data.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    recs, rej = import_dift(p, tmp_path)
    assert [r["id"] for r in recs] == ["vid1_0->3"]
    r = DiftRecord(**recs[0])
    assert r.answer == "B" and r.answer_text == "Pan Right" and r.task == "camera"
    assert r.reasoning.count("<imagery>") == 2 and r.reasoning.startswith("<think>") and r.reasoning.endswith("<answer>B</answer>")
    assert r.video == "data/vid1/frames" and len(r.frames) == 2
    reasons = {x["id"]: x["reason"] for x in rej}
    assert "escapes dataset root" in reasons["evil"]
    assert "1 <imagery> placeholders but" in reasons["vid2_dynamic_speed"] or "placeholders" in reasons["vid2_dynamic_speed"]
    assert "no <answer>" in reasons["vid3"]


def test_import_rl_and_cli(tmp_path):
    rows = [{"Question": "Which way does the car go?", "A": "left", "B": "right", "C": "up", "D": "down", "Correct": "b",
             "video_path": "videos/car.mp4"},
            {"Question": "q", "A": "1", "B": "2", "C": "3", "D": "4", "Correct": "A", "frame_paths": ["/abs/escape.jpg"]},
            {"Question": "q", "A": "1", "B": "1", "C": "3", "D": "4", "Correct": "A", "video_path": "v.mp4"}]
    root = tmp_path / "release"
    root.mkdir()
    (root / "4drl_data_filtered.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recs, rej = import_rl(root / "4drl_data_filtered.jsonl", root)
    assert len(recs) == 1 and RLRecord(**recs[0]).answer == "B" and len(rej) == 2
    res = CliRunner().invoke(app, ["data", "import", "--root", str(root), "--rl", "4drl_data_filtered.jsonl", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "imported 1, rejected 2" in res.output
    (rec,) = read_jsonl(tmp_path / "rl.jsonl")
    assert rec["video"] == "release/videos/car.mp4", "paths are re-rooted at --out"
    assert len(read_jsonl(tmp_path / "rl_rejects.jsonl")) == 2
    res = CliRunner().invoke(app, ["data", "import", "--root", str(root), "--rl", "4drl_data_filtered.jsonl",
                                   "--out", str(tmp_path / "elsewhere")], env={"COLUMNS": "300"})
    assert res.exit_code != 0 and "must be --root or a folder containing it" in res.output
