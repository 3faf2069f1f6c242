"""DIFT: dynamic-imagery fine-tuning (Eq. 7-9, docs/method.md#dift) — pure losses, trainer, entry point (config: train/dift_config.py).

Losses (pure functions; tensors in, ``(value, stats)`` out):

* :func:`ce_loss` (Eq. 8): causal-LM cross-entropy, logits at t-1 predict the token at t, over
  response text tokens only (labels -100 on prompt, padding and latent positions;
  ``<|latent_start|>``/``<|latent_end|>`` supervised).
* :func:`latent_cosine_loss` (Eq. 9): L_sim = mean over latent positions t of
  ``1 - cos(h_{t-1}, z_t)``, h = last-layer hidden state (post final norm), z = pooled target.
* :func:`latent_infonce_loss` (``--sim-loss infonce``, beyond the paper): a contrastive form of
  Eq. 9, each h_{t-1} closer to its own z_t than to the batch's other targets.
* :func:`dift_loss` (Eq. 7): L = l_ce * L_ce + l_sim * L_sim (defaults 0.1 / 1.0); ``use_ce`` /
  ``use_sim`` switch the parts off for the ablations (Table 4).

Training: ``train_dift(DiftConfig) -> DiftResult``; the HF ``Trainer`` subclass only wires the
batch to the adapter forward and these functions. Modes ``dift | cot | raw-qa`` share it all
(``cot``/``raw-qa`` have no latents, so their loss is plain CE).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from fourdthinker.latent.blocks import IGNORE_INDEX, latent_mask, scatter_latents
from fourdthinker.train.dift_config import DiftConfig
from fourdthinker.train.trainer import StatsTrainer


# ----------------------------------------------------------------------------- losses
def ce_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """Eq. 8: L_ce = -(1/|T|) * sum_{t in T} log p(x_t | x_<t), T = positions with label != -100.

    ``logits [B, L, V]`` at position t-1 score the label at t (shifted here). ``weights [B, L]``
    (per label position t; ``--conclusion-weight``) make it the weighted mean
    L_ce = -sum_{t in T} w_t log p(x_t | x_<t) / sum_{t in T} w_t; None = all 1 (Eq. 8 as it is)."""
    lg = logits[:, :-1].float()  # [B, L-1, V]
    tg = labels[:, 1:]  # [B, L-1]
    n = int((tg != IGNORE_INDEX).sum())
    if n == 0:
        zero = logits.sum() * 0.0
        return zero, {"ce": 0.0, "n_text": 0}
    if weights is None:
        loss = F.cross_entropy(lg.reshape(-1, lg.shape[-1]), tg.reshape(-1), ignore_index=IGNORE_INDEX)
    else:
        nll = F.cross_entropy(lg.reshape(-1, lg.shape[-1]), tg.reshape(-1), ignore_index=IGNORE_INDEX, reduction="none")
        w = weights[:, 1:].reshape(-1).to(nll.device, nll.dtype) * (tg.reshape(-1) != IGNORE_INDEX)
        loss = (w * nll).sum() / w.sum().clamp_min(1e-12)
    return loss, {"ce": float(loss.detach()), "n_text": n}


def conclusion_weights(input_ids: torch.Tensor, latent_end_id: int | None, weight: float) -> torch.Tensor | None:
    """Per-position CE weights ``[B, L]`` for ``--conclusion-weight``: ``weight`` on every token after a
    row's last ``<|latent_end|>`` (the conclusion drawn from the imagery, and the answer), 1 elsewhere.
    None when ``weight`` is 1 or there is no latent token (plain Eq. 8).

    >>> conclusion_weights(torch.tensor([[5, 9, 6, 7, 9, 8]]), 9, 3.0).tolist()
    [[1.0, 1.0, 1.0, 1.0, 1.0, 3.0]]
    """
    if weight == 1.0 or latent_end_id is None:
        return None
    is_end = input_ids == latent_end_id
    after = is_end.flip(-1).long().cumsum(-1).flip(-1) == 0  # no <|latent_end|> at or after this position
    after &= is_end.any(-1, keepdim=True)  # rows without a block: all 1
    return torch.where(after, float(weight), 1.0)


def _latent_pairs(hidden: torch.Tensor, latents: torch.Tensor, mask: torch.Tensor, what: str):
    """(h_{t-1} [N, D], z_t [N, D]) of the latent positions, float, z detached; None when N = 0."""
    if mask[:, 0].any():
        raise ValueError(f"{what}: a latent at position 0 has no h_{{t-1}}")
    n = int(mask.sum())
    if n == 0:
        return None
    if latents.shape[0] != n:
        raise ValueError(f"{what}: {n} latent positions but {latents.shape[0]} targets")
    pred = hidden[:, :-1][mask[:, 1:]].float()  # [N, D] = h_{t-1} for each latent t
    return pred, latents.detach().float().to(pred.device)


def latent_cosine_loss(hidden: torch.Tensor, latents: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Eq. 9: L_sim = (1/|S|) * sum_{t in S} (1 - cos(h_{t-1}, z_t)), S = latent positions.

    ``hidden [B, L, D]`` last-layer states; ``mask [B, L]`` True at latent positions;
    ``latents [N, D]`` the targets z in row-major order of ``mask`` (N = mask.sum()).
    A latent at position 0 has no predecessor and is an error."""
    pairs = _latent_pairs(hidden, latents, mask, "latent_cosine_loss")
    if pairs is None:
        return hidden.sum() * 0.0, {"sim": None, "cos": None, "n_latent": 0}
    pred, gt = pairs
    cos = F.cosine_similarity(pred, gt, dim=-1, eps=1e-8)  # [N]
    loss = (1.0 - cos).mean()
    return loss, {"sim": float(loss.detach()), "cos": float(cos.detach().mean()), "n_latent": len(cos)}


def latent_infonce_loss(hidden: torch.Tensor, latents: torch.Tensor, mask: torch.Tensor,
                        temperature: float = 0.1) -> tuple[torch.Tensor, dict]:
    """Contrastive similarity loss (``--sim-loss infonce``), over the N latent positions of a batch:

        L_nce = -(1/N) * sum_i log( exp(c_ii / tau) / sum_{j in J(i)} exp(c_ij / tau) ),
        c_ij = cos(h_{i, t-1}, z_j),   J(i) = {i} + {j : z_j != z_i}

    Each h_{t-1} must be closer to its own target z_t than to the batch's other targets, so a
    direction shared by all targets no longer meets the loss (the cosine of Eq. 9 can reach 0.9
    with latents that tell the samples apart no better than chance). Targets equal to z_i (the
    same image twice) are left out of its negatives. Same inputs and errors as
    :func:`latent_cosine_loss`; ``cos`` in the stats is still the mean c_ii."""
    if not temperature > 0:
        raise ValueError(f"latent_infonce_loss: temperature must be > 0, got {temperature}")
    pairs = _latent_pairs(hidden, latents, mask, "latent_infonce_loss")
    if pairs is None:
        return hidden.sum() * 0.0, {"sim": None, "cos": None, "n_latent": 0}
    pred, gt = pairs
    c = F.normalize(pred, dim=-1, eps=1e-8) @ F.normalize(gt, dim=-1, eps=1e-8).T  # [N, N]
    n = c.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=c.device)
    same = (gt[:, None, :] == gt[None, :, :]).all(-1) & ~eye  # duplicate targets: not negatives
    logits = (c / temperature).masked_fill(same, float("-inf"))
    loss = F.cross_entropy(logits, torch.arange(n, device=c.device))
    return loss, {"sim": float(loss.detach()), "cos": float(c.diagonal().detach().mean()), "n_latent": n}


def dift_loss(ce: torch.Tensor, sim: torch.Tensor, *, l_ce: float = 0.1, l_sim: float = 1.0,
              use_ce: bool = True, use_sim: bool = True) -> tuple[torch.Tensor, dict]:
    """Eq. 7: L = l_ce * L_ce + l_sim * L_sim (a part switched off contributes 0)."""
    if not (use_ce or use_sim):
        raise ValueError("dift_loss: at least one of the CE and similarity parts must be on")
    loss = ce * 0.0
    if use_ce:
        loss = loss + l_ce * ce
    if use_sim:
        loss = loss + l_sim * sim
    return loss, {"loss": float(loss.detach())}


# ----------------------------------------------------------------------------- config (train/dift_config.py)
@dataclass
class DiftResult:
    out_dir: Path
    losses: list[dict]
    n_samples: int
    n_skipped: int  # refused by the validation pass (quarantine.jsonl)
    loss_png: Path | None = None
    final_loss: float | None = None
    health_png: Path | None = None
    n_heldout: int = 0
    health_warnings: list = field(default_factory=list)  # (step, message) of divergent steps
    adapter: Any = field(default=None, repr=False)  # the trained model in memory (LoRA merged)
    n_load_errors: int = 0  # records skipped when fetched during training (load_errors.jsonl, all ranks)
    n_gate: int = 0  # records held out for the read-out gate (--stop-when)
    gate_fired_at: int | None = None  # the step the gate stopped the run at; None: it ran to --max-steps


# ----------------------------------------------------------------------------- trainer
class DiftTrainer(StatsTrainer):
    """Wires a batch through the adapter and the pure losses (nothing else)."""

    def __init__(self, *a, adapter=None, dift: DiftConfig | None = None, **kw):
        super().__init__(*a, **kw)
        self.adapter = adapter
        self.dift = dift or DiftConfig()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, stats, out = dift_forward(through_wrapper(self.adapter, model), inputs, self.dift,
                                        step=self.state.global_step, total=self.state.max_steps)
        self.record(stats)
        return (loss, out) if return_outputs else loss


class _Through:
    """Stand-in for ``adapter.model``: calls go through ``wrapper`` (DDP / DeepSpeed engine), every
    attribute comes from the wrapped model."""

    def __init__(self, wrapper, inner):
        self._wrapper, self._inner = wrapper, inner

    def __call__(self, *a, **kw):
        return self._wrapper(*a, **kw)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def through_wrapper(adapter, model):
    """``adapter`` whose model forward goes through ``model``, the Trainer's wrapped model.

    Under multi-process DDP the gradients are all-reduced only for a forward that DDP itself ran
    (``DistributedDataParallel.forward`` arms the reducer); calling the bare model trains each rank
    on its own gradients and the replicas drift apart. One process (or a wrapper that is the model
    itself) returns ``adapter`` unchanged."""
    if model is None or model is adapter.model or getattr(model, "module", None) is not adapter.model:
        return adapter
    import copy

    view = copy.copy(adapter)
    view.model = _Through(model, adapter.model)
    return view


def self_fed_slots(cfg: DiftConfig, mask: torch.Tensor, batch: dict, step: int | None, total: int | None) -> torch.Tensor:
    """The latent slots of this batch that take the model's own h_{t-1} (``--latent-feed``):
    none (target), all (self), or a seeded Bernoulli draw at the scheduled ratio (mixed)."""
    from fourdthinker.train.latent_feed import draw_self_slots, mix_ratio, slot_seed

    if cfg.latent_feed == "target" or not mask.any():
        return torch.zeros_like(mask)
    if cfg.latent_feed == "self":
        return mask.clone()
    ratio = mix_ratio(step or 0, total or 1, cfg.mix_start, cfg.mix_end)
    gen = torch.Generator(device="cpu").manual_seed(slot_seed(cfg.seed, step or 0, batch.get("ids")))  # CPU draw, moved to the mask's device
    return draw_self_slots(mask, ratio, gen, cfg.mix_unit)


def imagery_mask(adapter, ids: torch.Tensor, attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The imagery-bottleneck attention mask ``[B, 1, L, L]`` of a training batch (``latent.bottleneck``)."""
    from fourdthinker.latent.bottleneck import bottleneck_mask, visual_marker_ids, visual_span

    visual = visual_span(ids, visual_marker_ids(adapter.model, adapter.tokenizer))
    starts = ids == adapter.latent_start_id if adapter.latent_start_id is not None else torch.zeros_like(visual)
    return bottleneck_mask(visual, starts, attention_mask.bool(), dtype)


def dift_forward(adapter, batch: dict, cfg: DiftConfig, *, step: int | None = None, total: int | None = None,
                 record: list | None = None) -> tuple[torch.Tensor, dict, Any]:
    """DIFT forward of one batch -> (loss, stats, model output).

    Teacher-forced (the paper) under ``latent_feed=target``; under ``self``/``mixed`` the self-fed
    slots take h_{t-1} through ``train.latent_feed.chain_forward`` (``step``/``total`` set the
    mixed schedule; ``record`` collects the fed vectors, for tests). ``cfg.latent_feed_norm``
    (set by ``train_dift`` when ``feed_norm`` is on) rescales every fed vector to that norm.
    ``cfg.imagery_bottleneck`` replaces the padding mask by the bottleneck mask (``latent.bottleneck``)."""
    ids = batch["input_ids"].to(adapter.device)
    emb = adapter.embed_tokens(ids)  # [B, L, D]
    mask = latent_mask(ids, adapter.latent_pad_id) if adapter.latent_pad_id is not None else torch.zeros_like(ids, dtype=torch.bool)
    latents = batch.get("latents")
    nu = cfg.latent_feed_norm if cfg.feed_norm else None
    if cfg.feed_norm and not nu and mask.any():
        raise ValueError("feed_norm is on but no latent_feed_norm is set (train_dift measures it on the data)")
    if mask.any():
        fed_z = latents.to(emb.device)
        if nu:
            from fourdthinker.latent.interventions import match_norm

            fed_z = match_norm(fed_z.float(), nu)
        emb = scatter_latents(emb, mask, fed_z)
    pos = adapter.position_ids(batch, input_ids=ids, attention_mask=batch["attention_mask"].to(ids.device))
    attn = imagery_mask(adapter, ids, batch["attention_mask"].to(ids.device), emb.dtype) if cfg.imagery_bottleneck else None
    self_slots = self_fed_slots(cfg, mask, batch, step, total)
    if self_slots.any():
        from types import SimpleNamespace

        from fourdthinker.train.latent_feed import chain_forward

        logits, hidden = chain_forward(adapter, batch, emb, pos, self_slots, feed_norm=nu, record=record, attn4d=attn)
        out = SimpleNamespace(logits=logits, hidden_states=(hidden,))
    else:
        out = adapter.forward(batch, inputs_embeds=emb, position_ids=pos,
                              attention_mask=batch["attention_mask"] if attn is None else attn)
    weights = conclusion_weights(ids, adapter.latent_end_id, cfg.conclusion_weight)
    ce, s_ce = ce_loss(out.logits, batch["labels"].to(out.logits.device), weights)
    hidden = out.hidden_states[-1]
    z = latents.to(hidden.device) if latents is not None else None
    if cfg.sim_loss == "infonce":
        sim, s_sim = latent_infonce_loss(hidden, z, mask, cfg.sim_temperature)
    else:
        sim, s_sim = latent_cosine_loss(hidden, z, mask)
    use_sim = cfg.use_sim and s_sim["n_latent"] > 0
    use_ce = cfg.use_ce or not use_sim  # a batch without latents under --no-ce still needs a loss path
    loss, s = dift_loss(ce, sim, l_ce=cfg.l_ce, l_sim=cfg.l_sim, use_ce=use_ce, use_sim=use_sim)
    if not cfg.use_ce and not use_sim:
        loss = loss * 0.0  # --no-ce and no latents here: nothing to learn from this batch
    stats = {**s, "ce": s_ce["ce"], "sim": s_sim["sim"], "cos": s_sim["cos"]}
    if cfg.latent_feed != "target" and mask.any():
        stats["self_fed"] = float(self_slots.sum()) / float(mask.sum())  # share of slots that took h_{t-1}
    if mask.any():  # latent health (fourdthinker.latent.health): norms of tensors computed above
        from fourdthinker.latent.health import latent_health

        with torch.no_grad():
            text = mask.logical_not() & batch["attention_mask"].to(mask.device).bool()  # [B, L]
            pred = hidden[:, :-1][mask[:, 1:]]  # [N, D] = h_{t-1}, as in latent_cosine_loss
            tid = ids[text]  # [M] one embedding row per distinct text token (video pads would dominate)
            uniq, inv = torch.unique(tid, return_inverse=True)
            first = torch.full_like(uniq, tid.numel()).scatter_reduce(0, inv, torch.arange(tid.numel(), device=tid.device), "amin")
            h = latent_health(pred, latents.to(pred.device), emb[text][first])
        stats.update({k: v for k, v in h.items() if k != "cos"})
    return loss, stats, out


# ----------------------------------------------------------------------------- entry point
def default_target_cache() -> Path:
    from fourdthinker.models.tokenizer import cache_root

    return cache_root() / "latent_targets"


def _zero3() -> bool:
    try:
        from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled
    except ImportError:  # pragma: no cover
        return False
    return bool(is_deepspeed_zero3_enabled())


def _gathered_encoder(ad):
    """Under ZeRO-3 the weights are partitioned across ranks: gather the (frozen, small) visual
    encoder while latent targets are computed. A no-op otherwise."""
    import contextlib

    if not _zero3():
        return contextlib.nullcontext()
    import deepspeed

    names = set(ad.encoder_state_dict())
    params = [p for n, p in ad.model.named_parameters() if n in names]
    return deepspeed.zero.GatheredParameters(params, modifier_rank=None)


def train_dift(cfg: DiftConfig) -> DiftResult:
    """Run DIFT (or a baseline mode) end to end: load -> encode data -> train -> save -> plot."""
    import contextlib

    import transformers

    from fourdthinker.latent.health import HealthCallback, plot_health
    from fourdthinker.latent.targets import LatentTargetCache
    from fourdthinker.models import load
    from fourdthinker.train.collate import DiftCollator, DiftDataset
    from fourdthinker.train.trainer import (
        StepLogCallback,
        apply_lora,
        last_checkpoint,
        plot_losses,
        save_final,
        training_args,
        write_json,
    )

    cfg.validate()
    transformers.utils.logging.disable_progress_bar()
    transformers.set_seed(cfg.seed)
    out = Path(cfg.out)
    resume_from = last_checkpoint(out) if cfg.resume else None
    if cfg.resume and resume_from is None:
        raise FileNotFoundError(f"--resume: no checkpoint-N with trainer_state.json in {out}")
    if not cfg.resume and last_checkpoint(out) is not None:
        raise FileExistsError(f"{out} already holds checkpoints: pass --resume to continue, or choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "dift_config.json", asdict(cfg))

    # TrainingArguments before the model: with a ZeRO-3 DeepSpeed config this lets from_pretrained
    # partition the weights as they load (HfDeepSpeedConfig is registered by TrainingArguments)
    args = training_args(str(out), lr=cfg.lr, max_steps=cfg.max_steps, epochs=cfg.epochs, batch_size=cfg.batch_size,
                         grad_accum=cfg.grad_accum, warmup_steps=cfg.warmup_steps, weight_decay=cfg.weight_decay,
                         scheduler=cfg.scheduler, grad_checkpointing=cfg.grad_checkpointing, bf16=cfg.bf16,
                         seed=cfg.seed, save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit,
                         deepspeed=cfg.deepspeed, dataloader_num_workers=cfg.dataloader_workers)
    ad = load(cfg.model, dtype=cfg.dtype, attn_implementation=cfg.attn_implementation,
              device="cuda" if torch.cuda.is_available() else "cpu")
    ad.freeze_visual()
    cache_dir = None if cfg.target_cache in (None, "none", "") else (
        default_target_cache() if cfg.target_cache == "auto" else Path(cfg.target_cache))
    main = args.process_index == 0
    if main and not resume_from:
        (out / "load_errors.jsonl").unlink(missing_ok=True)  # a fresh run logs its own load failures
    # Validation + latent-target pass: the main process fills the target cache first, the others
    # then find it warm (same records kept on every rank). Under ZeRO-3 the encoder gather is a
    # collective, so all ranks run it together.
    first = contextlib.nullcontext() if _zero3() else args.main_process_first(desc="DIFT data validation + latent targets")
    with first, _gathered_encoder(ad):
        targets = LatentTargetCache(ad, cfg.latent_size, cache_dir, pairs=cfg.latent_target == "pair") \
            if cfg.mode == "dift" else None
        ds = DiftDataset(cfg.data, ad, mode=cfg.mode, k=cfg.latent_size, targets=targets,
                         quarantine=out / "quarantine.jsonl" if main else None, load_errors=out / "load_errors.jsonl",
                         progress=cfg.progress and main, max_length=cfg.max_length, max_frames=cfg.max_frames,
                         max_pixels=cfg.max_pixels, span=cfg.frame_span, response=cfg.response)
    train_ds, heldout, n_held = ds, None, 0
    if cfg.mode == "dift" and cfg.health_heldout > 0 and len(ds) > 4 * cfg.health_heldout:
        # the last records are kept aside (deterministic, so --resume sees the same split)
        n_held = cfg.health_heldout
        train_ds = torch.utils.data.Subset(ds, range(len(ds) - n_held))
        heldout = DiftCollator(ad.pad_id)([ds[i] for i in range(len(ds) - n_held, len(ds))])
    gate_cb = None
    if cfg.stop_when != "none":
        from fourdthinker.train.readout import ReadoutGateCallback

        gate = _gate_samples(ds, cfg, out / "quarantine.jsonl" if main else None)
        kept = sorted(set(range(len(ds) - n_held)) - set(gate.indices))
        train_ds = torch.utils.data.Subset(ds, kept)  # the gate's records never train (deterministic for --resume)
        gate_cb = ReadoutGateCallback(ad, gate, cfg, gate=cfg.stop_when, every=cfg.gate_every, margin=cfg.gate_margin,
                                      tolerance=cfg.gate_tolerance, out=out, batch_size=max(8, cfg.batch_size))
    target_norm = None
    if cfg.mode == "dift" and cfg.feed_norm:
        from fourdthinker.train.latent_feed import target_mean_norm

        # Only when the norm is used: items are encoded on the fly (streaming data), so measuring it
        # costs up to 256 sample encodes before the first step.
        target_norm = target_mean_norm(train_ds)
        if cfg.latent_feed_norm is None:
            if target_norm is None:
                raise ValueError(f"{cfg.data}: --feed-norm needs latent targets, and no record has imagery")
            cfg.latent_feed_norm = target_norm
            write_json(out / "dift_config.json", asdict(cfg))
    extra = {"latent_size": cfg.latent_size, "latent_start_id": ad.latent_start_id, "latent_end_id": ad.latent_end_id,
             "latent_token_id": ad.latent_pad_id, "dift_mode": cfg.mode, "ce_loss_weight": cfg.l_ce,
             "sim_loss_weight": cfg.l_sim, "latent_feed": cfg.latent_feed if cfg.mode == "dift" else None,
             "latent_target_norm": target_norm, "latent_feed_norm": cfg.latent_feed_norm if cfg.feed_norm else None,
             "frame_span": cfg.frame_span, "imagery_bottleneck": cfg.imagery_bottleneck,
             "latent_target": cfg.latent_target if cfg.mode == "dift" else None,
             "dift_response": cfg.response}
    for k, v in extra.items():  # in the config now, so every checkpoint-N loads (eval, probe) as the final model does
        setattr(ad.model.config, k, v)
    if cfg.lora:
        ad.model = apply_lora(ad.model, r=cfg.lora_r, alpha=cfg.lora_alpha)
    ad.model.train()
    ad.freeze_visual()  # keep the encoder in eval mode and without grad (also under LoRA)
    log_cb = StepLogCallback(out / "log.jsonl", progress=cfg.progress)
    health_cb = HealthCallback(  # trainer is bound below, before the first call
        lambda b: dift_forward(ad, b, cfg, step=trainer.state.global_step, total=trainer.state.max_steps), heldout,
        every=cfg.health_every, factor=cfg.health_factor, progress=cfg.progress)
    trainer = DiftTrainer(model=ad.model, args=args, train_dataset=train_ds, data_collator=DiftCollator(ad.pad_id),
                          callbacks=[health_cb, *([gate_cb] if gate_cb else []), log_cb], adapter=ad, dift=cfg,
                          processing_class=ad.processor)  # health and gate before the log: same JSONL row; the
    log_cb.trainer = health_cb.trainer = trainer  # processor is saved in every checkpoint-N: each loads as a model
    if gate_cb is not None:
        gate_cb.trainer = trainer
    trainer.remove_callback(transformers.trainer_callback.PrinterCallback)  # our rich bar + JSONL replace it
    trainer.train(resume_from_checkpoint=resume_from)
    png = health_png = None
    if main:  # one writer; every rank holds the same (full) weights under DDP and ZeRO-1/2
        ad.model = save_final(ad.model, ad.processor, out, extra_config=extra)
        png = plot_losses(log_cb.rows, out / "loss.png", title=f"{cfg.mode} on {cfg.model}")
        health_png = plot_health(log_cb.rows, out / "latent_health.png", factor=cfg.health_factor,
                                 title=f"latent health: {cfg.mode} on {cfg.model}")
    elif hasattr(ad.model, "merge_and_unload"):
        ad.model = ad.model.merge_and_unload()
    trainer.accelerator.wait_for_everyone()
    final = log_cb.rows[-1].get("loss") if log_cb.rows else None
    errs = out / "load_errors.jsonl"
    n_err = len(errs.read_text().splitlines()) if errs.exists() else 0
    return DiftResult(out_dir=out, losses=log_cb.rows, n_samples=len(ds), n_skipped=len(ds.skipped),
                      loss_png=png, final_loss=final, health_png=health_png, n_heldout=n_held,
                      health_warnings=health_cb.messages, adapter=ad, n_load_errors=n_err,
                      n_gate=len(gate_cb.samples) if gate_cb is not None else 0,
                      gate_fired_at=gate_cb.fired_at if gate_cb is not None else None)


class _GateSamples:
    """The read-out gate's held-out records as a sequence that encodes each item on access (no pixel
    tensors are kept between checks). ``indices``: their items in the dataset."""

    def __init__(self, ds, indices: list[int]):
        self.ds, self.indices = ds, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.ds.load(self.indices[i])


def _gate_samples(ds, cfg: DiftConfig, quarantine: Path | None) -> _GateSamples:
    """The last ``cfg.gate_records`` records of ``cfg.gate_task`` (``train.readout.gate_indices``),
    each encoded once now: one that fails is dropped with its reason (added to the quarantine file)."""
    from fourdthinker.io import append_jsonl
    from fourdthinker.train.readout import gate_indices

    task = None if cfg.gate_task in (None, "", "none", "all") else cfg.gate_task
    idx = gate_indices(ds.tasks(), task, cfg.gate_records)
    ok = []
    for i in idx:
        try:
            ds.load(i)
        except Exception as e:  # noqa: BLE001 - one bad record leaves the gate, never stops the run
            if quarantine is not None:
                append_jsonl(quarantine, {"line": int(ds.lines[i]), "reason": f"read-out gate: {e}".splitlines()[0]})
            continue
        ok.append(i)
    if not ok:
        raise ValueError(f"{ds.file}: none of the {len(idx)} read-out gate records could be encoded")
    return _GateSamples(ds, ok)
