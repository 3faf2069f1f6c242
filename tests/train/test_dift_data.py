"""DIFT records -> samples: label masks, modes, and bad input (skipped with a reason, never misaligned)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from fourdthinker.latent.blocks import IGNORE_INDEX
from fourdthinker.latent.targets import LatentTargetCache
from fourdthinker.latent.toy import make_toy_dift
from fourdthinker.models.testing import tiny
from fourdthinker.train.collate import DiftCollator, DiftDataset, response_text

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy")
    make_toy_dift(d, 3, size=56)
    return d


def _rows(d):
    return [json.loads(line) for line in (d / "dift.jsonl").read_text().splitlines()]


def test_labels_mask_prompt_latents_and_padding(toy, tmp_path):
    ad = tiny("qwen2.5-vl-tiny")
    ds = DiftDataset(toy, ad, k=4, targets=LatentTargetCache(ad, 4, tmp_path), progress=False)
    assert len(ds) == 3 and not ds.skipped
    s = ds[0]
    ids, lab = s.enc["input_ids"][0], s.enc["labels"][0]
    P = s.meta["prompt_len"]
    assert (lab[:P] == IGNORE_INDEX).all(), "prompt positions must be excluded from CE"
    lat = ids == ad.latent_pad_id
    assert int(lat.sum()) == 4 * 2 and (lab[lat] == IGNORE_INDEX).all()
    for t in (ad.latent_start_id, ad.latent_end_id):
        assert (lab[ids == t] == t).all() and int((ids == t).sum()) == 2  # supervised: open/close blocks
    text = ~lat.clone()
    text[:P] = False
    assert torch.equal(lab[text], ids[text])
    assert ids[-1] == ad.tokenizer.convert_tokens_to_ids("<|im_end|>") and lab[-1] == ids[-1]
    assert s.latents.shape == (8, ad.hidden_size)
    b = DiftCollator(ad.pad_id)([ds[0], ds[1], ds[2]])
    pad = b["attention_mask"] == 0
    assert (b["labels"][pad] == IGNORE_INDEX).all() and (b["input_ids"][pad] == ad.pad_id).all()
    assert b["latents"].shape[0] == int((b["input_ids"] == ad.latent_pad_id).sum())


def test_modes_text():
    r = "<think>a <imagery> b <imagery>.</think><answer>B. Pan Left</answer>"
    assert response_text(r, "B", "dift", 2).count("<|latent_pad|>") == 4
    assert response_text(r, "B", "cot", 2) == "<think>a b.</think><answer>B. Pan Left</answer>"
    assert response_text(r, "B", "raw-qa", 2) == "<answer>B. Pan Left</answer>"
    assert response_text("<think>x</think>", "C", "raw-qa", 2) == "<answer>C</answer>"


def test_cot_and_rawqa_have_no_latents(toy):
    ad = tiny("qwen2.5-vl-tiny")
    for mode in ("cot", "raw-qa"):
        ds = DiftDataset(toy, ad, mode=mode, progress=False)
        ids = ds[0].enc["input_ids"]
        assert not (ids == ad.latent_pad_id).any() and ds[0].latents.shape[0] == 0


def test_bad_records_are_quarantined_with_reasons(toy, tmp_path):
    ad = tiny("qwen2.5-vl-tiny")
    d = tmp_path / "bad"
    d.mkdir()
    for p in (toy / "img").iterdir():
        (d / "img").mkdir(exist_ok=True)
        (d / "img" / p.name).write_bytes(p.read_bytes())
    good = _rows(toy)[0]
    Image.fromarray(np.full((56, 56), 128, np.uint8), "L").save(d / "img" / "gray.png")  # wrong mode: converted
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(d / "img" / "dot.png")  # wrong size: rejected
    (d / "img" / "junk.png").write_text("not a png")
    rows = [
        dict(good, id="ok"),
        dict(good, id="gray", imagery=["img/gray.png", good["imagery"][1]]),
        dict(good, id="count", imagery=good["imagery"][:1]),
        dict(good, id="missing", imagery=["img/nope.png", good["imagery"][1]]),
        dict(good, id="tiny", imagery=["img/dot.png", good["imagery"][1]]),
        dict(good, id="junk", imagery=["img/junk.png", good["imagery"][1]]),
        dict(good, id="escape", imagery=["../../etc/passwd", good["imagery"][1]]),
        dict(good, id="noframe", frames=["img/absent.png"]),
    ]
    (d / "dift.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    q = tmp_path / "quarantine.jsonl"
    ds = DiftDataset(d, ad, k=4, targets=LatentTargetCache(ad, 4, None), quarantine=q, progress=False)
    assert [s.id for s in ds.samples] == ["ok", "gray"]
    reasons = {r["id"]: r["reason"] for r in map(json.loads, q.read_text().splitlines())}
    assert "placeholders" in reasons["count"]
    assert "nope.png: image file not found" in reasons["missing"]
    assert "too small" in reasons["tiny"]
    assert "not a readable image" in reasons["junk"]
    assert "escapes dataset root" in reasons["escape"]
    assert "absent.png" in reasons["noframe"]


def test_overlong_sequences_are_skipped_not_truncated(toy):
    """Truncation could cut a latent block in half, so over-long samples are skipped with a reason."""
    ad = tiny("qwen2.5-vl-tiny")
    with pytest.raises(ValueError, match="no usable records.*exceeds max_length 50"):
        DiftDataset(toy, ad, k=4, targets=LatentTargetCache(ad, 4, None), max_length=50, progress=False)
