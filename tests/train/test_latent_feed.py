"""``train dift --latent-feed target|self|mixed`` and ``--feed-norm`` (train/latent_feed.py).

The self feed must be the inference recurrence: the vectors fed at each slot during self-feed
training equal what ``latent_generate`` feeds for the same model, prompt and tokens (fp32, 1e-4),
for every tiny family, with left padding and with norm-consistent feeding. The chain carries
gradients; mixed at ratio 0 / 1 is target / self."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fourdthinker.latent.decode import ForceTokens, latent_generate
from fourdthinker.models import load
from fourdthinker.models.testing import TINY_PRESETS, dift_batch
from fourdthinker.train.dift import DiftConfig, dift_forward
from fourdthinker.train.latent_feed import draw_self_slots, mix_ratio, slot_seed

torch.set_num_threads(2)
K = 3


def _videos(n, frames=2, seed=0):
    rng = np.random.default_rng(seed)
    return [[rng.integers(0, 255, (56, 56, 3), dtype=np.uint8) for _ in range(frames)] for _ in range(n)]


def _response(ad):
    """text text <start> pad*K <end> text <start> pad*K <end> text (two blocks)."""
    t = ad.tokenizer.encode("the box moves left", add_special_tokens=False)[:3]
    s, p, e = ad.latent_start_id, ad.latent_pad_id, ad.latent_end_id
    return [t[0], t[1], s, *[p] * K, e, t[2], s, *[p] * K, e, t[0]]


@pytest.fixture(scope="module", params=TINY_PRESETS)
def adapter(request):
    ad = load(request.param)
    ad.model.eval()
    return ad


@pytest.mark.parametrize("norm", [None, 3.0])
def test_self_feed_reproduces_inference(adapter, norm):
    ad = adapter
    prompt = ad.encode_prompts(_videos(2), ["What is the camera movement?", "Hi"])  # different lengths: left padding
    resp = _response(ad)
    L = prompt["input_ids"].shape[1]
    force = ForceTokens(L, {i: t for i, t in enumerate(resp) if t not in (ad.latent_pad_id, ad.latent_end_id)})
    res = latent_generate(ad, prompt, latent_size=K, max_new_tokens=len(resp), logits_processor=force,
                          latent_norm=norm if norm else 0, stop_strings=())
    for r in res:
        assert r.token_ids == resp, "the forced response differs from the training sequence"
    cfg = DiftConfig(latent_feed="self", latent_size=K, feed_norm=norm is not None, latent_feed_norm=norm)
    rec: list = []
    with torch.no_grad():
        dift_forward(ad, dift_batch(ad, prompt, resp), cfg, record=rec)
    for b, r in enumerate(res):
        fed = torch.stack(rec[b])
        assert fed.shape == r.latent_inputs.shape == (2 * K, ad.hidden_size)
        torch.testing.assert_close(fed, r.latent_inputs, atol=1e-4, rtol=1e-4)
        if norm:
            torch.testing.assert_close(fed.norm(dim=-1), torch.full((2 * K,), norm), atol=1e-4, rtol=0)


def test_gradient_flows_through_the_chain():
    ad = load("qwen2.5-vl-tiny")
    ad.model.train()
    prompt = ad.encode_prompts(_videos(1), ["Hi"])
    batch = dift_batch(ad, prompt, _response(ad))
    rec: list = []
    loss, stats, _ = dift_forward(ad, batch, DiftConfig(latent_feed="self", latent_size=K, use_ce=False), record=rec)
    first = rec[0][0]  # h fed at the first slot: a function of the weights
    assert first.requires_grad
    (g,) = torch.autograd.grad(loss, first, retain_graph=True)
    assert g.abs().sum() > 0, "the loss does not depend on the first self-fed vector"
    loss.backward()
    w = ad.model.model.language_model.layers[0].self_attn.q_proj.weight
    assert w.grad is not None and w.grad.abs().sum() > 0
    assert stats["self_fed"] == 1.0


def _run(ad, batch, cfg):
    ad.model.zero_grad(set_to_none=True)
    loss, _, _ = dift_forward(ad, batch, cfg, step=0, total=10)
    loss.backward()
    g = ad.model.get_input_embeddings().weight.grad.clone()
    return loss.detach(), g


def test_mixed_endpoints_equal_target_and_self():
    ad = load("qwen2.5-vl-tiny")
    ad.model.eval()
    batch = dift_batch(ad, ad.encode_prompts(_videos(2), ["What is the camera movement?", "Hi"]), _response(ad))
    target = _run(ad, batch, DiftConfig(latent_feed="target", latent_size=K))
    self_ = _run(ad, batch, DiftConfig(latent_feed="self", latent_size=K))
    mixed0 = _run(ad, batch, DiftConfig(latent_feed="mixed", mix_start=0.0, mix_end=0.0, latent_size=K))
    mixed1 = _run(ad, batch, DiftConfig(latent_feed="mixed", mix_start=1.0, mix_end=1.0, latent_size=K))
    half = _run(ad, batch, DiftConfig(latent_feed="mixed", mix_start=0.5, mix_end=0.5, latent_size=K))
    assert not torch.allclose(target[0], self_[0]), "self feed changed nothing"
    for a, b in ((mixed0, target), (mixed1, self_)):
        torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a[1], b[1], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(half[0], target[0]) and not torch.allclose(half[0], self_[0])


def test_chain_without_self_slots_equals_teacher_forcing():
    """The chain machinery (pieces, cache, sliced positions) with every slot teacher-forced but the
    sequence still cut at every slot gives the one-forward logits (M-RoPE, left padding)."""
    from fourdthinker.latent.blocks import latent_mask, scatter_latents
    from fourdthinker.train.latent_feed import chain_forward

    ad = load("qwen2.5-vl-tiny")
    ad.model.eval()
    batch = dift_batch(ad, ad.encode_prompts(_videos(2), ["What is the camera movement?", "Hi"]), _response(ad))
    ids = batch["input_ids"]
    mask = latent_mask(ids, ad.latent_pad_id)
    emb = scatter_latents(ad.embed_tokens(ids), mask, batch["latents"])
    pos = ad.position_ids(batch, input_ids=ids, attention_mask=batch["attention_mask"])
    with torch.no_grad():
        full = ad.forward(batch, inputs_embeds=emb, position_ids=pos, attention_mask=batch["attention_mask"])
        # rows self-fed at a column get h; here row 1 is self-fed nowhere, so it must equal the full forward
        sel = mask.clone()
        sel[1] = False
        logits, hidden = chain_forward(ad, batch, emb, pos, sel)
    torch.testing.assert_close(logits[1], full.logits[1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(hidden[1], full.hidden_states[-1][1], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(hidden[0], full.hidden_states[-1][0], atol=1e-3)


def test_mix_schedule_and_draw():
    assert mix_ratio(0, 11) == 0.0 and mix_ratio(10, 11) == 1.0 and mix_ratio(5, 11) == pytest.approx(0.5)
    assert mix_ratio(3, 5, 0.2, 0.2) == pytest.approx(0.2)
    assert slot_seed(1, 2, ["a", "b"]) == slot_seed(1, 2, ["a", "b"]) != slot_seed(1, 3, ["a", "b"])
    mask = torch.zeros(4, 400, dtype=torch.bool)
    mask[:, 10:390] = True
    mask[:, 100::50] = False  # block boundaries
    a = draw_self_slots(mask, 0.3, torch.Generator().manual_seed(0))
    b = draw_self_slots(mask, 0.3, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and not (a & ~mask).any()
    assert 0.25 < a.sum() / mask.sum() < 0.35
    blk = draw_self_slots(mask, 0.5, torch.Generator().manual_seed(1), unit="block")
    for row in range(4):  # whole blocks: constant over each run of slots
        runs = torch.tensor_split(torch.arange(400), torch.nonzero(mask[row, 1:] != mask[row, :-1]).flatten() + 1)
        for r in runs:
            if mask[row, r[0]]:
                assert blk[row, r].all() or not blk[row, r].any()
    assert not draw_self_slots(mask, 0.0).any() and torch.equal(draw_self_slots(mask, 1.0), mask)
    with pytest.raises(ValueError, match="mix_unit"):
        draw_self_slots(mask, 0.5, unit="token")


def test_config_errors():
    with pytest.raises(ValueError, match="latent_feed"):
        DiftConfig(latent_feed="teacher").validate()
    with pytest.raises(ValueError, match="grad-checkpointing"):
        DiftConfig(latent_feed="self", grad_checkpointing=True).validate()
    with pytest.raises(ValueError, match="mix_start"):
        DiftConfig(latent_feed="mixed", mix_start=1.5).validate()


def test_train_self_feed_norm_end_to_end(tmp_path):
    """``train_dift(latent_feed=mixed, feed_norm=True)``: runs, logs the self-fed share, saves the
    feed and the norm in the model config, and the decoder applies that norm by default."""
    from fourdthinker.latent.interventions import resolve_feed_norm
    from fourdthinker.latent.toy import make_toy_dift
    from fourdthinker.train.dift import train_dift

    make_toy_dift(tmp_path / "toy", 4, size=56)
    cfg = DiftConfig(data=str(tmp_path / "toy"), out=str(tmp_path / "run"), lr=2e-3, warmup_steps=1, batch_size=2,
                     max_steps=2, save_steps=100, target_cache=str(tmp_path / "lt"), progress=False, max_frames=2,
                     latent_feed="mixed", mix_start=1.0, mix_end=1.0, feed_norm=True, health_heldout=0,
                     frame_span="window")
    res = train_dift(cfg)
    assert [r["self_fed"] for r in res.losses] == [1.0, 1.0]
    nu = cfg.latent_feed_norm
    assert nu and nu > 0
    ad = load(str(tmp_path / "run"))
    assert ad.model.config.latent_feed == "mixed"
    assert ad.model.config.latent_feed_norm == pytest.approx(nu) == pytest.approx(ad.model.config.latent_target_norm)
    assert resolve_feed_norm(None, ad) == pytest.approx(nu)  # infer/eval/probe default
    # the frame span is stored too: eval/probe load frames as training did unless told otherwise
    from fourdthinker.eval.runners.model import LatentModelRunner

    assert ad.model.config.frame_span == "window"
    assert LatentModelRunner(str(tmp_path / "run")).settings()["span"] == "window"
    assert LatentModelRunner(str(tmp_path / "run"), span="video").span == "video"
    assert resolve_feed_norm(0, ad) is None and resolve_feed_norm(2.0, ad) == 2.0
    paper = load("qwen2.5-vl-tiny")
    assert resolve_feed_norm(None, paper) is None  # a model trained without --feed-norm is fed as it is


def test_self_feed_under_lora_reaches_the_adapters():
    from fourdthinker.train.trainer import apply_lora

    ad = load("qwen2.5-vl-tiny")
    ad.freeze_visual()
    ad.model = apply_lora(ad.model, r=4, alpha=8)
    ad.model.train()
    batch = dift_batch(ad, ad.encode_prompts(_videos(1), ["Hi"]), _response(ad))
    loss, stats, _ = dift_forward(ad, batch, DiftConfig(latent_feed="self", latent_size=K, lora=True))
    loss.backward()
    lora = [p for n, p in ad.model.named_parameters() if "lora_" in n and p.requires_grad]
    assert lora and any(p.grad is not None and p.grad.abs().sum() > 0 for p in lora)
    assert stats["self_fed"] == 1.0


@pytest.mark.slow
def test_mixed_resume_equals_uninterrupted(tmp_path):
    """The seeded slot draw makes a resumed mixed run draw the same slots (same losses, weights)."""
    import shutil

    from fourdthinker.latent.toy import make_toy_dift
    from fourdthinker.train.dift import train_dift

    make_toy_dift(tmp_path / "toy", 6, size=56)

    def cfg(out, **kw):
        return DiftConfig(data=str(tmp_path / "toy"), out=str(out), lr=2e-3, warmup_steps=1, batch_size=2, max_steps=4,
                          save_steps=2, target_cache=str(tmp_path / "lt"), progress=False, max_frames=2,
                          latent_feed="mixed", mix_start=0.3, mix_end=0.8, health_heldout=0, **kw)

    full = train_dift(cfg(tmp_path / "a"))
    train_dift(cfg(tmp_path / "b"))
    shutil.rmtree(tmp_path / "b" / "checkpoint-4")
    (tmp_path / "b" / "model.safetensors").unlink()
    res = train_dift(cfg(tmp_path / "b", resume=True))
    assert [r["self_fed"] for r in res.losses] == [r["self_fed"] for r in full.losses]
    for a, b in zip(full.losses, res.losses, strict=True):
        assert abs(a["loss"] - b["loss"]) < 1e-5, (a, b)


def test_infonce_sim_loss_in_the_forward():
    """``--sim-loss infonce`` wires the contrastive loss into Eq. 7 in place of the cosine."""
    from fourdthinker.latent.blocks import latent_mask
    from fourdthinker.train.dift import ce_loss, latent_infonce_loss

    ad = load("qwen2.5-vl-tiny")
    ad.model.eval()
    batch = dift_batch(ad, ad.encode_prompts(_videos(2), ["Hi", "What moves?"]), _response(ad))
    cfg = DiftConfig(latent_size=K, sim_loss="infonce", sim_temperature=0.2, l_ce=0.5)
    with torch.no_grad():
        loss, stats, out = dift_forward(ad, batch, cfg)
    mask = latent_mask(batch["input_ids"], ad.latent_pad_id)
    nce, _ = latent_infonce_loss(out.hidden_states[-1], batch["latents"], mask, 0.2)
    ce, _ = ce_loss(out.logits, batch["labels"])
    assert loss.item() == pytest.approx(0.5 * ce.item() + nce.item(), rel=1e-5)
    assert stats["sim"] == pytest.approx(nce.item(), rel=1e-5)
    with pytest.raises(ValueError, match="sim_loss"):
        DiftConfig(data="x", sim_loss="l2").validate()


def test_conclusion_weight_in_the_forward():
    """``--conclusion-weight`` weights the CE after the last latent block; 1 is Eq. 8 unchanged."""
    from fourdthinker.train.dift import ce_loss, conclusion_weights

    ad = load("qwen2.5-vl-tiny")
    ad.model.eval()
    batch = dift_batch(ad, ad.encode_prompts(_videos(1), ["Hi"]), _response(ad))
    with torch.no_grad():
        plain, s1, out = dift_forward(ad, batch, DiftConfig(latent_size=K, use_sim=False))
        heavy, s4, _ = dift_forward(ad, batch, DiftConfig(latent_size=K, use_sim=False, conclusion_weight=4.0))
    w = conclusion_weights(batch["input_ids"], ad.latent_end_id, 4.0)
    assert w is not None and int((w == 4.0).sum()) == 1  # _response ends in one text token after its last block
    assert s1["ce"] == pytest.approx(ce_loss(out.logits, batch["labels"])[0].item(), rel=1e-6)
    assert s4["ce"] == pytest.approx(ce_loss(out.logits, batch["labels"], w)[0].item(), rel=1e-6)
    assert s4["ce"] != pytest.approx(s1["ce"])
