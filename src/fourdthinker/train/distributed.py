"""Multi-process plumbing of the 4DRL loop (``train/rl.py``): the run's ``accelerate.Accelerator``
(plain data-parallel over gloo/NCCL, or a DeepSpeed ZeRO-1/2 engine), the DeepSpeed JSON made
concrete, the manual gradient all-reduce (the replay calls the unwrapped model, so DDP's reducer
never fires) and the per-step statistics sync. With one process every helper is a no-op or the
identity, so a single-process run is exactly the plain loop. (DIFT runs on HF ``Trainer``, which
does all of this itself; see ``train/trainer.py``.)"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

__all__ = ["allreduce_grads", "deepspeed_config", "make_accelerator", "resolve_device_dtype", "sync_step_stats"]


def deepspeed_config(path: str | Path, max_grad_norm: float, world: int = 1, *, bf16: bool = False) -> dict:
    """A DeepSpeed JSON (the files in configs/) made concrete for train rl: ``"auto"`` values are
    filled (gradient_clipping = ``max_grad_norm``, micro batch 1 per process, no accumulation,
    bf16 = ``bf16`` (``train rl --dtype``), fp16 off). ZeRO-3 raises NotImplementedError (rollouts
    generate with the full weights)."""
    p = Path(path)
    try:
        ds = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{p}: not a readable DeepSpeed JSON ({e})") from None
    if not isinstance(ds, dict):
        raise ValueError(f"{p}: a DeepSpeed config must be a JSON object")
    stage = int((ds.get("zero_optimization") or {}).get("stage", 0))
    if stage >= 3:
        raise NotImplementedError(
            f"{p}: train rl under DeepSpeed ZeRO-3 is not implemented (rollouts and the latent replay need the "
            "gathered weights); use ZeRO stage 1/2 (configs/ds_zero2.json) or plain data-parallel with --lora")
    for k, on in (("bf16", bf16), ("fp16", False)):
        if isinstance(ds.get(k), dict) and ds[k].get("enabled") == "auto":
            ds[k] = {**ds[k], "enabled": on}
    if ds.get("gradient_clipping", "auto") == "auto":
        ds["gradient_clipping"] = float(max_grad_norm)
    if ds.get("train_micro_batch_size_per_gpu", "auto") == "auto":
        ds["train_micro_batch_size_per_gpu"] = 1
    if ds.get("gradient_accumulation_steps", "auto") == "auto":
        ds["gradient_accumulation_steps"] = 1
    if ds.get("train_batch_size", "auto") == "auto":
        ds["train_batch_size"] = ds["train_micro_batch_size_per_gpu"] * ds["gradient_accumulation_steps"] * world
    return ds


def make_accelerator(ds_path: str | None = None, max_grad_norm: float = 1.0, *, bf16: bool = False):
    """The run's ``accelerate.Accelerator`` (launch settings come from ``accelerate launch`` / env).
    ``ds_path``: a DeepSpeed JSON (ZeRO 1/2) -> a ``DeepSpeedPlugin``; a DeepSpeed launch without
    it (accelerate config) is refused, as is ZeRO-3 (rollouts would need gathered weights)."""
    import os

    import torch
    from accelerate import Accelerator
    from accelerate.utils import DistributedType

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if ds_path:
        from accelerate.utils import DeepSpeedPlugin

        if "WORLD_SIZE" not in os.environ:  # a plain `fourdthinker train rl --deepspeed`: one process
            import socket

            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            for k, v in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                         "MASTER_PORT": str(port)}.items():
                os.environ.setdefault(k, v)
        plugin = DeepSpeedPlugin(hf_ds_config=deepspeed_config(ds_path, max_grad_norm, world, bf16=bf16))
        acc = Accelerator(device_placement=False, deepspeed_plugin=plugin)
        if acc.distributed_type != DistributedType.DEEPSPEED:  # accelerate's state is a per-process singleton
            raise RuntimeError(f"--deepspeed {ds_path}: this process already set up accelerate as "
                               f"{acc.distributed_type}; run train rl --deepspeed in a fresh process")
        return acc
    # several processes without CUDA (torchrun / accelerate on CPU): gloo. One process: leave the
    # model where it was loaded (device_placement off), exactly the single-process loop.
    acc = Accelerator(device_placement=False, cpu=world > 1 and not torch.cuda.is_available())
    if world > 1 and acc.num_processes != world:
        raise ValueError(f"WORLD_SIZE={world} but accelerate set up {acc.num_processes} process(es) "
                         f"({acc.distributed_type}); launch with accelerate launch or torchrun")
    if acc.distributed_type == DistributedType.DEEPSPEED:
        raise NotImplementedError(
            "train rl under an accelerate DeepSpeed launch needs the DeepSpeed JSON passed as --deepspeed "
            "(ZeRO stage 1/2, e.g. configs/ds_zero2.json; ZeRO-3 is not implemented), or launch plain data-parallel: "
            "accelerate launch --multi_gpu --num_processes N -m fourdthinker.cli train rl ... (use --lora for big models)")
    return acc


def allreduce_grads(acc, params: Sequence, bucket: int = 1 << 24) -> None:
    """Average ``.grad`` over processes (what DDP's reducer does when the forward goes through it).
    A parameter with a gradient on some ranks only gets zeros elsewhere; one with none anywhere
    keeps ``None`` (AdamW skips it, as in one process). No-op with one process."""
    if acc.num_processes == 1:
        return
    import torch

    dev = params[0].device
    has = acc.reduce(torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=dev), "sum")
    live = [p for p, h in zip(params, has.tolist(), strict=True) if h > 0]
    for p in live:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    i = 0
    while i < len(live):  # buckets of ~bucket elements: one collective each, bounded extra memory
        j, n = i, 0
        while j < len(live) and (n == 0 or n + live[j].numel() <= bucket):
            n += live[j].numel()
            j += 1
        flat = acc.reduce(torch.cat([p.grad.reshape(-1).float() for p in live[i:j]]), "mean")
        o = 0
        for p in live[i:j]:
            p.grad.copy_(flat[o : o + p.numel()].view_as(p.grad))
            o += p.numel()
        i = j


def sync_step_stats(acc, per_response: dict[str, list], scalars: dict[str, float], maxed: dict[str, float]):
    """All processes' per-response values (concatenated in rank order; None comes back as NaN,
    which the RL metrics' mean skips alike) and the mean (``scalars``) or max (``maxed``, wall times) of
    per-process numbers. One process: returned unchanged."""
    if acc.num_processes == 1:
        return per_response, scalars, maxed
    import torch

    keys = list(per_response)
    cols = [[math.nan if v is None else float(v) for v in per_response[k]] for k in keys]
    t = torch.tensor(cols, dtype=torch.float64, device=acc.device).T.contiguous()  # [B, keys]
    allr = acc.gather(t).T.tolist()  # [keys, world * B]
    sk, mk = list(scalars), list(maxed)
    sv = acc.gather(torch.tensor([[scalars[k] for k in sk] + [maxed[k] for k in mk]], dtype=torch.float64,
                                 device=acc.device))  # [world, n]
    mean, mx = sv.mean(0).tolist(), sv.max(0).values.tolist()
    return ({k: allr[i] for i, k in enumerate(keys)},
            {k: mean[i] for i, k in enumerate(sk)}, {k: mx[len(sk) + i] for i, k in enumerate(mk)})


def resolve_device_dtype(device: str, dtype: str, acc=None):
    """``(torch.device, torch.dtype)`` of a run from ``--device`` / ``--dtype``.

    ``device="auto"``: cuda when a GPU exists, else cpu. Under several processes on GPUs each
    process takes the accelerator's device (its own GPU) whatever ``device`` says.
    ``dtype="auto"``: bfloat16 on a device that supports it (CUDA with bf16), else float32;
    ``fp32``/``bf16`` are accepted for ``float32``/``bfloat16``."""
    import torch

    if acc is not None and acc.num_processes > 1 and acc.device.type != "cpu":
        dev = acc.device
    elif device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {device}: CUDA is not available on this machine (use --device cpu or auto)")
    names = {"fp32": "float32", "bf16": "bfloat16"}
    dtype = names.get(dtype, dtype)
    if dtype == "auto":
        dtype = "bfloat16" if dev.type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"--dtype must be auto, float32 or bfloat16, got {dtype!r}")
    return dev, getattr(torch, dtype)
