"""Imagery bottleneck (``train dift --imagery-bottleneck``): the video reaches the answer only through the imagery.

A DIFT model can answer from the video tokens directly and ignore what it feeds at its latent
slots (``fourdthinker probe``: zero or shuffled latents change nothing). The bottleneck is an
attention mask that leaves the imagery as the one channel from the video to the text:

* only the rows of the visual span (the frames themselves) and the ``<|latent_start|>`` rows
  attend to the visual span; every other token (the question, the reasoning, the latent slots,
  the answer) is blind to the frames;
* no later token attends to a ``<|latent_start|>`` row: its keys and values, computed from the
  frames, stay hidden. What it saw leaves it only as its last hidden state h, which the decoder
  feeds as the first latent slot's input (Eq. 10, e_t = h_{t-1}; teacher forcing feeds the
  target z there instead).

So under self-feed and at inference all the video information the answer can use passes through
the fed vectors of the latent slots: zeroing or shuffling them removes it, and a model above the
blind (question-only) level must be using its imagery. The rule, with i the query row and j the
key column of one sample (``allowed`` in :func:`bottleneck_allowed`):

    allowed(i, j) = [j <= i] and valid(j) and (not visual(j) or visual(i) or start(i))
                    and (not start(j) or i == j),   plus allowed(i, i) always

where ``visual`` marks the visual span (first to last image/video marker token), ``start`` the
``<|latent_start|>`` tokens and ``valid`` the attention mask (padding). Training
(``train.dift.dift_forward``, teacher-forced and self-fed) and decoding
(``latent.decode.latent_generate``) build the mask from this one function; the trained model stores
``imagery_bottleneck: true`` in its config so eval, probe and infer apply it by default.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["additive_mask", "bottleneck_allowed", "bottleneck_mask", "model_bottleneck", "placeholder_ids",
           "visual_marker_ids", "visual_span"]

# special tokens that open/close or fill a family's visual span (looked up in the tokenizer; absent ones skipped)
_MARKER_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>", "<img>", "</img>",
                  "<IMG_CONTEXT>", "<video>")
_MARKER_ATTRS = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id",
                 "image_token_index", "video_token_index")


def visual_span(input_ids: torch.Tensor, marker_ids: Iterable[int]) -> torch.Tensor:
    """Bool ``[B, L]``: True from the first to the last visual marker token of each row
    (inclusive), so text between frames (Qwen3-VL timestamps, InternVL ``Frame2:`` labels) and the
    closing marker count as visual. A row without markers is all False.

    >>> visual_span(torch.tensor([[5, 1, 9, 2, 1, 3, 7]]), [1, 2]).int().tolist()
    [[0, 1, 1, 1, 1, 0, 0]]
    """
    ids = torch.as_tensor(input_ids)
    markers = torch.tensor(sorted(set(int(m) for m in marker_ids)), dtype=ids.dtype, device=ids.device)
    hit = torch.isin(ids, markers)  # [B, L]
    seen = hit.long().cumsum(-1) > 0  # at or after the first marker
    left = hit.flip(-1).long().cumsum(-1).flip(-1) > 0  # at or before the last marker
    return seen & left


def bottleneck_allowed(visual: torch.Tensor, starts: torch.Tensor, valid: torch.Tensor,
                       rows: slice | None = None) -> torch.Tensor:
    """Bool ``[B, q, k]`` (query row i, key column j) of the imagery bottleneck (module docstring):

        allowed(i, j) = [j <= i] and valid(j) and (not visual(j) or visual(i) or start(i))
                        and (not start(j) or i == j),   and allowed(i, i) = True

    ``visual``, ``starts`` and ``valid`` are bool ``[B, L]``. ``rows`` = ``slice(a, b)`` gives the
    query rows a..b-1 over the keys 0..b-1 (one cached forward, or one decoding step with
    ``slice(L-1, L)``); default all rows. The diagonal is always allowed, so no row is empty
    (padding rows attend to themselves; their outputs are never used)."""
    visual, starts, valid = visual.bool(), starts.bool(), valid.bool()
    L = visual.shape[1]
    a = 0 if rows is None or rows.start is None else rows.start
    b = L if rows is None or rows.stop is None else rows.stop
    i = torch.arange(a, b, device=visual.device)[:, None]  # [q, 1] query positions
    j = torch.arange(b, device=visual.device)[None, :]  # [1, k] key positions
    vis_k, start_k = visual[:, None, :b], starts[:, None, :b]  # [B, 1, k]
    sees_video = (visual[:, a:b] | starts[:, a:b])[:, :, None]  # [B, q, 1]: row i may read the visual span
    ok = (j <= i)[None] & valid[:, None, :b] & (~vis_k | sees_video) & ~start_k
    return ok | (j == i)[None]


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``[B, q, k]`` bool -> ``[B, 1, q, k]`` additive mask (0 where allowed, the dtype's minimum
    elsewhere): the 4-D form every attention implementation of transformers takes as it is
    (eager adds it to the scores; sdpa passes it on)."""
    out = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return out.masked_fill_(~allowed, torch.finfo(dtype).min)[:, None]


def bottleneck_mask(visual: torch.Tensor, starts: torch.Tensor, valid: torch.Tensor, dtype: torch.dtype,
                    rows: slice | None = None) -> torch.Tensor:
    """Additive ``[B, 1, q, k]`` mask of :func:`bottleneck_allowed` (same ``rows``)."""
    return additive_mask(bottleneck_allowed(visual, starts, valid, rows), dtype)


def placeholder_ids(model) -> list[int]:
    """Token ids of the model's image/video placeholders and span markers, from its config (never
    hard-coded)."""
    cfg = getattr(model, "config", None)
    return sorted({v for a in _MARKER_ATTRS if isinstance(v := getattr(cfg, a, None), int) and v >= 0})


def visual_marker_ids(model, tokenizer) -> list[int]:
    """Ids of the tokens that open, close or fill the visual span: :func:`placeholder_ids`, plus the
    marker special tokens the tokenizer knows (InternVL's ``<img>``/``</img>`` are not in its config)."""
    ids = set(placeholder_ids(model))
    vocab = tokenizer.get_vocab() if tokenizer is not None else {}
    ids.update(vocab[t] for t in _MARKER_TOKENS if t in vocab)
    if not ids:
        raise ValueError("imagery bottleneck: the model config and tokenizer name no image/video marker token")
    return sorted(ids)


def model_bottleneck(adapter) -> bool:
    """Whether a model was trained with the imagery bottleneck (``imagery_bottleneck`` in its
    config, saved by ``train dift --imagery-bottleneck``); read through a PEFT wrapper."""
    model = getattr(adapter, "model", adapter)
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return bool(getattr(getattr(model, "config", None), "imagery_bottleneck", False))


def check_attention(adapter) -> None:
    """The bottleneck is a custom 4-D mask: flash-attention kernels take none. Raise early."""
    impl = getattr(getattr(getattr(adapter, "model", adapter), "config", None), "_attn_implementation", None)
    if impl and "flash" in str(impl):
        raise ValueError(f"imagery bottleneck needs a 4-D attention mask, which {impl} does not take: "
                         "use --attn-implementation sdpa or eager")
