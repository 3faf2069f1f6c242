"""Data-parallel `fourdthinker eval`: two real CPU processes (torchrun + gloo) shard the items and the
main process writes the predictions; the result equals a one-process run, and a rerun resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fourdthinker.eval.evaluate import _Processes

WORKER = textwrap.dedent('''
    """`fourdthinker eval ARGS...` in this process (what the console script runs)."""
    import sys
    from fourdthinker.cli import app
    app(sys.argv[1:])
''')


def _eval_args(world_root: Path, out: Path, limit: int) -> list[str]:
    return ["eval", "--model", "tiny=latent:qwen2.5-vl-tiny", "--bench", "synthetic", "--data", str(world_root),
            "--out", str(out), "--limit", str(limit), "--max-new-tokens", "6", "--max-frames", "2",
            "--batch-size", "2", "--no-html"]


def _run(script: Path, args: list[str], nproc: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, str(script), *args] if nproc == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), str(script), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def _preds(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "synthetic" / "tiny" / "predictions.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("latency_s")  # wall time is the only thing that may differ
    return rows


def test_one_process_gathers_its_own_outcomes():
    p = _Processes()
    assert p.main and p.gather({"a": 1}) == [{"a": 1}]
    p.barrier()  # no-op


@pytest.mark.slow  # four short eval runs of the tiny model (two of them as 2 processes): ~2 min on 2 busy cores
def test_two_processes_equal_one_process_and_resume(tmp_path, world_root):
    """Both runs are interrupted after 1 item and resumed to 6 (5 left = 3 batches of 2: the second
    round has one batch, the other process idles), so their batches hold the same items."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    one, two = tmp_path / "one", tmp_path / "two"
    for nproc, out in ((1, one), (2, two)):
        for limit in (1, 6):
            r = _run(script, _eval_args(world_root, out, limit), nproc)
            assert r.returncode == 0, r.stderr[-3000:]
            assert r.stdout.count("wrote ") == 1, "only the main process prints and writes the tables"
    want, got = _preds(one), _preds(two)
    assert len(want) == 6 and len({p["id"] for p in want}) == 6
    assert got == want, "same predictions, in the same file order"
    s1 = json.loads((one / "synthetic" / "tiny" / "summary.json").read_text())
    s2 = json.loads((two / "synthetic" / "tiny" / "summary.json").read_text())
    s1.get("latent_health", {}).pop("latent_norm", None)  # a float sum, gathered in another order
    s2.get("latent_health", {}).pop("latent_norm", None)
    for d in (s1, s2):
        d.get("latent_health", {}).pop("latent_over_embed", None)
        d.pop("latency_s_mean", None)
    assert {k: v for k, v in s1.items() if "latency" not in k} == {k: v for k, v in s2.items() if "latency" not in k}
    assert (one / "synthetic" / "table.md").read_text() == (two / "synthetic" / "table.md").read_text()
    assert not list((two / "synthetic" / "tiny").glob("*rank*")), "one set of files, written by the main process"
