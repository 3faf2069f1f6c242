"""scripts/latent_readout_check.py: its refusal of reasoning-trained models, and the script end to
end on a tiny model trained with --response imagery-answer (the check itself: tests/train/test_readout.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fourdthinker.latent.toy import make_toy_dift

SCRIPT = Path(__file__).parents[2] / "scripts" / "latent_readout_check.py"
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}


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
