"""Latent interventions (docs/inference.md#latent-interventions): exact values, and in the decoder they touch latent slots only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fourdthinker.latent.decode import ForceTokens, latent_generate, latent_ids, replay_forward
from fourdthinker.latent.interventions import (
    INTERVENTIONS,
    apply_intervention,
    check_intervention,
    match_norm,
)

torch.set_num_threads(2)

H = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0], [1.0, 1.0, 1.0]])  # norms 5, 2, sqrt(3)
ACTIVE = torch.tensor([True, False, True])


def test_match_norm_hand_computed():
    # [3, 4] has norm 5; scaled to norm 10 -> [6, 8]
    torch.testing.assert_close(match_norm(torch.tensor([[3.0, 4.0]]), 10.0), torch.tensor([[6.0, 8.0]]))
    assert torch.isfinite(match_norm(torch.zeros(1, 3), 1.0)).all()  # zero vector stays finite


@pytest.mark.parametrize("kind", INTERVENTIONS)
def test_inactive_rows_are_never_touched(kind):
    out = apply_intervention(kind, H, ACTIVE, pad_embed=torch.tensor([9.0, 9.0, 9.0]), generator=torch.Generator().manual_seed(0))
    assert out.shape == H.shape
    torch.testing.assert_close(out[1], H[1])


def test_each_intervention_value():
    pad = torch.tensor([9.0, 8.0, 7.0])
    g = torch.Generator().manual_seed(0)
    torch.testing.assert_close(apply_intervention("normal", H, ACTIVE), H)
    torch.testing.assert_close(apply_intervention("drop", H, ACTIVE), H)  # dropping is the decoder's job
    zero = apply_intervention("zero", H, ACTIVE)
    assert zero[0].abs().sum() == 0 and zero[2].abs().sum() == 0
    padded = apply_intervention("pad", H, ACTIVE, pad_embed=pad)
    torch.testing.assert_close(padded[0], pad)
    torch.testing.assert_close(padded[2], pad)
    noise = apply_intervention("noise", H, ACTIVE, generator=g)
    # same norms as the latents (5 and sqrt 3), different directions
    torch.testing.assert_close(noise[[0, 2]].norm(dim=-1), torch.tensor([5.0, 3.0**0.5]))
    assert not torch.allclose(noise[0], H[0])
    shuffled = apply_intervention("shuffle", H, ACTIVE)
    torch.testing.assert_close(shuffled[0], H[1])  # row b gets row b+1 (cyclic)
    torch.testing.assert_close(shuffled[2], H[0])


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown latent intervention 'nope'"):
        check_intervention("nope")
    with pytest.raises(ValueError, match="pad_embed"):
        apply_intervention("pad", H, ACTIVE)
    with pytest.raises(ValueError, match="at least 2"):
        apply_intervention("shuffle", H[:1], ACTIVE[:1])
    with pytest.raises(ValueError, match=r"\[B, D\]"):
        apply_intervention("zero", H, ACTIVE[:2])


def test_noise_is_seeded():
    a = apply_intervention("noise", H, ACTIVE, generator=torch.Generator().manual_seed(3))
    b = apply_intervention("noise", H, ACTIVE, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)


# ------------------------------------------------------------------------------------- in the decoder


@pytest.fixture(scope="module")
def qwen():
    from fourdthinker.models import load

    return load("qwen2.5-vl-tiny")


def test_interventions_change_latent_slots_only(qwen):
    """Under every intervention: tokens up to and including <|latent_start|> are identical to
    `normal`, the block still has exactly K slots, every non-latent input of the replayed sequence
    is its token's embedding, and the latent inputs are what the intervention says."""
    lid = latent_ids(qwen)
    rng = np.random.default_rng(0)
    vids = [[rng.integers(0, 255, (112, 112, 3), dtype=np.uint8) for _ in range(2)] for _ in range(2)]
    batch = qwen.encode_prompts(vids, ["What is the camera movement?", "Where does the ball go?"])
    L = batch["input_ids"].shape[1]
    eos = qwen.eos_ids
    force = ForceTokens(L, {2: lid.start})

    def hook(ids, scores):
        scores = scores.clone()
        scores[:, eos] = float("-inf")
        return force(ids, scores)

    kw = dict(max_new_tokens=9, logits_processor=hook)
    plain = latent_generate(qwen, batch, **kw)  # the default is the plain Eq. 10 decoder
    runs = {k: latent_generate(qwen, batch, latents=k, generator=torch.Generator().manual_seed(0), **kw) for k in INTERVENTIONS}
    for a, b in zip(plain, runs["normal"], strict=True):
        assert a.token_ids == b.token_ids and torch.equal(a.latent_inputs, b.latent_inputs)
    pad_embed = qwen.embed_tokens(torch.tensor([lid.pad]))[0]
    for kind, res in runs.items():
        for b, r in enumerate(res):
            if kind == "drop":
                assert r.n_latent_steps == 0 and lid.start not in r.token_ids
                assert r.token_ids[:2] == plain[b].token_ids[:2]
                continue
            assert r.token_ids[:3] == plain[b].token_ids[:3], kind  # identical up to the block
            assert r.token_ids[2:8] == [lid.start] + [lid.pad] * 4 + [lid.end], kind
            assert r.n_latent_steps == 4
        if kind == "zero":
            assert all(r.latent_inputs.abs().sum() == 0 for r in res)
        if kind == "pad":
            assert all(torch.allclose(r.latent_inputs, pad_embed.expand(4, -1)) for r in res)
        if kind == "noise":  # first slot: same norm as the normal run's first latent, other direction
            for r, p in zip(res, plain, strict=True):
                torch.testing.assert_close(r.latent_inputs[0].norm(), p.latent_inputs[0].norm())
                assert not torch.allclose(r.latent_inputs[0], p.latent_inputs[0])
        if kind == "shuffle":  # both samples open the block at the same step: b gets b+1's state
            torch.testing.assert_close(res[0].latent_inputs[0], plain[1].latent_inputs[0])
            torch.testing.assert_close(res[1].latent_inputs[0], plain[0].latent_inputs[0])
        # text-token inputs are the token embeddings: the replayed sequence differs from a pure
        # token-embedding sequence only at latent slots
        if kind != "drop":
            rep = replay_forward(qwen, batch, res)
            assert rep["latent_mask"].sum().item() == 8
            assert torch.equal(rep["latent_mask"][0, 3:7], torch.ones(4, dtype=torch.bool))

