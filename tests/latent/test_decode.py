"""Latent-recurrent decoder (Eq. 10, docs/method.md#eq-10) on tiny random models of all three families.

Random models never open an imagery block by themselves, so the tests force ``<|latent_start|>`` at
chosen response steps with ``ForceTokens`` (a logits hook) and then check what the decoder does
inside and after the block.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fourdthinker.latent.decode import (
    DecodeResult,
    ForceTokens,
    latent_generate,
    latent_ids,
    render_text,
    replay_forward,
    sample_next,
)

torch.set_num_threads(2)

FAMILIES = ["qwen2.5-vl-tiny", "qwen3-vl-tiny", "internvl3.5-tiny"]
TEXTS = [
    "What is the camera movement from 0s to 3s?",
    "How does the speed of the red ball change?\n\nA. Speeding Up",
    "Hi",
]


def _videos(n: int, frames: int = 2, seed: int = 0) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [[rng.integers(0, 255, (112, 112, 3), dtype=np.uint8) for _ in range(frames)] for _ in range(n)]


VIDEOS = _videos(3)


@pytest.fixture(scope="module", params=FAMILIES)
def adapter(request):
    from fourdthinker.models import load

    return load(request.param)


@pytest.fixture(scope="module")
def qwen():
    from fourdthinker.models import load

    return load("qwen2.5-vl-tiny")


def _no_eos(adapter):
    """Hook that keeps random models from ending at once (so every sample has tokens to compare)."""
    eos = adapter.eos_ids

    def hook(ids, scores):
        scores = scores.clone()
        scores[:, eos] = float("-inf")
        return scores

    return hook


def _force_blocks(adapter, batch, steps=(2, 9), extra=None):
    L = batch["input_ids"].shape[1]
    force = ForceTokens(L, {s: adapter.latent_start_id for s in steps})
    no_eos = _no_eos(adapter)

    def hook(ids, scores):
        return force(ids, no_eos(ids, scores))

    return hook


def _latent_positions(r: DecodeResult) -> list[int]:
    return [i for i, f in enumerate(r.is_latent) if f]


# ------------------------------------------------------------------------------------- pure pieces


def test_sample_next_greedy_and_top_p():
    logits = torch.tensor([[0.0, 2.0, 1.0], [5.0, 0.0, 0.0]])
    assert sample_next(logits).tolist() == [1, 0]
    # top_p tiny keeps only the most likely token: sampling == greedy
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        assert sample_next(logits, do_sample=True, top_p=1e-6, generator=g).tolist() == [1, 0]
    # softmax([0, ln 3]) = [0.25, 0.75]; top_p=0.5 keeps only token 1 (cum prob of the rest 0.25 <= 0.5)
    two = torch.tensor([[0.0, float(np.log(3.0))]])
    assert all(sample_next(two, do_sample=True, top_p=0.5, generator=g).item() == 1 for _ in range(20))
    # top_p=1: both tokens are drawn over many samples, and the frequency of token 1 is ~0.75
    draws = torch.stack([sample_next(two, do_sample=True, generator=g) for _ in range(2000)])
    assert 0.7 < draws.float().mean().item() < 0.8
    with pytest.raises(ValueError, match="temperature"):
        sample_next(logits, do_sample=True, temperature=0.0)


def test_sample_next_inverse_cdf_frequencies():
    """Hand computation: probs (0.1, 0.2, 0.7, 0); top_p 0.9 drops token 0 (its ascending cumulative
    mass 0.1 <= 1 - 0.9), so tokens 1 and 2 are drawn with 0.2/0.9 and 0.7/0.9; a -inf token never.
    Many rows in one call: each row draws its own uniform number."""
    logits = torch.log(torch.tensor([[0.1, 0.2, 0.7, 0.0]])).expand(20000, 4)
    g = torch.Generator().manual_seed(1)
    full = sample_next(logits, do_sample=True, generator=g)
    freq = torch.bincount(full, minlength=4).float() / len(full)
    assert torch.allclose(freq, torch.tensor([0.1, 0.2, 0.7, 0.0]), atol=0.015), freq
    nucleus = sample_next(logits, do_sample=True, top_p=0.9, generator=g)
    freq = torch.bincount(nucleus, minlength=4).float() / len(nucleus)
    assert torch.allclose(freq, torch.tensor([0.0, 0.2 / 0.9, 0.7 / 0.9, 0.0]), atol=0.015), freq
    # temperature 2 flattens: probs proportional to sqrt(0.1, 0.2, 0.7)
    hot = sample_next(logits, do_sample=True, temperature=2.0, generator=g)
    want = torch.tensor([0.1, 0.2, 0.7, 0.0]).sqrt()
    freq = torch.bincount(hot, minlength=4).float() / len(hot)
    assert torch.allclose(freq, want / want.sum(), atol=0.015), freq
    # the same generator state gives the same draws
    a = sample_next(logits[:8], do_sample=True, top_p=0.9, generator=torch.Generator().manual_seed(3))
    b = sample_next(logits[:8], do_sample=True, top_p=0.9, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_render_text_shows_imagery_blocks(qwen):
    lid = latent_ids(qwen)
    tok = qwen.tokenizer
    a = tok.encode("<think>look", add_special_tokens=False)
    b = tok.encode("then</think>", add_special_tokens=False)
    ids = a + [lid.start, lid.pad, lid.pad, lid.pad, lid.end] + b + qwen.eos_ids[:1]
    assert render_text(tok, ids, lid, drop_ids=qwen.eos_ids) == "<think>look<imagery:3>then</think>"
    # a block cut by the budget still shows how many steps it had
    assert render_text(tok, a + [lid.start, lid.pad], lid) == "<think>look<imagery:1>"


def test_force_tokens_hook():
    hook = ForceTokens(prompt_len=2, schedule={1: 3})
    s = torch.zeros(2, 5)
    assert torch.equal(hook(torch.zeros(2, 2, dtype=torch.long), s), s)  # step 0: untouched
    assert hook(torch.zeros(2, 3, dtype=torch.long), s).argmax(-1).tolist() == [3, 3]


# ------------------------------------------------------------------------------------- invariants, all families


def test_greedy_without_latents_equals_generate(adapter):
    """No latent block emitted: our decoder == model.generate token for token (batch 1 and 3)."""
    from fourdthinker.latent.bottleneck import placeholder_ids

    # what the decoder never emits: latent tokens (no block here), vision placeholders, padding rows
    sup = [adapter.latent_start_id, adapter.latent_end_id, adapter.latent_pad_id,
           *placeholder_ids(adapter.model), *adapter.padding_ids()]
    for vids, texts in ((VIDEOS[:1], TEXTS[:1]), (VIDEOS, TEXTS)):
        batch = adapter.encode_prompts(vids, texts)
        L = batch["input_ids"].shape[1]
        ours = latent_generate(adapter, batch, max_new_tokens=12, max_latent_blocks=0, stop_strings=())
        ref = adapter.model.generate(**batch, max_new_tokens=12, do_sample=False, suppress_tokens=sup)
        for b, r in enumerate(ours):
            assert r.n_latent_steps == 0
            assert r.token_ids == ref[b, L:].tolist()[: len(r.token_ids)], (b, r.token_ids, ref[b, L:].tolist())


def test_exactly_k_latent_steps_and_replay_matches_full_forward(adapter):
    """Each block is <|latent_start|> K x <|latent_pad|> <|latent_end|> (never an early close), and the
    vector fed at every latent slot equals the last hidden state a full non-cached forward computes
    at the previous position (Eq. 10), to 1e-4 in fp32."""
    lid = latent_ids(adapter)
    batch = adapter.encode_prompts(VIDEOS, TEXTS)
    for K in (1, 3):
        res = latent_generate(adapter, batch, latent_size=K, max_new_tokens=14 if K == 1 else 16, logits_processor=_force_blocks(adapter, batch))
        for r in res:
            assert r.n_latent_blocks == 2 and r.n_latent_steps == 2 * K, r.token_ids
            for s in (2, 9):
                assert r.token_ids[s : s + K + 2] == [lid.start] + [lid.pad] * K + [lid.end], r.token_ids
            assert r.is_latent == [t == lid.pad for t in r.token_ids]
            assert r.text.count(f"<imagery:{K}>") == 2
        rep = replay_forward(adapter, batch, res)
        L = int(rep["prompt_len"])
        for b, r in enumerate(res):
            pos = _latent_positions(r)
            fed = rep["hidden"][b, [L + p - 1 for p in pos]]
            torch.testing.assert_close(fed, r.latent_inputs, atol=1e-4, rtol=0)
            # and the text tokens chosen greedily are the argmax of the full forward's logits
            lg = rep["logits"][b, L - 1 : L - 1 + len(r.token_ids)].clone()
            lg[:, adapter.padding_ids()] = float("-inf")  # a padded vocabulary's unused rows are never sampled
            pred = lg.argmax(-1).tolist()
            forced = {2, 9} | {p for p in range(len(r.token_ids)) if r.token_ids[p] in (lid.pad, lid.end)}
            for p, (t, q) in enumerate(zip(r.token_ids, pred, strict=True)):
                if p not in forced:
                    assert t == q or q in adapter.eos_ids, (b, p, t, q)  # eos is masked by the hook


def test_never_emits_vision_placeholders_and_replay_still_lines_up(adapter):
    """Image/video placeholder tokens are input-only: even when a hook (or a random-init policy, as
    seen in GRPO from the base model) puts all its mass on one, the decoder must not emit it, or the
    replayed sequence would count one more visual token than it has features."""
    from fourdthinker.latent.bottleneck import placeholder_ids

    ph = placeholder_ids(adapter.model)
    assert ph, "the config names no image/video placeholder token"
    batch = adapter.encode_prompts(VIDEOS[:2], TEXTS[:2])
    no_eos = _no_eos(adapter)

    def favour_placeholders(ids, scores):
        scores = no_eos(ids, scores)
        scores[:, ph] = 1e4
        return scores

    res = latent_generate(adapter, batch, max_new_tokens=6, logits_processor=favour_placeholders)
    for r in res:
        assert not set(r.token_ids) & set(ph), r.token_ids
    rep = replay_forward(adapter, batch, res)  # raised "video features and tokens do not match" before
    assert torch.isfinite(rep["logits"]).all()


def test_never_samples_padding_rows(adapter):
    """A padded vocabulary's rows past len(tokenizer) have no token: even when a hook puts all the
    mass on them (a random or badly trained head), neither greedy nor sampled decoding picks one."""
    pad_rows = adapter.padding_ids()
    assert pad_rows, "the tiny presets have padded vocabularies like the real checkpoints"
    batch = adapter.encode_prompts(VIDEOS[:2], TEXTS[:2])
    no_eos = _no_eos(adapter)

    def favour_padding(ids, scores):
        scores = no_eos(ids, scores)
        scores[:, pad_rows] = 1e4
        return scores

    for sample in (False, True):
        res = latent_generate(adapter, batch, max_new_tokens=4, logits_processor=favour_padding, do_sample=sample,
                              generator=torch.Generator().manual_seed(0))
        for r in res:
            assert r.token_ids and max(r.token_ids) < len(adapter.tokenizer), r.token_ids


def test_batched_equals_one_by_one(adapter):
    batch = adapter.encode_prompts(VIDEOS, TEXTS)
    res = latent_generate(adapter, batch, max_new_tokens=14, logits_processor=_force_blocks(adapter, batch, steps=(1, 8)))
    for b in range(len(TEXTS)):
        one = adapter.encode_prompts(VIDEOS[b : b + 1], TEXTS[b : b + 1])
        (r,) = latent_generate(adapter, one, max_new_tokens=14, logits_processor=_force_blocks(adapter, one, steps=(1, 8)))
        assert r.token_ids == res[b].token_ids, b
        torch.testing.assert_close(r.latent_inputs, res[b].latent_inputs, atol=1e-4, rtol=0)


# ------------------------------------------------------------------------------------- behaviour (one family)


def test_samples_enter_latent_blocks_at_different_steps(qwen):
    """Per-sample state: sample 0 opens a block at step 1, sample 1 at step 5; each gets its own
    hidden state (the reference fed the pad embedding to mid-block rows, docs/reference.md#decoding)."""
    lid = latent_ids(qwen)
    batch = qwen.encode_prompts(VIDEOS[:2], TEXTS[:2])
    L = batch["input_ids"].shape[1]
    no_eos = _no_eos(qwen)

    def hook(ids, scores):
        scores = no_eos(ids, scores)
        t = ids.shape[1] - L
        if t == 1:
            scores[0, lid.start] = 1e4
        if t == 3:
            scores[1, lid.start] = 1e4
        return scores

    res = latent_generate(qwen, batch, max_new_tokens=12, logits_processor=hook)
    assert res[0].token_ids.index(lid.start) == 1 and res[1].token_ids.index(lid.start) == 3
    rep = replay_forward(qwen, batch, res)
    for b, r in enumerate(res):
        fed = rep["hidden"][b, [L + p - 1 for p in _latent_positions(r)]]
        torch.testing.assert_close(fed, r.latent_inputs, atol=1e-4, rtol=0)


def test_feedback_is_live_pad_embedding_changes_output(qwen):
    """Feeding the <|latent_pad|> embedding instead of the hidden state changes what follows
    (an ancestor implementation silently skipped the feedback, docs/reference.md#known-issues)."""
    batch = qwen.encode_prompts(VIDEOS, TEXTS)
    hook = _force_blocks(qwen, batch, steps=(1,))
    normal = latent_generate(qwen, batch, max_new_tokens=8, logits_processor=hook)
    pad = latent_generate(qwen, batch, max_new_tokens=8, logits_processor=hook, latents="pad")
    for a, b in zip(normal, pad, strict=True):
        assert a.token_ids[:2] == b.token_ids[:2]  # identical up to the block
        assert not torch.allclose(a.latent_inputs, b.latent_inputs)
    assert any(a.token_ids != b.token_ids for a, b in zip(normal, pad, strict=True)), "pad feeding did not change any output"


def test_stops_at_answer_and_parses_it(qwen):
    tok = qwen.tokenizer
    batch = qwen.encode_prompts(VIDEOS[:1], TEXTS[:1])
    L = batch["input_ids"].shape[1]
    target = tok.encode("<think>the box moves</think><answer>B</answer>", add_special_tokens=False)
    hook = ForceTokens(L, dict(enumerate(target)))
    (r,) = latent_generate(qwen, batch, max_new_tokens=len(target) + 20, logits_processor=hook)
    assert r.stop_reason == "answer" and r.finished
    assert r.token_ids == target
    assert r.answer == "B"
    assert r.text == "<think>the box moves</think><answer>B</answer>"


def test_stops_at_eos_and_budget(qwen):
    batch = qwen.encode_prompts(VIDEOS[:2], TEXTS[:2])
    L = batch["input_ids"].shape[1]
    eos = qwen.eos_ids[0]
    res = latent_generate(qwen, batch, max_new_tokens=9, logits_processor=ForceTokens(L, {3: eos}))
    for r in res:
        assert r.stop_reason == "eos" and r.finished and len(r.token_ids) == 4 and r.token_ids[-1] == eos
        assert "<|im_end|>" not in r.text
    res = latent_generate(qwen, batch, max_new_tokens=7, logits_processor=_no_eos(qwen))
    for r in res:
        assert r.stop_reason == "budget" and not r.finished and len(r.token_ids) == 7


def test_latent_block_cap(qwen):
    lid = latent_ids(qwen)
    batch = qwen.encode_prompts(VIDEOS[:1], TEXTS[:1])
    always = _force_blocks(qwen, batch, steps=range(40))
    (r,) = latent_generate(qwen, batch, latent_size=2, max_new_tokens=20, max_latent_blocks=1, logits_processor=always)
    assert r.n_latent_blocks == 1 and r.token_ids[:4] == [lid.start, lid.pad, lid.pad, lid.end]
    (r,) = latent_generate(qwen, batch, latent_size=2, max_new_tokens=20, max_latent_blocks=3, logits_processor=always)
    assert r.n_latent_blocks == 3 and r.n_latent_steps == 6


def test_sampling_is_seeded(qwen):
    batch = qwen.encode_prompts(VIDEOS[:2], TEXTS[:2])
    kw = dict(max_new_tokens=10, do_sample=True, temperature=1.5, top_p=0.95, logits_processor=_no_eos(qwen))
    a = latent_generate(qwen, batch, generator=torch.Generator().manual_seed(1), **kw)
    b = latent_generate(qwen, batch, generator=torch.Generator().manual_seed(1), **kw)
    c = latent_generate(qwen, batch, generator=torch.Generator().manual_seed(2), **kw)
    assert [r.token_ids for r in a] == [r.token_ids for r in b]
    assert [r.token_ids for r in a] != [r.token_ids for r in c]


def test_latent_norm_match_rescales_fed_states(qwen):
    batch = qwen.encode_prompts(VIDEOS[:2], TEXTS[:2])
    res = latent_generate(qwen, batch, max_new_tokens=10, latent_norm=7.5, logits_processor=_force_blocks(qwen, batch, steps=(1,)))
    for r in res:
        assert r.n_latent_steps == 4
        torch.testing.assert_close(r.latent_inputs.norm(dim=-1), torch.full((4,), 7.5), atol=1e-4, rtol=0)


def test_bad_inputs(qwen):
    from types import SimpleNamespace

    batch = qwen.encode_prompts(VIDEOS[:1], TEXTS[:1])
    with pytest.raises(ValueError, match="unknown latent intervention"):
        latent_generate(qwen, batch, latents="bogus")
    with pytest.raises(ValueError, match="latent_size"):
        latent_generate(qwen, batch, latent_size=0)
    with pytest.raises(ValueError, match="shuffle"):
        latent_generate(qwen, batch, latents="shuffle", max_new_tokens=6, logits_processor=_force_blocks(qwen, batch, steps=(0,)))
    # a model whose tokenizer lacks the latent tokens
    from fourdthinker.models import load

    plain = load("qwen2.5-vl-tiny", add_latent_tokens=False)
    with pytest.raises(ValueError, match="no latent tokens"):
        latent_ids(plain)
    with pytest.raises(ValueError, match="no latent tokens"):
        latent_generate(SimpleNamespace(model=plain.model, tokenizer=plain.tokenizer), batch)
