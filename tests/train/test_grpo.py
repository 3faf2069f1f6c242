"""Exact-value tests of the GRPO advantages and loss (Eq. 12-13, docs/method.md#rl), `train/grpo.py`."""

from __future__ import annotations

import math

import pytest
import torch

from fourdthinker.train.grpo import group_advantages, grpo_loss, kl_estimate, masked_mean, token_logps


def test_group_advantages_two_groups_by_hand():
    # group 1: r = [1, 0, 1, 0]: mean 0.5, unbiased std = sqrt(4 * 0.25 / 3) = 0.57735
    # group 2: r = [0.2, 0.2, 0.2, 0.2]: zero variance -> advantage 0, counted
    r = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.2, 0.2, 0.2, 0.2])
    adv, stats = group_advantages(r, 4, eps=1e-4)
    a = 0.5 / (math.sqrt(1 / 3) + 1e-4)
    assert adv.tolist() == pytest.approx([a, -a, a, -a, 0, 0, 0, 0], abs=1e-6)
    assert adv[4:].eq(0).all(), "zero-variance group must give exactly 0"
    assert stats["zero_var_groups"] == 1.0 and stats["n_groups"] == 2.0
    assert stats["reward_mean"] == pytest.approx(0.35)


def test_group_advantages_nan_reward_is_left_out():
    # NaN (unscorable) is excluded from mean/std of its group and gets advantage 0.
    r = torch.tensor([1.0, float("nan"), 0.0])
    adv, stats = group_advantages(r, 3)
    s = math.sqrt(0.5)  # std of [1, 0], unbiased
    assert adv.tolist() == pytest.approx([0.5 / (s + 1e-4), 0.0, -0.5 / (s + 1e-4)], abs=1e-6)
    assert stats["unscorable"] == 1.0


def test_group_advantages_bad_shapes():
    with pytest.raises(ValueError, match="groups of 3"):
        group_advantages(torch.zeros(4), 3)


def test_kl_estimators_by_hand():
    lp, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0])
    # k3: d = ref - lp = [-0.5, 1]: e^d - d - 1 = [0.10653, 0.71828]
    assert kl_estimate(lp, ref, "k3").tolist() == pytest.approx([math.exp(-0.5) - 0.5, math.e - 2], abs=1e-6)
    assert kl_estimate(lp, ref, "k1").tolist() == pytest.approx([0.5, -1.0])
    with pytest.raises(ValueError, match="k2"):
        kl_estimate(lp, ref, "k2")


def _toy():
    """2 groups x 2 responses, 4 response positions each. mask: text tokens only."""
    logps = torch.tensor(
        [[-1.0, -0.5, -2.0, -0.1], [-0.3, -0.7, -1.1, -9.0], [-0.2, -0.4, -0.6, -0.8], [-1.5, -0.5, -0.5, -0.5]]
    )
    old = torch.tensor(
        [[-1.2, -0.5, -1.0, -0.1], [-0.3, -0.4, -1.1, -9.0], [-0.2, -0.1, -0.6, -0.8], [-1.5, -0.5, -0.9, -0.5]]
    )
    ref = torch.tensor(
        [[-1.0, -1.0, -2.0, -0.1], [-0.5, -0.7, -1.0, -9.0], [-0.2, -0.4, -0.6, -0.8], [-1.0, -0.5, -0.5, -0.5]]
    )
    # row 0: positions 0,1 text, 2 latent, 3 padding; row 1: 0,2 text (1 latent); rows 2,3: all text but last
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])
    return logps, old, ref, mask, adv


def test_grpo_loss_hand_computation_two_groups():
    logps, old, ref, mask, adv = _toy()
    loss, stats = grpo_loss(logps, adv, mask, old, ref, eps_low=0.2, beta=0.1, kl="k1")
    # Per text token: rho = exp(logp - old), pg = -min(rho*A, clip(rho,.8,1.2)*A), kl1 = logp - ref.
    e = math.exp
    rows = [
        # row 0 (A=1): t0 rho=e^.2=1.2214 -> clip 1.2 -> -1.2; t1 rho=1 -> -1. kl: 0, 0.5
        [(-min(e(0.2), 1.2), 0.0), (-1.0, 0.5)],
        # row 1 (A=-1): t0 rho=1 -> 1; t2 rho=1 -> 1. kl: 0.2, -0.1
        [(1.0, 0.2), (1.0, -0.1)],
        # row 2 (A=.5): t0 rho 1 -> -.5; t1 rho=e^-.3=.7408 -> min(.3704, .4) = .3704 -> -.3704; t2 -> -.5. kl 0
        [(-0.5, 0.0), (-0.5 * e(-0.3), 0.0), (-0.5, 0.0)],
        # row 3 (A=-.5): t0,t1 rho 1 -> .5; t2 rho=e^.4=1.4918: min(-.7459, -.6) = -.7459 -> .7459; t3 .5
        #   kl: -.5, 0, 0, 0
        [(0.5, -0.5), (0.5, 0.0), (0.5 * e(0.4), 0.0), (0.5, 0.0)],
    ]
    per_seq = [sum(pg + 0.1 * k for pg, k in r) / len(r) for r in rows]
    assert float(loss) == pytest.approx(sum(per_seq) / 4, abs=1e-6)
    # clipped tokens: row 0 t0 (rho>1.2, A>0), row 3 t2 (rho>1.2, A<0 -> not clipped region), so 1 of 11
    assert stats["clip_frac"] == pytest.approx(1 / 11)
    assert stats["text_tokens"] == 11.0
    assert stats["kl"] == pytest.approx((0.5 + 0.2 - 0.1 - 0.5) / 11, abs=1e-6)


def test_bnpo_and_dr_grpo_normalisation():
    logps, old, ref, mask, adv = _toy()
    lg, _ = grpo_loss(logps, adv, mask, old, ref, beta=0.0, loss_type="bnpo")
    ld, _ = grpo_loss(logps, adv, mask, old, ref, beta=0.0, loss_type="dr_grpo")
    rho = torch.exp(logps - old)
    a = adv[:, None]
    pt = -torch.min(rho * a, rho.clamp(0.8, 1.2) * a) * mask
    assert float(lg) == pytest.approx(float(pt.sum() / mask.sum()), abs=1e-6)
    assert float(ld) == pytest.approx(float(pt.sum() / 16), abs=1e-6)


def test_on_policy_ratio_is_one_and_loss_is_minus_mean_advantage():
    # mu = 1: old = logps.detach() -> rho = 1 -> per-token pg = -A; mean over text tokens per
    # response is -A_i, then mean over responses = -mean(A). beta = 0.
    logps, _, _, mask, adv = _toy()
    loss, stats = grpo_loss(logps, adv, mask, None, None, beta=0.0)
    assert stats["ratio_mean"] == 1.0 and stats["clip_frac"] == 0.0
    assert float(loss) == pytest.approx(-float(adv.mean()), abs=1e-7)


def test_gradient_is_exactly_zero_at_prompt_padding_and_latent_positions():
    torch.manual_seed(0)
    B, T, V, P = 3, 7, 11, 3  # P prompt positions before the response
    logits = torch.randn(B, T, V, requires_grad=True)
    targets = torch.randint(0, V, (B, T))
    logits_ref = torch.randn(B, T, V)
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[:, P:] = True  # response
    mask[0, 4] = False  # a latent position
    mask[1, 5:] = False  # latent block + padding
    mask[2, 6] = False  # padding
    lp = token_logps(logits, targets)
    # an infinite log-prob at an excluded position must not leak a NaN
    lp = torch.where(torch.arange(T) == 0, torch.full_like(lp, -float("inf")), lp)
    old = (lp + 0.3 * torch.randn(B, T)).detach()
    ref = token_logps(logits_ref, targets)
    loss, _ = grpo_loss(lp, torch.tensor([1.0, -0.5, 2.0]), mask, old, ref, beta=0.04)
    loss.backward()
    g = logits.grad
    assert torch.isfinite(g).all()
    assert g[~mask].abs().max().item() == 0.0, "masked positions must get exactly zero gradient"
    assert g[mask].abs().sum(-1).gt(0).all(), "every text position gets a gradient"


def test_masked_mean_and_token_logps():
    x = torch.tensor([[1.0, float("inf")], [3.0, 5.0]])
    m = torch.tensor([[True, False], [True, True]])
    assert float(masked_mean(x, m)) == 3.0
    assert masked_mean(x, m, dim=1).tolist() == [1.0, 4.0]
    logits = torch.tensor([[[0.0, math.log(3.0)]]])  # p = [.25, .75]
    assert token_logps(logits, torch.tensor([[1]])).item() == pytest.approx(math.log(0.75))


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="advantages"):
        grpo_loss(torch.zeros(2, 3), torch.zeros(3), torch.ones(2, 3, dtype=torch.bool), beta=0.0)
    with pytest.raises(ValueError, match="ref_logps"):
        grpo_loss(torch.zeros(2, 3), torch.zeros(2), torch.ones(2, 3, dtype=torch.bool), beta=0.1)
