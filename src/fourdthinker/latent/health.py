"""Latent health: are the fed-back hidden states still the size of what they stand in for?

What is measured and why. The DIFT similarity loss (Eq. 9, docs/method.md#eq-9) is cosine-only: it aligns the
*direction* of h_{t-1} with the pooled target latent z_t and says nothing about its *magnitude*.
At inference the model feeds h_{t-1} back as the next input embedding (Eq. 10), so if the norms of
the last-layer states drift away from the norms of the targets (and of ordinary token embeddings,
which is the scale the first decoder layer was trained on), the latent block becomes an
out-of-distribution input even while the training cosine looks fine. This is a known failure of
continuous-thought training (Coconut-style recurrent latents); nothing in the loss catches it.

So we log, per optimizer step (reusing the tensors the loss already computes, cost: three norms):

* ``pred_norm``   mean ||h_{t-1}|| over latent positions t (what inference feeds back),
* ``target_norm`` mean ||z_t|| (the pooled overlay latents teacher forcing feeds),
* ``embed_norm``  mean ||e|| of token embeddings (in training: the batch's text-token inputs),
* the ratios ``pred_over_target``, ``pred_over_embed``, ``target_over_embed``,
* ``cos``         mean cos(h_{t-1}, z_t) (the quantity Eq. 9 trains; on a held-out batch it is the
  generalisation check, logged as ``heldout_cos`` every N steps).

:func:`check_divergence` turns the ratios into a one-line warning when any leaves
``[1/factor, factor]``. :func:`decode_health` computes the same norm stats from the vectors the
latent decoder actually fed (``DecodeResult.latent_inputs``; note these are *after* any
intervention or norm matching the decoder applied). :func:`plot_health` draws the curves.

Validated: the pure functions against hand computations (tests/latent/test_health.py); the
training hook on a tiny real Qwen2.5-VL run. Not validated: what factor is "too much" for real
7B models — the default 4 is a judgement call, not a measured threshold.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

__all__ = [
    "DEFAULT_FACTOR",
    "RATIO_KEYS",
    "DecodeHealthMeter",
    "HealthCallback",
    "check_divergence",
    "decode_health",
    "decode_health_report",
    "print_decode_health",
    "latent_health",
    "mean_norm",
    "plot_health",
]

RATIO_KEYS = ("pred_over_target", "pred_over_embed", "target_over_embed", "latent_over_embed")
_CHUNK = 16384  # rows per chunk in mean_norm
DEFAULT_FACTOR = 4.0  # warn outside [1/4, 4]: a judgement call (module docstring), shared by train/infer/eval


def mean_norm(x: torch.Tensor) -> float:
    """(1/N) * sum_i ||x_i||_2 over the rows of ``x [N, D]`` (computed in fp32).

    >>> mean_norm(torch.tensor([[3.0, 4.0], [0.0, 1.0]]))
    3.0
    """
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"mean_norm: expected a non-empty [N, D] tensor, got shape {tuple(x.shape)}")
    x = x.detach()
    if x.shape[0] <= _CHUNK:
        return float(x.float().norm(dim=-1).mean())
    # a 7B model's embedding matrix in fp32 would be a ~2 GB temporary: sum the norms in row chunks
    total = sum(float(x[i:i + _CHUNK].float().norm(dim=-1).sum()) for i in range(0, x.shape[0], _CHUNK))
    return total / x.shape[0]


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("inf")


def latent_health(pred_hidden: torch.Tensor, targets: torch.Tensor | None,
                  token_embeddings: torch.Tensor) -> dict[str, float]:
    """Norm and direction stats of predicted latents vs targets vs token embeddings.

    ``pred_hidden [N, D]`` = h_{t-1} at the N latent positions (the vectors inference feeds back),
    ``targets [N, D]`` = z_t (None at inference: no target), ``token_embeddings [M, D]`` = any set of
    token-embedding rows (the embedding matrix [V, D], or the batch's text-token inputs).

    pred_norm = mean_i ||h_i||, target_norm = mean_i ||z_i||, embed_norm = mean_j ||e_j||,
    X_over_Y = X_norm / Y_norm, cos = mean_i <h_i, z_i> / (||h_i|| ||z_i||) (the Eq. 9 cosine).
    All values are detached Python floats."""
    out: dict[str, float] = {"pred_norm": mean_norm(pred_hidden), "embed_norm": mean_norm(token_embeddings)}
    out["pred_over_embed"] = _ratio(out["pred_norm"], out["embed_norm"])
    if targets is not None:
        if targets.shape != pred_hidden.shape:
            raise ValueError(f"latent_health: pred {tuple(pred_hidden.shape)} and targets {tuple(targets.shape)} differ")
        out["target_norm"] = mean_norm(targets)
        out["pred_over_target"] = _ratio(out["pred_norm"], out["target_norm"])
        out["target_over_embed"] = _ratio(out["target_norm"], out["embed_norm"])
        p, t = pred_hidden.detach().float(), targets.detach().float().to(pred_hidden.device)
        out["cos"] = float(torch.nn.functional.cosine_similarity(p, t, dim=-1, eps=1e-8).mean())
    return out


def check_divergence(stats: dict[str, Any], factor: float = DEFAULT_FACTOR) -> str | None:
    """A one-line warning if any norm ratio in ``stats`` (keys :data:`RATIO_KEYS`, optionally with a
    ``heldout_`` prefix) is > ``factor`` or < 1/``factor``; None when all are inside (or absent).

    >>> check_divergence({"pred_over_target": 5.0}, factor=4.0)
    'latent norms diverge (factor 4): pred_over_target=5 (mean ||h_{t-1}|| vs ||z_t|| / ||e||)'
    >>> check_divergence({"pred_over_target": 0.5}, factor=4.0) is None
    True
    """
    if factor <= 1:
        raise ValueError(f"check_divergence: factor must be > 1, got {factor}")
    bad = []
    for k, v in stats.items():
        if v is None or k.removeprefix("heldout_") not in RATIO_KEYS:
            continue
        v = float(v)
        if not (1.0 / factor <= v <= factor):
            bad.append(f"{k}={v:.3g}")
    if not bad:
        return None
    return f"latent norms diverge (factor {factor:g}): {', '.join(bad)} (mean ||h_{{t-1}}|| vs ||z_t|| / ||e||)"


class DecodeHealthMeter:
    """Running totals behind :func:`decode_health`, for runs over many batches (``eval``, batch
    ``infer``): the sum and count of fed-vector norms, never the vectors themselves.

    ``add(results)`` takes ``DecodeResult`` objects (their ``.latent_inputs [n_i, D]``) or tensors;
    ``stats(embed_norm)`` gives :func:`decode_health`'s dict. ``latent_norm = norm_sum / n_latent``
    is the mean over every fed vector of every batch, exactly as if they had been concatenated."""

    def __init__(self, norm_sum: float = 0.0, n_latent: int = 0):
        self.norm_sum, self.n_latent = float(norm_sum), int(n_latent)

    def add(self, latent_inputs: Iterable[torch.Tensor] | Any) -> None:
        for r in latent_inputs:
            v = getattr(r, "latent_inputs", r)
            if v is None or v.ndim != 2 or not v.shape[0]:
                continue
            self.norm_sum += float(v.detach().float().norm(dim=-1).sum())
            self.n_latent += int(v.shape[0])

    def stats(self, embed_norm: float) -> dict[str, float]:
        if not self.n_latent:
            return {"n_latent": 0, "embed_norm": embed_norm}
        lat = self.norm_sum / self.n_latent
        return {"n_latent": self.n_latent, "latent_norm": lat, "embed_norm": embed_norm,
                "latent_over_embed": _ratio(lat, embed_norm)}


def decode_health(latent_inputs: Iterable[torch.Tensor] | Any, token_embeddings: torch.Tensor) -> dict[str, float]:
    """Norm stats of the vectors the latent decoder fed back, for ``infer``/``eval`` reports.

    ``latent_inputs``: ``DecodeResult`` objects (their ``.latent_inputs [n_i, D]``) or tensors;
    ``token_embeddings [V, D]``: e.g. ``model.get_input_embeddings().weight``.
    Returns latent_norm = mean ||e_t|| over all fed latent vectors, embed_norm, latent_over_embed,
    n_latent; with no latent step at all, only ``{"n_latent": 0, "embed_norm": ...}``."""
    meter = DecodeHealthMeter()
    meter.add(latent_inputs)
    return meter.stats(mean_norm(token_embeddings))


def decode_health_report(stats: dict[str, Any], factor: float = DEFAULT_FACTOR, *,
                         warn: bool = True) -> tuple[str | None, str | None]:
    """``(line, warning)`` to print after decoding, from :func:`decode_health`'s dict.

    ``line`` (None when no latent step was fed): fed-vector count, mean fed-back norm, mean
    token-embedding norm and their ratio. ``warning`` (None unless ``warn``): set when the ratio
    leaves ``[1/factor, factor]`` (:func:`check_divergence`): the decoder then feeds inputs of a
    scale the first layer never saw as token embeddings. Plain text, no rich markup.

    >>> decode_health_report({"n_latent": 8, "latent_norm": 20.0, "embed_norm": 2.0, "latent_over_embed": 10.0})[0]
    'latent health: 8 fed-back vectors, mean norm 20 vs token embeddings 2 (ratio 10)'
    """
    if not stats.get("n_latent"):
        return None, None
    r = float(stats["latent_over_embed"])
    line = (f"latent health: {stats['n_latent']} fed-back vectors, mean norm {stats['latent_norm']:.3g} "
            f"vs token embeddings {stats['embed_norm']:.3g} (ratio {r:.3g})")
    warning = None
    if warn and check_divergence({"latent_over_embed": r}, factor) is not None:
        warning = (f"fed-back latents are {r:.3g}x the token-embedding norm, outside [1/{factor:g}, {factor:g}]: "
                   f"the model reads out-of-scale inputs in its imagery blocks (--latent-norm rescales them)")
    return line, warning


def print_decode_health(console, stats: dict[str, Any], *, latents: str = "normal", factor: float = DEFAULT_FACTOR,
                        prefix: str = "") -> None:
    """Print :func:`decode_health_report` on a rich ``console``: the line (plain), then the warning
    in yellow. Nothing when no latent step was fed. Only the model's own states (``latents``
    normal/shuffle) are warned about: zero/noise/pad replace them on purpose, so their line just
    names the intervention."""
    from rich.markup import escape

    own = latents in ("normal", "shuffle")
    line, warning = decode_health_report(stats, factor, warn=own)
    if line is None:
        return
    if not own:
        line += f" (--latents {latents})"
    console.print(prefix + line, markup=False, highlight=False, soft_wrap=True)
    if warning:
        console.print(f"[yellow]warning:[/yellow] {escape(prefix + warning)}", highlight=False, soft_wrap=True)


def plot_health(rows: Sequence[dict], path: str | os.PathLike, factor: float | None = None,
                title: str = "latent health") -> Path | None:
    """Three panels from the per-step log rows: norms, norm ratios (with the ±factor band),
    cosine (train and held-out). Returns the PNG path, or None when no row has health fields."""
    rows = [r for r in rows if "pred_norm" in r or "heldout_cos" in r]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fourdthinker.plots import save_figure

    def series(k):
        pts = [(r["step"], r[k]) for r in rows if r.get(k) is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for k, lab in (("pred_norm", "fed back h$_{t-1}$"), ("target_norm", "target z$_t$"),
                   ("embed_norm", "token embeddings")):
        xs, ys = series(k)
        if xs:
            axes[0].plot(xs, ys, lw=1.3, label=lab)
    axes[0].set_yscale("log")
    axes[0].set_title("mean L2 norm (log)")
    for k in ("pred_over_target", "pred_over_embed", "target_over_embed"):
        xs, ys = series(k)
        if xs:
            axes[1].plot(xs, ys, lw=1.3, label=k)
    axes[1].axhline(1.0, color="grey", lw=0.8)
    if factor:
        for y in (factor, 1.0 / factor):
            axes[1].axhline(y, color="red", ls="--", lw=0.9)
        axes[1].plot([], [], color="red", ls="--", label=f"warn at x{factor:g}")
    axes[1].set_yscale("log")
    axes[1].set_title("norm ratios (log)")
    for k, lab, mk in (("cos", "train batch", None), ("heldout_cos", "held-out batch", "o")):
        xs, ys = series(k)
        if xs:
            axes[2].plot(xs, ys, lw=1.3, marker=mk, label=lab)
    axes[2].set_title("cos(h$_{t-1}$, z$_t$)")
    for ax in axes:
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


class HealthCallback(TrainerCallback):
    """Held-out latent cosine every ``every`` steps + the divergence warning, for ``StatsTrainer``s.

    Must run *before* ``StepLogCallback`` (pass it first in ``callbacks``): it ``record``s its
    ``heldout_*`` stats into the trainer so they land in the same JSONL row as the training stats.
    ``forward(batch) -> (loss, stats, out)`` is the trainer's teacher-forced forward (DIFT:
    ``dift_forward``); ``heldout`` is a collated batch or None. Warns once per run (``warnings``
    and rich) on the first divergent step; every message is kept in ``messages``."""

    def __init__(self, forward, heldout: dict | None, *, every: int = 10, factor: float = DEFAULT_FACTOR,
                 progress: bool = True):
        self.forward, self.heldout, self.every, self.factor, self.progress = forward, heldout, every, factor, progress
        self.trainer = None
        self.messages: list[tuple[int, str]] = []

    def heldout_stats(self, model) -> dict[str, float]:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                _, stats, _ = self.forward(self.heldout)
        finally:
            model.train(was_training)
        return {f"heldout_{k}": v for k, v in stats.items() if v is not None and (k == "cos" or k in RATIO_KEYS
                                                                                 or k.endswith("_norm"))}

    def on_step_end(self, args, state, control, model=None, **kw):
        tr = self.trainer
        if tr is None:
            return
        step = state.global_step
        if self.heldout is not None and self.every > 0 and (step % self.every == 0 or step == 1):
            tr.record(self.heldout_stats(model if model is not None else tr.model))
        current = {k: sum(v) / len(v) for k, v in getattr(tr, "_stats", {}).items() if v}
        msg = check_divergence(current, self.factor)
        if msg:
            self.messages.append((step, msg))
            if len(self.messages) == 1:
                text = f"step {step}: {msg}; the cosine-only DIFT loss does not control norms"
                if self.progress:  # printed once: the rich line on a console run, else a warning
                    from rich.console import Console

                    Console(stderr=True).print(f"[yellow]warning[/yellow] {text}", soft_wrap=True, highlight=False)
                else:
                    warnings.warn(text, RuntimeWarning, stacklevel=2)
