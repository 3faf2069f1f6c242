"""Latent-recurrent decoding (Eq. 10, docs/method.md#eq-10): text generation that thinks with latent imagery.

The model decodes text as usual; when it emits ``<|latent_start|>``, the next K input embeddings
are its own last hidden states (e_t = h_{t-1}, the last decoder layer after the final norm, the
same vector the DIFT loss Eq. 9 trains towards the pooled overlay latents), then
``<|latent_end|>`` is placed and text decoding resumes. Exactly K latent steps per block, never an
early close (docs/reference.md#decoding), matching the DIFT layout ``<|latent_start|> K x <|latent_pad|>
<|latent_end|>``.

How (fast by construction, docs/inference.md#speed):
* the prompt, video included, is encoded once (prefill) and every later step feeds one input
  embedding per sample through the KV cache;
* the batch carries per-sample state (tensors, no Python per-row loops on the hot path): each
  sample enters and leaves latent blocks at its own steps. The reference's batched decoder fed the
  ``<|latent_pad|>`` embedding to every mid-block row whenever *another* row opened a block
  (docs/reference.md#decoding); here every row always gets its own input;
* positions: Qwen2.5-VL / Qwen3-VL (M-RoPE) continue at ``cache position + rope_deltas`` with the
  same 1-D value on all three axes, exactly as ``generate`` does; InternVL (1-D RoPE) continues
  at the number of valid tokens so far (left padding aware);
* greedy or sampling (temperature, top-p); stops at ``</answer>``, EOS or the token budget; an
  optional cap on latent blocks (the latent-start logit is suppressed once reached).

Outputs (``DecodeResult``) carry everything the RL stage needs to replay the exact sequence:
the response ids (with the latent start/pad/end ids), a per-token ``is_latent`` flag, and the
vectors fed at latent positions (detached). ``replay_forward`` runs one full, non-cached forward
over prompt + responses with those vectors re-injected (the RL policy/ref forward; the test
oracle for the cached loop).

Validated (tests/latent/test_decode*.py, tiny random models of all three families): greedy with no
latent block equals ``model.generate`` token for token; fed-back states equal a full forward's
hidden states (1e-4, fp32); batched equals one-by-one; exactly K latent steps per block.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from fourdthinker.latent.blocks import resolve_latent_size
from fourdthinker.latent.bottleneck import (
    bottleneck_mask,
    check_attention,
    model_bottleneck,
    placeholder_ids,
    visual_marker_ids,
    visual_span,
)
from fourdthinker.latent.interventions import (
    apply_intervention,
    check_intervention,
    match_norm,
    resolve_feed_norm,
)
from fourdthinker.qa import parse_answer

__all__ = [
    "DecodeResult",
    "ForceTokens",
    "LatentIds",
    "latent_generate",
    "latent_ids",
    "response_tensors",
    "render_text",
    "replay_bottleneck",
    "replay_forward",
    "sample_next",
]

LogitsHook = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""HF ``LogitsProcessor`` signature: (input_ids [B, L+t] prompt + response so far, scores [B, V]) -> scores."""


@dataclass
class DecodeResult:
    """One sample's decoded response.

    ``token_ids[i]`` is the i-th response token; ``is_latent[i]`` is True where the input embedding
    at that position was a fed-back vector (a ``<|latent_pad|>`` slot); ``latent_inputs[j]`` is the
    vector fed at the j-th such position ([n_latent, D], detached, after any intervention or norm
    matching) so the exact sequence can be replayed (``replay_forward``)."""

    token_ids: list[int]
    is_latent: list[bool]
    latent_inputs: torch.Tensor
    text: str
    answer: str | None
    n_latent_steps: int
    n_latent_blocks: int
    latency_s: float
    finished: bool
    stop_reason: str  # "answer" | "eos" | "budget"
    raw_text: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe summary (no tensors)."""
        return {
            "text": self.text,
            "answer": self.answer,
            "n_latent_steps": self.n_latent_steps,
            "n_latent_blocks": self.n_latent_blocks,
            "latency_s": round(self.latency_s, 4),
            "finished": self.finished,
            "stop_reason": self.stop_reason,
            "n_tokens": len(self.token_ids),
        }


@dataclass(frozen=True)
class LatentIds:
    start: int
    end: int
    pad: int


def latent_ids(adapter: Any) -> LatentIds:
    """The three latent special-token ids of ``adapter`` (or its tokenizer); clear error if absent."""
    ids = [getattr(adapter, f"latent_{n}_id", None) for n in ("start", "end", "pad")]
    if any(i is None for i in ids):
        tok = getattr(adapter, "tokenizer", None)
        if tok is not None:
            vocab = tok.get_vocab()
            ids = [vocab.get(f"<|latent_{n}|>") for n in ("start", "end", "pad")]
    if any(i is None for i in ids):
        name = getattr(getattr(adapter, "model", None), "name_or_path", None) or type(adapter).__name__
        raise ValueError(
            f"model {name} has no latent tokens (<|latent_start|>, <|latent_end|>, <|latent_pad|>); "
            "train it with `fourdthinker train dift` (which adds them) or add them with adapter.add_latent_tokens()"
        )
    return LatentIds(*(int(i) for i in ids))


# --------------------------------------------------------------------------------------------
# pure pieces


class ForceTokens:
    """Logits hook that forces token ``schedule[t]`` at response step ``t`` (0-based; latent slots
    count as steps). Use it to open an imagery block at a chosen step (``probe``-style debugging,
    tests on random models) or to force an answer prefix.

    >>> hook = ForceTokens(prompt_len=3, schedule={0: 2})
    >>> hook(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 4)).argmax(-1)
    tensor([2])
    """

    def __init__(self, prompt_len: int, schedule: Mapping[int, int]):
        self.prompt_len = int(prompt_len)
        self.schedule = {int(k): int(v) for k, v in schedule.items()}

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        tid = self.schedule.get(input_ids.shape[1] - self.prompt_len)
        if tid is not None:
            scores = scores.clone()
            scores[:, tid] = scores.max(dim=-1).values.clamp_min(0) + 1e4
        return scores


def sample_next(
    logits: torch.Tensor,
    *,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Next token per row, [B]: argmax, or a sample from softmax(logits / T) restricted to the
    smallest set of tokens whose probability mass reaches ``top_p`` (nucleus sampling; the most
    likely token is always kept, as in HF's ``TopPLogitsWarper``).

    The draw is by inverse CDF: one uniform number per row (``torch.rand`` on ``generator``) is
    located in the cumulative kept mass. That is an exact sample of the same distribution as
    ``torch.multinomial``, which instead draws one exponential per vocabulary entry (1.2 M numbers
    per step for 8 rows of a 151,936-token vocabulary: a large share of a CPU decode step).
    Tokens of probability 0 (``-inf`` logits) are never drawn.

    >>> sample_next(torch.tensor([[0.0, 2.0, 1.0]]))
    tensor([1])
    """
    if not do_sample:
        return logits.argmax(dim=-1)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 when sampling, got {temperature}")
    scores = logits.float()  # [B, V]
    if temperature != 1.0:
        scores = scores / temperature
    order = None
    if top_p < 1.0:
        scores, order = scores.sort(dim=-1, descending=False)  # ascending: the kept tokens are a suffix
    probs = scores.softmax(dim=-1)
    cum = probs.double().cumsum(dim=-1)  # float64: tokens far below 1e-7 keep their (tiny) share
    low = torch.zeros_like(cum[:, :1])  # mass below the kept suffix (0 without top_p)
    if order is not None:
        removed = cum <= (1.0 - top_p)
        removed[..., -1] = False  # keep the top token
        low = (cum * removed).amax(dim=-1, keepdim=True)
    u = torch.rand(cum.shape[0], 1, generator=generator, device=cum.device, dtype=cum.dtype)
    u = low + u * (cum[:, -1:] - low)  # uniform over the kept mass
    idx = torch.searchsorted(cum, u, right=True)  # first entry whose cumulative mass exceeds u
    over = idx >= cum.shape[-1]  # u rounded up to the total: take the most likely token
    if bool(over.any()):
        idx = torch.where(over, probs.argmax(dim=-1, keepdim=True), idx)
    if order is not None:
        idx = order.gather(-1, idx)
    return idx.squeeze(-1)


def render_text(
    tokenizer: Any,
    token_ids: Sequence[int],
    ids: LatentIds,
    *,
    drop_ids: Sequence[int] = (),
) -> str:
    """Response text with each latent block shown as ``<imagery:K>`` (K = its latent steps);
    ``drop_ids`` (EOS, padding) are left out."""
    drop = set(drop_ids)
    parts: list[str] = []
    seg: list[int] = []
    k = 0
    in_block = False
    for t in token_ids:
        if in_block:
            if t == ids.pad:
                k += 1
                continue
            if t == ids.end:
                parts.append(f"<imagery:{k}>")
                in_block = False
                continue
        if t == ids.start:
            parts.append(tokenizer.decode(seg, skip_special_tokens=False))
            seg, k, in_block = [], 0, True
            continue
        if t in drop:
            continue
        seg.append(int(t))
    if in_block:  # cut by the budget inside a block
        parts.append(f"<imagery:{k}>")
    parts.append(tokenizer.decode(seg, skip_special_tokens=False))
    return "".join(parts)


# --------------------------------------------------------------------------------------------
# model plumbing (family-generic through the stock HF classes)


def _base(model: torch.nn.Module) -> torch.nn.Module:
    base = getattr(model, "model", None)
    if base is None:
        raise TypeError(f"{type(model).__name__} has no `.model` (expected a HF *ForConditionalGeneration VLM)")
    return base


def _uses_mrope(model: torch.nn.Module) -> bool:
    return hasattr(_base(model), "rope_deltas")


def _eos_ids(adapter: Any) -> list[int]:
    if getattr(adapter, "eos_ids", None):
        return [int(e) for e in adapter.eos_ids]
    eos: Any = getattr(getattr(adapter.model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = getattr(adapter.tokenizer, "eos_token_id", None)
    if eos is None:
        return []
    return [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]


def _pad_id(adapter: Any, eos: list[int]) -> int:
    pad = getattr(adapter.tokenizer, "pad_token_id", None)
    return int(pad if pad is not None else (eos[0] if eos else 0))


_GT_CACHE: dict[int, torch.Tensor] = {}


def _has_gt(tokenizer: Any, vocab_size: int) -> torch.Tensor:
    """[V] bool: token strings that contain '>' (only those can complete ``</answer>``)."""
    key = id(tokenizer)
    if key not in _GT_CACHE:
        flags = torch.zeros(vocab_size, dtype=torch.bool)
        for tok, i in tokenizer.get_vocab().items():
            if i < vocab_size and ">" in tok:
                flags[i] = True
        _GT_CACHE[key] = flags
    return _GT_CACHE[key]


def _cache_of(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


def _model_kwargs(model: torch.nn.Module, batch: Mapping[str, Any]) -> dict[str, Any]:
    """The batch's tensors on the model's device (vision tensors in the model's dtype)."""
    dev = next(model.parameters()).device
    out = {}
    for k, v in batch.items():
        if torch.is_tensor(v):
            out[k] = v.to(dev, model.dtype) if v.is_floating_point() and k.startswith("pixel_values") else v.to(dev)
    return out


def _prefill(model: torch.nn.Module, batch: Mapping[str, Any], vision: Mapping[str, Any] | None = None,
             attn4d: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
             ) -> tuple[torch.Tensor, Any, torch.Tensor]:
    """Encode the prompt once. Returns (last hidden [B, D], cache, next position [B]).
    ``vision``: precomputed ``latent.prefix.encode_vision`` features used instead of the pixels.
    ``attn4d`` (a 4-D additive mask, the imagery bottleneck) needs explicit ``position_ids``: the
    model cannot derive M-RoPE positions from a 4-D mask."""
    base = _base(model)
    mask = batch["attention_mask"]
    kwargs = _model_kwargs(model, batch)
    has_vision = any(k in batch for k in ("pixel_values", "pixel_values_videos"))
    mrope = _uses_mrope(model)
    if mrope:
        base.rope_deltas = None  # stale deltas from the previous batch would shift every position
    if position_ids is not None:
        kwargs["position_ids"] = position_ids
    elif not (mrope and has_vision):
        kwargs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp_min(0)  # left-padding aware 1-D positions
    if attn4d is not None:
        if position_ids is None:
            raise ValueError("_prefill: a 4-D attention mask needs explicit position_ids")
        kwargs["attention_mask"] = attn4d
    if vision is not None:
        from fourdthinker.latent.prefix import with_vision

        kwargs = with_vision(kwargs, vision)
    out = base(**kwargs, use_cache=True)
    n_valid = mask.long().sum(-1)  # [B]
    next_pos = n_valid.clone()
    if position_ids is not None:  # max position over the real tokens + 1
        m = mask.to(position_ids.device).bool()
        p = position_ids if position_ids.dim() == 3 else position_ids[None]
        next_pos = p.masked_fill(~m[None], -1).amax(dim=(0, 2)).to(n_valid.device) + 1
    elif mrope and has_vision and base.rope_deltas is not None:
        next_pos = n_valid + base.rope_deltas.view(-1).to(n_valid.device)  # max position + 1
    return out.last_hidden_state[:, -1], _cache_of(out), next_pos


def _step(model: torch.nn.Module, embeds: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache: Any):
    """One cached step: embeds [B, D] at positions pos [B] -> (hidden [B, D], cache)."""
    b = embeds.shape[0]
    position_ids = pos.view(1, b, 1).expand(3, b, 1) if _uses_mrope(model) else pos.view(b, 1)
    out = _base(model)(inputs_embeds=embeds[:, None], attention_mask=mask, position_ids=position_ids, cache=cache, use_cache=True)
    return out.last_hidden_state[:, -1], _cache_of(out)


# --------------------------------------------------------------------------------------------
# the decoder


@torch.no_grad()
def latent_generate(
    adapter: Any,
    batch: Mapping[str, Any],
    *,
    latent_size: int | None = None,
    max_new_tokens: int = 256,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_latent_blocks: int | None = None,
    latents: str = "normal",
    latent_norm: float | None = None,
    generator: torch.Generator | None = None,
    logits_processor: LogitsHook | None = None,
    stop_strings: Sequence[str] = ("</answer>",),
    options: Sequence[Mapping[str, str] | None] | None = None,
    num_return_sequences: int = 1,
    vision: Mapping[str, Any] | None = None,
    bottleneck: bool | None = None,
) -> list[DecodeResult]:
    """Latent-recurrent generation (Eq. 10, docs/method.md#eq-10) for a left-padded prompt batch.

    Args:
        adapter: ``fourdthinker.models`` adapter (``model``, ``tokenizer``, latent token ids).
        batch: ``adapter.encode_prompts(...)`` output: ``input_ids``/``attention_mask`` [B, L]
            (left-padded) plus the family's vision tensors, passed to the model unchanged.
        latent_size: K, latent steps per block (default: the model's own, else 4: ``resolve_latent_size``).
        max_new_tokens: budget for all response tokens, latent slots included.
        do_sample, temperature, top_p: sampling (greedy when ``do_sample`` is False).
        max_latent_blocks: cap on latent blocks per answer (None: no cap; 0: never open one).
        latents: intervention at latent positions (``normal|zero|noise|shuffle|pad|drop``,
            see ``fourdthinker.latent.interventions``).
        latent_norm: if > 0, each fed-back state is rescaled to this L2 norm before the
            intervention (``--latent-norm match`` passes the DIFT targets' mean norm); 0 = never
            rescale; None (default) = the model's own setting: the norm it was trained to be fed
            at (``config.latent_feed_norm``, ``train dift --feed-norm``), else no rescaling.
        generator: RNG for sampling and the ``noise`` intervention.
        logits_processor: HF-style hook applied to text-step logits (after latent-token suppression).
        stop_strings: a sample stops once its text ends in one of these (``</answer>``).
        options: per-sample options, used only to parse ``answer`` from option text (one per
            returned sample, i.e. ``B * num_return_sequences``).
        num_return_sequences: n responses per prompt row, from ONE prefill (vision + prompt) per
            row: the KV cache, last hidden state and positions are repeated to ``B * n`` rows
            (row ``b * n + j`` is the j-th response to prompt ``b``) and decoding continues per
            row. The same samples as decoding a batch that repeats each prompt n times, for the
            same generator state (docs/rl_speed.md).
        vision: the frozen encoder's features of ``batch`` (``latent.prefix.encode_vision``),
            computed once and reused by the step's replays; None: computed here from the pixels.
        bottleneck: decode under the imagery-bottleneck attention mask (``latent.bottleneck``:
            only the frames and ``<|latent_start|>`` rows see the frames; nothing sees a
            ``<|latent_start|>`` row). None (default) = the model's own setting
            (``config.imagery_bottleneck``, ``train dift --imagery-bottleneck``).
    """
    check_intervention(latents)
    model, tok = adapter.model, adapter.tokenizer
    lid = latent_ids(adapter)
    K = resolve_latent_size(adapter, latent_size)  # the one K rule (latent/blocks.py)
    if K < 1:
        raise ValueError(f"latent_size must be >= 1, got {K}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if "input_ids" not in batch or "attention_mask" not in batch:
        raise ValueError("batch needs input_ids and attention_mask (use adapter.encode_prompts)")
    cap = 0 if latents == "drop" else max_latent_blocks
    latent_norm = resolve_feed_norm(latent_norm, adapter)
    t0 = time.perf_counter()

    batch = _model_kwargs(model, batch)
    ids = batch["input_ids"]
    mask = batch["attention_mask"].long()
    dev = ids.device
    B = ids.shape[0]
    embed = model.get_input_embeddings()
    lm_head = model.get_output_embeddings()
    eos = _eos_ids(adapter)
    pad_id = _pad_id(adapter, eos)
    eos_t = torch.tensor(eos or [-1], device=dev)
    pad_embed = embed(torch.tensor([lid.pad], device=dev))[0]  # [D]
    stop_strs = tuple(stop_strings)


    bottleneck = model_bottleneck(adapter) if bottleneck is None else bool(bottleneck)
    vis = None  # bottleneck: bool [B, L] visual span of the prompt, extended with False per generated token
    if bottleneck:
        check_attention(adapter)
        vis = visual_span(ids, visual_marker_ids(model, tok))
        dtype = embed.weight.dtype
        pos0 = adapter.position_ids(batch, input_ids=ids, attention_mask=mask)
        attn0 = bottleneck_mask(vis, ids == lid.start, mask.bool(), dtype)
        h, cache, next_pos = _prefill(model, batch, vision, attn4d=attn0, position_ids=pos0)
    else:
        h, cache, next_pos = _prefill(model, batch, vision)  # [B, D], cache, [B]
    n_ret = int(num_return_sequences)
    if n_ret < 1:
        raise ValueError(f"num_return_sequences must be >= 1, got {n_ret}")
    if n_ret > 1:  # shared prefix: one prefill per prompt, its cache expanded to the n rows
        h, next_pos = h.repeat_interleave(n_ret, 0), next_pos.repeat_interleave(n_ret, 0)
        ids, mask = ids.repeat_interleave(n_ret, 0), mask.repeat_interleave(n_ret, 0)
        vis = vis.repeat_interleave(n_ret, 0) if vis is not None else None
        cache.batch_repeat_interleave(n_ret)
        B = B * n_ret
    V = lm_head.out_features if hasattr(lm_head, "out_features") else lm_head.weight.shape[0]
    has_gt = _has_gt(tok, V).to(dev) if stop_strs else None
    # latent pad/end only exist inside a block (the decoder places them); vision placeholders are
    # input-only markers: a sampled one would make the replayed sequence (RL, probe) count one more
    # image/video token than it has features (seen with a random-init policy in GRPO).
    # Rows past len(tokenizer) are a padded vocabulary's unused rows (no token string): never sampled.
    suppress = torch.tensor(sorted({lid.pad, lid.end, *placeholder_ids(model), *range(len(tok), V)}),
                            device=dev)

    lat_k = torch.full((B,), -1, dtype=torch.long, device=dev)  # -1: text mode; k: k latent steps done in block
    n_blocks = torch.zeros(B, dtype=torch.long, device=dev)
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    all_ids = ids
    out_ids: list[list[int]] = [[] for _ in range(B)]
    out_lat: list[list[bool]] = [[] for _ in range(B)]
    vecs: list[list[torch.Tensor]] = [[] for _ in range(B)]
    reason = ["budget"] * B
    latency = [0.0] * B

    for step in range(max_new_tokens):
        in_lat = lat_k >= 0
        feed = in_lat & (lat_k < K)  # this step's input is a fed-back vector
        close = in_lat & (lat_k >= K)  # place <|latent_end|>
        text = ~in_lat
        # --- text rows: next token from the logits at the previous position
        tok_next = torch.full((B,), pad_id, dtype=torch.long, device=dev)
        if bool((text & ~done).any()):
            logits = lm_head(h).float()  # [B, V]
            if logits_processor is not None:
                logits = logits_processor(all_ids, logits)
            # hard rules last, so no hook can break them: pad/end only exist inside a block (which
            # the decoder places), and no block opens past the cap
            logits[:, suppress] = float("-inf")
            if cap is not None:
                logits[n_blocks >= cap, lid.start] = float("-inf")
            tok_next = sample_next(logits, do_sample=do_sample, temperature=temperature, top_p=top_p, generator=generator)
        tok_next = torch.where(feed, lid.pad, torch.where(close, lid.end, tok_next))
        tok_next = torch.where(done, pad_id, tok_next)
        # --- inputs for this step: token embeddings, fed-back states at latent slots
        emb = embed(tok_next)  # [B, D]
        live_feed = feed & ~done
        if bool(live_feed.any()):
            fed = match_norm(h, latent_norm) if latent_norm else h
            fed = apply_intervention(latents, fed, live_feed, pad_embed=pad_embed, generator=generator)
            emb = torch.where(live_feed[:, None], fed.to(emb.dtype), emb)
        # --- bookkeeping (one sync per step)
        opened = text & (tok_next == lid.start) & ~done
        lat_k = torch.where(feed, lat_k + 1, torch.where(close, torch.full_like(lat_k, -1), lat_k))
        lat_k = torch.where(opened, torch.zeros_like(lat_k), lat_k)
        n_blocks = n_blocks + opened.long()
        is_eos = text & ~done & torch.isin(tok_next, eos_t)
        maybe_stop = (text & ~done & has_gt[tok_next]) if has_gt is not None else torch.zeros_like(done)
        tok_list = tok_next.tolist()
        live = (~done).tolist()
        feed_list = live_feed.tolist()
        eos_list = is_eos.tolist()
        stop_list = maybe_stop.tolist()
        now = time.perf_counter() - t0
        for b in range(B):
            if not live[b]:
                continue
            out_ids[b].append(tok_list[b])
            out_lat[b].append(feed_list[b])
            if feed_list[b]:
                vecs[b].append(emb[b].detach())
            if eos_list[b]:
                reason[b], latency[b] = "eos", now
            elif stop_list[b]:
                tail = tok.decode(out_ids[b][-12:], skip_special_tokens=False)
                if any(tail.endswith(s) or s in tail for s in stop_strs):
                    reason[b], latency[b] = "answer", now
        newly_done = torch.tensor([reason[b] != "budget" for b in range(B)], device=dev)
        done = done | newly_done
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        all_ids = torch.cat([all_ids, tok_next[:, None]], dim=1)
        mask = torch.cat([mask, torch.ones((B, 1), dtype=mask.dtype, device=dev)], dim=1)
        step_mask = mask
        if vis is not None:  # the new row of the bottleneck mask (a generated token is never visual)
            vis = torch.cat([vis, torch.zeros((B, 1), dtype=torch.bool, device=dev)], dim=1)
            n = mask.shape[1]
            step_mask = bottleneck_mask(vis, all_ids == lid.start, mask.bool(), dtype, rows=slice(n - 1, n))
        h, cache = _step(model, emb, step_mask, next_pos, cache)
        next_pos = next_pos + 1

    end = time.perf_counter() - t0
    results = []
    D = pad_embed.shape[-1]
    for b in range(B):
        text_b = render_text(tok, out_ids[b], lid, drop_ids=[*eos, pad_id])
        opts = options[b] if options is not None else None
        lat = torch.stack(vecs[b]) if vecs[b] else torch.zeros((0, D), dtype=pad_embed.dtype, device=dev)
        results.append(
            DecodeResult(
                token_ids=out_ids[b],
                is_latent=out_lat[b],
                latent_inputs=lat,
                text=text_b,
                answer=parse_answer(text_b, dict(opts) if opts else None),
                n_latent_steps=sum(out_lat[b]),
                n_latent_blocks=sum(1 for t in out_ids[b] if t == lid.start),
                latency_s=latency[b] if reason[b] != "budget" else end,
                finished=reason[b] != "budget",
                stop_reason=reason[b],
                raw_text=tok.decode(out_ids[b], skip_special_tokens=False),
            )
        )
    return results


# --------------------------------------------------------------------------------------------
# replay: one full forward over prompt + responses, latents re-injected


def response_tensors(adapter: Any, results: Sequence[DecodeResult], device: torch.device):
    """Right-padded ``(response_ids, response_mask, latent_mask)`` [B, R] and the latent vectors
    [n_latent, D] (rows in order, detached; None without latent slots), as ``replay_forward``."""
    B = len(results)
    R = max(1, max(len(r.token_ids) for r in results))
    pad_id = _pad_id(adapter, _eos_ids(adapter))
    resp = torch.full((B, R), pad_id, dtype=torch.long, device=device)
    resp_mask = torch.zeros((B, R), dtype=torch.long, device=device)
    lat_mask = torch.zeros((B, R), dtype=torch.bool, device=device)
    for b, r in enumerate(results):
        n = len(r.token_ids)
        resp[b, :n] = torch.tensor(r.token_ids, dtype=torch.long, device=device)
        resp_mask[b, :n] = 1
        lat_mask[b, :n] = torch.tensor(r.is_latent, dtype=torch.bool, device=device)
    vectors = [r.latent_inputs for r in results if r.latent_inputs.shape[0]]
    lat_vecs = torch.cat(vectors).detach().to(device) if vectors else None
    return resp, resp_mask, lat_mask, lat_vecs


def replay_bottleneck(adapter: Any, full_ids: torch.Tensor, full_mask: torch.Tensor, prompt_visual: torch.Tensor,
                      rows: slice | None = None) -> torch.Tensor:
    """The imagery-bottleneck mask of a replay over ``prompt + response``: the one
    ``latent_generate(bottleneck=True)`` applied, token by token (``latent.bottleneck``).

    ``full_ids``/``full_mask`` [B, T] are the prompts (their first ``prompt_visual.shape[1]``
    columns) followed by the responses; ``prompt_visual`` [B, P] is the prompts' visual span (a
    response holds no visual token: the decoder never emits one). Returns the additive mask
    [B, 1, q, T] of the query ``rows`` (default all). A 4-D mask needs explicit position ids."""
    check_attention(adapter)
    B, T = full_ids.shape
    visual = torch.zeros((B, T), dtype=torch.bool, device=full_ids.device)
    visual[:, : prompt_visual.shape[1]] = prompt_visual
    dtype = adapter.model.get_input_embeddings().weight.dtype
    return bottleneck_mask(visual, full_ids == adapter.latent_start_id, full_mask.bool(), dtype, rows)


def replay_forward(
    adapter: Any,
    batch: Mapping[str, Any],
    results: Sequence[DecodeResult],
    *,
    grad: bool = False,
    lm_head: bool = True,
    bottleneck: bool | None = None,
) -> dict[str, torch.Tensor]:
    """Full, non-cached forward over ``prompt + response`` with each response's latent vectors
    written at its latent slots (the RL policy / reference forward; docs/reference.md#rl).
    ``bottleneck`` (default: the model's ``imagery_bottleneck`` setting, as ``latent_generate``)
    replays under the imagery-bottleneck mask the decoder used (:func:`replay_bottleneck`).

    Responses are right-padded after the left-padded prompts. The latent vectors are put in
    through a forward hook on the input-embedding layer, so every family's own vision merge and
    position logic (M-RoPE via ``mm_token_type_ids``) runs unchanged.

    Returns ``hidden`` [B, L+R, D] (last layer, post-norm), ``logits`` [B, L+R, V] (None with
    ``lm_head=False``: the caller applies the head only where it needs logits, e.g. the RL replay),
    ``response_ids``/``response_mask``/``latent_mask`` [B, R] and ``prompt_len`` (L).
    Position ``L + i - 1`` of ``hidden``/``logits`` predicts response token ``i``.
    """
    model = adapter.model
    batch = _model_kwargs(model, batch)
    ids, mask = batch["input_ids"], batch["attention_mask"].long()
    B, L = ids.shape
    if len(results) != B:
        raise ValueError(f"{len(results)} results for a batch of {B}")
    dev = ids.device
    resp, resp_mask, lat_mask, lat_vecs = response_tensors(adapter, results, dev)
    R = resp.shape[1]
    full_ids = torch.cat([ids, resp], dim=1)
    full_mask = torch.cat([mask, resp_mask], dim=1)
    full_lat = torch.cat([torch.zeros_like(ids, dtype=torch.bool), lat_mask], dim=1)

    kwargs = {}
    for k, v in batch.items():
        if k in ("input_ids", "attention_mask"):
            continue
        if torch.is_tensor(v) and v.shape[:2] == (B, L):  # per-token extras, e.g. mm_token_type_ids
            v = torch.cat([v, torch.zeros((B, R), dtype=v.dtype, device=dev)], dim=1)
        kwargs[k] = v
    base = _base(model)
    mrope = _uses_mrope(model)
    has_vision = any(k in batch for k in ("pixel_values", "pixel_values_videos"))
    if mrope:
        base.rope_deltas = None
    if not (mrope and has_vision):
        kwargs["position_ids"] = (full_mask.cumsum(-1) - 1).clamp_min(0)
    attn = full_mask
    if model_bottleneck(adapter) if bottleneck is None else bottleneck:
        attn = replay_bottleneck(adapter, full_ids, full_mask, visual_span(ids, visual_marker_ids(model, adapter.tokenizer)))
        kwargs["position_ids"] = adapter.position_ids(batch, input_ids=full_ids, attention_mask=full_mask)

    def hook(_module, inputs, output):
        if lat_vecs is None or inputs[0].shape != full_ids.shape:
            return output
        out = output.clone()
        out[full_lat] = lat_vecs.to(out.dtype)
        return out

    handle = model.get_input_embeddings().register_forward_hook(hook)
    try:
        with torch.set_grad_enabled(grad):
            out = base(input_ids=full_ids, attention_mask=attn, use_cache=False, **kwargs)
            hidden = out.last_hidden_state  # [B, L+R, D]
            logits = model.get_output_embeddings()(hidden) if lm_head else None
    finally:
        handle.remove()
        if mrope:
            base.rope_deltas = None
    return {
        "hidden": hidden,
        "logits": logits,
        "response_ids": resp,
        "response_mask": resp_mask,
        "latent_mask": lat_mask,
        "prompt_len": torch.tensor(L),
    }
