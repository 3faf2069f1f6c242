"""Latent blocks (Eq. 6, docs/method.md#eq-6): each ``<imagery>`` becomes ``<|latent_start|> z_1..z_K <|latent_end|>``.

In the token stream the K latent positions hold ``<|latent_pad|>`` ids; their input embeddings are
overwritten with the target vectors z_k (teacher forcing) by :func:`scatter_latents`, which is the
one placeholder-scatter function (ids -> bool mask -> write vectors; cf. nanoVLM
``_replace_img_tokens_with_embd``). :func:`response_labels` is the one label-masking function.
Both check counts and raise instead of silently misaligning latents.
"""

from __future__ import annotations

import re

import torch

from fourdthinker.qa import IMAGERY

IGNORE_INDEX = -100
DEFAULT_LATENT_SIZE = 4  # K when neither the caller nor the checkpoint says (the paper's default, Table 5)


def resolve_latent_size(adapter, requested: int | None = None, default: int = DEFAULT_LATENT_SIZE) -> int:
    """K, the latent steps per block, for a run on ``adapter``: ``requested`` when given (not None);
    else the K the checkpoint was DIFT-trained with (``adapter.latent_size``, which reads
    ``config.latent_size`` through a PEFT wrapper; or the model config's own ``latent_size``);
    else ``default``. This is the rule decoding, 4DRL and ``fourdthinker infer`` apply when K is not
    given; the caller validates K >= 1.

    >>> class Ad: latent_size = 8
    >>> resolve_latent_size(Ad()), resolve_latent_size(Ad(), 2), resolve_latent_size(object())
    (8, 2, 4)
    """
    if requested is not None:
        return int(requested)
    k = getattr(adapter, "latent_size", None) or getattr(getattr(getattr(adapter, "model", None), "config", None),
                                                         "latent_size", None)
    return int(k or default)


def expand_imagery(reasoning: str, k: int, start: str, pad: str, end: str) -> str:
    """``<imagery>`` -> ``start + pad*K + end`` (Eq. 6), for every placeholder, in order."""
    if k < 1:
        raise ValueError(f"latent size K must be >= 1, got {k}")
    return reasoning.replace(IMAGERY, start + pad * k + end)


def strip_imagery(reasoning: str) -> str:
    """CoT-SFT baseline text: placeholders removed, the whitespace they leave collapsed."""
    text = reasoning.replace(IMAGERY, "")
    text = re.sub(r"[ \t]{2,}", " ", text)
    return re.sub(r" +([.,;:!?])", r"\1", text)


def latent_mask(input_ids: torch.Tensor, latent_pad_id: int) -> torch.Tensor:
    """Bool ``[B, L]``: True at latent positions (``<|latent_pad|>`` ids)."""
    return input_ids == latent_pad_id


def scatter_latents(inputs_embeds: torch.Tensor, mask: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
    """Write ``latents [N, D]`` into ``inputs_embeds [B, L, D]`` at the True positions of ``mask [B, L]``,
    in row-major (sample, then position) order. Raises when N != mask.sum() (never misaligns)."""
    n = int(mask.sum())
    if latents.dim() != 2 or latents.shape[0] != n or latents.shape[-1] != inputs_embeds.shape[-1]:
        raise ValueError(
            f"scatter_latents: {n} latent positions x D={inputs_embeds.shape[-1]} but latents have shape {tuple(latents.shape)}"
        )
    out = inputs_embeds.clone()
    out[mask] = latents.to(out.dtype)  # [N, D] in row-major order of mask
    return out


def response_labels(input_ids: torch.Tensor, response_mask: torch.Tensor, ignore_ids: list[int]) -> torch.Tensor:
    """CE labels ``[B, L]``: the token id on response positions (Eq. 8), ``-100`` on the prompt,
    on padding (``response_mask`` False) and on any id in ``ignore_ids`` (the latent pads).
    ``<|latent_start|>``/``<|latent_end|>`` stay supervised so the model learns to open/close blocks."""
    labels = input_ids.masked_fill(~response_mask.bool(), IGNORE_INDEX)
    for i in ignore_ids:
        labels = labels.masked_fill(input_ids == i, IGNORE_INDEX)
    return labels


def check_blocks(ids: list[int], k: int, start_id: int, pad_id: int, end_id: int, n_images: int, where: str = "") -> None:
    """Every block is ``start pad*K end`` and there are ``n_images`` of them; raise otherwise."""
    n_start, n_end, n_pad = ids.count(start_id), ids.count(end_id), ids.count(pad_id)
    if not (n_start == n_end == n_images and n_pad == k * n_images):
        raise ValueError(
            f"{where}latent blocks misaligned: {n_start} starts, {n_end} ends, {n_pad} pads for {n_images} images x K={k}"
        )
    for i, t in enumerate(ids):
        if t == start_id and ids[i + 1 : i + 2 + k] != [pad_id] * k + [end_id]:
            raise ValueError(f"{where}latent block at token {i} is not start + {k} pads + end")
