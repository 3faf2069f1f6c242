"""The model-facing building blocks of one 4DRL step (``train/rl.py`` wires them): the batched
latent-recurrent ``rollout``, the exact ``response_logps`` replay of a rollout under a model (lm_head
only at response positions, chunked: ``head_logps``), the loss mask ``text_token_mask``, the
micro-batch arithmetic that keeps an accumulated gradient equal to the whole-batch gradient
(``response_text_tokens``, ``microbatch_weight``, ``merge_loss_stats``, ``pad_prompt_batch_left``),
and small helpers (``with_model`` for the frozen reference,
``model_latent_size``, ``maybe_latent_ids``)."""

from __future__ import annotations

import copy
from collections.abc import Sequence

from fourdthinker.data.records import RLRecord

__all__ = ["head_logps", "maybe_latent_ids", "merge_loss_stats", "microbatch_weight", "model_latent_size",
           "pad_prompt_batch_left", "response_logps", "response_text_tokens", "responses_per_prompt", "rollout", "text_token_mask", "with_model"]


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


def response_logps(adapter, prompt_batch: dict, results, *, grad: bool, temperature: float = 1.0,
                   logit_chunk: int = 0, vision=None):
    """Per-token log-probs of each response under ``adapter.model``, replaying the exact rollout
    (latent slots get the rollout's vectors). Returns ``(logps [B, R], replay dict)``.

    The lm_head runs only on the hidden states that predict response tokens (positions
    ``L-1 .. L+R-2``), never over the prompt, and ``logit_chunk`` positions at a time
    (``head_logps``): at real size the vocabulary is 151,936 columns, so full logits over
    prompt + response would dominate the replay's memory.

    A batch with fewer rows than ``results`` (each question once, ``len(results) / rows``
    responses per prompt, prompt-major) is replayed with the prompt run once per question and
    shared by its responses (``latent.prefix.shared_prompt_replay``: the same log-probs and
    gradients, docs/rl_speed.md), with the step's precomputed frozen-encoder features ``vision``
    when given."""
    import torch

    from fourdthinker.latent.decode import replay_forward

    if responses_per_prompt(prompt_batch, len(results)) > 1:
        from fourdthinker.latent.prefix import shared_prompt_replay

        rep = shared_prompt_replay(adapter, prompt_batch, results, grad=grad, logits=False, vision=vision)
        with torch.set_grad_enabled(grad):  # rep["hidden"][:, i] predicts response token i
            lp = head_logps(rep["hidden"], adapter.model.get_output_embeddings(), rep["response_ids"], temperature,
                            chunk=logit_chunk)
        return lp, rep

    rep = replay_forward(adapter, prompt_batch, results, grad=grad, lm_head=False)
    L = int(rep["prompt_len"])
    R = rep["response_ids"].shape[1]
    hidden = rep["hidden"][:, L - 1 : L + R - 1]  # [B, R, D]: position L+i-1 predicts response token i
    with torch.set_grad_enabled(grad):
        lp = head_logps(hidden, adapter.model.get_output_embeddings(), rep["response_ids"], temperature,
                        chunk=logit_chunk)
    return lp, rep


def head_logps(hidden, head, targets, temperature: float = 1.0, *, chunk: int = 0):
    """``token_logps(head(hidden), targets, T)`` (``train/grpo.py``) computed ``chunk`` positions at
    a time: ``[B, R, D] -> [B, R]``. With gradients each chunk runs under activation checkpointing,
    so no ``[B, R, V]`` logits are kept for the backward (they are recomputed chunk by chunk);
    ``chunk=0`` or ``chunk >= R``: one call, exactly the unchunked computation."""
    import torch
    from torch.utils.checkpoint import checkpoint

    from fourdthinker.train.grpo import token_logps

    R = hidden.shape[1]
    if not chunk or chunk >= R:
        return token_logps(head(hidden), targets, temperature)

    def part(h, t):
        return token_logps(head(h), t, temperature)

    outs = []
    for s in range(0, R, chunk):
        h, t = hidden[:, s : s + chunk], targets[:, s : s + chunk]
        outs.append(checkpoint(part, h, t, use_reentrant=False) if torch.is_grad_enabled() else part(h, t))
    return torch.cat(outs, 1)


def response_text_tokens(results, latent_ids=None, *, score_latent_start: bool = False) -> list[int]:
    """Number of loss (text) tokens of each response: ``text_token_mask`` of its own tokens, or all
    of them when the model has no latent tokens. What a micro-batch needs to know about the rest
    of the batch to reproduce the whole-batch ``bnpo`` normalisation (``microbatch_weight``)."""
    import torch

    out = []
    for r in results:
        ids = torch.tensor([list(r.token_ids)], dtype=torch.long)  # [1, n]
        if latent_ids is None or ids.shape[1] == 0:
            out.append(int(ids.shape[1]))
            continue
        lat = torch.tensor([list(r.is_latent)], dtype=torch.bool)
        out.append(int(text_token_mask(ids, torch.ones_like(ids), lat, latent_ids,
                                       score_latent_start=score_latent_start).sum()))
    return out


def microbatch_weight(loss_type: str, *, rows: int, text_tokens: int, width: int, total_rows: int,
                      total_text_tokens: int, total_width: int) -> float:
    """Weight ``w_m`` of a micro-batch's ``grpo_loss`` so that ``sum_m w_m * L_m`` is exactly the loss
    of the whole batch (so the accumulated gradient is the whole-batch gradient).

    ``grpo_loss`` divides the micro-batch's summed per-token terms by its own denominator ``D_m``;
    the whole batch divides the same terms by ``D``, hence ``w_m = D_m / D`` with
    ``grpo``: ``D = B`` (mean over responses of per-response token means), ``bnpo``:
    ``D = max(1, N)`` (text tokens), ``dr_grpo``: ``D = B * T`` (responses x padded width).

    >>> microbatch_weight("bnpo", rows=2, text_tokens=3, width=5, total_rows=4, total_text_tokens=12, total_width=7)
    0.25
    >>> microbatch_weight("dr_grpo", rows=2, text_tokens=3, width=5, total_rows=4, total_text_tokens=12, total_width=10)
    0.25
    """
    if loss_type == "grpo":
        return rows / total_rows
    if loss_type == "bnpo":
        return max(1, text_tokens) / max(1, total_text_tokens)
    if loss_type == "dr_grpo":
        return (rows * width) / (total_rows * total_width)
    raise ValueError(f"unknown loss_type {loss_type!r}; use 'grpo', 'bnpo' or 'dr_grpo'")


def merge_loss_stats(parts: Sequence[tuple[dict[str, float], int]]) -> dict[str, float]:
    """Whole-batch ``grpo_loss`` stats from its micro-batches' ``(stats, text_tokens)``: the
    per-text-token means (``policy_loss``, ``kl``, ``clip_frac``, ``ratio_mean``) weighted by text
    tokens, ``text_tokens`` summed. One part is returned unchanged."""
    if len(parts) == 1:
        return dict(parts[0][0])
    n = sum(k for _, k in parts)
    out = {k: sum(st[k] * m for st, m in parts) / max(1, n) for k in ("policy_loss", "kl", "clip_frac", "ratio_mean")}
    out["text_tokens"] = float(n)
    return out


def pad_prompt_batch_left(batch: dict, length: int, pad_id: int) -> dict:
    """A left-padded prompt batch widened on the left to ``length`` columns (``input_ids`` with
    ``pad_id``; ``attention_mask``, ``mm_token_type_ids`` with 0): a micro-batch encoded on its
    own gets exactly the rows the whole batch had."""
    import torch

    from fourdthinker.models.base import SEQ_KEYS

    out = dict(batch)
    extra = length - batch["input_ids"].shape[1]
    if extra <= 0:
        return out
    for k in SEQ_KEYS:
        v = batch.get(k)
        if torch.is_tensor(v):
            fill = pad_id if k == "input_ids" else (-100 if k == "labels" else 0)
            out[k] = torch.cat([v.new_full((v.shape[0], extra), fill), v], 1)
    return out


def with_model(adapter, model):
    """A shallow copy of ``adapter`` driving another model (the frozen reference)."""
    other = copy.copy(adapter)
    other.model = model
    return other


def model_latent_size(adapter, default: int = 4) -> int:
    """K of a model: the adapter's ``latent_size``, else the checkpoint config's (DIFT writes it), else 4
    (``latent.blocks.resolve_latent_size``, the one K rule)."""
    from fourdthinker.latent.blocks import resolve_latent_size

    return resolve_latent_size(adapter, None, default)


def maybe_latent_ids(adapter):
    """Latent ids when the model has them (baselines may start from a base model without)."""
    try:
        from fourdthinker.latent.decode import latent_ids

        return latent_ids(adapter)
    except ValueError:
        return None
