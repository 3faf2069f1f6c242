"""The full-width shallow preset ``qwen2.5-vl-3b-shallow``: Qwen2.5-VL-3B's real tensor shapes on a CPU.

Slow: building it once takes ~1 min and ~2.5 GB RSS (cached afterwards), loading it in fp32 ~2.2 GB."""

from __future__ import annotations

import pytest
import torch

from fourdthinker.models.testing import frames

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shallow():
    from fourdthinker.models import load

    torch.set_num_threads(2)
    return load("qwen2.5-vl-3b-shallow")


def test_shallow_preset_has_the_3b_widths(shallow):
    cfg = shallow.model.config
    t, v = cfg.get_text_config(), cfg.vision_config
    assert (t.hidden_size, t.intermediate_size, t.num_attention_heads, t.num_key_value_heads) == (2048, 11008, 16, 2)
    assert t.num_hidden_layers == 2 and v.depth == 2
    assert (v.hidden_size, v.num_heads, v.intermediate_size, v.out_hidden_size) == (1280, 16, 3420, 2048)
    emb, head = shallow.model.get_input_embeddings().weight, shallow.model.get_output_embeddings().weight
    assert head is emb and emb.shape == (151_936, 2048), "tied, padded to the real 151,936 rows"
    n = sum(p.numel() for p in shallow.model.parameters())
    assert 0.5e9 < n < 0.6e9, n
    # the latent tokens sit in padding rows and start at the mean of the trained rows
    ids = [shallow.latent_start_id, shallow.latent_end_id, shallow.latent_pad_id]
    n_trained = min(ids)
    want = emb[:n_trained].double().mean(0).float()
    for i in ids:
        torch.testing.assert_close(emb[i], want, atol=1e-6, rtol=1e-4)
    assert len(shallow.padding_ids()) == 151_936 - len(shallow.tokenizer)


def test_shallow_preset_forward_with_a_video(shallow):
    batch = shallow.encode_prompts([frames(4, seed=0, h=112, w=140)], ["What is the camera movement?"])
    assert int((batch["input_ids"] == shallow.video_token_id).sum()) == int(batch["video_grid_thw"].prod(-1).sum()) // 4
    with torch.no_grad():
        out = shallow.forward(batch, inputs_embeds=shallow.embed_tokens(batch["input_ids"]),
                              position_ids=shallow.position_ids(batch))
    L = batch["input_ids"].shape[1]
    assert out.logits.shape == (1, L, 151_936)
    assert out.hidden_states[-1].shape == (1, L, 2048) and len(out.hidden_states) == 3
    assert torch.isfinite(out.logits).all()
    feats = shallow.image_embeddings(frames(1, seed=1))
    assert feats[0].shape[-1] == 2048
