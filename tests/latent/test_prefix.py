"""Prefix sharing (docs/rl_speed.md): one prefill per prompt in the rollout, one prompt pass per
question in the replay, on tiny random models of all three families (fp32).

References are today's unshared paths: ``latent_generate`` / ``replay_forward`` on a batch that
repeats each prompt G times. Prompts of different lengths (left padding) share every batch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fourdthinker.latent.decode import ForceTokens, latent_generate, replay_forward
from fourdthinker.latent.prefix import encode_vision, select_prompts, shared_prompt_replay

torch.set_num_threads(2)

FAMILIES = ["qwen2.5-vl-tiny", "qwen3-vl-tiny", "internvl3.5-tiny"]
TEXTS = ["What is the camera movement from 0s to 3s?\n\nA. Pan Left\nB. Pan Right", "Hi"]  # different lengths
G = 3


def _videos(n: int, seed: int = 0) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [[rng.integers(0, 255, (112, 112, 3), dtype=np.uint8) for _ in range(2)] for _ in range(n)]


VIDEOS = _videos(len(TEXTS))


@pytest.fixture(scope="module", params=FAMILIES)
def adapter(request):
    from fourdthinker.models import load

    ad = load(request.param)
    ad.freeze_visual()
    return ad


def _batches(ad):
    shared = ad.encode_prompts(VIDEOS, TEXTS)
    rep = ad.encode_prompts([v for v in VIDEOS for _ in range(G)], [t for t in TEXTS for _ in range(G)])
    assert shared["attention_mask"].sum(-1).unique().numel() == len(TEXTS)  # really left-padded
    return shared, rep


def _hook(ad, L, blocks: bool):
    force = ForceTokens(L, {1: ad.latent_start_id} if blocks else {})
    eos = ad.eos_ids

    def hook(ids, scores):
        scores = scores.clone()
        scores[:, eos] = float("-inf")  # random models would stop at once
        return force(ids, scores)

    return hook


def _decode(ad, batch, n, *, sample: bool, blocks: bool = True, seed: int = 5, tokens: int = 12, vision=None):
    L = batch["input_ids"].shape[1]
    return latent_generate(ad, batch, latent_size=3, max_new_tokens=tokens, do_sample=sample, temperature=1.0,
                           top_p=0.9, generator=torch.Generator().manual_seed(seed), stop_strings=(),
                           logits_processor=_hook(ad, L, blocks), num_return_sequences=n, vision=vision)


@pytest.mark.parametrize("sample", [False, True], ids=["greedy", "sampled"])
def test_rollout_shared_prefill_same_samples(adapter, sample):
    shared, rep = _batches(adapter)
    with torch.no_grad():
        a = _decode(adapter, shared, G, sample=sample)
        b = _decode(adapter, rep, 1, sample=sample)
        c = _decode(adapter, shared, G, sample=sample, vision=encode_vision(adapter.model, shared))  # encoder run before
    assert len(a) == len(b) == len(c) == len(TEXTS) * G
    for x, y, z in zip(a, b, c, strict=True):
        assert z.token_ids == x.token_ids
        torch.testing.assert_close(z.latent_inputs, x.latent_inputs, atol=1e-5, rtol=1e-5)
        assert x.token_ids == y.token_ids
        assert x.is_latent == y.is_latent
        assert x.n_latent_steps == 3  # the forced block ran, so latent vectors were compared too
        torch.testing.assert_close(x.latent_inputs, y.latent_inputs, atol=1e-5, rtol=1e-5)
    if sample:  # sampling really differs across the G rows of one prompt
        assert len({tuple(r.token_ids) for r in a[:G]}) > 1


def _loss(ad, logits, rep_out, weights):
    """A GRPO-like loss: weighted mean log-prob of each response's text tokens."""
    lp = torch.log_softmax(logits.float(), -1).gather(-1, rep_out["response_ids"][..., None])[..., 0]
    m = (rep_out["response_mask"].bool() & ~rep_out["latent_mask"]).float()
    return ((lp * m).sum(-1) / m.sum(-1).clamp_min(1) * weights).mean()


def _grads(model) -> dict[str, torch.Tensor]:
    out = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return out


def _unshared(ad, rep, results, weights):
    out = replay_forward(ad, rep, results, grad=True)
    L, R = int(out["prompt_len"]), out["response_ids"].shape[1]
    loss = _loss(ad, out["logits"][:, L - 1 : L + R - 1], out, weights)
    loss.backward()
    return loss.detach(), _grads(ad.model)


def _shared(ad, shared, results, weights, chunks=None, vision=False):
    """Loss and gradients of the shared replay; ``chunks``: micro-batches as (prompt rows, result rows);
    ``vision``: the frozen encoder's features computed once per micro-batch beforehand and reused."""
    chunks = chunks or [(list(range(shared["input_ids"].shape[0])), list(range(len(results))))]
    total = torch.zeros(())
    feats_all = encode_vision(ad.model, shared) if vision else None  # once for the whole step
    for prompts, rows in chunks:
        sub, feats = select_prompts(ad.model, shared, feats_all, prompts)
        out = shared_prompt_replay(ad, sub, [results[i] for i in rows], grad=True, vision=feats)
        loss = _loss(ad, out["logits"], out, weights[rows]) * len(rows) / len(results)
        loss.backward()
        total += loss.detach()
    return total, _grads(ad.model)


def _assert_same(loss_a, grads_a, loss_b, grads_b, tol=1e-5):
    assert abs(float(loss_a) - float(loss_b)) <= tol
    assert set(grads_a) == set(grads_b) and grads_a
    worst = max((grads_a[n] - grads_b[n]).abs().max().item() for n in grads_a)
    assert worst <= tol, worst


@pytest.mark.parametrize("blocks", [True, False], ids=["latent-blocks", "text-only"])
def test_replay_shared_prompt_equals_unshared(adapter, blocks):
    shared, rep = _batches(adapter)
    with torch.no_grad():
        results = _decode(adapter, shared, G, sample=True, blocks=blocks)
    results[1].token_ids, results[1].is_latent = results[1].token_ids[:7], results[1].is_latent[:7]  # ragged
    results[1].latent_inputs = results[1].latent_inputs[: sum(results[1].is_latent)]
    assert any(r.n_latent_steps for r in results) == blocks
    w = torch.linspace(-1.0, 1.0, len(results))
    adapter.model.train()
    try:
        ref = _unshared(adapter, rep, results, w)
        got = _shared(adapter, shared, results, w)
    finally:
        adapter.model.eval()
    _assert_same(*got, *ref)
    adapter.model.train()
    try:
        _assert_same(*_shared(adapter, shared, results, w, vision=True), *ref)
    finally:
        adapter.model.eval()
    # micro-batches along questions, and along the responses of one question
    by_question = [([q], list(range(q * G, (q + 1) * G))) for q in range(len(TEXTS))]
    by_response = [([0], [0]), ([0], [1, 2]), ([1], [3, 4, 5])]
    adapter.model.train()
    try:
        for chunks in (by_question, by_response):
            _assert_same(*_shared(adapter, shared, results, w, chunks), *ref)
            _assert_same(*_shared(adapter, shared, results, w, chunks, vision=True), *ref)
    finally:
        adapter.model.eval()


def test_replay_shared_under_checkpointing_and_lora():
    """Gradient checkpointing (non-reentrant) and LoRA adapters: the same loss and gradients."""
    from fourdthinker.models import load
    from fourdthinker.train.trainer import apply_lora

    ad = load("qwen2.5-vl-tiny")
    ad.freeze_visual()
    shared, rep = _batches(ad)
    with torch.no_grad():
        results = _decode(ad, shared, G, sample=True)
    w = torch.linspace(-1.0, 1.0, len(results))
    ad.model.train()
    ref = _unshared(ad, rep, results, w)
    ad.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    _assert_same(*_shared(ad, shared, results, w), *ref)
    ad.model.gradient_checkpointing_disable()

    torch.manual_seed(0)
    peft = apply_lora(ad.model, r=4, alpha=8)
    ad.model = peft.get_base_model()
    ad.model.train()
    ref = _unshared(ad, rep, results, w)
    assert any("lora_" in n for n in ref[1])
    _assert_same(*_shared(ad, shared, results, w), *ref)


def test_replay_shared_refuses_bad_grouping():
    from fourdthinker.models.testing import tiny

    ad = tiny("qwen2.5-vl-tiny")
    shared, _ = _batches(ad)
    with torch.no_grad():
        results = _decode(ad, shared, G, sample=False, tokens=4)
    with pytest.raises(ValueError, match="5 results for 2 prompts"):
        shared_prompt_replay(ad, shared, results[:5])


def test_encode_vision_refuses_a_trainable_encoder():
    from fourdthinker.models import load

    ad = load("qwen2.5-vl-tiny")  # not frozen
    shared, _ = _batches(ad)
    with pytest.raises(ValueError, match="trainable parameters"):
        encode_vision(ad.model, shared)
