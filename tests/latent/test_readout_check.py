"""scripts/latent_readout_check.py: the answer span it scores, its refusal of reasoning-trained
models, and the script end to end on a tiny model trained with --response imagery-answer."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fourdthinker.latent.toy import make_toy_dift

SCRIPT = Path(__file__).parents[2] / "scripts" / "latent_readout_check.py"
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}


def _script():
    spec = importlib.util.spec_from_file_location("latent_readout_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_answer_span():
    from fourdthinker.models.testing import tiny

    tok = tiny("qwen2.5-vl-tiny").tokenizer
    text = "<|latent_end|></think><answer>Pan Left</answer><|im_end|>"
    row = tok(text, add_special_tokens=False)["input_ids"]
    a, b = _script().answer_span(tok, row, 0)
    assert tok.decode(row[a:b]) == "Pan Left"
    with pytest.raises(ValueError, match="no <answer>"):
        _script().answer_span(tok, tok("<|latent_end|></think>", add_special_tokens=False)["input_ids"], 0)


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args), "--threads", "1"], capture_output=True,
                          text=True, env=ENV, timeout=600)


def test_end_to_end_and_refusal(tmp_path):
    from fourdthinker.train.dift import DiftConfig, train_dift

    make_toy_dift(tmp_path / "toy", 6, size=56, n_frames=2)
    common = dict(data=str(tmp_path / "toy"), model="qwen2.5-vl-tiny", max_steps=2, lr=1e-3, batch_size=2,
                  max_frames=2, target_cache=str(tmp_path / "lt"), progress=False, health_every=0, save_steps=100)
    train_dift(DiftConfig(out=str(tmp_path / "ans"), response="imagery-answer", imagery_bottleneck=True, **common))
    out = _run("--model", tmp_path / "ans", "--data", tmp_path / "toy", "--target-cache", tmp_path / "lt",
               "--max-frames", "2", "--batch-size", "4")
    assert out.returncode == 0, out.stderr[-2000:]
    lines = dict(ln.split(": ", 1) for ln in out.stdout.splitlines() if ln.startswith("answer_acc["))
    assert set(lines) == {f"answer_acc[{f}]" for f in ("target", "zero", "roll", "self")}
    assert all(0.0 <= float(v) <= 1.0 for v in lines.values())
    assert "| target |" in out.stdout and not list((tmp_path / "toy").glob(".readout_*"))  # temp file removed
    train_dift(DiftConfig(out=str(tmp_path / "full"), **common))
    bad = _run("--model", tmp_path / "full", "--data", tmp_path / "toy")
    assert bad.returncode != 0 and "not trained with --response imagery-answer" in bad.stderr
    assert json.loads((tmp_path / "full" / "config.json").read_text())["dift_response"] == "reasoning"
