"""`fourdthinker infer` end to end on a tiny preset: rich view, --json, batch mode with resume and
quarantine, --explain, and clear one-line errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from fourdthinker.latent.commands import InputError, infer, parse_options, resolve_latent_norm
from fourdthinker.models.inputs import FrameSettings, load_frames

MODEL = "qwen2.5-vl-tiny"


@pytest.fixture(scope="module")
def app():
    a = typer.Typer(add_completion=False)
    a.command()(infer)
    return a


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from PIL import Image

    from fourdthinker.video import write_video

    d = tmp_path_factory.mktemp("infer")
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (140, 240, 3), dtype=np.uint8)
    write_video(d / "clip.mp4", [np.ascontiguousarray(base[10:122, 2 * i : 2 * i + 160]) for i in range(30)], fps=10)
    (d / "bad.mp4").write_bytes(b"this is not a video")
    (d / "bank").mkdir()
    for i in range(4):
        a = np.full((112, 112, 3), 200, np.uint8)
        a[10 + 20 * i : 40 + 20 * i, 30:60] = (255, 0, 0)
        Image.fromarray(a).save(d / "bank" / f"ov_{i}.png")
    return d


def _run(app, args):
    return CliRunner().invoke(app, ["--model", MODEL, *args])


OPTS = ["-o", "Pan Left|Pan Right|Tilt Up|Tilt Down"]


def test_parse_options_forms():
    assert parse_options(None) is None
    four = {"A": "w", "B": "x", "C": "y", "D": "z"}
    assert parse_options(["w", "x", "y", "z"]) == four
    assert parse_options(["w|x|y|z"]) == four
    assert parse_options(["A=w", "B. x", "C) y", "D: z"]) == four
    for bad, msg in ((["a", "b"], "exactly 4"), (["A=w", "C=x", "B=y", "D=z"], "A, B, C, D in order"),
                     (["w", "w", "y", "z"], "distinct"), (["A=w", "B=x", "C=y", "E=z"], "A, B, C, D")):
        with pytest.raises(InputError, match=msg):
            parse_options(bad)


def test_load_frames_errors(files, tmp_path):
    """infer reads a user-given path (root=None) through the one input builder."""
    assert len(load_frames(None, files / "clip.mp4", settings=FrameSettings(fps=1.0))) == 3  # a 3 s clip at 1 FPS
    with pytest.raises(InputError, match="video not found"):
        load_frames(None, files / "missing.mp4")
    with pytest.raises(InputError, match="bad.mp4"):
        load_frames(None, files / "bad.mp4")
    with pytest.raises(InputError, match="no video.mp4 and no frame images"):
        load_frames(None, tmp_path)
    assert len(load_frames(None, files / "bank", settings=FrameSettings(max_frames=3))) == 3  # a folder of frame images


def test_resolve_latent_norm():
    assert resolve_latent_norm("none", None) == 0.0  # 0 = never rescale
    assert resolve_latent_norm("auto", None) is None  # None = the model's own setting
    assert resolve_latent_norm("12.5", None) == 12.5
    with pytest.raises(InputError, match="expected none, match or a number"):
        resolve_latent_norm("big", None)
    with pytest.raises(InputError, match="latent_target_norm"):
        resolve_latent_norm("match", None)


@pytest.mark.parametrize(
    ("args", "msg"),
    [
        (["--video", "{d}/bad.mp4", "-q", "What?"], "bad.mp4"),
        (["--video", "{d}/missing.mp4", "-q", "What?"], "missing.mp4: video not found"),
        (["--video", "{d}/clip.mp4", "-q", "   "], "the question is empty"),
        (["--video", "{d}/clip.mp4", "-q", "What?", "-o", "a", "-o", "b"], "exactly 4 options"),
        (["--video", "{d}/clip.mp4", "-q", "What?", "--latents", "bogus"], "unknown latent intervention"),
        (["--video", "{d}/clip.mp4", "-q", "What?", "--explain", "{d}/x"], "--explain needs --bank"),
        (["--batch", "{d}/none.jsonl", "--out", "{d}/p.jsonl"], "batch file not found"),
    ],
)
def test_bad_input_one_line_error(app, files, args, msg):
    res = _run(app, [a.format(d=files) for a in args])
    assert res.exit_code == 2, res.output
    assert msg in res.output and "Traceback" not in res.output
    assert res.output.strip().startswith("error:")


def test_model_without_latent_tokens_is_refused(app, files):
    from fourdthinker.models import preset_dir

    res = CliRunner().invoke(app, ["--model", str(preset_dir(MODEL)), "--video", str(files / "clip.mp4"), "-q", "What?"])
    assert res.exit_code == 2 and "has no latent tokens" in res.output and "--add-latent-tokens" in res.output


def test_infer_json_and_explain(app, files, tmp_path):
    out = tmp_path / "exp"
    res = _run(app, ["--video", str(files / "clip.mp4"), "-q", "What is the camera movement?", *OPTS, "--json",
                     "--max-new-tokens", "14", "--force-imagery", "1", "--explain", str(out), "--bank", str(files / "bank"),
                     "--latent-norm", "match"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert info["n_latent_blocks"] == 1 and info["n_latent_steps"] == 4 and "<imagery:4>" in info["text"]
    assert info["latent_norm"] > 0 and info["options"]["B"] == "Pan Right"
    blocks = info["explain"]["blocks"]
    assert len(blocks) == 1 and len(blocks[0]) == 3 and all(-1 <= b["cosine"] <= 1 for b in blocks[0])
    assert (out / "explain.png").stat().st_size > 0 and "what the model imagined" in (out / "explain.html").read_text().lower()


def test_infer_rich_view(app, files):
    res = _run(app, ["--video", str(files / "clip.mp4"), "-q", "What is the camera movement?", *OPTS,
                     "--max-new-tokens", "10", "--force-imagery", "2"])
    assert res.exit_code == 0, res.output
    assert "question" in res.output and "Pan Right" in res.output and "imagery:4 latent steps" in res.output
    assert "latent blocks / steps" in res.output


def test_batch_mode_resumes_and_quarantines(app, files, tmp_path):
    rows = [
        {"id": "ok1", "video": str(files / "clip.mp4"), "question": "What is the camera movement?",
         "options": {"A": "Pan Left", "B": "Pan Right", "C": "Tilt Up", "D": "Tilt Down"}, "answer": "A"},
        {"id": "badvid", "video": str(files / "bad.mp4"), "question": "What?", "options": ["a", "b", "c", "d"]},
        {"id": "noq", "video": str(files / "clip.mp4"), "question": " ", "options": ["a", "b", "c", "d"]},
        {"id": "ok2", "video": "clip.mp4", "question": "Where does it go?", "options": ["Left", "Right", "Up", "Down"]},
    ]
    (files / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "preds.jsonl"
    args = ["--batch", str(files / "b.jsonl"), "--out", str(out), "--max-new-tokens", "6", "--batch-size", "2"]
    res = _run(app, args)
    assert res.exit_code == 0, res.output
    preds = [json.loads(x) for x in out.read_text().splitlines()]
    assert [p["id"] for p in preds] == ["ok1", "ok2"]
    assert {"raw_output", "parsed_answer", "correct", "latency_s", "n_latent_steps"} <= set(preds[0])
    quarantine = [json.loads(x) for x in (tmp_path / "preds.jsonl.quarantine.jsonl").read_text().splitlines()]
    assert {q["id"] for q in quarantine} == {"badvid", "noq"} and all(q["reason"] for q in quarantine)
    res = _run(app, args)  # rerun: nothing new to answer
    assert res.exit_code == 0 and "2 already done" in res.output
    assert len(out.read_text().splitlines()) == 2


def test_infer_json_reports_latent_health(app, files):
    """--json carries decode_health of the fed-back vectors; with --latent-norm 5 each has norm 5."""
    res = _run(app, ["--video", str(files / "clip.mp4"), "-q", "What is the camera movement?", *OPTS, "--json",
                     "--max-new-tokens", "8", "--force-imagery", "1", "--latent-norm", "5"])
    assert res.exit_code == 0, res.output
    h = json.loads(res.stdout.strip().splitlines()[-1])["latent_health"]
    assert h["n_latent"] == 4 and h["latent_norm"] == pytest.approx(5.0, rel=1e-4)
    assert h["embed_norm"] > 0 and h["latent_over_embed"] == pytest.approx(h["latent_norm"] / h["embed_norm"])
    assert "latent health: 4 fed-back vectors" in res.stderr  # the line goes to stderr, stdout stays JSON


def test_infer_warns_when_latent_norms_diverge(app, files):
    args = ["--video", str(files / "clip.mp4"), "-q", "What?", *OPTS, "--max-new-tokens", "7", "--force-imagery", "1"]
    res = _run(app, [*args, "--latent-norm", "1e4"])  # fed vectors far larger than any token embedding
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("latent health:"))
    assert "mean norm 1e+04" in line and "ratio" in line
    assert "warning:" in res.output and "outside [1/4, 4]" in res.output
    res = _run(app, [*args, "--latents", "zero"])  # a deliberate intervention: reported, not warned about
    assert res.exit_code == 0, res.output
    assert "mean norm 0 " in res.output and "(--latents zero)" in res.output and "warning:" not in res.output
