"""Adapters of the three families on their tiny presets (real classes, random init, offline)."""

from __future__ import annotations

import pytest
import torch

from fourdthinker.models.base import LATENT_END, LATENT_PAD, LATENT_START
from fourdthinker.models.testing import TINY_PRESETS as FAMILIES
from fourdthinker.models.testing import frames
from fourdthinker.models.testing import tiny as get_adapter


def test_offline_tokenizer_roundtrip(tmp_path):
    from transformers import AutoTokenizer

    from fourdthinker.data.records import build_question_text
    from fourdthinker.models.tokenizer import build_tokenizer

    build_tokenizer("qwen2_5_vl", tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)  # saved like any HF tokenizer
    for s in ("<|im_start|>", "<|im_end|>", "<|video_pad|>", "<|image_pad|>", "<|vision_start|>"):
        assert len(tok(s, add_special_tokens=False)["input_ids"]) == 1, s
    text = build_question_text("What is the camera movement from 0s to 3s?", dict(zip("ABCD", ["Pan Left", "Pan Right", "Tilt Up", "Tilt Down"], strict=False)))
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert len(ids) < len(text) / 3, "corpus-trained BPE should compress the package's prompts"
    chat = tok.apply_chat_template([{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "hi"}]}],
                                   tokenize=False, add_generation_prompt=True)
    assert chat.endswith("<|im_start|>assistant\n") and "<|video_pad|>" in chat


@pytest.mark.parametrize("name", FAMILIES)
def test_latent_tokens_ids_from_tokenizer_and_mean_init(name):
    ad = get_adapter(name)
    ids = [ad.latent_start_id, ad.latent_end_id, ad.latent_pad_id]
    assert ids == [ad.tokenizer.convert_tokens_to_ids(t) for t in (LATENT_START, LATENT_END, LATENT_PAD)]
    for t in (LATENT_START, LATENT_END, LATENT_PAD):
        assert len(ad.tokenizer(t, add_special_tokens=False)["input_ids"]) == 1
    W = ad.model.get_input_embeddings().weight
    n_old = min(ids)
    # the preset's vocabulary is padded like the real checkpoints: the latent ids land in padding rows
    assert W.shape[0] > len(ad.tokenizer) and ad.padding_ids() == list(range(len(ad.tokenizer), W.shape[0]))
    assert torch.allclose(W[ids[0]], W[:n_old].mean(0), atol=1e-6), "new rows start at the mean of the trained rows"
    head = ad.model.get_output_embeddings().weight
    assert torch.allclose(head[ids[2]], head[:n_old].mean(0), atol=1e-6)
    assert ad.add_latent_tokens() == ids  # idempotent
    assert ad.eos_ids == [ad.tokenizer.convert_tokens_to_ids("<|im_end|>")]


def _fresh_adapter(name: str, *, tied: bool):
    """A random-init model of the preset's config (tied or not) with the preset's processor, no latent
    tokens yet; its padding rows are set to a huge value, as untrained garbage that must not count."""
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    from fourdthinker.models import PRESETS, _adapter_class, preset_dir

    d = preset_dir(name)
    cfg = AutoConfig.from_pretrained(d)
    cfg.tie_word_embeddings = tied
    cfg.get_text_config().tie_word_embeddings = tied
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_config(cfg).eval()
    ad = _adapter_class(PRESETS[name])(model, AutoProcessor.from_pretrained(d), name=name)
    n_tok = len(ad.tokenizer)
    with torch.no_grad():
        for m in {id(x): x for x in (model.get_input_embeddings(), model.get_output_embeddings())}.values():
            m.weight[n_tok:] = 1e3
    return ad, n_tok


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("name", FAMILIES)
def test_latent_rows_are_mean_of_trained_rows_on_padded_vocab(name, tied):
    ad, n_tok = _fresh_adapter(name, tied=tied)
    emb, head = ad.model.get_input_embeddings().weight, ad.model.get_output_embeddings().weight
    assert (head is emb) == tied
    rows = emb.shape[0]
    assert rows > n_tok + 3, "padded vocabulary: room for the latent tokens without growing"
    want_emb, want_head = emb[:n_tok].mean(0).clone(), head[:n_tok].mean(0).clone()
    ids = ad.add_latent_tokens()
    emb, head = ad.model.get_input_embeddings().weight, ad.model.get_output_embeddings().weight
    assert emb.shape[0] == rows and ids == [n_tok, n_tok + 1, n_tok + 2], "latent ids take padding rows, no growth"
    for i in ids:
        assert torch.allclose(emb[i], want_emb, atol=1e-5)
        assert torch.allclose(head[i], want_head, atol=1e-5)
    assert emb[ids].abs().max() < 10, "padding garbage (1e3) leaked into the mean"
    assert (emb[n_tok + 3:] == 1e3).all(), "the other padding rows are left alone"
    assert ad.padding_ids() == list(range(n_tok + 3, rows))


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_latent_rows_mean_init_when_matrix_grows(tied):
    """An unpadded (or full) vocabulary grows by the three rows; they start at the trained-row mean."""
    ad, n_tok = _fresh_adapter("qwen2.5-vl-tiny", tied=tied)
    ad.model.resize_token_embeddings(n_tok, mean_resizing=False)  # drop the padding: rows == len(tokenizer)
    emb, head = ad.model.get_input_embeddings().weight, ad.model.get_output_embeddings().weight
    want_emb, want_head = emb.mean(0).clone(), head.mean(0).clone()
    ids = ad.add_latent_tokens()
    emb, head = ad.model.get_input_embeddings().weight, ad.model.get_output_embeddings().weight
    assert emb.shape[0] == n_tok + 3 and ad.padding_ids() == []
    assert (head is emb) == tied
    for i in ids:
        assert torch.allclose(emb[i], want_emb, atol=1e-5) and torch.allclose(head[i], want_head, atol=1e-5)


def test_trained_row_mean_by_hand():
    from fourdthinker.models.base import padded_vocab_size, trained_row_mean

    W = torch.tensor([[1.0, 2.0], [3.0, 6.0], [100.0, 100.0]])  # last row: padding
    assert trained_row_mean(W, 2).tolist() == [2.0, 4.0]
    with pytest.raises(ValueError, match="n_trained"):
        trained_row_mean(W, 4)
    assert padded_vocab_size(151_665) == 151_808 and padded_vocab_size(100) == 128 and padded_vocab_size(113) == 256


@pytest.mark.parametrize("name", FAMILIES)
def test_batch_equals_one_by_one(name):
    ad = get_adapter(name)
    v = [frames(4, seed=1), frames(2, seed=2)]
    t = ["What is the camera movement?", "Which way does it move?"]
    b = ad.encode_prompts(v, t)
    assert (b["attention_mask"][:, 0] == 0).any(), "shorter prompt must be LEFT padded"
    with torch.no_grad():
        full = ad.forward(b, inputs_embeds=ad.embed_tokens(b["input_ids"]), position_ids=ad.position_ids(b)).logits
        for i in range(2):
            one = ad.encode_prompts([v[i]], [t[i]])
            lo = ad.forward(one, inputs_embeds=ad.embed_tokens(one["input_ids"]), position_ids=ad.position_ids(one)).logits
            n = one["input_ids"].shape[1]
            assert torch.allclose(full[i, -n:], lo[0], atol=1e-4)


@pytest.mark.parametrize("name", FAMILIES)
def test_image_embeddings_are_lm_space_features(name):
    """image_embeddings == the vectors the model scatters into the LM input for that image."""
    ad = get_adapter(name)
    imgs = frames(2, seed=3)
    embs = ad.image_embeddings(imgs)
    assert len(embs) == 2 and all(e.dim() == 2 and e.shape[1] == ad.hidden_size for e in embs)
    assert embs[0].shape[0] >= 4, "an overlay must give at least K=4 vectors"
    assert not torch.allclose(embs[0], embs[1])
    # a prompt whose 'video' is the same image twice holds the same spatial features after the
    # merger for Qwen (temporal patch of 2 identical frames == image); InternVL tiles == images
    b = ad.encode_prompts([[imgs[0], imgs[0]] if ad.family != "internvl" else [imgs[0]]], ["x"])
    feats, mask = ad.visual_features(b)
    assert feats.shape == embs[0].shape and int(mask.sum()) == feats.shape[0]
    assert torch.allclose(feats, embs[0], atol=1e-4)


@pytest.mark.parametrize("name", FAMILIES)
def test_prompt_embeds_scatter_visual_features(name):
    ad = get_adapter(name)
    b = ad.encode_prompts([frames(2)], ["hello"])
    emb = ad.prompt_embeds(b)
    feats, mask = ad.visual_features(b)
    assert torch.equal(emb[mask], feats)
    assert torch.equal(emb[~mask], ad.embed_tokens(b["input_ids"])[~mask])


def test_frame_errors():
    ad = get_adapter("qwen2.5-vl-tiny")
    import numpy as np

    with pytest.raises(ValueError, match="no video frames"):
        ad.encode_prompts([[]], ["x"])
    with pytest.raises(ValueError, match="uint8"):
        ad.encode_prompts([[np.zeros((32, 32, 3), np.float32)]], ["x"])
    with pytest.raises(ValueError, match="HxWx3"):
        ad.encode_prompts([[np.zeros((32, 32, 5), np.uint8)]], ["x"])


def test_load_local_folder_and_unknown(tmp_path):
    from fourdthinker.models import load, preset_dir

    ad = load(str(preset_dir("qwen2.5-vl-tiny")))  # a local HF folder takes the stock path
    assert ad.family == "qwen2_5_vl" and ad.latent_pad_id is not None
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="not supported"):
        load(str(tmp_path))
    # a bare name is neither a preset nor an existing folder: refused at once, without the network
    with pytest.raises(FileNotFoundError, match="no-such-model: no such model folder"):
        load("no-such-model")


def test_deep_preset_has_four_lm_layers_and_the_tiny_vision_tower():
    """``qwen2.5-vl-tiny-deep``: the tiny Qwen2.5-VL with 4 LM layers instead of 2. Same widths, and the
    same vision tower weights (same seed, built first), so both presets share latent targets."""
    from fourdthinker.latent.targets import state_dict_hash

    deep, tiny = get_adapter("qwen2.5-vl-tiny-deep"), get_adapter("qwen2.5-vl-tiny")
    dt, tt = deep.model.config.text_config, tiny.model.config.text_config
    assert (dt.num_hidden_layers, tt.num_hidden_layers) == (4, 2)
    assert (dt.hidden_size, dt.num_attention_heads, dt.vocab_size) == (tt.hidden_size, tt.num_attention_heads, tt.vocab_size)
    assert state_dict_hash(deep.encoder_state_dict()) == state_dict_hash(tiny.encoder_state_dict())
    ids = deep.tokenizer("hello", return_tensors="pt")["input_ids"]
    assert deep.model(input_ids=ids).logits.shape == (1, ids.shape[1], dt.vocab_size)
