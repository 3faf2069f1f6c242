"""What DIFT feeds at the latent slots during training: ``--latent-feed target|self|mixed``.

The paper trains with teacher forcing (``target``): the K slots of every imagery block hold the
pooled target latents z (docs/method.md, Eq. 6-9). At inference the decoder feeds the model's own
last hidden state instead (Eq. 10: e_t = h_{t-1}), so a teacher-forced model never sees its own
imagery while it trains. The other two feeds close that loop:

* ``self``   every slot t is filled with h_{t-1}, computed step by step exactly as the latent
  decoder does at inference (``fourdthinker.latent.decode.latent_generate``). The sequence is cut
  at every self-fed slot: one forward over the text before the block (KV cache kept), then one
  cached single-position forward per slot whose input is the previous forward's last hidden state
  (so K+1 forwards per block), then the text after it. Gradients flow through the whole chain
  (the cache's keys/values and the fed vectors are never detached). The Eq. 9 cosine to z is kept
  on every slot, so the chain is pulled towards the targets it replaces.
* ``mixed``  scheduled sampling: each slot (or each whole block, ``mix_unit``) is self-fed with
  probability r(s) and teacher-forced otherwise; r goes linearly from ``mix_start`` to
  ``mix_end`` over training (:func:`mix_ratio`). The draw is a Bernoulli from a generator seeded
  by (seed, optimizer step, the batch's record ids), so a resumed or multi-process run draws the
  same slots. r = 0 is ``target``; r = 1 is ``self``.

Positions are the ones the full sequence has (``adapter.position_ids`` over the whole batch,
M-RoPE for Qwen) sliced per forward, so every token sits exactly where teacher forcing puts it.

Norm-consistent feeding (``feed_norm``): every vector fed at a slot (z under teacher forcing,
h_{t-1} under self-feed) is rescaled to one L2 norm, the training targets' mean norm
(:func:`target_mean_norm`). The trained model stores it as ``latent_feed_norm`` in its config and
``latent_generate`` applies the same rescaling by default, so training and inference feed vectors
on the same scale.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch

from fourdthinker.latent.interventions import match_norm

__all__ = ["FEEDS", "MIX_UNITS", "chain_forward", "draw_self_slots", "mix_ratio", "slot_seed", "target_mean_norm"]

FEEDS = ("target", "self", "mixed")
MIX_UNITS = ("slot", "block")


def mix_ratio(step: int, total: int, start: float = 0.0, end: float = 1.0) -> float:
    """Share of self-fed slots at optimizer step ``step`` of ``total`` (linear schedule):
    r(s) = start + (end - start) * min(1, s / max(1, total - 1)).

    >>> [round(mix_ratio(s, 5), 2) for s in range(5)]
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    frac = min(1.0, max(0.0, step / max(1, total - 1)))
    return float(start + (end - start) * frac)


def slot_seed(seed: int, step: int, ids: Sequence[str] | None) -> int:
    """Seed of the slot draw of one micro-batch: a hash of (seed, step, record ids), so the same
    batch at the same step draws the same slots after a resume and on every process."""
    key = f"{seed}|{step}|{'|'.join(map(str, ids or ()))}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") & ((1 << 63) - 1)


def draw_self_slots(mask: torch.Tensor, ratio: float, generator: torch.Generator | None = None,
                    unit: str = "slot") -> torch.Tensor:
    """Bool ``[B, L]`` subset of ``mask``: the latent slots to self-feed, each slot (``unit='slot'``)
    or each block (``unit='block'``, all K slots of a block together) drawn Bernoulli(ratio).
    ratio 0 -> none, ratio 1 -> all of ``mask`` (no draw needed)."""
    if unit not in MIX_UNITS:
        raise ValueError(f"mix_unit must be one of {MIX_UNITS}, got {unit!r}")
    if ratio <= 0:
        return torch.zeros_like(mask)
    if ratio >= 1:
        return mask.clone()
    B, L = mask.shape
    u = torch.rand((B, L), generator=generator)  # CPU draw: same on every device
    if unit == "block":
        u = torch.gather(u, 1, _first_pos_of_block(mask.cpu()))  # one draw per block (its first slot's)
    return mask & (u < ratio).to(mask.device)


def _first_pos_of_block(mask: torch.Tensor) -> torch.Tensor:
    """For each position the column of the first slot of its block (a block = a run of True in a
    row), its own column elsewhere.

    >>> _first_pos_of_block(torch.tensor([[False, True, True, False, True]])).tolist()
    [[0, 1, 1, 3, 4]]
    """
    B, L = mask.shape
    prev = torch.zeros_like(mask)
    prev[:, 1:] = mask[:, :-1]
    starts = mask & ~prev
    col = torch.arange(L).expand(B, L)
    start_col = torch.where(starts, col, torch.zeros_like(col)).cummax(-1).values
    return torch.where(mask, start_col, col)


def target_mean_norm(dataset: Any, limit: int = 256) -> float | None:
    """Mean L2 norm of the DIFT targets z over the first ``limit`` samples of ``dataset`` (items
    with a ``latents [n, D]`` tensor); None when none has latents. Deterministic (the same records
    every run and on every process). nu = (1/N) * sum_i ||z_i||."""
    total, n = 0.0, 0
    for i in range(min(len(dataset), limit)):
        z = getattr(dataset[i], "latents", None)
        if z is not None and z.numel():
            total += float(z.float().norm(dim=-1).sum())
            n += z.shape[0]
    return total / n if n else None


def _cache_of(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


_NOT_MODEL_INPUTS = ("labels", "latents", "ids")


def chain_forward(adapter, batch: dict, emb: torch.Tensor, pos: torch.Tensor, self_slots: torch.Tensor, *,
                  feed_norm: float | None = None, record: list | None = None,
                  attn4d: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward of a DIFT batch whose ``self_slots`` take the model's own h_{t-1} (module docstring).

    ``emb [B, L, D]`` are the input embeddings with the teacher-forced vectors already at every
    latent slot; ``pos`` the positions of the whole sequence (``[3, B, L]`` or ``[B, L]``);
    ``self_slots [B, L]`` bool. The sequence is cut before every column where some row is
    self-fed; each piece runs through ``adapter.forward`` with the KV cache of the pieces before
    it. At a cut column, the rows that are self-fed get h (the last hidden state of the previous
    piece, rescaled to ``feed_norm`` if given); the others keep their input. ``record``, if given,
    receives one list per row of the vectors fed at its self-fed slots, in order (still in the
    autograd graph: detach them to keep them). ``attn4d`` ``[B, 1, L, L]``, if given, is the additive
    attention mask of the whole sequence (the imagery bottleneck, ``latent.bottleneck``): each piece
    takes its rows a..b-1 over keys 0..b-1 instead of the padding mask.

    Returns ``(logits [B, L, V], hidden [B, L, D])`` (hidden = last layer after the final norm)."""
    ids = batch["input_ids"].to(emb.device)
    att = batch["attention_mask"].to(emb.device)
    B, L = ids.shape
    if self_slots[:, 0].any():
        raise ValueError("chain_forward: a latent slot at position 0 has no h_{t-1}")
    cols = torch.nonzero(self_slots.any(0)).flatten().tolist()
    bounds = [0, *cols, L]
    if record is not None:
        record.extend([] for _ in range(B))
    cache, prev_h = None, None
    logits, hidden = [], []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        seg = emb[:, a:b]
        if a > 0:
            rows = torch.nonzero(self_slots[:, a]).flatten()  # the rows self-fed at this column
            h = match_norm(prev_h, feed_norm) if feed_norm else prev_h
            parts = h[rows].to(seg.dtype).unbind(0)  # one [D] per self-fed row (what `record` keeps)
            first = seg[:, 0].index_put((rows,), torch.stack(parts))  # out of place: other rows keep their input
            seg = torch.cat([first[:, None], seg[:, 1:]], 1)
            if record is not None:
                for r, v in zip(rows.tolist(), parts, strict=True):
                    record[r].append(v)
        more = b < L
        mask_ab = att[:, :b] if attn4d is None else attn4d[:, :, a:b, :b]
        if a == 0:
            sub = {k: v for k, v in batch.items() if k not in _NOT_MODEL_INPUTS}
            for k in ("input_ids", "attention_mask", "mm_token_type_ids"):
                if torch.is_tensor(sub.get(k)) and tuple(sub[k].shape[:2]) == (B, L):
                    sub[k] = sub[k][:, :b]
            out = adapter.forward(sub, inputs_embeds=seg, position_ids=pos[..., :b], attention_mask=mask_ab,
                                  use_cache=more)
        else:
            out = adapter.forward(None, inputs_embeds=seg, position_ids=pos[..., a:b], attention_mask=mask_ab,
                                  cache=cache, use_cache=more)
        if more:
            cache = _cache_of(out)
            if cache is None:
                raise RuntimeError("chain_forward: the model returned no KV cache (gradient checkpointing turns it off; "
                                   "self/mixed latent feed needs it)")
        hid = out.hidden_states[-1]
        prev_h = hid[:, -1]
        logits.append(out.logits)
        hidden.append(hid)
    return torch.cat(logits, 1), torch.cat(hidden, 1)
