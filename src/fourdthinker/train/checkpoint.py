"""Checkpoints of the 4DRL loop: ``OUT/checkpoints/step-N/`` and ``OUT/final/`` each hold the model
(safetensors + processor through ``train.trainer.save_final``, the same writer DIFT uses, so
``fourdthinker.models.load`` reads either), ``trainer_state.json`` (step + config), the AdamW state
(``optimizer.pt``, tensors and numbers only: it loads with ``weights_only=True``) and, under LoRA,
the unmerged trainable tensors (``lora_trainable.safetensors``) so that a resume continues the same
adapters exactly. A checkpoint is written to ``<dest>.tmp`` and renamed, so a crash never leaves a
half-written one that ``latest_checkpoint`` would pick."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict
from pathlib import Path

from fourdthinker.io import atomic_write_json

__all__ = ["LORA_TRAINABLES", "latest_checkpoint", "load_adapter", "load_lora_trainables", "save_checkpoint",
           "save_model"]

LORA_TRAINABLES = "lora_trainable.safetensors"


def latest_checkpoint(out: Path) -> tuple[Path | None, int]:
    """The most advanced finished checkpoint under ``out`` (``checkpoints/step-N`` or ``final``)."""
    cands = [d for d in [*(out / "checkpoints").glob("step-*"), out / "final"] if (d / "trainer_state.json").exists()]
    best, best_step = None, 0
    for d in cands:
        try:
            st = int(json.loads((d / "trainer_state.json").read_text())["step"])
        except (ValueError, KeyError, OSError):
            continue  # a damaged state file: ignore that checkpoint, keep looking
        if st > best_step:
            best, best_step = d, st
    return best, best_step


def save_checkpoint(adapter, optimizer, step: int, cfg, dest: Path, train_model=None) -> None:
    """Write a checkpoint of ``step`` (model, LoRA trainables, optimiser, ``trainer_state.json`` with
    ``cfg``, an ``RLConfig``) to ``dest`` atomically (see the module docstring)."""
    import shutil

    import torch

    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_model(adapter, tmp, train_model, cfg.latent_size)
    if train_model is not None:  # LoRA: the unmerged trainable tensors, so a resume continues the same adapters
        from safetensors.torch import save_file

        save_file({n: p.detach().cpu().clone().contiguous() for n, p in adapter.model.named_parameters()
                   if p.requires_grad}, str(tmp / LORA_TRAINABLES))
    if optimizer is not None:
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")  # tensors + numbers: loads with weights_only=True
    atomic_write_json(tmp / "trainer_state.json", {"step": step, "config": asdict(cfg)})
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)


def load_lora_trainables(model, path: Path) -> None:
    """Put a checkpoint's unmerged LoRA trainables back (names must match the trainable set)."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if set(state) != set(named):
        diff = sorted(set(state) ^ set(named))[:3]
        raise ValueError(f"{path}: LoRA tensors do not match this model's trainable parameters (e.g. {diff}); "
                         "resume with the same --lora-r / --init, or use a new --out")
    import torch

    with torch.no_grad():
        for n, p in named.items():
            p.copy_(state[n])


def save_model(adapter, dest: Path, train_model=None, latent_size: int | None = None) -> None:
    """safetensors weights + processor via the shared ``train.trainer.save_final`` (what DIFT uses),
    loadable by ``fourdthinker.models.load``. A LoRA-wrapped ``train_model`` is merged into a copy."""
    from fourdthinker.train.trainer import save_final

    model = train_model if train_model is not None else adapter.model
    if hasattr(model, "merge_and_unload"):
        model = copy.deepcopy(model)  # merging in place would end LoRA training
    extra = {"latent_size": latent_size} if latent_size else None
    save_final(model, adapter.processor, dest, extra_config=extra)


def load_adapter(init: str, device: str = "cpu"):
    """``fourdthinker.models.load`` (float32) straight onto ``device``."""
    from fourdthinker import models

    return models.load(init, device=str(device))
