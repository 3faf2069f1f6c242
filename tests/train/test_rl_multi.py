"""Data-parallel 4DRL (`train_rl` under accelerate): disjoint question shares, two real CPU
processes (torchrun + gloo) that end with identical weights and write every file once, and an
exact LoRA resume (adapters + optimiser restored)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from fourdthinker.train.rl import RLConfig, _Schedule, rank_questions

sys.path.insert(0, str(Path(__file__).parent))
from test_rl import make_rl_data  # noqa: E402

WORKER = textwrap.dedent('''
    """One rank of the 2-process test: train_rl on the tiny preset, then write what it saw and a
    hash of its weights to OUT/rank<R>.json."""
    import hashlib, json, os, sys
    import numpy as np
    import torch
    from fourdthinker import models
    from fourdthinker.train.rl import RLConfig, train_rl

    data, out, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rank = int(os.environ["RANK"])

    def digest(model):
        h = hashlib.sha256()
        for n, p in model.named_parameters():
            h.update(n.encode())
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    ad = models.load("qwen2.5-vl-tiny")
    V = ad.model.get_output_embeddings().weight.shape[0]
    seen = []

    def low_ids(completions, completion_ids, is_latent, options, **kw):  # varies at init
        seen.append(sorted({o["A"] for o in options}))  # option A names the record (make_rl_data)
        return [float(np.mean([t < V // 2 for t, lat in zip(ids, la) if not lat] or [0]))
                for ids, la in zip(completion_ids, is_latent)]

    init = digest(ad.model)
    cfg = RLConfig(data=data, out=out, steps=steps, questions_per_step=1, num_generations=2, lr=1e-3,
                   max_new_tokens=6, save_every=1, beta=0.01, samples_per_step=1, max_frames=2, threads=1)
    res = train_rl(cfg, adapter=ad if steps == 2 else None, progress=False,
                   extra_rewards={"low_ids": (low_ids, 1.0)})
    row = {"init": init, "final": digest(ad.model) if steps == 2 else None, "seen": seen,
           "steps": [m["step"] for m in res.metrics], "reward_mean": [m["reward_mean"] for m in res.metrics]}
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(row, f)
''')


def test_rank_questions_are_disjoint_and_single_process_is_unchanged():
    sched = _Schedule(10, seed=3)
    for step in (1, 2, 7):
        assert rank_questions(sched, step, 2) == sched.take((step - 1) * 2, 2)  # world 1: the old schedule
        shares = [rank_questions(sched, step, 2, r, 3) for r in range(3)]
        flat = [i for s in shares for i in s]
        assert all(len(s) == 2 for s in shares) and flat == sched.take((step - 1) * 6, 6)
    # 10 records, 3 x 2 per step: within an epoch no record is trained twice in one step
    assert len(set(sum((rank_questions(sched, 1, 2, r, 3) for r in range(3)), []))) == 6


def _torchrun(script: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_two_cpu_processes_train_in_lockstep(tmp_path):
    """torchrun --nproc_per_node 2 (gloo): both ranks end bit-identical (and moved), each trained on
    its own questions, metrics/samples are written once per step, the final model loads, and a rerun
    with more steps resumes under two processes."""
    from fourdthinker import models

    data = make_rl_data(tmp_path / "data", n=4)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "run"
    proc = _torchrun(script, str(data), str(out), "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["init"] == r1["init"] and r0["final"] == r1["final"], "ranks diverged"
    assert r0["final"] != r0["init"], "the update must move the weights"
    for a, b in zip(r0["seen"], r1["seen"], strict=True):  # one question per rank per step, never the same
        assert len(a) == len(b) == 1 and a != b
    assert r0["steps"] == r1["steps"] == [1, 2]
    assert r0["reward_mean"] == r1["reward_mean"], "logged metrics are the all-rank averages"
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in rows] == [1, 2]
    assert [m["reward_mean"] for m in rows] == r0["reward_mean"]
    assert len((out / "samples.jsonl").read_text().splitlines()) == 2  # samples_per_step 1, main only
    assert json.loads((out / "summary.json").read_text())["num_processes"] == 2
    assert (out / "checkpoints" / "step-1" / "optimizer.pt").exists() and (out / "reward_curve.png").exists()
    final = models.load(str(out / "final"))
    assert sum(p.numel() for p in final.model.parameters()) > 0

    proc = _torchrun(script, str(data), str(out), "3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert json.loads((out / "summary.json").read_text())["resumed_from"] == 2


def test_lora_resume_continues_adapters_and_optimizer(tmp_path):
    """LoRA: 2 steps straight == 1 step, stop, resume 1 step (same merged weights): the checkpoint
    keeps the unmerged trainables and the AdamW state, so nothing restarts."""
    from safetensors.torch import load_file

    from fourdthinker.train.rl import LORA_TRAINABLES, train_rl

    torch.set_num_threads(2)
    data = make_rl_data(tmp_path / "data", n=2)
    base = dict(data=str(data), steps=2, questions_per_step=1, num_generations=2, lr=1e-2, max_new_tokens=6,
                save_every=1, beta=0.0, max_frames=2, lora=True, lora_r=4, lora_alpha=8, samples_per_step=0)
    pos = {"position": (lambda c, completion_ids, **kw: [float(len(i) % 2) + 0.1 * (i[0] if i else 0)
                                                    for i in completion_ids], 1.0)}

    train_rl(RLConfig(**base, out=str(tmp_path / "straight")), progress=False, extra_rewards=pos)
    train_rl(RLConfig(**{**base, "steps": 1}, out=str(tmp_path / "split")), progress=False, extra_rewards=pos)
    assert (tmp_path / "split" / "final" / LORA_TRAINABLES).exists()
    res = train_rl(RLConfig(**base, out=str(tmp_path / "split")), progress=False, extra_rewards=pos)
    assert [m["step"] for m in res.metrics] == [1, 2]
    straight = json.loads((tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()[1])
    assert not straight["update_skipped"] and res.metrics[1]["loss"] == pytest.approx(straight["loss"], abs=1e-6)
    a = load_file(str(tmp_path / "straight" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "split" / "final" / "model.safetensors"))
    moved = load_file(str(tmp_path / "straight" / "checkpoints" / "step-1" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a), "resume did not continue the same LoRA run"
    assert any(not torch.allclose(a[k], moved[k], atol=1e-6) for k in a), "step 2 must move the weights"
