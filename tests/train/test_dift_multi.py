"""Multi-process DIFT: gradients are synchronised across ranks.

Two real CPU processes (torchrun, gloo). The quick test checks one DDP backward: every rank ends
with the mean of the per-rank gradients (what one process computes over the same two samples),
and the bare-model forward, which DDP does not see, leaves them unsynchronised. The slow tests run
``train_dift`` end to end under plain DDP and under DeepSpeed ZeRO-2: both ranks end with identical
weights, equal to one process with the same global batch (batch 1 x accumulation 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from fourdthinker.latent.toy import make_toy_dift

GRAD_WORKER = textwrap.dedent('''
    """One rank: DDP-wrap the tiny model, backward one DIFT sample (rank r takes sample r) through
    the wrapper, then through the bare model; save both gradients."""
    import os, sys
    import torch
    import torch.distributed as dist
    from safetensors.torch import save_file
    from fourdthinker.latent.targets import LatentTargetCache
    from fourdthinker.models import load
    from fourdthinker.train.collate import DiftCollator, DiftDataset
    from fourdthinker.train.dift import DiftConfig, dift_forward, through_wrapper

    data, cache, out = sys.argv[1:4]
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    ad = load("qwen2.5-vl-tiny")
    ad.freeze_visual()
    ds = DiftDataset(data, ad, k=4, targets=LatentTargetCache(ad, 4, cache), progress=False, max_frames=2)
    batch = DiftCollator(ad.pad_id)([ds[rank]])
    ad.model.train()
    ddp = torch.nn.parallel.DistributedDataParallel(ad.model, find_unused_parameters=True)
    grads = {}
    for tag, view in (("ddp", through_wrapper(ad, ddp)), ("bare", ad)):
        ad.model.zero_grad(set_to_none=True)
        loss, _, _ = dift_forward(view, batch, DiftConfig())
        loss.backward()
        grads.update({f"{tag}.{n}": p.grad.detach().clone() for n, p in ad.model.named_parameters()
                      if p.grad is not None})
    save_file(grads, os.path.join(out, f"grads{rank}.safetensors"))
    dist.destroy_process_group()
''')

TRAIN_WORKER = textwrap.dedent('''
    """One rank of train_dift (3 steps, batch 1, accumulation argv[3], optional DeepSpeed JSON argv[4]);
    saves its trainable weights and its loss log."""
    import json, os, sys
    import torch
    from safetensors.torch import save_file
    from fourdthinker.train.dift import DiftConfig, train_dift

    data, out, accum = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(1)
    cfg = DiftConfig(data=data, out=out, model="qwen2.5-vl-tiny", max_steps=3, batch_size=1, grad_accum=accum,
                     lr=2e-3, warmup_steps=1, save_steps=100, progress=False, max_frames=2, health_heldout=0,
                     target_cache=os.path.join(os.path.dirname(out), "lt"),
                     deepspeed=sys.argv[4] if len(sys.argv) > 4 else None)
    res = train_dift(cfg)
    rank = int(os.environ.get("RANK", "0"))
    save_file({n: p.detach().contiguous().clone() for n, p in res.adapter.model.named_parameters() if p.requires_grad},
              os.path.join(out, f"rank{rank}.safetensors"))
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump([r["loss"] for r in res.losses], f)
''')


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy")
    make_toy_dift(d, 4, size=56, n_frames=2)
    return d


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "CUDA_VISIBLE_DEVICES": ""}


def _run(script: Path, *args: str, nproc: int | None = 2, timeout: int = 600) -> None:
    head = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)] if nproc else [sys.executable]
    proc = subprocess.run([*head, str(script), *map(str, args)], env=_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_ddp_backward_through_wrapper_syncs_gradients(toy, tmp_path):
    from safetensors.torch import load_file

    from fourdthinker.latent.targets import LatentTargetCache
    from fourdthinker.models import load
    from fourdthinker.train.collate import DiftCollator, DiftDataset
    from fourdthinker.train.dift import DiftConfig, dift_forward

    torch.set_num_threads(2)
    cache = tmp_path / "lt"
    ad = load("qwen2.5-vl-tiny")
    ad.freeze_visual()
    ad.model.train()
    ds = DiftDataset(toy, ad, k=4, targets=LatentTargetCache(ad, 4, cache), progress=False, max_frames=2)
    local = []
    for i in (0, 1):  # one process, the same two samples, one at a time
        ad.model.zero_grad(set_to_none=True)
        dift_forward(ad, DiftCollator(ad.pad_id)([ds[i]]), DiftConfig())[0].backward()
        local.append({n: p.grad.detach().clone() for n, p in ad.model.named_parameters() if p.grad is not None})
    script = tmp_path / "grad_worker.py"
    script.write_text(GRAD_WORKER)
    _run(script, toy, cache, tmp_path, timeout=300)
    g = [load_file(str(tmp_path / f"grads{r}.safetensors")) for r in (0, 1)]
    names = list(local[0])
    assert names and all(f"ddp.{n}" in g[0] for n in names)
    for n in names:
        mean = (local[0][n] + local[1][n]) / 2
        for r in (0, 1):
            assert torch.allclose(g[r][f"ddp.{n}"], mean, atol=1e-6, rtol=1e-5), (r, n)
            assert torch.allclose(g[r][f"bare.{n}"], local[r][n], atol=1e-6, rtol=1e-5), (r, n)
    # the bare forward (what compute_loss used to call) leaves each rank with its own gradient
    assert max((g[0][f"bare.{n}"] - g[1][f"bare.{n}"]).abs().max().item() for n in names) > 1e-4


def _train_two_ways(toy, tmp_path, deepspeed: str | None = None):
    from safetensors.torch import load_file

    script = tmp_path / "train_worker.py"
    script.write_text(TRAIN_WORKER)
    _run(script, toy, tmp_path / "one", 2, nproc=None)  # one process: batch 1 x accumulation 2
    _run(script, toy, tmp_path / "two", 1, *([deepspeed] if deepspeed else []))  # two processes x batch 1
    one = load_file(str(tmp_path / "one" / "rank0.safetensors"))
    r0, r1 = (load_file(str(tmp_path / "two" / f"rank{r}.safetensors")) for r in (0, 1))
    from fourdthinker.models import load

    init = dict(load("qwen2.5-vl-tiny").model.named_parameters())
    assert one.keys() == r0.keys() == r1.keys()
    assert max((one[k] - init[k]).abs().max().item() for k in one) > 1e-4, "training must move the weights"
    assert all(torch.equal(r0[k], r1[k]) for k in r0), "ranks diverged"
    diff = max((one[k] - r0[k]).abs().max().item() for k in one)
    assert diff < 1e-5, f"two processes != one process with the same global batch (max diff {diff})"
    l1 = json.loads((tmp_path / "one" / "rank0.json").read_text())
    l2 = [json.loads((tmp_path / "two" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert l2[0] == l2[1], "logged losses are the all-rank means"
    assert all(abs(a - b) < 1e-5 for a, b in zip(l1, l2[0], strict=True))
    rows = [json.loads(x) for x in (tmp_path / "two" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3], "one log writer"


@pytest.mark.slow
def test_two_processes_ddp_equal_one_process(toy, tmp_path):
    _train_two_ways(toy, tmp_path)


@pytest.mark.slow
def test_two_processes_zero2_equal_one_process(toy, tmp_path):
    pytest.importorskip("deepspeed")
    _train_two_ways(toy, tmp_path, deepspeed=str(Path(__file__).parents[2] / "configs" / "ds_zero2.json"))
