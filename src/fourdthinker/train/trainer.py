"""Shared training machinery on HF ``Trainer`` (DIFT here; the RL stage reuses it).

* :class:`StatsTrainer` — a ``Trainer`` whose ``compute_loss`` subclasses return ``(loss, stats)``
  from a pure loss function; stats (ce, sim, ...) are averaged over the micro-batches of each
  optimizer step and written, one JSONL row per step, to ``<out>/log.jsonl`` by
  :class:`StepLogCallback` (rows of steps after a resumed checkpoint are dropped, so a resumed
  log equals an uninterrupted one).
* :func:`training_args` — ``TrainingArguments`` from a config: AdamW (torch), linear/cosine
  schedule + warm-up, grad accumulation, grad checkpointing, bf16 where supported, safetensors
  checkpoints every ``save_steps`` (optimizer, scheduler, RNG and data position included, which
  is what makes ``--resume`` exact), optional DeepSpeed JSON (``configs/``).
* :func:`apply_lora` — optional PEFT LoRA on the language model's linear layers (embeddings and
  lm_head stay fully trainable so new special tokens learn); merged back before the final save.
* :func:`save_final` — model (safetensors) + processor, loadable with stock
  ``AutoModelForImageTextToText`` / ``AutoProcessor`` ``from_pretrained``.
* :func:`plot_losses` — the loss-curve PNG.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments


def last_checkpoint(out_dir: str | os.PathLike) -> str | None:
    """Path of the newest ``checkpoint-N`` in ``out_dir`` (None if there is none)."""
    d = Path(out_dir)
    if not d.is_dir():
        return None
    cks = [p for p in d.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    cks = [p for p in cks if (p / "trainer_state.json").exists()]
    return str(max(cks, key=lambda p: int(p.name.split("-")[-1]))) if cks else None


def bf16_supported() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def training_args(out_dir: str, *, lr: float, max_steps: int = -1, epochs: float = 1.0, batch_size: int = 1,
                  grad_accum: int = 1, warmup_steps: int = 0, weight_decay: float = 0.0,
                  scheduler: str = "linear", grad_checkpointing: bool = False, bf16: bool | None = None,
                  seed: int = 42, save_steps: int = 500, save_total_limit: int | None = 2,
                  max_grad_norm: float = 1.0, deepspeed: str | None = None, logging_steps: int = 1,
                  dataloader_num_workers: int = 0) -> TrainingArguments:
    """The one place ``TrainingArguments`` are built (see the module docstring)."""
    use_bf16 = bf16_supported() if bf16 is None else bf16
    return TrainingArguments(
        output_dir=out_dir,
        learning_rate=lr,
        max_steps=max_steps if max_steps and max_steps > 0 else -1,
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=grad_accum,
        warmup_steps=warmup_steps,
        weight_decay=weight_decay,
        lr_scheduler_type=scheduler,
        # the fused kernel (transformers' default with torch >= 2.8): same update, one pass over the
        # parameters instead of a dozen (measured ~6x faster on the CPU); DeepSpeed keeps the plain one
        optim="adamw_torch" if deepspeed else "adamw_torch_fused",
        activation_checkpointing=grad_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if grad_checkpointing else None,
        bf16=use_bf16,
        seed=seed,
        data_seed=seed,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=save_total_limit,
        save_only_model=False,
        max_grad_norm=max_grad_norm,
        logging_steps=logging_steps,
        report_to=[],
        remove_unused_columns=False,
        dataloader_num_workers=dataloader_num_workers,
        dataloader_pin_memory=False,
        deepspeed=deepspeed,
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
    )


class StatsTrainer(Trainer):
    """``Trainer`` that collects per-micro-batch stats for :class:`StepLogCallback`."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.model_accepts_loss_kwargs = False  # our losses are means: Trainer divides by grad accumulation
        self._stats: dict[str, list[float]] = defaultdict(list)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        """Load checkpoint weights through ``from_pretrained`` (which applies the model's
        checkpoint key mapping). The stock resume path calls ``load_state_dict`` on the raw file,
        and for Qwen-VL/InternVL in transformers 5.x the saved keys (``visual.*``, ``model.*``)
        do not match the module names (``model.visual.*``, ``model.language_model.*``), so it
        silently resumes from the *initial* weights. PEFT and DeepSpeed keep the stock path."""
        model = model if model is not None else self.model
        if self.is_deepspeed_enabled or hasattr(model, "peft_config"):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        sd = type(model).from_pretrained(resume_from_checkpoint, dtype=model.dtype, use_safetensors=True).state_dict()
        missing, unexpected = model.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise RuntimeError(f"{resume_from_checkpoint}: checkpoint does not match the model "
                               f"(missing {missing[:3]}, unexpected {unexpected[:3]})")

    def record(self, stats: dict[str, Any]) -> None:
        for k, v in stats.items():
            if v is not None:
                self._stats[k].append(float(v))

    def pop_stats(self) -> dict[str, float]:
        """Mean of each stat over this step's micro-batches, and over all processes when several
        train (every rank must call it: a collective)."""
        local = {k: (sum(v), len(v)) for k, v in self._stats.items() if v}
        self._stats.clear()
        if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            parts: list = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(parts, local)
            merged: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
            for part in parts:
                for k, (tot, n) in part.items():
                    merged[k][0] += tot
                    merged[k][1] += n
            local = {k: (v[0], v[1]) for k, v in merged.items()}
        return {k: tot / n for k, (tot, n) in local.items()}


class StepLogCallback(TrainerCallback):
    """One JSONL row per optimizer step: ``{step, epoch, lr, loss, <stats>}``; rich progress."""

    def __init__(self, path: str | os.PathLike, progress: bool = True):
        self.path = Path(path)
        self.rows: list[dict] = []
        self.progress = progress
        self._bar = None
        self.trainer: StatsTrainer | None = None

    def on_train_begin(self, args, state, control, **kw):
        start = state.global_step
        old = []
        if self.path.exists():
            from fourdthinker.io import read_jsonl

            old = [r for r in read_jsonl(self.path, tolerate_truncated_tail=True) if r.get("step", 0) <= start]
        from fourdthinker.io import write_jsonl

        if state.is_world_process_zero:
            write_jsonl(self.path, old)
        self.rows = old
        if self.progress and state.is_world_process_zero:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                                 TextColumn("{task.fields[info]}"), TimeRemainingColumn(), transient=False)
            self._bar.start()
            self._task = self._bar.add_task("train", total=state.max_steps, completed=start, info="")

    def on_step_end(self, args, state, control, **kw):
        from fourdthinker.io import append_jsonl

        stats = self.trainer.pop_stats() if self.trainer is not None else {}
        sched = kw.get("lr_scheduler")
        lr = float(sched.get_last_lr()[0]) if sched is not None else None
        row = {"step": state.global_step, "epoch": round(float(state.epoch or 0), 4), "lr": lr, **stats}
        self.rows.append(row)
        if state.is_world_process_zero:  # one writer when several processes train
            append_jsonl(self.path, row)
        if self._bar is not None:
            info = " ".join(f"{k}={v:.4f}" for k, v in stats.items() if k in ("loss", "ce", "sim"))
            self._bar.update(self._task, completed=state.global_step, info=info)

    def on_train_end(self, args, state, control, **kw):
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def apply_lora(model, *, r: int = 16, alpha: int = 32, dropout: float = 0.0,
               target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")):
    """Wrap ``model`` with PEFT LoRA on the language model's linear layers only (the visual
    encoder is frozen anyway); input embeddings and lm_head are saved/trained in full."""
    from peft import LoraConfig, get_peft_model

    regex = r".*language_model.*\.(" + "|".join(target_modules) + r")$"
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=regex,
                     modules_to_save=["embed_tokens", "lm_head"])
    return get_peft_model(model, cfg)


def save_final(model, processor, out_dir: str | os.PathLike, extra_config: dict | None = None):
    """Save weights (safetensors) + processor so stock ``from_pretrained`` loads them; LoRA is
    merged first. Returns the saved (merged) model."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    if extra_config:
        for k, v in extra_config.items():
            setattr(model.config, k, v)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return model


def plot_losses(rows: list[dict], path: str | os.PathLike, keys: tuple[str, ...] = ("loss", "ce", "sim"),
                title: str = "training loss") -> Path | None:
    """Loss curves (one panel per key present) as a PNG; returns the path or None without rows."""
    rows = [r for r in rows if any(k in r for k in keys)]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fourdthinker.plots import save_figure

    present = [k for k in keys if any(k in r for r in rows)]
    fig, axes = plt.subplots(1, len(present), figsize=(4 * len(present), 3.2), squeeze=False)
    for ax, k in zip(axes[0], present, strict=False):
        xs = [r["step"] for r in rows if k in r]
        ys = [r[k] for r in rows if k in r]
        ax.plot(xs, ys, lw=1.2)
        ax.set_title(k)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    from fourdthinker.io import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")
