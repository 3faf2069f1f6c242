"""`fourdthinker train dift`: a thin recipe over ``train.dift.train_dift`` (parse -> run -> report)."""

from __future__ import annotations

import typer

_EXAMPLES = """
Examples:

  fourdthinker train dift --data data/dift --model qwen2.5-vl-tiny --out runs/dift --max-steps 200 --lr 1e-3

  fourdthinker train dift --data data/dift --model qwen2.5-vl-tiny --out runs/cot --mode cot   # CoT-SFT baseline

  fourdthinker train dift --data data/dift --out runs/dift-self --latent-feed self --feed-norm  # closed-loop latents

  fourdthinker train dift --data data/dift --model Qwen/Qwen2.5-VL-3B-Instruct --out runs/dift3b \\
      --dtype bfloat16 --grad-checkpointing --lr 1e-5 --epochs 1

  accelerate launch --config_file configs/accelerate_zero2.yaml -m fourdthinker.cli train dift \\
      --data data/dift --model Qwen/Qwen2.5-VL-7B-Instruct --out runs/dift7b --deepspeed configs/ds_zero2.json

Writes to --out: the final model (safetensors, loadable with AutoModelForImageTextToText / AutoProcessor), checkpoint-N/ (resume points), log.jsonl (loss, ce, sim and latent-health norms per step), loss.png, latent_health.png, quarantine.jsonl (records refused by the validation pass before training, and why), load_errors.jsonl (records skipped when fetched during training; each is replaced by the next record that loads), dift_config.json.
"""


def dift(
    data: str = typer.Option(None, "--data", help="Folder holding dift.jsonl (from `fourdthinker data build`), or the file."),
    model: str = typer.Option(None, "--model", help="qwen2.5-vl-tiny | qwen3-vl-tiny | internvl3.5-tiny, a hub id or a local folder."),
    out: str = typer.Option(None, "--out", help="Output folder (default runs/dift)."),
    config: str = typer.Option(None, "--config", help="YAML of DiftConfig fields; flags given here override it."),
    mode: str = typer.Option(None, "--mode", help="dift (latent imagery) | cot (imagery removed) | raw-qa (answer only)."),
    latent_size: int = typer.Option(None, "--latent-size", help="K latent vectors per imagery image (default 4)."),
    no_sim: bool = typer.Option(False, "--no-sim", help="Ablation: drop the latent similarity loss (Eq. 9)."),
    no_ce: bool = typer.Option(False, "--no-ce", help="Ablation: drop the text cross-entropy (Eq. 8)."),
    l_ce: float = typer.Option(None, "--l-ce", help="Weight of L_ce (default 0.1)."),
    l_sim: float = typer.Option(None, "--l-sim", help="Weight of L_sim (default 1.0)."),
    max_steps: int = typer.Option(None, "--max-steps", help="Optimizer steps (overrides --epochs)."),
    epochs: float = typer.Option(None, "--epochs", help="Passes over the data (paper: 1)."),
    lr: float = typer.Option(None, "--lr", help="Learning rate (1e-5 for real models; ~1e-3 for tiny presets)."),
    batch_size: int = typer.Option(None, "--batch-size", help="Per-device micro-batch (paper: 1)."),
    grad_accum: int = typer.Option(None, "--grad-accum", help="Gradient accumulation steps."),
    grad_checkpointing: bool = typer.Option(None, "--grad-checkpointing/--no-grad-checkpointing",
                                            help="Recompute activations: less memory, slower."),
    lora: bool = typer.Option(None, "--lora/--full", help="LoRA adapters (merged at save) instead of full fine-tuning."),
    dtype: str = typer.Option(None, "--dtype", help="float32 | bfloat16 | float16 weights."),
    save_steps: int = typer.Option(None, "--save-steps", help="Checkpoint every N steps."),
    deepspeed: str = typer.Option(None, "--deepspeed", help="DeepSpeed JSON, e.g. configs/ds_zero2.json."),
    dataloader_workers: int = typer.Option(None, "--dataloader-workers", min=0, help="Worker processes that decode frames and encode samples while the model trains (default 0 = in the training process; 4-8 on a GPU node). Each holds about one batch of pixel tensors per prefetched batch."),
    seed: int = typer.Option(None, "--seed", help="Seed for init, data order and sampling."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in --out (same step, optimizer, data order)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check the data file, the model, the output folder and every number, then exit without training."),
    health_heldout: int = typer.Option(None, "--health-heldout", min=0, help="Latent health: records kept out of training to measure the held-out latent cosine (default 2; used only when the data has more than 4x as many). More = a steadier generalisation check, fewer training records; 0 = off."),
    health_every: int = typer.Option(None, "--health-every", min=0, help="Latent health: held-out check every N optimizer steps (default 10; 0 = none). Each check is one extra no-grad forward of the held-out batch: smaller N = finer curve in latent_health.png, slower training."),
    latent_feed: str = typer.Option(None, "--latent-feed", help="What the latent slots hold in training: target (the paper: the target latents z, teacher forcing) | self (the model's own h_{t-1}, step by step as at inference: K+1 forwards per block, slower) | mixed (scheduled sampling: the share of self-fed slots goes from --mix-start to --mix-end)."),
    mix_start: float = typer.Option(None, "--mix-start", help="mixed: share of self-fed slots at the first step (default 0)."),
    mix_end: float = typer.Option(None, "--mix-end", help="mixed: share of self-fed slots at the last step (default 1)."),
    mix_unit: str = typer.Option(None, "--mix-unit", help="mixed: draw self vs target per slot (default) or per block."),
    feed_norm: bool = typer.Option(None, "--feed-norm/--no-feed-norm", help="Rescale every fed latent (z or h) to the training targets' mean norm; saved in the model config so infer/eval/probe rescale the same way by default."),
    health_factor: float = typer.Option(None, "--health-factor", help="Latent health: warn when a latent norm ratio (fed-back h vs target z vs token embeddings) leaves [1/f, f] (default 4, must be > 1). Smaller = earlier but noisier warnings; larger = only gross divergence."),
) -> None:
    """Dynamic-imagery fine-tuning (docs/method.md#dift): teach a VLM to think with latent visual tokens.

    Each <imagery> in a record's reasoning becomes <|latent_start|> + K latent vectors + <|latent_end|>; the loss is 0.1 * CE(text) + 1.0 * (1 - cos(h_{t-1}, z_t)) over the latent positions.
    """
    from fourdthinker.train.dift import DiftConfig, train_dift

    overrides = dict(data=data, model=model, out=out, mode=mode, latent_size=latent_size, l_ce=l_ce, l_sim=l_sim,
                     max_steps=max_steps, epochs=epochs, lr=lr, batch_size=batch_size, grad_accum=grad_accum,
                     grad_checkpointing=grad_checkpointing, lora=lora, dtype=dtype, save_steps=save_steps,
                     deepspeed=deepspeed, seed=seed, health_heldout=health_heldout, health_every=health_every,
                     health_factor=health_factor, dataloader_workers=dataloader_workers, latent_feed=latent_feed,
                     mix_start=mix_start, mix_end=mix_end, mix_unit=mix_unit, feed_norm=feed_norm)
    if no_sim:
        overrides["use_sim"] = False
    if no_ce:
        overrides["use_ce"] = False
    if resume:
        overrides["resume"] = True
    from fourdthinker.errors import require_out_dir, require_positive
    from fourdthinker.models.locate import resolve_model

    # Flags that must be positive when given (--max-steps 0 used to train a full epoch silently).
    for flag, v in (("--max-steps", max_steps), ("--epochs", epochs), ("--lr", lr), ("--batch-size", batch_size),
                    ("--grad-accum", grad_accum), ("--save-steps", save_steps), ("--latent-size", latent_size)):
        require_positive(flag, v)
    # Errors reach the CLI's one error boundary (fourdthinker.cli): one line, exit code 2.
    if config:
        cfg = DiftConfig.from_yaml(config, **overrides)
    else:
        cfg = DiftConfig(**{k: v for k, v in overrides.items() if v is not None})
    if not cfg.data:
        raise ValueError("--data is required (folder holding dift.jsonl) — pass --data data/dift")
    cfg.validate()
    # Everything checked before any work: the data file, the model, the output folder.
    from pathlib import Path

    from fourdthinker.errors import UserFileNotFoundError

    f = Path(cfg.data) / "dift.jsonl" if Path(cfg.data).is_dir() else Path(cfg.data)
    if not f.is_file():
        raise UserFileNotFoundError(f"--data {cfg.data}: no dift.jsonl here", "run `fourdthinker data build` first, "
                                    "or pass the folder that holds dift.jsonl")
    cfg.model = resolve_model(cfg.model) if cfg.model else cfg.model
    require_out_dir(cfg.out, "--out")
    if dry_run:
        typer.echo(f"dry run: data {f}, model {cfg.model}, out {cfg.out}: all checks passed")
        return
    res = train_dift(cfg)
    last = res.losses[-1] if res.losses else {}
    parts = " ".join(f"{k}={last[k]:.4f}" for k in ("loss", "ce", "sim") if last.get(k) is not None)
    held = getattr(res, "n_heldout", 0) or 0
    skipped = f"{res.n_skipped} quarantined" + (f", {res.n_load_errors} skipped at load time" if res.n_load_errors else "")
    typer.echo(f"trained {len(res.losses)} steps on {res.n_samples - held} samples"
               + (f" ({held} held out for latent health)" if held else "") + f" ({skipped}); last {parts}")
    typer.echo(f"model: {res.out_dir}  log: {res.out_dir / 'log.jsonl'}  curve: {res.loss_png}")


dift.__doc__ = (dift.__doc__ or "") + _EXAMPLES
