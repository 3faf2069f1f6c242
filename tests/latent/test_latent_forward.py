"""Eq. 6 invariants on all three families: the teacher-forced full forward with latent blocks
equals a stepwise KV-cached forward (prompt prefill, then one embed at a time with explicit
positions), in a left-padded batch with video frames; and M-RoPE really needs mm_token_type_ids."""

from __future__ import annotations

import pytest
import torch

from fourdthinker.latent.blocks import expand_imagery, latent_mask, scatter_latents
from fourdthinker.models.base import LATENT_END, LATENT_PAD, LATENT_START, left_pad_batch
from fourdthinker.models.testing import TINY_PRESETS as FAMILIES
from fourdthinker.models.testing import frames
from fourdthinker.models.testing import tiny as get_adapter

K = 3


def _full_batch(ad, texts, resps):
    samples = []
    for i, (t, r) in enumerate(zip(texts, resps, strict=False)):
        enc = ad.encode_one(frames(2 + 2 * i, seed=i), t)
        resp = ad.tokenizer(expand_imagery(r, K, LATENT_START, LATENT_PAD, LATENT_END), add_special_tokens=False,
                            return_tensors="pt")["input_ids"]
        enc["prompt_len"] = enc["input_ids"].shape[-1]
        enc["input_ids"] = torch.cat([enc["input_ids"], resp], -1)
        enc["attention_mask"] = torch.ones_like(enc["input_ids"])
        if "mm_token_type_ids" in enc:
            enc["mm_token_type_ids"] = torch.cat([enc["mm_token_type_ids"], torch.zeros_like(resp).int()], -1)
        samples.append(enc)
    return samples


@pytest.mark.parametrize("name", FAMILIES)
def test_full_forward_with_latents_equals_cached_steps(name):
    ad = get_adapter(name)
    torch.manual_seed(0)
    texts = ["What is the camera movement?", "Which way does the red cube move?"]
    resps = ["<think>at first <imagery> then", "<think>see <imagery> and <imagery> so"]
    samples = _full_batch(ad, texts, resps)
    # two samples of different lengths -> left padding inside the batch
    plens = [s.pop("prompt_len") for s in samples]
    batch = left_pad_batch(samples, ad.pad_id)
    ids = batch["input_ids"]
    mask = latent_mask(ids, ad.latent_pad_id)
    assert int(mask.sum()) == 3 * K
    lat = torch.randn(int(mask.sum()), ad.hidden_size)
    with torch.no_grad():
        emb = scatter_latents(ad.embed_tokens(ids), mask, lat)
        pos = ad.position_ids(batch)
        full = ad.forward(batch, inputs_embeds=emb, position_ids=pos).hidden_states[-1]  # [B, L, D]

    # stepwise, one sample at a time (no padding): prefill the prompt, then feed each response
    # position's embedding (latent vectors included) with the cache and continuation positions
    off = 0
    for b, s in enumerate(samples):
        P = plens[b]
        n = s["input_ids"].shape[-1]
        prompt = {k: (v[:, :P] if k in ("input_ids", "attention_mask", "mm_token_type_ids") else v) for k, v in s.items()}
        s_ids = s["input_ids"]
        s_mask = latent_mask(s_ids, ad.latent_pad_id)
        n_lat = int(s_mask.sum())
        s_emb = scatter_latents(ad.embed_tokens(s_ids), s_mask, lat[off : off + n_lat])
        off += n_lat
        with torch.no_grad():
            ppos = ad.position_ids(prompt)
            out = ad.forward(prompt, inputs_embeds=s_emb[:, :P], position_ids=ppos, use_cache=True)
            hs = [out.hidden_states[-1]]
            cache, am, pos_so_far = out.cache, prompt["attention_mask"], ppos
            for t in range(P, n):
                step_pos = ad.next_position_ids(pos_so_far, am, 1)
                am = torch.cat([am, am.new_ones(1, 1)], -1)
                out = ad.forward(None, inputs_embeds=s_emb[:, t : t + 1], position_ids=step_pos, attention_mask=am,
                                 cache=cache, use_cache=True)
                cache = out.cache
                pos_so_far = torch.cat([pos_so_far, step_pos], -1)
                hs.append(out.hidden_states[-1])
        step = torch.cat(hs, 1)[0]  # [n, D]
        ref = full[b, -n:]
        assert torch.allclose(step, ref, atol=2e-4), f"{name} sample {b}: max diff {(step - ref).abs().max():.2e}"


@pytest.mark.parametrize("name", ["qwen2.5-vl-tiny", "qwen3-vl-tiny"])
def test_mrope_needs_mm_token_type_ids(name):
    """Our positions (get_rope_index with mm_token_type_ids) are 3-D and differ from the 1-D
    fallback the model takes when mm_token_type_ids is omitted; the logits differ too."""
    ad = get_adapter(name)
    b = ad.encode_prompts([frames(4)], ["What is the camera movement?"])
    pos = ad.position_ids(b)
    assert pos.shape[0] == 3
    L = b["input_ids"].shape[1]
    assert not torch.equal(pos[0, 0], torch.arange(L)), "video prompt must not get 1-D positions"
    assert not torch.equal(pos[1], pos[2]), "height/width positions of the video tokens should differ"
    with torch.no_grad():
        ours = ad.forward(b, inputs_embeds=ad.embed_tokens(b["input_ids"]), position_ids=pos).logits
        stock_with = ad.model(**b).logits  # stock path with mm_token_type_ids computes the same 3-D positions
        # the inputs_embeds route without mm_token_type_ids / position_ids silently goes 1-D
        vis = ad.visual_kwargs(b)
        ad.core.rope_deltas = None
        stock_without = ad.model(inputs_embeds=ad.embed_tokens(b["input_ids"]), attention_mask=b["attention_mask"],
                                 **vis).logits
    assert torch.allclose(ours, stock_with, atol=1e-5)
    assert (ours - stock_without).abs().max() > 1e-4, "omitting mm_token_type_ids should change the result"
