"""The one small protocol the rest of the package sees for a VLM family (docs/training.md#vlm-adapters).

Everything family-specific (chat template, how video frames become tokens, where the visual
embeddings in the language model's input space come from, 1-D vs 3-D M-RoPE positions) lives in
``models/<family>.py``; decoders, trainers and evaluators only use :class:`VLMAdapter`.

A prompt batch is a ``dict`` (``transformers.BatchFeature``) from :meth:`VLMAdapter.encode_prompts`:
LEFT-padded ``input_ids`` / ``attention_mask`` plus whatever the forward needs
(``mm_token_type_ids`` and ``pixel_values_videos``/``video_grid_thw`` for Qwen, ``pixel_values``
for InternVL). Latent vectors are fed through ``inputs_embeds`` (never by patching library code).

Usage for a latent-recurrent decoder (Eq. 10, docs/method.md#eq-10): prefill with embeds, then step one embed at
a time with the KV ``cache`` and explicit positions::

    ad = fourdthinker.models.load("qwen2.5-vl-tiny")
    batch = ad.encode_prompts([frames], [build_question_text(q, options)])
    emb = ad.embed_tokens(batch["input_ids"])                     # [B, L, D]
    pos = ad.position_ids(batch)                                  # [3, B, L] (Qwen) or [B, L]
    out = ad.forward(batch, inputs_embeds=emb, position_ids=pos, use_cache=True)
    cache, mask = out.cache, batch["attention_mask"]
    h = out.hidden_states[-1][:, -1:]                              # [B, 1, D] last hidden state
    for k in range(K):                                             # latent steps: e_t = h_{t-1}
        step_pos = ad.next_position_ids(pos, mask, 1)             # text-like continuation
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], 1)
        out = ad.forward(None, inputs_embeds=h, position_ids=step_pos, attention_mask=mask,
                         cache=cache, use_cache=True)
        pos = torch.cat([pos, step_pos], -1)
        cache, h = out.cache, out.hidden_states[-1][:, -1:]
    # a token step is the same with inputs_embeds=ad.embed_tokens(next_ids[:, None])

``forward(batch, ...)`` passes the batch's pixel values so the model scatters the visual features
itself (this keeps Qwen3-VL's DeepStack injection); decode steps pass ``batch=None``.
``out.hidden_states[-1]`` is the last layer AFTER the final norm (what Eq. 9/10 use).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from fourdthinker.qa import LATENT_END, LATENT_PAD, LATENT_START, LATENT_TOKENS

OVERLAY_MAX_PIXELS = 256 * 28 * 28  # reference caps overlay (imagery) images at this many pixels

ImageLike = np.ndarray | Image.Image


def to_pil(img: ImageLike, *, what: str = "image") -> Image.Image:
    """RGB PIL image from a PIL image or an HxWx3 uint8 array; a clear error for anything else."""
    if isinstance(img, Image.Image):
        if img.mode != "RGB":
            img = img.convert("RGB")
        return img
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, -1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"{what}: expected HxWx3 RGB, got array of shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"{what}: expected uint8 pixels, got {arr.dtype}")
    return Image.fromarray(arr[..., :3], "RGB")


SEQ_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids", "labels")


def left_pad_batch(samples: Sequence[dict[str, Any]], pad_id: int, label_pad: int = -100) -> dict[str, Any]:
    """Concatenate per-sample encodings into one LEFT-padded batch.

    Sequence keys (``input_ids``, ``attention_mask``, ``mm_token_type_ids``, ``labels``, each
    ``[1, L_i]``) are left-padded to the longest; every other tensor (pixel values, grids) is
    concatenated along dim 0 in sample order, which is the order the models consume them in."""
    if not samples:
        raise ValueError("left_pad_batch: empty batch")
    L = max(s["input_ids"].shape[-1] for s in samples)
    out: dict[str, Any] = {}
    for k in samples[0]:
        vals = [s[k] for s in samples]
        if k in SEQ_KEYS:
            fill = {"input_ids": pad_id, "labels": label_pad}.get(k, 0)
            rows = []
            for v in vals:
                v = v.reshape(1, -1)
                pad = v.new_full((1, L - v.shape[-1]), fill)
                rows.append(torch.cat([pad, v], -1))
            out[k] = torch.cat(rows, 0)
        elif torch.is_tensor(vals[0]):
            out[k] = torch.cat(vals, 0)
        else:
            out[k] = vals
    return out


def trained_row_mean(weight: torch.Tensor, n_trained: int) -> torch.Tensor:
    """Mean of the trained rows of an embedding / lm_head matrix, in float32:
    ``mean_{i < n_trained} W[i]`` (rows ``>= n_trained`` -- a padded vocabulary's unused rows and
    tokens added since -- never count). Summed in float32 without copying the matrix."""
    if not 0 < n_trained <= weight.shape[0]:
        raise ValueError(f"trained_row_mean: n_trained={n_trained} outside (0, {weight.shape[0]}]")
    return weight[:n_trained].sum(0, dtype=torch.float32) / n_trained


def padded_vocab_size(n_tokens: int, multiple: int = 128, min_spare: int = 16) -> int:
    """Rows of a padded vocabulary: the smallest multiple of ``multiple`` with at least
    ``min_spare`` unused rows past ``n_tokens`` (real Qwen checkpoints pad 151,665 tokens to
    151,936 rows; the tiny presets mimic it so the latent tokens land in padding rows)."""
    return -(-(n_tokens + min_spare) // multiple) * multiple


def _zero3_enabled() -> bool:
    try:
        from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled
    except ImportError:  # pragma: no cover
        return False
    return bool(is_deepspeed_zero3_enabled())


def _gathered(params, modify: bool = False):
    """Gather ZeRO-3-partitioned params (no-op otherwise); ``modify`` writes them back from rank 0."""
    import contextlib

    if not _zero3_enabled():
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(params, modifier_rank=0 if modify else None)


@dataclass
class FamilyInfo:
    """What a family file declares about itself."""

    family: str  # "qwen2_5_vl" | "qwen3_vl" | "internvl"
    mrope: bool  # 3-D multimodal RoPE positions [3, B, L] (Qwen) vs 1-D [B, L]


class VLMAdapter:
    """One VLM (model + processor) seen through the package's protocol. Subclasses: one per family.

    Attributes: ``model`` (a stock ``*ForConditionalGeneration``), ``processor``, ``tokenizer``,
    ``family``, ``hidden_size``, ``latent_start_id``/``latent_end_id``/``latent_pad_id`` (read
    from the tokenizer; ``None`` until :meth:`add_latent_tokens`), ``eos_ids``.
    """

    info: FamilyInfo

    def __init__(self, model, processor, *, name: str = "", overlay_max_pixels: int = OVERLAY_MAX_PIXELS):
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.name = name
        self.overlay_max_pixels = overlay_max_pixels

    # ------------------------------------------------------------------ identity
    @property
    def family(self) -> str:
        return self.info.family

    @property
    def mrope(self) -> bool:
        return self.info.mrope

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.get_text_config().hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return self.embedding_layer().weight.dtype

    def _token_id(self, tok: str) -> int | None:
        if tok not in self.tokenizer.get_vocab():
            return None
        return int(self.tokenizer.convert_tokens_to_ids(tok))

    @property
    def latent_start_id(self) -> int | None:
        return self._token_id(LATENT_START)

    @property
    def latent_end_id(self) -> int | None:
        return self._token_id(LATENT_END)

    @property
    def latent_pad_id(self) -> int | None:
        return self._token_id(LATENT_PAD)

    @property
    def latent_size(self) -> int | None:
        """K the checkpoint was DIFT-trained with (``config.latent_size``), None for a base model."""
        m = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        k = getattr(m.config, "latent_size", None)
        return int(k) if k else None

    @property
    def pad_id(self) -> int:
        pid = self.tokenizer.pad_token_id
        return int(pid if pid is not None else self.eos_ids[0])

    @property
    def eos_ids(self) -> list[int]:
        """Token ids that end a response (``<|im_end|>`` and the tokenizer's/config's eos)."""
        ids: list[int] = []
        for t in ("<|im_end|>", "<|endoftext|>"):
            i = self._token_id(t)
            if i is not None and (t == "<|im_end|>" or not ids):
                ids.append(i)
        if self.tokenizer.eos_token_id is not None:
            ids.append(int(self.tokenizer.eos_token_id))
        gen = getattr(self.model, "generation_config", None)
        eos = getattr(gen, "eos_token_id", None)
        if isinstance(eos, int):
            ids.append(eos)
        elif eos:
            ids.extend(int(e) for e in eos)
        return sorted(set(ids))

    # ------------------------------------------------------------------ tokens
    def embedding_layer(self) -> torch.nn.Embedding:
        return self.model.get_input_embeddings()

    def add_latent_tokens(self) -> list[int]:
        """Add ``<|latent_start|>``, ``<|latent_end|>``, ``<|latent_pad|>`` as special tokens.

        Their embedding rows (and, when untied, their lm_head rows) start at the mean of the
        TRAINED rows -- the rows of the tokenizer's other tokens, never the padding rows a padded
        vocabulary carries past ``len(tokenizer)`` (Qwen2.5-VL: 151,936 rows, 151,665 tokens) --
        whether the new ids land in such padding rows or the matrix has to grow (see
        :func:`trained_row_mean`; the reference mean-initialises new rows to avoid bf16 NaNs).
        Idempotent: a tokenizer that already has them (a DIFT checkpoint) is left alone.
        Returns the three ids."""
        missing = [t for t in LATENT_TOKENS if t not in self.tokenizer.get_vocab()]
        if missing:
            n_before = len(self.tokenizer)
            self.tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
            new_ids = [int(self.tokenizer.convert_tokens_to_ids(t)) for t in missing]
            self._mean_init_rows(len(self.tokenizer), new_ids, n_before)
        ids = [self.latent_start_id, self.latent_end_id, self.latent_pad_id]
        assert all(i is not None for i in ids), f"latent tokens missing after add: {ids}"
        return ids  # type: ignore[return-value]

    def _mean_init_rows(self, n_tokens: int, new_ids: list[int], n_trained: int) -> None:
        """Grow the matrices to ``n_tokens`` rows if needed, then set rows ``new_ids`` to the mean of
        the trained rows ``[0, n_trained)`` (the tokens the tokenizer had before)."""
        with _gathered([self.embedding_layer().weight]):
            n_rows = self.embedding_layer().weight.shape[0]
        n_trained = min(n_trained, n_rows)
        if n_tokens > n_rows:
            self.model.resize_token_embeddings(n_tokens, mean_resizing=False)
        out = self.model.get_output_embeddings()
        emb = self.embedding_layer()
        tied = out is not None and out.weight is emb.weight
        params = [emb.weight] + ([out.weight] if out is not None and not tied else [])
        idx = torch.tensor(new_ids, device=emb.weight.device)
        with _gathered(params, modify=True), torch.no_grad():  # ZeRO-3: weights are partitioned
            emb.weight[idx] = trained_row_mean(emb.weight, n_trained).to(emb.weight.dtype)
            if out is not None and not tied:
                out.weight[idx] = trained_row_mean(out.weight, n_trained).to(out.weight.dtype)
                if getattr(out, "bias", None) is not None:
                    out.bias[idx] = out.bias[:n_trained].float().mean().to(out.bias.dtype)

    def padding_ids(self) -> list[int]:
        """Ids of the output vocabulary's rows past the tokenizer: a padded vocabulary's unused rows
        (no token string; never to be sampled). Empty when the matrix matches the tokenizer."""
        out = self.model.get_output_embeddings()
        out = self.embedding_layer() if out is None else out
        return list(range(len(self.tokenizer), int(out.weight.shape[0])))

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """Input embeddings of token ids ``[B, L] -> [B, L, D]`` (no visual scatter)."""
        return self.embedding_layer()(ids.to(self.device))

    # ------------------------------------------------------------------ prompts
    def prompt_text(self, text: str) -> str:
        """Chat-template string of one user turn (one video + ``text``) with the generation prompt."""
        msgs = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": text}]}]
        return self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)

    def encode_prompts(self, videos: Sequence[Sequence[ImageLike]], texts: Sequence[str],
                       fps: float | None = None) -> dict[str, Any]:
        """LEFT-padded batch of (video frames, user text) prompts ending in the generation prompt.

        ``videos[b]`` is the list of frames (PIL or HxWx3 uint8) of sample ``b``; ``texts[b]`` its
        user text (``data.records.build_question_text``); ``fps`` the frame rate the frames were
        sampled at (default 1). Returns everything :meth:`forward` needs."""
        if len(videos) != len(texts):
            raise ValueError(f"encode_prompts: {len(videos)} videos but {len(texts)} texts")
        return left_pad_batch([self.encode_one(v, t, fps=fps) for v, t in zip(videos, texts, strict=False)], self.pad_id)

    def encode_one(self, frames: Sequence[ImageLike], text: str, fps: float | None = None) -> dict[str, Any]:
        """One unpadded prompt ``[1, L]`` (what the training collator extends with a response)."""
        raise NotImplementedError

    def visual_kwargs(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The pixel-side forward kwargs of a batch (moved to the model's device/dtype)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ positions
    def position_ids(self, batch: dict[str, Any], input_ids: torch.Tensor | None = None,
                     attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Position ids of ``input_ids`` (default: the batch's) — ``[3, B, L]`` M-RoPE for Qwen via
        the stock ``get_rope_index``, ``[B, L]`` for 1-D families. Left padding is honoured: pad
        positions get 0 / 1 and real tokens count from 0. ``input_ids`` may extend the batch's
        prompt with text-like tokens (responses, latent pads): they continue the text positions."""
        ids = batch["input_ids"] if input_ids is None else input_ids
        mask = batch["attention_mask"] if attention_mask is None else attention_mask
        pos = (mask.long().cumsum(-1) - 1).clamp(min=0)
        return pos.masked_fill(mask == 0, 1).to(ids.device)

    def next_position_ids(self, position_ids: torch.Tensor, attention_mask: torch.Tensor, n: int = 1) -> torch.Tensor:
        """Positions of the next ``n`` appended tokens: text-like continuation ``last + 1, ...``.

        ``position_ids`` are those of the sequence so far (``[3, B, L]`` or ``[B, L]``), and
        ``attention_mask`` ``[B, L]`` marks its real tokens."""
        m = attention_mask.to(position_ids.device).bool()
        if position_ids.dim() == 3:
            last = position_ids.masked_fill(~m[None], -1).amax(dim=(0, 2))  # [B]
        else:
            last = position_ids.masked_fill(~m, -1).amax(dim=1)  # [B]
        new = last[:, None] + 1 + torch.arange(n, device=position_ids.device)[None]  # [B, n]
        return new[None].expand(3, -1, -1).contiguous() if position_ids.dim() == 3 else new

    # ------------------------------------------------------------------ forward
    def forward(self, batch: dict[str, Any] | None, *, inputs_embeds: torch.Tensor,
                position_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                cache=None, use_cache: bool = False, **kw):
        """Model forward from ``inputs_embeds`` with explicit positions.

        With ``batch`` (a prefill or a training forward) its pixel values go in too and the model
        scatters the visual features into the placeholder positions of ``inputs_embeds`` (which
        must hold the placeholder token embeddings there: build them with :meth:`embed_tokens`).
        Returns the stock output with ``hidden_states`` (all layers; ``[-1]`` is post-norm) and
        ``logits``; ``cache`` when ``use_cache``."""
        if attention_mask is None:
            if batch is None:
                raise ValueError("forward: attention_mask is required for decode steps (batch=None)")
            attention_mask = batch["attention_mask"]
        vis = self.visual_kwargs(batch) if batch is not None else {}
        kwargs = dict(attention_mask=attention_mask.to(self.device), position_ids=position_ids.to(self.device),
                      cache=cache, use_cache=use_cache, output_hidden_states=True, return_dict=True, **vis, **kw)
        ids = batch.get("input_ids") if batch is not None else None
        if ids is None or tuple(ids.shape[:2]) != tuple(inputs_embeds.shape[:2]):
            return self.model(inputs_embeds=inputs_embeds, **kwargs)
        # Give the model the ids too, so it finds its visual placeholders from ids (not by comparing
        # embeddings, which breaks under ZeRO-3 and bf16), and swap in our embeddings (latents
        # included) with a forward hook on the input-embedding layer.
        if batch.get("mm_token_type_ids") is not None and batch["mm_token_type_ids"].shape == ids.shape:
            kwargs["mm_token_type_ids"] = batch["mm_token_type_ids"].to(self.device)
        handle = self.embedding_layer().register_forward_hook(lambda _m, _i, out: inputs_embeds.to(out.dtype))
        try:
            return self.model(input_ids=ids.to(self.device), **kwargs)
        finally:
            handle.remove()

    def prompt_embeds(self, batch: dict[str, Any]) -> torch.Tensor:
        """``inputs_embeds`` of a prompt batch with the visual features scattered in ``[B, L, D]``.

        Note: for Qwen3-VL this misses DeepStack (features injected in early layers); decoders
        should prefill through :meth:`forward` with ``batch`` instead."""
        emb = self.embed_tokens(batch["input_ids"])
        feats, mask = self.visual_features(batch)
        if feats is None:
            return emb
        return emb.masked_scatter(mask[..., None].to(emb.device), feats.to(emb.dtype))

    def visual_features(self, batch: dict[str, Any]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(features ``[N, D]`` in LM input space, bool mask ``[B, L]`` of their placeholders)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ imagery
    def image_embeddings(self, images: Sequence[ImageLike]) -> list[torch.Tensor]:
        """Per image, its visual embeddings in the LM input space ``[n_i, D]`` (after the
        merger/projector), images capped at ``overlay_max_pixels``. Frozen encoder: no grad."""
        raise NotImplementedError

    def pair_embeddings(self, pairs: Sequence[tuple[ImageLike, ImageLike]]) -> list[torch.Tensor]:
        """Per (a, b), the LM-space embeddings of the 2-frame clip [a, b] through the vision tower's
        temporal patch ``[n_i, D]`` (``--latent-target pair``). Families without a temporal patch
        cannot form them."""
        raise NotImplementedError(f"{type(self).__name__}: --latent-target pair needs a vision tower with a temporal "
                                  "patch that merges 2 frames (Qwen2.5-VL, Qwen3-VL); this family encodes frames one "
                                  "by one: use --latent-target image")

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights that define the latent-target space (vision encoder + merger/projector)."""
        raise NotImplementedError

    def freeze_visual(self) -> list[str]:
        """``requires_grad=False`` on the encoder (and merger/projector) -> names of frozen params."""
        keys = set(self.encoder_state_dict())
        frozen = []
        for n, p in self.model.named_parameters():
            if n in keys or any(n.endswith(k) for k in keys):
                p.requires_grad_(False)
                frozen.append(n)
        return frozen


__all__ = [
    "LATENT_START",
    "LATENT_END",
    "LATENT_PAD",
    "OVERLAY_MAX_PIXELS",
    "FamilyInfo",
    "VLMAdapter",
    "to_pil",
    "padded_vocab_size",
    "trained_row_mean",
]
