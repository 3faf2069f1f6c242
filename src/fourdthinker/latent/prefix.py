"""Shared-prompt replay: a GRPO group's G responses read ONE forward of their common prompt.

In a 4DRL step every question's G responses share one video and one prompt. The unshared replay
(``latent.decode.replay_forward``) runs ``prompt + response`` for each of the Q*G rows: the frozen
vision encoder runs Q*G times on the same frames and the LM re-reads the same (1-2K-token) video
prompt Q*G times. ``shared_prompt_replay`` runs the prompt ONCE per question (vision included),
keeps every decoder layer's keys/values of it, repeats them to the question's G rows and runs only
the responses on top (exactly what the cached decoder does). Gradients flow through the repeated
keys/values into the one prompt pass, so the loss and every parameter's gradient equal the
unshared replay (tests/latent/test_prefix.py: 1e-5 in fp32 on all three tiny families, with and
without latent blocks, left-padded prompts of different lengths, gradient checkpointing, LoRA).

Math: causal attention means a prompt position's hidden states never depend on what follows, so
for response row r of question q, ``h(prompt_q + resp_r) = [h(prompt_q), h(resp_r | KV(prompt_q))]``;
the gradient of a loss summed over rows reaches ``KV(prompt_q)`` as the sum over its rows (the
backward of ``repeat_interleave``), which is what the G separate prompt copies receive in total.

How:
* the prompt pass writes into ``_RecordingCache`` (each layer's K/V kept, overwritten rather than
  appended, so a gradient-checkpointing recompute in the backward writes the same values again);
* ``_PrefixCache`` serves the repeated K/V to the response pass read-only (``update`` returns
  ``cat(prefix, new)`` without storing), so a recompute also reads the same thing;
* transformers drops any cache inside checkpointed layers (``GradientCheckpointingLayer``); for the
  duration of the call the decoder layers are marked ``_can_checkpoint_with_cache`` (safe with the
  two idempotent caches above). Checkpointing must be non-reentrant (transformers' default): the
  reentrant variant does not propagate gradients to the prefix K/V, which is refused;
* positions continue the prompt exactly as in decoding (``cache position + rope_deltas`` on all
  three M-RoPE axes for Qwen; the number of valid tokens for InternVL's 1-D RoPE);
* latent slots receive the rollout's own (detached) vectors, as in ``replay_forward``.
Logits are only computed where the loss needs them: ``logits[:, i]`` predicts response token i.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

from fourdthinker.latent.bottleneck import model_bottleneck, visual_marker_ids, visual_span
from fourdthinker.latent.decode import (  # noqa: F401 - response_tensors is part of this module's API
    DecodeResult,
    _base,
    _eos_ids,
    _model_kwargs,
    _pad_id,
    _uses_mrope,
    replay_bottleneck,
    response_tensors,
)

__all__ = ["encode_vision", "response_tensors", "select_prompts", "shared_prompt_replay", "with_vision"]

_PIXEL_KEYS = ("pixel_values", "pixel_values_videos")


def _vision_modules(base: torch.nn.Module) -> list[torch.nn.Module]:
    mods = [getattr(base, n, None) for n in ("visual", "vision_tower", "multi_modal_projector")]
    return [m for m in mods if m is not None]


@torch.no_grad()
def encode_vision(model: torch.nn.Module, batch: Mapping[str, Any]) -> dict[str, Any] | None:
    """The frozen vision encoder's output for ``batch``'s frames, computed once, in the form the
    stock HF forwards accept as ``mm_encoder_outputs`` (Qwen2.5-VL / Qwen3-VL: per-video features,
    plus DeepStack features for Qwen3-VL; InternVL: projected image features). Reusing it in the
    rollout and in every replay of a step is exact because the encoder (and merger/projector) is
    frozen in 4DRL (SPEC §3: it defines the latent targets); a trainable one is refused. None for
    a batch without pixels."""
    base = _base(model)
    if any(p.requires_grad for m in _vision_modules(base) for p in m.parameters()):
        raise ValueError("encode_vision: the vision encoder has trainable parameters; its features cannot be "
                         "computed once and reused (freeze it with adapter.freeze_visual())")
    kw = _model_kwargs(model, batch)
    out: dict[str, Any] = {}
    if "pixel_values_videos" in kw:
        out["video"] = base.get_video_features(kw["pixel_values_videos"], kw.get("video_grid_thw"), return_dict=True)
    if "pixel_values" in kw:
        if "image_grid_thw" in kw:
            out["image"] = base.get_image_features(kw["pixel_values"], kw["image_grid_thw"], return_dict=True)
        else:  # InternVL: tiles, the feature layer/strategy from the config
            cfg = model.config
            out["image"] = base.get_image_features(
                pixel_values=kw["pixel_values"], vision_feature_layer=cfg.vision_feature_layer,
                vision_feature_select_strategy=cfg.vision_feature_select_strategy, return_dict=True)
    return out or None


def with_vision(kwargs: dict[str, Any], vision: Mapping[str, Any] | None) -> dict[str, Any]:
    """Forward kwargs with the pixels replaced by precomputed ``encode_vision`` features."""
    if vision is None:
        return kwargs
    out = {k: v for k, v in kwargs.items() if k not in _PIXEL_KEYS}
    out["mm_encoder_outputs"] = dict(vision)
    return out


class _RecordLayer(DynamicLayer):
    """Keeps the last keys/values written (no append): idempotent under a checkpoint recompute."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self.keys, self.values = key_states, value_states
        return key_states, value_states


class _ReadLayer(DynamicLayer):
    """A fixed prefix: returns ``cat(prefix, new)`` and stores nothing (idempotent)."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        super().__init__()
        self.lazy_initialization(keys, values)
        self.keys, self.values = keys, values

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        return torch.cat([self.keys, key_states], dim=-2), torch.cat([self.values, value_states], dim=-2)


class _RecordingCache(DynamicCache):
    def __init__(self) -> None:
        Cache.__init__(self, layer_class_to_replicate=_RecordLayer)


class _PrefixCache(DynamicCache):
    def __init__(self, kv: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> None:
        Cache.__init__(self, layers=[_ReadLayer(k, v) for k, v in kv])


def select_prompts(model: torch.nn.Module, batch: Mapping[str, Any], vision: Mapping[str, Any] | None,
                   rows: Sequence[int]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Prompts ``rows`` of an ``encode_prompts`` batch and of its ``encode_vision`` features: the
    input of a micro-batch split along questions (``shared_prompt_replay`` on these prompts and
    their responses). Sequence tensors are row-selected; the pixels and features, concatenated
    per prompt, are cut per prompt: Qwen by ``video_grid_thw``/``image_grid_thw`` (one grid row per
    video/image, prompts in order), InternVL by each row's number of image tokens."""
    P = int(batch["input_ids"].shape[0])
    rows = [int(r) for r in rows]
    if not rows or min(rows) < 0 or max(rows) >= P:
        raise ValueError(f"select_prompts: rows {rows} out of range for {P} prompts")
    cfg = model.config
    sub: dict[str, Any] = {}
    feats: dict[str, Any] = {}
    per_prompt: dict[str, list[int]] = {}  # modality -> number of media per prompt
    for key, grid, tok in (("video", "video_grid_thw", getattr(cfg, "video_token_id", None)),
                           ("image", "image_grid_thw", getattr(cfg, "image_token_id", None))):
        if grid in batch and tok is not None:
            starts = (batch["input_ids"] == getattr(cfg, "vision_start_token_id", -1))
            media = (torch.roll(batch["input_ids"], -1, 1) == tok) & starts
            per_prompt[key] = media.sum(-1).tolist()
    internvl = "pixel_values" in batch and "image_grid_thw" not in batch
    if internvl:  # InternVL: frames are tiles of image_seq_length tokens each
        n_tok = (batch["input_ids"] == cfg.image_token_id).sum(-1)
        per_prompt["image"] = (n_tok // int(cfg.image_seq_length)).tolist()

    def pick(seq, counts):  # items of all prompts in order -> the chosen prompts' items
        off = [0]
        for c in counts:
            off.append(off[-1] + c)
        return [x for r in rows for x in seq[off[r] : off[r + 1]]]

    for k, v in batch.items():
        if not torch.is_tensor(v):
            sub[k] = v
        elif k in ("video_grid_thw", "image_grid_thw"):
            key = "video" if k.startswith("video") else "image"
            sub[k] = torch.stack(pick(list(v), per_prompt[key]))
        elif k in ("pixel_values_videos", "pixel_values") and not internvl:
            grid = batch["video_grid_thw" if k == "pixel_values_videos" else "image_grid_thw"]
            key = "video" if k == "pixel_values_videos" else "image"
            chunks = list(torch.split(v, grid.prod(-1).tolist()))
            sub[k] = torch.cat(pick(chunks, per_prompt[key]))
        elif k == "pixel_values" and internvl:
            sub[k] = torch.stack(pick(list(v), per_prompt["image"]))
        elif v.shape[0] == P:
            sub[k] = v[rows]
        else:
            raise NotImplementedError(f"select_prompts: cannot split batch tensor {k!r} {tuple(v.shape)} by prompt")
    for key, out in (vision or {}).items():
        po = out.pooler_output
        new = copy.copy(out)
        if isinstance(po, (tuple, list)):  # Qwen: one tensor per video/image
            new.pooler_output = tuple(pick(list(po), per_prompt[key]))
            ds = getattr(out, "deepstack_features", None)
            if ds is not None:  # Qwen3-VL: per layer, one tensor per video/image
                new.deepstack_features = [tuple(pick(list(layer), per_prompt[key])) for layer in ds]
        else:  # InternVL: [images, tokens, D]
            new.pooler_output = torch.stack(pick(list(po), per_prompt[key]))
        feats[key] = new
    return sub, (feats or None)


def _checkpointed_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in model.modules() if getattr(m, "gradient_checkpointing", False)]


@contextlib.contextmanager
def _cache_under_checkpointing(model: torch.nn.Module) -> Iterator[None]:
    """Let checkpointed decoder layers keep the (idempotent) caches of this module."""
    layers = _checkpointed_layers(model)
    if layers and torch.is_grad_enabled() and model.training:
        fn = getattr(layers[0], "_gradient_checkpointing_func", None)
        kw = getattr(fn, "keywords", None) or {}
        if kw.get("use_reentrant", False):
            raise NotImplementedError(
                "prefix-shared replay under reentrant gradient checkpointing is not implemented (the reentrant "
                "variant gives the shared prompt keys/values no gradient); enable checkpointing with "
                "gradient_checkpointing_kwargs={'use_reentrant': False} or turn prefix sharing off")
    saved = [(m, m.__dict__.get("_can_checkpoint_with_cache")) for m in layers]
    for m, _ in saved:
        m._can_checkpoint_with_cache = True
    try:
        yield
    finally:
        for m, old in saved:
            if old is None:
                m.__dict__.pop("_can_checkpoint_with_cache", None)
            else:
                m._can_checkpoint_with_cache = old




def shared_prompt_replay(
    adapter: Any,
    batch: Mapping[str, Any],
    results: Sequence[DecodeResult],
    *,
    grad: bool = False,
    logits: bool = True,
    vision: Mapping[str, Any] | None = None,
    bottleneck: bool | None = None,
) -> dict[str, torch.Tensor]:
    """Replay ``len(results)`` responses over ``batch``'s prompts, each prompt run once.

    ``batch`` holds P left-padded prompts (``adapter.encode_prompts``, vision included) and
    ``results`` n = ``len(results) / P`` responses per prompt, prompt-major (result ``p * n + j``
    answers prompt ``p``): a whole GRPO batch (P = Q questions, n = G) or any micro-batch of it (some
    questions with all their responses, or one question with some of its responses).

    Returns ``logits`` [B, R, V] (``logits[:, i]`` predicts response token i; omitted when
    ``logits=False``), ``hidden`` [B, R, D] (the last-layer, post-norm states those logits come from),
    ``response_ids``/``response_mask``/``latent_mask`` [B, R]. Equal to ``replay_forward`` on a
    batch that repeats each prompt n times, sliced to the response positions. ``vision``:
    ``encode_vision(model, batch)`` computed once per step and reused (frozen encoder).
    ``bottleneck`` (default: the model's ``imagery_bottleneck`` setting) replays under the
    imagery-bottleneck mask the decoder used (``latent.decode.replay_bottleneck``).
    """
    model = adapter.model
    base = _base(model)
    batch = _model_kwargs(model, batch)
    ids, mask = batch["input_ids"], batch["attention_mask"].long()
    P, L = ids.shape
    B = len(results)
    if B == 0 or B % P:
        raise ValueError(f"shared_prompt_replay: {B} results for {P} prompts (need n >= 1 results per prompt)")
    n = B // P
    dev = ids.device
    resp, resp_mask, lat_mask, lat_vecs = response_tensors(adapter, results, dev)
    R = resp.shape[1]
    mrope = _uses_mrope(model)
    has_vision = any(k in batch for k in ("pixel_values", "pixel_values_videos"))
    kwargs = {k: v for k, v in batch.items() if k not in ("input_ids", "attention_mask")}
    if not (mrope and has_vision):
        kwargs["position_ids"] = (mask.cumsum(-1) - 1).clamp_min(0)
    embed = model.get_input_embeddings()
    bn = model_bottleneck(adapter) if bottleneck is None else bool(bottleneck)
    prompt_attn, visual = mask, None
    if bn:  # the prompt's rows under the bottleneck; explicit positions (a 4-D mask gives the model none)
        visual = visual_span(ids, visual_marker_ids(model, adapter.tokenizer))
        prompt_attn = replay_bottleneck(adapter, ids, mask, visual)
        kwargs["position_ids"] = adapter.position_ids(batch, input_ids=ids, attention_mask=mask)
    try:
        with torch.set_grad_enabled(grad), _cache_under_checkpointing(model):
            if mrope:
                base.rope_deltas = None
            rec = _RecordingCache()
            out = base(input_ids=ids, attention_mask=prompt_attn, cache=rec, use_cache=True, **with_vision(kwargs, vision))
            h_last = out.last_hidden_state[:, -1]  # [P, D]: predicts response token 0
            next_pos = mask.sum(-1)
            if bn:  # max position over the real tokens + 1 (as the decoder's prefill)
                nxt = adapter.next_position_ids(kwargs["position_ids"], mask)  # [3, P, 1] or [P, 1]
                next_pos = (nxt[0] if nxt.dim() == 3 else nxt)[:, 0]
            elif mrope and has_vision and base.rope_deltas is not None:
                next_pos = next_pos + base.rope_deltas.view(-1).to(dev)
            kv = [(layer.keys.repeat_interleave(n, 0), layer.values.repeat_interleave(n, 0)) for layer in rec.layers]
            del rec, out
            hidden_first = h_last.repeat_interleave(n, 0)[:, None]  # [B, 1, D]
            if R > 1:
                emb = embed(resp[:, : R - 1])  # token R-1 predicts nothing: not fed
                lat_in = lat_mask[:, : R - 1]
                if lat_vecs is not None:  # scatter over all R positions first: lat_vecs is row-major over them
                    fed = torch.zeros((B, R, emb.shape[-1]), dtype=emb.dtype, device=dev)
                    fed[lat_mask] = lat_vecs.to(emb.dtype)
                    emb = torch.where(lat_in[..., None], fed[:, : R - 1], emb)
                pos = next_pos.repeat_interleave(n, 0)[:, None] + torch.arange(R - 1, device=dev)  # [B, R-1]
                position_ids = pos[None].expand(3, B, R - 1) if mrope else pos
                full_mask = torch.cat([mask.repeat_interleave(n, 0), resp_mask[:, : R - 1]], dim=1)
                attn = full_mask
                if bn:  # the response rows L .. L+R-2 over all keys
                    full_ids = torch.cat([ids.repeat_interleave(n, 0), resp[:, : R - 1]], dim=1)
                    attn = replay_bottleneck(adapter, full_ids, full_mask, visual.repeat_interleave(n, 0),
                                             rows=slice(L, L + R - 1))
                out = base(inputs_embeds=emb, attention_mask=attn, position_ids=position_ids,
                           cache=_PrefixCache(kv), use_cache=True)
                hidden = torch.cat([hidden_first, out.last_hidden_state], dim=1)  # [B, R, D]
            else:
                hidden = hidden_first
            result = {"hidden": hidden, "response_ids": resp, "response_mask": resp_mask, "latent_mask": lat_mask}
            if logits:
                result["logits"] = model.get_output_embeddings()(hidden)
    finally:
        if mrope:
            base.rope_deltas = None
    return result
