"""Kill test: SIGKILL the build mid-run, rerun, and get byte-identical output to an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

from fourdthinker.data.config import BuildConfig
from fourdthinker.data.runner import build


def test_sigkill_then_resume_is_identical(world3, tmp_path):
    clean = tmp_path / "clean"
    build(world3, clean, BuildConfig(), workers=1, progress=False)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "fourdthinker.cli", "data", "build", "--videos", str(world3), "--out", str(out), "--workers", "1"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120

    def n_done() -> int:
        return len(list((out / "clips").glob("*/done.json"))) if (out / "clips").exists() else 0

    while time.time() < deadline and n_done() == 0:
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)  # mid-run: at least one clip done, the next one in flight
    p.wait()
    assert 1 <= n_done() < 3, f"kill landed at a bad moment ({n_done()} clips done)"
    assert not (out / "dift.jsonl").exists()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    for name in ("dift.jsonl", "rl.jsonl", "quarantine.jsonl"):
        assert (out / name).read_bytes() == (clean / name).read_bytes(), name
    imgs = sorted(p.relative_to(out) for p in (out / "clips").rglob("*.png"))
    assert imgs == sorted(p.relative_to(clean) for p in (clean / "clips").rglob("*.png"))
    assert not (out / ".tmp").exists()
