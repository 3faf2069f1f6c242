"""Eq. 7-9 against hand computations; the similarity loss reads h_{t-1}."""

from __future__ import annotations

import math

import pytest
import torch

from fourdthinker.latent.blocks import IGNORE_INDEX as X
from fourdthinker.train.dift import (
    ce_loss,
    conclusion_weights,
    dift_loss,
    latent_cosine_loss,
    latent_infonce_loss,
)


def test_ce_hand_computed_and_shifted():
    # V=2, L=3. logits at position 0 predict label at 1, position 1 predicts label at 2.
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [5.0, 5.0]]])
    labels = torch.tensor([[X, 1, 0]])
    # pos0: uniform -> -log(1/2) = ln 2 ; pos1: p(0) = 3/4 -> -log(3/4)
    expect = (math.log(2) - math.log(0.75)) / 2
    loss, st = ce_loss(logits, labels)
    assert loss.item() == pytest.approx(expect, abs=1e-6)
    assert st["n_text"] == 2
    # masking the second label leaves only ln 2
    loss2, _ = ce_loss(logits, torch.tensor([[X, 1, X]]))
    assert loss2.item() == pytest.approx(math.log(2), abs=1e-6)


def test_weighted_ce_hand_computed():
    # the two terms of test_ce_hand_computed_and_shifted, ln 2 (label at 1) and -ln(3/4) (label at 2),
    # weighted 1 and 3: (ln 2 + 3 * -ln(3/4)) / 4
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [5.0, 5.0]]])
    labels = torch.tensor([[X, 1, 0]])
    loss, _ = ce_loss(logits, labels, torch.tensor([[9.0, 1.0, 3.0]]))  # the weight at 0 has no label
    assert loss.item() == pytest.approx((math.log(2) - 3 * math.log(0.75)) / 4, abs=1e-6)
    assert ce_loss(logits, labels, torch.ones(1, 3))[0].item() == pytest.approx(ce_loss(logits, labels)[0].item())


def test_conclusion_weights():
    E = 9  # <|latent_end|>
    ids = torch.tensor([[1, E, 2, E, 3, 4], [1, 2, 3, 4, 5, 6]])
    w = conclusion_weights(ids, E, 5.0)
    assert w.tolist() == [[1, 1, 1, 1, 5, 5], [1, 1, 1, 1, 1, 1]]  # after the LAST block only; no block: 1
    assert conclusion_weights(ids, E, 1.0) is None and conclusion_weights(ids, None, 5.0) is None


def test_sim_uses_previous_hidden_state():
    # latent at position 2 only: L_sim = 1 - cos(h_1, z). h_1 = [1, 0], z = [1, 1] -> cos = 1/sqrt 2
    hidden = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [0.0, -1.0], [3.0, 3.0]]])
    mask = torch.tensor([[False, False, True, False]])
    z = torch.tensor([[1.0, 1.0]])
    loss, st = latent_cosine_loss(hidden, z, mask)
    assert loss.item() == pytest.approx(1 - 1 / math.sqrt(2), abs=1e-6)
    assert st["n_latent"] == 1
    # if it read h_t ([0,-1]) it would be 1 + 1/sqrt2; if h_{t+1} ([3,3]) it would be 0
    assert loss.item() != pytest.approx(1 + 1 / math.sqrt(2))


def test_sim_mean_over_positions_and_grad_only_to_hidden():
    # two latents: (h=[1,0], z=[1,0]) -> 0 ; (h=[0,2], z=[1,0]) -> 1 ; mean = 0.5
    hidden = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [9.0, 9.0]]], requires_grad=True)
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0]], requires_grad=True)
    mask = torch.tensor([[False, True, True]])
    loss, _ = latent_cosine_loss(hidden, z, mask)
    assert loss.item() == pytest.approx(0.5, abs=1e-6)
    loss.backward()
    assert z.grad is None  # targets are detached (frozen encoder defines them)
    assert hidden.grad is not None and hidden.grad[0, 2].abs().sum() == 0


def test_sim_errors():
    with pytest.raises(ValueError, match="position 0"):
        latent_cosine_loss(torch.zeros(1, 2, 2), torch.zeros(1, 2), torch.tensor([[True, False]]))
    with pytest.raises(ValueError, match="1 latent positions but 2"):
        latent_cosine_loss(torch.zeros(1, 2, 2), torch.zeros(2, 2), torch.tensor([[False, True]]))


def test_infonce_hand_computed():
    # latents at positions 1 and 2 read h_0 = [1, 0] and h_1 = [0, 1]; z_1 = [1, 0], z_2 = [1, 1]
    # c = [[1, 1/sqrt2], [0, 1/sqrt2]], tau = 1:
    # row 1: -log(e^1 / (e^1 + e^0.7071)); row 2: -log(e^0.7071 / (e^0 + e^0.7071)); mean
    hidden = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    mask = torch.tensor([[False, True, True]])
    z = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    r = 1 / math.sqrt(2)
    expect = (-math.log(math.e / (math.e + math.exp(r))) - math.log(math.exp(r) / (1 + math.exp(r)))) / 2
    loss, st = latent_infonce_loss(hidden, z, mask, temperature=1.0)
    assert loss.item() == pytest.approx(expect, abs=1e-6)
    assert st["cos"] == pytest.approx((1 + r) / 2, abs=1e-6) and st["n_latent"] == 2
    # tau = 0.5 divides the cosines by 0.5
    expect_half = (-math.log(math.exp(2) / (math.exp(2) + math.exp(2 * r)))
                   - math.log(math.exp(2 * r) / (1 + math.exp(2 * r)))) / 2
    assert latent_infonce_loss(hidden, z, mask, temperature=0.5)[0].item() == pytest.approx(expect_half, abs=1e-6)
    # the same target twice is not a negative of itself: each row keeps only its positive -> 0
    same, _ = latent_infonce_loss(hidden, torch.tensor([[1.0, 1.0], [1.0, 1.0]]), mask, temperature=1.0)
    assert same.item() == pytest.approx(0.0, abs=1e-6)
    # a direction shared by all targets meets the cosine but not InfoNCE
    h2 = torch.tensor([[[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]]])
    z2 = torch.tensor([[1.0, 0.9], [0.9, 1.0]])
    assert latent_cosine_loss(h2, z2, mask)[0].item() < 0.01
    assert latent_infonce_loss(h2, z2, mask, temperature=0.1)[0].item() == pytest.approx(math.log(2), abs=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        latent_infonce_loss(hidden, z, mask, temperature=0)
    with pytest.raises(ValueError, match="position 0"):
        latent_infonce_loss(torch.zeros(1, 2, 2), torch.zeros(1, 2), torch.tensor([[True, False]]))


def test_dift_loss_weights():
    ce, sim = torch.tensor(2.0), torch.tensor(0.5)
    assert dift_loss(ce, sim)[0].item() == pytest.approx(0.1 * 2.0 + 1.0 * 0.5)  # defaults 0.1 / 1.0
    assert dift_loss(ce, sim, use_sim=False)[0].item() == pytest.approx(0.2)
    assert dift_loss(ce, sim, use_ce=False)[0].item() == pytest.approx(0.5)
    assert dift_loss(ce, sim, l_ce=1.0, l_sim=2.0)[0].item() == pytest.approx(3.0)
    with pytest.raises(ValueError):
        dift_loss(ce, sim, use_ce=False, use_sim=False)
