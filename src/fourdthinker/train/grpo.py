"""GRPO advantages and loss for 4DRL (Eq. 12-13, docs/method.md#rl): pure tensor functions, no model.

The algorithm, exactly (every choice in one place; `train/rl.py` only wires it):

1. **Groups.** Each question gets G sampled responses; rewards arrive as one flat vector of
   ``n_questions * G`` values, group after group (``r.view(-1, G)``).
2. **Advantage (Eq. 12).** ``A_i = (r_i - mean_g(r)) / (std_g(r) + eps)`` within the group,
   ``std`` unbiased (``torch.std``, as TRL and the reference), ``eps = 1e-4`` (TRL's and the
   reference's value). A group whose rewards are all equal (``std`` ~ 0) carries no signal: its
   advantages are set to exactly 0 and it is counted (``zero_var_groups``). A reward of ``None``
   (NaN: no reward function could score the response) is left out of its group's mean/std and gets
   advantage 0 (TRL's rule).
3. **Ratio.** Per token: ``rho_t = exp(logp_t - logp_old_t)`` against the policy that *sampled* the
   rollout (its log-probs are recorded once, before the first update on the batch). With one
   optimisation step per rollout batch (``mu = 1``) ``logp_old = logp.detach()`` and ``rho = 1``.
4. **Clipped surrogate (Eq. 13).** ``-min(rho * A, clip(rho, 1 - eps_low, 1 + eps_high) * A)``,
   ``eps_low = eps_high = 0.2`` by default (PPO/TRL's two-sided clip).
5. **KL to the frozen reference** (the DIFT model), per token, ``beta = 0.01`` (reference release):
   ``k3 = exp(ref - logp) - (ref - logp) - 1`` (Schulman's unbiased low-variance estimator, TRL's
   default) or ``k1 = logp - ref`` (what the reference 4DThinker code uses; ``kl="k1"``).
   ``beta = 0`` skips it (no reference forward needed).
6. **Mask.** Both terms are averaged over the **text tokens of the response only**: prompt,
   padding, and latent positions (``<lat_s>``/latent vectors/``<lat_e>`` — they are inputs the model
   did not sample as text) are excluded. Excluded positions contribute an *exact* zero gradient
   (``torch.where``, not a multiply, so even ``inf`` log-probs there cannot leak a NaN).
7. **Loss normalisation.** ``loss_type="grpo"`` (default, TRL's and the reference's): mean over each
   response's text tokens, then mean over responses. ``"bnpo"``: one mean over all text tokens of
   the batch. ``"dr_grpo"``: sum over tokens / (responses * max_len).
8. **mu steps.** The trainer may take ``mu`` optimiser steps on one rollout batch; ``logp_old`` and
   the reference log-probs stay fixed across them, so clipping becomes active from step 2 on.

Validated by tests/train/test_grpo.py: hand computation on a 2-group toy batch, exact zero gradient
at masked positions, ``rho = 1`` => loss == -mean(A), and equality with TRL 1.16's
``GRPOTrainer._compute_loss`` on identical tensors.
"""

from __future__ import annotations

from typing import Literal

import torch

__all__ = [
    "group_advantages",
    "grpo_loss",
    "kl_estimate",
    "masked_mean",
    "token_logps",
]

KL = Literal["k3", "k1"]
LossType = Literal["grpo", "bnpo", "dr_grpo"]


def group_advantages(
    rewards: torch.Tensor, group_size: int, eps: float = 1e-4
) -> tuple[torch.Tensor, dict[str, float]]:
    """Group-normalised advantages (Eq. 12): ``A_i = (r_i - mean_g r) / (std_g r + eps)``.

    ``rewards`` is ``[n_groups * group_size]`` (NaN = unscorable). Returns ``(advantages, stats)``;
    zero-variance groups get advantage exactly 0 and are counted in ``stats["zero_var_groups"]``.

    >>> a, s = group_advantages(torch.tensor([1.0, 0.0, 0.5, 0.5]), 2)
    >>> [round(x, 4) for x in a.tolist()], s["zero_var_groups"]
    ([0.707, -0.707, 0.0, 0.0], 1.0)
    """
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D [n_groups * G], got shape {tuple(rewards.shape)}")
    if group_size < 1 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    r = rewards.float().view(-1, group_size)  # [Q, G]
    valid = ~torch.isnan(r)
    n = valid.sum(1, keepdim=True).clamp(min=1)  # [Q, 1]
    r0 = torch.where(valid, r, torch.zeros_like(r))
    mean = r0.sum(1, keepdim=True) / n  # [Q, 1]
    dev = torch.where(valid, r - mean, torch.zeros_like(r))
    var = (dev**2).sum(1, keepdim=True) / (n - 1).clamp(min=1)  # unbiased, like torch.std / TRL nanstd
    std = var.sqrt()
    zero_var = torch.isclose(std, torch.zeros_like(std)) | (valid.sum(1, keepdim=True) < 2)  # [Q, 1]
    adv = dev / (std + eps)
    adv = torch.where(zero_var | ~valid, torch.zeros_like(adv), adv)
    stats = {
        "reward_mean": float(r[valid].mean()) if valid.any() else float("nan"),
        "reward_std": float(r[valid].std()) if valid.sum() > 1 else 0.0,
        "group_std_mean": float(std.mean()),
        "zero_var_groups": float(zero_var.sum()),
        "n_groups": float(r.shape[0]),
        "unscorable": float((~valid).sum()),
    }
    return adv.view(-1), stats


def token_logps(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``log softmax(logits / T)[target]`` per position: ``[B, T, V], [B, T] -> [B, T]``.

    ``logits[:, t]`` must already be the prediction *for* ``targets[:, t]`` (i.e. shifted).
    Computed in float32 (bf16 log-softmax loses the ratio's precision)."""
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)  # [B, T, V]
    return logp.gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)  # [B, T]


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` where ``mask``; positions outside contribute an exact zero (and zero gradient)."""
    m = mask.bool()
    xm = torch.where(m, x, torch.zeros_like(x))
    if dim is None:
        return xm.sum() / m.sum().clamp(min=1)
    return xm.sum(dim) / m.sum(dim).clamp(min=1)


def kl_estimate(logps: torch.Tensor, ref_logps: torch.Tensor, kind: KL = "k3") -> torch.Tensor:
    """Per-token KL(pi || pi_ref) estimate from samples of pi (Eq. 13's KL term).

    ``k3 = exp(ref - logp) - (ref - logp) - 1`` (>= 0, unbiased; TRL's default);
    ``k1 = logp - ref`` (unbiased, can be negative; the reference 4DThinker code).

    >>> round(float(kl_estimate(torch.tensor(0.0), torch.tensor(-1.0))), 4)  # e^-1 + 1 - 1
    0.3679
    """
    d = ref_logps - logps
    if kind == "k3":
        return torch.exp(d) - d - 1
    if kind == "k1":
        return -d
    raise ValueError(f"unknown KL estimator {kind!r}; use 'k3' or 'k1'")


def grpo_loss(
    logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    old_logps: torch.Tensor | None = None,
    ref_logps: torch.Tensor | None = None,
    *,
    eps_low: float = 0.2,
    eps_high: float | None = None,
    beta: float = 0.01,
    kl: KL = "k3",
    loss_type: LossType = "grpo",
) -> tuple[torch.Tensor, dict[str, float]]:
    """GRPO objective (Eq. 13) over the text tokens of each response, as a loss to minimise.

    ``L = agg_{i, t in text(i)} [ -min(rho_it A_i, clip(rho_it, 1-eps_low, 1+eps_high) A_i)
    + beta * KL_it ]`` with ``rho_it = exp(logp_it - logp_old_it)``; ``agg`` per ``loss_type``
    (module docstring, item 7).

    Shapes: ``logps, old_logps, ref_logps, mask: [B, T]`` (response positions only; ``mask`` True
    at text tokens, False at prompt/padding/latent positions), ``advantages: [B]``.
    ``old_logps=None`` means on-policy (``mu = 1``): ``old = logps.detach()``, ``rho = 1``.
    Returns ``(loss, stats)``: ``policy_loss``, ``kl`` (mean over text tokens), ``clip_frac``
    (text tokens where the clip is active), ``ratio_mean``, ``text_tokens``.
    """
    if logps.shape != mask.shape:
        raise ValueError(f"logps {tuple(logps.shape)} and mask {tuple(mask.shape)} differ")
    if advantages.shape != logps.shape[:1]:
        raise ValueError(f"advantages must be [B]={logps.shape[0]}, got {tuple(advantages.shape)}")
    if beta != 0.0 and ref_logps is None:
        raise ValueError("beta != 0 needs ref_logps (the frozen reference's log-probs)")
    eps_high = eps_low if eps_high is None else eps_high
    m = mask.bool()
    old = logps.detach() if old_logps is None else old_logps
    # Masked positions may hold anything (latent pads, -inf); zero them before exp so no NaN/inf.
    log_ratio = torch.where(m, logps - old, torch.zeros_like(logps))  # [B, T]
    ratio = torch.exp(log_ratio)
    a = advantages.unsqueeze(1).to(ratio.dtype)  # [B, 1]
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    per_token = -torch.min(ratio * a, clipped * a)  # [B, T]
    pg = per_token
    kl_t = torch.zeros_like(logps)
    if beta != 0.0:
        zero = torch.zeros_like(logps)
        kl_t = kl_estimate(torch.where(m, logps, zero), torch.where(m, ref_logps, zero), kl)  # [B, T]; 0 where masked
        per_token = per_token + beta * kl_t
    per_token = torch.where(m, per_token, torch.zeros_like(per_token))

    if loss_type == "grpo":
        loss = masked_mean(per_token, m, dim=1).mean()
    elif loss_type == "bnpo":
        loss = masked_mean(per_token, m)
    elif loss_type == "dr_grpo":
        loss = per_token.sum() / (per_token.shape[0] * per_token.shape[1])
    else:
        raise ValueError(f"unknown loss_type {loss_type!r}; use 'grpo', 'bnpo' or 'dr_grpo'")

    with torch.no_grad():
        is_clipped = ((ratio < 1 - eps_low) & (a < 0)) | ((ratio > 1 + eps_high) & (a > 0))
        stats = {
            "policy_loss": float(masked_mean(pg, m)),
            "kl": float(masked_mean(kl_t, m)) if beta != 0.0 else 0.0,
            "clip_frac": float(masked_mean(is_clipped.float(), m)),
            "ratio_mean": float(masked_mean(ratio, m)),
            "text_tokens": float(m.sum()),
        }
    return loss, stats
