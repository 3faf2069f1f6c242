"""`train rl --deepspeed` (ZeRO-2) on CPU, one process: the engine's step equals the plain step,
weights move, the final model loads; ZeRO-3 is refused."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("deepspeed")

from test_rl import make_rl_data  # noqa: E402

from fourdthinker.train.rl import RLConfig, deepspeed_config, train_rl  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def _process_group():
    """The one-process group DeepSpeed sets up lives for the module (DeepSpeed caches it), then goes."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    import deepspeed.comm.comm as ds_comm

    ds_comm.cdb = None


@pytest.fixture
def one_process_env(monkeypatch, _process_group):
    """What `accelerate launch --num_processes 1` / `deepspeed` set for a single CPU process; the
    accelerate singleton state is reset before and after."""
    for k, v in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                 "MASTER_PORT": str(_free_port())}.items():
        monkeypatch.setenv(k, v)
    saved = dict(os.environ)  # accelerate's DeepSpeedPlugin sets ACCELERATE_* variables itself
    _reset_accelerate()
    yield
    _reset_accelerate()
    os.environ.clear()
    os.environ.update(saved)


def _reset_accelerate():  # accelerate keeps one state per process
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def _ds_json(tmp_path, stage: int):
    cfg = json.loads(Path("configs/ds_zero2.json").read_text())
    cfg["zero_optimization"]["stage"] = stage
    p = tmp_path / f"ds_zero{stage}.json"
    p.write_text(json.dumps(cfg))
    return p


def test_deepspeed_config_fills_auto_and_refuses_zero3(tmp_path):
    ds = deepspeed_config("configs/ds_zero2.json", max_grad_norm=0.5)
    assert ds["gradient_clipping"] == 0.5 and ds["train_micro_batch_size_per_gpu"] == 1
    assert ds["train_batch_size"] == 1 and ds["bf16"]["enabled"] is False and ds["fp16"]["enabled"] is False
    with pytest.raises(NotImplementedError, match="ZeRO-3"):
        deepspeed_config("configs/ds_zero3.json", max_grad_norm=1.0)
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ValueError, match="bad.json"):
        deepspeed_config(bad, 1.0)


def test_rl_zero2_step_matches_plain_step(tmp_path, one_process_env):
    """fp32, one process, same data/seed/lr: step 1 under ZeRO-2 (replay through the inner model,
    gradients reduced + clipped + stepped by the engine) equals the plain AdamW step; 2 steps finish,
    weights move and the final model loads."""
    from fourdthinker import models

    torch.set_num_threads(2)
    data = make_rl_data(tmp_path / "data", n=2)

    def low_ids(completions, completion_ids, is_latent, **kw):  # varies at init -> a non-zero gradient
        return [float(np.mean([t < 100 for t, lat in zip(ids, la, strict=True) if not lat] or [0]))
                for ids, la in zip(completion_ids, is_latent, strict=True)]

    common = dict(data=str(data), steps=1, questions_per_step=1, num_generations=3, lr=1e-3, max_new_tokens=8,
                  beta=0.01, samples_per_step=1, max_frames=2, save_every=1, max_grad_norm=1.0)
    plain = models.load("qwen2.5-vl-tiny")
    init = {n: p.detach().clone() for n, p in plain.model.named_parameters()}
    train_rl(RLConfig(out=str(tmp_path / "plain"), **common), adapter=plain, progress=False,
             extra_rewards={"low_ids": (low_ids, 1.0)})
    ref_step1 = {n: p.detach().clone() for n, p in plain.model.named_parameters()}
    del plain
    _reset_accelerate()  # the plain run's accelerate singleton would otherwise be reused

    ds_adapter = models.load("qwen2.5-vl-tiny")
    assert all(torch.equal(p, init[n]) for n, p in ds_adapter.model.named_parameters()), "same init"
    cfg = RLConfig(out=str(tmp_path / "ds"), **{**common, "steps": 2}, deepspeed=str(_ds_json(tmp_path, 2)))
    res = train_rl(cfg, adapter=ds_adapter, progress=False, extra_rewards={"low_ids": (low_ids, 1.0)})
    assert [m["step"] for m in res.metrics] == [1, 2]
    assert all(np.isfinite(m["loss"]) and m["grad_norm"] > 0 for m in res.metrics)

    from safetensors import safe_open

    ck = tmp_path / "ds" / "checkpoints" / "step-1"
    with safe_open(str(ck / "model.safetensors"), "pt") as f, \
            safe_open(str(tmp_path / "plain" / "final" / "model.safetensors"), "pt") as g:
        assert sorted(f.keys()) == sorted(g.keys()), "the engine's flat buffers must not drop saved tensors"
    step1 = {n: p.detach() for n, p in models.load(str(ck)).model.named_parameters()}
    moved = [n for n, p in ref_step1.items() if not torch.equal(p, init[n])]
    assert moved, "the plain step must move weights"
    for n in ref_step1:
        assert torch.allclose(step1[n], ref_step1[n], atol=1e-5, rtol=0), n

    final = models.load(str(res.final_dir))
    now = dict(ds_adapter.model.named_parameters())
    assert any(not torch.equal(now[n], init[n]) for n in moved)
    fin = dict(final.model.named_parameters())
    for n in now:
        assert torch.equal(fin[n].detach(), now[n].detach()), n
    assert not (res.final_dir / "optimizer.pt").exists()
    summary = json.loads((tmp_path / "ds" / "summary.json").read_text())
    assert summary["deepspeed"]["zero_stage"] == 2, "the run must have gone through the DeepSpeed engine"


def test_rl_zero2_zero_advantage_step(tmp_path, one_process_env):
    """A constant reward and beta 0: the no-signal path backs a zero loss through the engine (which
    steps on zero gradients); with no decay the weights stay bit-identical, as without DeepSpeed."""
    from fourdthinker import models

    torch.set_num_threads(2)
    data = make_rl_data(tmp_path / "data", n=2)
    adapter = models.load("qwen2.5-vl-tiny")
    before = {n: p.detach().clone() for n, p in adapter.model.named_parameters()}
    cfg = RLConfig(data=str(data), out=str(tmp_path / "run"), steps=2, questions_per_step=1, num_generations=2,
                   lr=1e-2, max_new_tokens=6, save_every=0, beta=0.0, max_frames=2, acc_weight=0.0, fmt_weight=0.0,
                   deepspeed=str(_ds_json(tmp_path, 1)))
    res = train_rl(cfg, adapter=adapter, progress=False, extra_rewards={"const": (lambda c, **kw: [1.0] * len(c), 1.0)})
    assert all(m["update_skipped"] and m["loss"] == 0.0 for m in res.metrics)
    assert all(torch.equal(p, before[n]) for n, p in adapter.model.named_parameters())
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["deepspeed"]["zero_stage"] == 1


def test_rl_zero3_is_refused(tmp_path, one_process_env):
    data = make_rl_data(tmp_path / "data", n=2)
    with pytest.raises(NotImplementedError, match="ZeRO-3"):
        train_rl(RLConfig(data=str(data), out=str(tmp_path / "z3"), steps=1, deepspeed=str(_ds_json(tmp_path, 3))),
                 progress=False)
