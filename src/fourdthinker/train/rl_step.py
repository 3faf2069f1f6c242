"""The model-facing building blocks of one 4DRL step (``train/rl.py`` wires them): the batched
latent-recurrent ``rollout``, the exact ``response_logps`` replay of a rollout under a model, the
loss mask ``text_token_mask``, and small helpers (``with_model`` for the frozen reference,
``model_latent_size``, ``maybe_latent_ids``)."""

from __future__ import annotations

import copy
from collections.abc import Sequence

from fourdthinker.data.records import RLRecord

__all__ = ["maybe_latent_ids", "model_latent_size", "response_logps", "responses_per_prompt", "rollout", "text_token_mask",
           "with_model"]


def rollout(adapter, prompt_batch: dict, records: Sequence[RLRecord], cfg, generator=None, vision=None):
    """Sample ``len(records)`` responses in one batched latent-recurrent decode. Returns
    ``DecodeResult`` per record. ``prompt_batch`` either repeats each question G times (one row per
    record) or holds each question once (``len(records) / rows`` responses per row from one prefill
    per question: prefix sharing, docs/rl_speed.md). ``vision``: the batch's precomputed
    frozen-encoder features (``latent.prefix.encode_vision``), reused instead of recomputed."""
    import torch

    from fourdthinker.latent.decode import latent_generate

    adapter.model.eval()
    with torch.no_grad():
        return latent_generate(
            adapter,
            prompt_batch,
            latent_size=cfg.latent_size,
            max_new_tokens=cfg.max_new_tokens,
            do_sample=True,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            max_latent_blocks=cfg.max_latent_blocks if cfg.latents_enabled else 0,
            generator=generator,
            options=[r.options for r in records],
            num_return_sequences=responses_per_prompt(prompt_batch, len(records)),
            vision=vision,
        )


def responses_per_prompt(prompt_batch: dict, n_responses: int) -> int:
    """How many responses each prompt row of ``prompt_batch`` stands for (1 = unshared batch)."""
    rows = int(prompt_batch["input_ids"].shape[0])
    if n_responses % rows:
        raise ValueError(f"{n_responses} responses for {rows} prompt rows: need the same number per prompt")
    return n_responses // rows


def text_token_mask(response_ids, response_mask, latent_mask, latent_ids, *, score_latent_start: bool = False):
    """``[B, R]`` bool: True at response tokens the policy sampled as text (the loss positions).

    Excluded: padding (``response_mask == 0``), latent slots (``latent_mask``), the placed
    ``<|latent_end|>`` and, unless ``score_latent_start``, ``<|latent_start|>``; the latent pad id is
    excluded wherever it appears."""
    import torch

    m = response_mask.bool() & ~latent_mask.bool()
    drop = [latent_ids.end, latent_ids.pad] + ([] if score_latent_start else [latent_ids.start])
    return m & ~torch.isin(response_ids, torch.tensor(drop, device=response_ids.device))


def response_logps(adapter, prompt_batch: dict, results, *, grad: bool, temperature: float = 1.0, vision=None):
    """Per-token log-probs of each response under ``adapter.model``, replaying the exact rollout
    (latent slots get the rollout's vectors). Returns ``(logps [B, R], replay dict)``. A batch with
    fewer rows than ``results`` (each question once) is replayed with the prompt run once per
    question and shared by its responses (``latent.prefix.shared_prompt_replay``; same log-probs
    and gradients), with the step's precomputed frozen-encoder features ``vision`` when given."""
    from fourdthinker.latent.decode import replay_forward
    from fourdthinker.train.grpo import token_logps

    if responses_per_prompt(prompt_batch, len(results)) > 1:
        from fourdthinker.latent.prefix import shared_prompt_replay

        rep = shared_prompt_replay(adapter, prompt_batch, results, grad=grad, vision=vision)
        return token_logps(rep["logits"], rep["response_ids"], temperature), rep

    rep = replay_forward(adapter, prompt_batch, results, grad=grad)
    L = int(rep["prompt_len"])
    R = rep["response_ids"].shape[1]
    logits = rep["logits"][:, L - 1 : L + R - 1]  # [B, R, V]: position L+i-1 predicts response token i
    return token_logps(logits, rep["response_ids"], temperature), rep


def with_model(adapter, model):
    """A shallow copy of ``adapter`` driving another model (the frozen reference)."""
    other = copy.copy(adapter)
    other.model = model
    return other


def model_latent_size(adapter, default: int = 4) -> int:
    """K of a model: the adapter's ``latent_size``, else the checkpoint config's (DIFT writes it), else 4."""
    k = getattr(adapter, "latent_size", None) or getattr(getattr(adapter.model, "config", None), "latent_size", None)
    return int(k or default)


def maybe_latent_ids(adapter):
    """Latent ids when the model has them (baselines may start from a base model without)."""
    try:
        from fourdthinker.latent.decode import latent_ids

        return latent_ids(adapter)
    except ValueError:
        return None
