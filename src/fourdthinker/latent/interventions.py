"""Counterfactual latent interventions and latent-norm matching (docs/inference.md#latent-interventions).

Each intervention replaces the vector fed at a latent position (Eq. 10, e_t = h_{t-1}; docs/method.md#eq-10) and
nothing else; text-token inputs stay identical. Select with ``--latents`` on ``fourdthinker infer``
/ ``eval`` / ``probe``:

* ``normal``  e_t = h_{t-1} (the paper's recurrent imagery).
* ``zero``    e_t = 0.
* ``noise``   e_t = g * ||h_{t-1}|| / ||g||, g ~ N(0, I): random direction, same norm.
* ``shuffle`` e_t = h'_{t-1} of another sample of the batch at the same decoding step (cyclic
  shift by one over the batch); needs a batch of at least 2.
* ``pad``     e_t = embedding of ``<|latent_pad|>`` (what the reference RL code feeds, docs/reference.md#rl).
* ``drop``    no latent block at all: the decoder never opens one (handled by the decoder, here a no-op).

Latent-norm matching rescales each fed-back state to the mean norm of the DIFT targets:
e_t = h_{t-1} * n_target / ||h_{t-1}|| (``match_norm``), because the DIFT loss (Eq. 9) is
cosine-only and magnitudes are free to drift from what teacher forcing showed the model.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

Intervention = Literal["normal", "zero", "noise", "shuffle", "pad", "drop"]
INTERVENTIONS: tuple[str, ...] = get_args(Intervention)

__all__ = ["INTERVENTIONS", "Intervention", "apply_intervention", "check_intervention", "match_norm", "model_feed_norm",
           "resolve_feed_norm"]


def check_intervention(kind: str) -> str:
    """Return ``kind`` if it is a known intervention, else raise a one-line ValueError."""
    if kind not in INTERVENTIONS:
        raise ValueError(f"unknown latent intervention {kind!r}; choose one of {', '.join(INTERVENTIONS)}")
    return kind


def match_norm(hidden: torch.Tensor, target_norm: float, eps: float = 1e-12) -> torch.Tensor:
    """Rescale each row to L2 norm ``target_norm``: e = h * n / max(||h||, eps).

    >>> match_norm(torch.tensor([[3.0, 4.0]]), 10.0)
    tensor([[6., 8.]])
    """
    norms = hidden.norm(dim=-1, keepdim=True).clamp_min(eps)  # [B, 1]
    return hidden * (target_norm / norms)


def model_feed_norm(adapter) -> float | None:
    """The norm a model was trained to be fed at (``config.latent_feed_norm``, written by
    ``train dift --feed-norm``), or None for a model trained without it (the paper's DIFT)."""
    model = getattr(adapter, "model", None)
    if model is not None and hasattr(model, "get_base_model"):
        model = model.get_base_model()
    v = getattr(getattr(model, "config", None), "latent_feed_norm", None)
    return float(v) if v else None


def resolve_feed_norm(latent_norm: float | None, adapter) -> float | None:
    """What the decoder rescales fed-back states to: ``latent_norm`` when > 0, no rescaling when
    it is 0, and the model's own setting (:func:`model_feed_norm`) when it is None.

    >>> resolve_feed_norm(0, None) is None, resolve_feed_norm(2.5, None)
    (True, 2.5)
    """
    if latent_norm is None:
        return model_feed_norm(adapter)
    return float(latent_norm) if latent_norm > 0 else None


def apply_intervention(
    kind: str,
    hidden: torch.Tensor,
    active: torch.Tensor,
    *,
    pad_embed: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The vectors to feed at this decoding step, [B, D]; only rows with ``active`` change.

    ``hidden`` [B, D] is every sample's last hidden state at the previous position (post final
    norm); ``active`` [B] bool marks the samples that are inside a latent block at this step.
    Rows with ``active == False`` are returned unchanged (they are fed their text token, or
    ignored), so an intervention can only ever touch latent positions.

    >>> h = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    >>> apply_intervention("zero", h, torch.tensor([True, False]))
    tensor([[0., 0.],
            [0., 2.]])
    >>> apply_intervention("shuffle", h, torch.tensor([True, True]))
    tensor([[0., 2.],
            [1., 0.]])
    """
    check_intervention(kind)
    if hidden.ndim != 2 or active.shape != hidden.shape[:1]:
        raise ValueError(f"hidden must be [B, D] and active [B], got {tuple(hidden.shape)} and {tuple(active.shape)}")
    if kind in ("normal", "drop") or not bool(active.any()):
        return hidden
    if kind == "zero":
        new = torch.zeros_like(hidden)
    elif kind == "noise":
        g = torch.randn(hidden.shape, generator=generator, dtype=torch.float32, device="cpu" if generator is None else generator.device)
        g = g.to(device=hidden.device, dtype=hidden.dtype)
        new = match_norm(g, 1.0) * hidden.norm(dim=-1, keepdim=True)  # random direction, the latent's norm
    elif kind == "shuffle":
        if hidden.shape[0] < 2:
            raise ValueError("latent intervention 'shuffle' needs a batch of at least 2 samples (it feeds another sample's state)")
        new = hidden.roll(-1, dims=0)  # sample b gets sample b+1's state at the same step
    else:  # pad
        if pad_embed is None:
            raise ValueError("latent intervention 'pad' needs the <|latent_pad|> embedding (pad_embed)")
        new = pad_embed.to(hidden.dtype).expand_as(hidden)
    return torch.where(active[:, None], new, hidden)

