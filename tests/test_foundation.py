"""Shared foundation: labels, atomic IO, safe paths, record contracts, CLI help."""

import json

import pytest
from typer.testing import CliRunner

from fourdthinker.cli import app
from fourdthinker.data.records import DiftRecord, RLRecord, build_question_text
from fourdthinker.io import UnsafePathError, append_jsonl, atomic_write_json, read_jsonl, resolve_inside
from fourdthinker.labels import ALL_LABELS, CAMERA_MOTIONS, DIRECTIONS, DISTANCES, OPPOSITE, SPEEDS


def test_label_vocabularies():
    assert (len(CAMERA_MOTIONS), len(DIRECTIONS), len(DISTANCES), len(SPEEDS)) == (12, 11, 3, 6)
    assert len(ALL_LABELS) == 32
    for a, b in OPPOSITE.items():
        assert OPPOSITE[b] == a, (a, b)


def test_atomic_json_and_jsonl(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp files left behind"
    p = tmp_path / "p.jsonl"
    append_jsonl(p, {"id": "1"})
    append_jsonl(p, {"id": "2"})
    with open(p, "a") as f:
        f.write('{"id": "3", "trunc')  # what a killed appender leaves
    assert [r["id"] for r in read_jsonl(p, tolerate_truncated_tail=True)] == ["1", "2"]
    with pytest.raises(ValueError, match=r"p.jsonl:3"):
        read_jsonl(p)


def test_resolve_inside(tmp_path):
    assert resolve_inside(tmp_path, "a/b.png") == (tmp_path / "a/b.png").resolve()
    for bad in ("../x.png", "/etc/passwd", "a/../../x"):
        with pytest.raises(UnsafePathError, match="escapes"):
            resolve_inside(tmp_path, bad)


OPTS = {"A": "Pan Left", "B": "Pan Right", "C": "Move Left", "D": "Tilt Up"}


def test_records_validate():
    r = DiftRecord(id="c0_cam0", video="c0", question="How does the camera move?", options=OPTS, answer="B",
                   task="camera", reasoning="<think>a <imagery> b <imagery></think><answer>B</answer>",
                   imagery=["img/0.png", "img/1.png"])
    assert r.answer == "B"
    with pytest.raises(ValueError, match="2 <imagery> placeholders but 1"):
        DiftRecord(**{**r.model_dump(), "imagery": ["img/0.png"]})
    with pytest.raises(ValueError, match="answer must be one of"):
        RLRecord(id="x", video="c0", question="q", options=OPTS, answer="E")
    with pytest.raises(ValueError, match="keys A, B, C, D"):
        RLRecord(id="x", video="c0", question="q", options={"A": "x", "B": "y"}, answer="A")
    text = build_question_text("Q?", OPTS)
    assert text.startswith("Q?\n\nA. Pan Left\nB. Pan Right\nC. Move Left\nD. Tilt Up\n")
    assert "<think>...</think>" in text


def test_cli_help_lists_every_stage():
    res = CliRunner().invoke(app, ["--help"])
    assert res.exit_code == 0, res.output
    for cmd in ("world", "video", "data", "train", "infer", "eval", "probe", "demo", "ablate"):
        assert cmd in res.output
