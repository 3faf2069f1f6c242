"""Imagery bottleneck (latent/bottleneck.py, ``train dift --imagery-bottleneck``).

The mask rule against a hand-written matrix; the 4-D mask path equal to the plain path when the
rule allows everything (every tiny family, left padding); under the bottleneck, every text
position is blind to the frames once the latent slots are fixed (so the video can reach the answer
only through the fed vectors); self-feed training under the mask feeds exactly what the decoder
feeds; the trained model stores the setting and the decoder applies it by default."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fourdthinker.latent.bottleneck import (
    additive_mask,
    bottleneck_allowed,
    bottleneck_mask,
    model_bottleneck,
    visual_marker_ids,
    visual_span,
)
from fourdthinker.latent.decode import ForceTokens, latent_generate
from fourdthinker.models import load
from fourdthinker.models.testing import TINY_PRESETS, dift_batch
from fourdthinker.train.dift import DiftConfig, dift_forward

torch.set_num_threads(2)
K = 2


def test_rule_by_hand():
    # positions: 0 pad | 1-2 visual | 3 question | 4 <latent_start> | 5 slot | 6 slot | 7 answer
    visual = torch.tensor([[0, 1, 1, 0, 0, 0, 0, 0]]).bool()
    starts = torch.tensor([[0, 0, 0, 0, 1, 0, 0, 0]]).bool()
    valid = torch.tensor([[0, 1, 1, 1, 1, 1, 1, 1]]).bool()
    want = torch.tensor([
        [1, 0, 0, 0, 0, 0, 0, 0],  # padding: itself only
        [0, 1, 0, 0, 0, 0, 0, 0],  # visual rows read the visual span (causally)
        [0, 1, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, 1, 0, 0, 0, 0],  # the question is blind to the frames
        [0, 1, 1, 1, 1, 0, 0, 0],  # <latent_start> reads the frames
        [0, 0, 0, 1, 0, 1, 0, 0],  # a slot: blind, and the start row is hidden
        [0, 0, 0, 1, 0, 1, 1, 0],
        [0, 0, 0, 1, 0, 1, 1, 1],  # the answer sees the question and the slots only
    ]).bool()
    got = bottleneck_allowed(visual, starts, valid)
    assert torch.equal(got[0], want)
    assert torch.equal(bottleneck_allowed(visual, starts, valid, slice(3, 6)), want[None, 3:6, :6])  # cached rows
    assert torch.equal(bottleneck_allowed(visual, starts, valid, slice(7, 8)), want[None, 7:8])  # one decode step
    add = additive_mask(got, torch.float32)
    assert add.shape == (1, 1, 8, 8)
    assert add[0, 0, 7, 3] == 0 and add[0, 0, 7, 1] == torch.finfo(torch.float32).min


def test_visual_span_covers_text_between_frames():
    ids = torch.tensor([[9, 1, 5, 5, 2, 7, 1, 5, 2, 8], [9, 9, 9, 9, 9, 9, 9, 9, 9, 9]])
    assert visual_span(ids, [1, 2, 5]).int().tolist() == [[0, 1, 1, 1, 1, 1, 1, 1, 1, 0], [0] * 10]


def _videos(n, seed=0, frames=2):
    rng = np.random.default_rng(seed)
    return [[rng.integers(0, 255, (56, 56, 3), dtype=np.uint8) for _ in range(frames)] for _ in range(n)]


@pytest.fixture(scope="module", params=TINY_PRESETS)
def adapter(request):
    ad = load(request.param)
    ad.model.eval()
    return ad


def _response(ad):
    t = ad.tokenizer.encode("the box moves left", add_special_tokens=False)[:3]
    s, p, e = ad.latent_start_id, ad.latent_pad_id, ad.latent_end_id
    return [t[0], s, *[p] * K, e, t[1], s, *[p] * K, e, t[2]]


def test_4d_path_equals_the_plain_path(adapter):
    """The 4-D mask machinery is exact: a rule that allows everything causal (every token visual)
    gives the same logits as the model's own padding mask."""
    ad = adapter
    batch = ad.encode_prompts(_videos(2), ["What is the camera movement?", "Hi"])  # left padding
    ids, att = batch["input_ids"], batch["attention_mask"]
    emb = ad.embed_tokens(ids)
    pos = ad.position_ids(batch)
    everything = bottleneck_mask(torch.ones_like(ids, dtype=torch.bool), torch.zeros_like(ids, dtype=torch.bool),
                                 att.bool(), emb.dtype)
    with torch.no_grad():
        plain = ad.forward(batch, inputs_embeds=emb, position_ids=pos, attention_mask=att).logits
        four = ad.forward(batch, inputs_embeds=emb, position_ids=pos, attention_mask=everything).logits
    assert torch.equal(plain[att.bool()], four[att.bool()])


def test_text_is_blind_to_the_frames_given_the_slots(adapter):
    """Teacher-forced under the bottleneck: two different videos (same shapes) give identical logits
    at every text position (question, reasoning, slots, answer), and different ones at the
    <|latent_start|> rows, which alone read the frames. Without the mask the answer changes."""
    ad = adapter
    resp = _response(ad)
    outs = {}
    for seed in (0, 1):
        prompt = ad.encode_prompts(_videos(1, seed=seed), ["What is the camera movement?"])
        batch = dift_batch(ad, prompt, resp)
        for bn in (True, False):
            with torch.no_grad():
                _, _, out = dift_forward(ad, batch, DiftConfig(latent_size=K, imagery_bottleneck=bn))
            outs[seed, bn] = out.logits[0]
    ids = batch["input_ids"][0]
    vis = visual_span(ids[None], visual_marker_ids(ad.model, ad.tokenizer))[0]
    start = ids == ad.latent_start_id
    text = ~vis & ~start
    assert vis.any() and int(start.sum()) == 2
    torch.testing.assert_close(outs[0, True][text], outs[1, True][text], atol=1e-5, rtol=0)
    assert not torch.allclose(outs[0, True][start], outs[1, True][start], atol=1e-4)
    assert not torch.allclose(outs[0, False][-1], outs[1, False][-1], atol=1e-4)


def test_self_feed_under_the_bottleneck_reproduces_inference(adapter):
    ad = adapter
    prompt = ad.encode_prompts(_videos(2), ["What is the camera movement?", "Hi"])  # left padding
    resp = _response(ad)
    L = prompt["input_ids"].shape[1]
    force = ForceTokens(L, {i: t for i, t in enumerate(resp) if t not in (ad.latent_pad_id, ad.latent_end_id)})
    gen = dict(latent_size=K, max_new_tokens=len(resp), logits_processor=force, latent_norm=0, stop_strings=())
    res = latent_generate(ad, prompt, bottleneck=True, **gen)
    plain = latent_generate(ad, prompt, bottleneck=False, **gen)
    rec: list = []
    with torch.no_grad():
        dift_forward(ad, dift_batch(ad, prompt, resp),
                     DiftConfig(latent_feed="self", latent_size=K, imagery_bottleneck=True), record=rec)
    for b, r in enumerate(res):
        assert r.token_ids == resp
        fed = torch.stack(rec[b])
        assert fed.shape == (2 * K, ad.hidden_size)
        torch.testing.assert_close(fed, r.latent_inputs, atol=1e-4, rtol=1e-4)
        assert not torch.allclose(r.latent_inputs, plain[b].latent_inputs, atol=1e-3)  # the mask is in force


def _no_eos_block_at(ad, L, step=1):
    force = ForceTokens(L, {step: ad.latent_start_id})

    def hook(ids, scores):
        scores = scores.clone()
        scores[:, ad.eos_ids] = float("-inf")  # a random model would stop at once
        return force(ids, scores)

    return hook


def test_rl_replay_under_the_bottleneck_reproduces_the_rollout(adapter):
    """4DRL's policy forward (the replay of a rollout) sees what the decoder saw under the bottleneck:
    the state before every latent slot equals the vector the decoder fed there (1e-4, fp32) and each
    greedy text token is the replay's argmax; one prompt pass shared by a question's responses equals
    the unshared replay; without the mask the replay differs."""
    from fourdthinker.latent.decode import replay_forward
    from fourdthinker.latent.prefix import shared_prompt_replay

    ad = adapter
    videos, texts, n = _videos(2), ["What is the camera movement?", "Hi"], 2
    prompt = ad.encode_prompts(videos, texts)  # left padding
    L = prompt["input_ids"].shape[1]
    gen = dict(latent_size=K, max_new_tokens=9, latent_norm=0, stop_strings=(), bottleneck=True)
    with torch.no_grad():
        res = latent_generate(ad, prompt, logits_processor=_no_eos_block_at(ad, L), **gen)
        rep = replay_forward(ad, prompt, res, bottleneck=True)
        plain = replay_forward(ad, prompt, res, bottleneck=False)
    for b, r in enumerate(res):
        assert r.n_latent_steps == K
        slots = [i for i, x in enumerate(r.is_latent) if x]
        torch.testing.assert_close(rep["hidden"][b, [L + i - 1 for i in slots]], r.latent_inputs, atol=1e-4, rtol=0)
        assert not torch.allclose(plain["hidden"][b, [L + i - 1 for i in slots]], r.latent_inputs, atol=1e-3)
        lg = rep["logits"][b, L - 1 : L - 1 + len(r.token_ids)].clone()
        lg[:, ad.padding_ids()] = float("-inf")
        lg[:, ad.eos_ids] = float("-inf")
        blocks = {i for i, t in enumerate(r.token_ids) if t in (ad.latent_start_id, ad.latent_end_id, ad.latent_pad_id)}
        text = [i for i in range(len(r.token_ids)) if i not in blocks]
        assert text and [r.token_ids[i] for i in text] == lg[text].argmax(-1).tolist()
    # n sampled responses per prompt: the shared replay (each prompt once) equals the unshared one
    with torch.no_grad():
        res = latent_generate(ad, prompt, logits_processor=_no_eos_block_at(ad, L), num_return_sequences=n,
                              do_sample=True, generator=torch.Generator().manual_seed(3), **gen)
        rep_batch = ad.encode_prompts([v for v in videos for _ in range(n)], [t for t in texts for _ in range(n)])
        full = replay_forward(ad, rep_batch, res, bottleneck=True)
        shared = shared_prompt_replay(ad, prompt, res, bottleneck=True)
    R = shared["response_ids"].shape[1]
    m = shared["response_mask"].bool()
    torch.testing.assert_close(shared["hidden"][m], full["hidden"][:, L - 1 : L - 1 + R][m], atol=1e-4, rtol=0)
    for b, r in enumerate(res):
        slots = [i for i, x in enumerate(r.is_latent) if x]
        torch.testing.assert_close(shared["hidden"][b, slots], r.latent_inputs, atol=1e-4, rtol=0)


def test_train_saves_the_bottleneck_and_decoding_applies_it(tmp_path):
    from fourdthinker.latent.toy import make_toy_dift
    from fourdthinker.train.dift import train_dift

    make_toy_dift(tmp_path / "toy", 4, size=56)
    cfg = DiftConfig(data=str(tmp_path / "toy"), out=str(tmp_path / "run"), lr=2e-3, warmup_steps=1, batch_size=2,
                     max_steps=2, save_steps=1, target_cache=str(tmp_path / "lt"), progress=False, max_frames=2,
                     latent_feed="self", imagery_bottleneck=True, health_heldout=0, latent_size=K)
    res = train_dift(cfg)
    assert len(res.losses) == 2 and all(np.isfinite(r["loss"]) for r in res.losses)
    assert model_bottleneck(load(str(tmp_path / "run" / "checkpoint-1")))  # a checkpoint decodes as the final model
    ad = load(str(tmp_path / "run"))
    assert ad.model.config.imagery_bottleneck is True and model_bottleneck(ad)
    assert not model_bottleneck(load("qwen2.5-vl-tiny"))
    ad.model.eval()
    prompt = ad.encode_prompts(_videos(1), ["What is the camera movement?"])
    resp = _response(ad)
    L = prompt["input_ids"].shape[1]
    force = ForceTokens(L, {i: t for i, t in enumerate(resp) if t not in (ad.latent_pad_id, ad.latent_end_id)})
    gen = dict(latent_size=K, max_new_tokens=len(resp), logits_processor=force, stop_strings=())
    default, on, off = (latent_generate(ad, prompt, bottleneck=b, **gen)[0].latent_inputs for b in (None, True, False))
    assert torch.equal(default, on) and not torch.allclose(default, off, atol=1e-3)
    from fourdthinker.train.rl import RLConfig, train_rl
    from fourdthinker.train.rl_data import synthetic_rl_records

    rl = synthetic_rl_records(tmp_path / "rl_data", n=2, frames=2, size=56)
    # 4DRL from it: rollouts and the replay under the mask; the policy keeps the setting
    r = train_rl(RLConfig(data=str(rl), init=str(tmp_path / "run"), out=str(tmp_path / "rl"), steps=1,
                          questions_per_step=2, num_generations=2, max_new_tokens=12, save_every=0), progress=False)
    assert r.steps_done == 1 and np.isfinite(r.metrics[-1]["loss"])
    assert model_bottleneck(load(str(r.final_dir)))


def test_refusals():
    with pytest.raises(ValueError, match="4-D attention mask"):
        DiftConfig(data="x", imagery_bottleneck=True, attn_implementation="flash_attention_2").validate()
