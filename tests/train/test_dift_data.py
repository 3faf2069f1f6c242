"""DIFT records -> samples: label masks, modes, and bad input (skipped with a reason, never misaligned)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from fourdthinker.latent.blocks import IGNORE_INDEX
from fourdthinker.latent.targets import LatentTargetCache
from fourdthinker.latent.toy import make_toy_dift
from fourdthinker.models.testing import tiny
from fourdthinker.train.collate import (
    DiftCollator,
    DiftDataset,
    Sample,
    SampleError,
    imagery_answer,
    response_text,
)

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


def test_imagery_answer_response_text():
    r = "<think>a <imagery> b <imagery>.</think><answer>B. Pan Left</answer>"
    assert imagery_answer(r, "B") == "<think><imagery><imagery></think><answer>B. Pan Left</answer>"
    assert imagery_answer("<think>x <imagery> y</think>", "C") == "<think><imagery></think><answer>C</answer>"
    want = "<think>" + ("<|latent_start|>" + "<|latent_pad|>" * 2 + "<|latent_end|>") * 2 + "</think><answer>B. Pan Left</answer>"
    assert response_text(r, "B", "dift", 2, "imagery-answer") == want
    assert response_text(r, "B", "cot", 2, "imagery-answer") == response_text(r, "B", "cot", 2)  # dift only
    with pytest.raises(ValueError, match="response must be one of"):
        response_text(r, "B", "dift", 2, "answer")


def test_imagery_answer_samples_keep_latents_and_supervise_only_the_answer(toy, tmp_path):
    """``--response imagery-answer``: the same latents at the same count as the full reasoning, and
    the supervised text is only the block tokens, ``<think>``/``</think>`` and the answer."""
    ad = tiny("qwen2.5-vl-tiny")
    cache = LatentTargetCache(ad, 4, tmp_path)
    full = DiftDataset(toy, ad, k=4, targets=cache, progress=False)
    short = DiftDataset(toy, ad, k=4, targets=cache, progress=False, response="imagery-answer")
    assert len(short) == 3 and not short.skipped
    a, b = full[0], short[0]
    assert torch.equal(a.latents, b.latents) and b.meta["length"] < a.meta["length"]
    P = b.meta["prompt_len"]
    assert torch.equal(a.enc["input_ids"][0, :P], b.enc["input_ids"][0, :P])  # same prompt
    ids, lab = b.enc["input_ids"][0], b.enc["labels"][0]
    sup = lab != IGNORE_INDEX
    text = ad.tokenizer.decode(ids[P:][sup[P:] & (ids[P:] != ad.latent_start_id) & (ids[P:] != ad.latent_end_id)])
    rec = _rows(toy)[0]
    assert text == "<think></think>" + imagery_answer(rec["reasoning"], rec["answer"]).split("</think>")[1] + "<|im_end|>"
    assert int((ids == ad.latent_pad_id).sum()) == 4 * rec["reasoning"].count("<imagery>")


def test_response_needs_dift_mode():
    from fourdthinker.train.dift_config import DiftConfig

    with pytest.raises(ValueError, match="needs --mode dift"):
        DiftConfig(data="x", mode="cot", response="imagery-answer").validate()


def test_cot_and_rawqa_have_no_latents(toy):
    ad = tiny("qwen2.5-vl-tiny")
    for mode in ("cot", "raw-qa"):
        ds = DiftDataset(toy, ad, mode=mode, progress=False)
        ids = ds[0].enc["input_ids"]
        assert not (ids == ad.latent_pad_id).any() and ds[0].latents.shape[0] == 0


def _copy_imgs(toy, d):
    (d / "img").mkdir(parents=True, exist_ok=True)
    for p in (toy / "img").iterdir():
        (d / "img" / p.name).write_bytes(p.read_bytes())


def test_bad_records_are_quarantined_with_reasons(toy, tmp_path):
    """Each kind of bad record is refused before training, with a reason naming the field."""
    ad = tiny("qwen2.5-vl-tiny")
    d = tmp_path / "bad"
    _copy_imgs(toy, d)
    good = _rows(toy)[0]
    Image.fromarray(np.full((56, 56), 128, np.uint8), "L").save(d / "img" / "gray.png")  # wrong mode: converted
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(d / "img" / "dot.png")  # wrong size: rejected
    (d / "img" / "junk.png").write_text("not a png")
    no_question = {k: v for k, v in good.items() if k != "question"}
    rows = [
        dict(good, id="ok"),
        dict(good, id="gray", imagery=["img/gray.png", good["imagery"][1]]),
        dict(good, id="count", imagery=good["imagery"][:1]),
        dict(good, id="missing", imagery=["img/nope.png", good["imagery"][1]]),
        dict(good, id="tiny", imagery=["img/dot.png", good["imagery"][1]]),
        dict(good, id="junk", imagery=["img/junk.png", good["imagery"][1]]),
        dict(good, id="escape", imagery=["../../etc/passwd", good["imagery"][1]]),
        dict(good, id="noframe", frames=["img/absent.png"]),
        dict(good, id="novideo", frames=None, video="clips/gone.mp4"),
        dict(no_question, id="schema"),
        dict(good, id="letter", answer="E"),
        dict(good, id="rawlatent", reasoning=good["reasoning"].replace("static.", "static <|latent_pad|>.")),
    ]
    text = "".join(json.dumps(r) + "\n" for r in rows) + "{not json\n"
    (d / "dift.jsonl").write_text(text)
    q = tmp_path / "quarantine.jsonl"
    ds = DiftDataset(d, ad, k=4, targets=LatentTargetCache(ad, 4, None), quarantine=q, progress=False)
    assert ds.ids() == ["ok", "gray"]
    got = list(map(json.loads, q.read_text().splitlines()))
    assert [r["line"] for r in got] == list(range(3, 14)), "one quarantine row per bad line, in file order"
    reasons = {r["id"]: r["reason"] for r in got}
    assert "field reasoning/imagery" in reasons["count"] and "placeholders" in reasons["count"]
    assert "imagery[0] img/nope.png: image file not found" in reasons["missing"]
    assert "imagery[0]" in reasons["tiny"] and "too small" in reasons["tiny"]
    assert "imagery[0]" in reasons["junk"] and "not a readable image" in reasons["junk"]
    assert "imagery[0]" in reasons["escape"] and "escapes dataset root" in reasons["escape"]
    assert "frames[0] img/absent.png" in reasons["noframe"]
    assert "video clips/gone.mp4: video not found" in reasons["novideo"]
    assert "field question" in reasons["schema"] and "required" in reasons["schema"].lower()
    assert "field answer" in reasons["letter"]
    assert "field reasoning" in reasons["rawlatent"] and "latent blocks misaligned" in reasons["rawlatent"]
    assert reasons[None] == "line 13: not valid JSON"
    # a rerun rewrites (not appends) the quarantine file
    DiftDataset(d, ad, k=4, targets=LatentTargetCache(ad, 4, None), quarantine=q, progress=False)
    assert len(q.read_text().splitlines()) == len(got)


def test_validation_decodes_no_video(toy, tmp_path, monkeypatch):
    """Records pointing at video files are validated by stat only: no frame is decoded until fetched."""
    import fourdthinker.models.inputs as inputs
    import fourdthinker.video as video

    ad = tiny("qwen2.5-vl-tiny")
    d = tmp_path / "vid"
    _copy_imgs(toy, d)
    (d / "clips").mkdir()
    (d / "clips" / "a.mp4").write_bytes(b"not decoded during validation")
    (d / "dift.jsonl").write_text("".join(json.dumps(dict(r, frames=None, video="clips/a.mp4")) + "\n" for r in _rows(toy)))

    def boom(*a, **kw):
        raise AssertionError("validation must not decode video")

    monkeypatch.setattr(video, "sample_frames", boom)
    monkeypatch.setattr(inputs, "load_frames", boom)
    ds = DiftDataset(d, ad, k=4, targets=LatentTargetCache(ad, 4, None), progress=False)
    assert len(ds) == 3 and not ds.skipped


def _holdings(ds):
    """Everything a dataset holds besides the model it encodes with."""
    return {k: v for k, v in vars(ds).items() if k not in ("adapter", "targets")}


def test_memory_does_not_grow_with_records(toy, tmp_path):
    """After construction the dataset holds no tensor and no per-record object: per record it keeps
    8-byte offsets; a 20x larger file changes nothing else."""
    ad = tiny("qwen2.5-vl-tiny")
    cache = LatentTargetCache(ad, 4, tmp_path / "lt")
    big = tmp_path / "big"
    _copy_imgs(toy, big)
    rows = _rows(toy)
    (big / "dift.jsonl").write_text("".join(json.dumps(dict(r, id=f"{r['id']}_{i}")) + "\n" for i in range(20) for r in rows))
    small = DiftDataset(toy, ad, k=4, targets=cache, progress=False)
    large = DiftDataset(big, ad, k=4, targets=cache, progress=False)
    assert (len(small), len(large)) == (3, 60)
    for ds in (small, large):
        for k, v in _holdings(ds).items():
            assert not isinstance(v, torch.Tensor), k
            assert not (isinstance(v, (list, dict, set, tuple)) and any(isinstance(x, (torch.Tensor, Sample)) for x in v)), k
    hs, hl = _holdings(small), _holdings(large)
    assert hs.keys() == hl.keys()
    for k in hs:
        if isinstance(hs[k], np.ndarray):
            assert hl[k].nbytes == 20 * hs[k].nbytes <= 8 * 60, k
        else:
            assert sys.getsizeof(hs[k]) == sys.getsizeof(hl[k]), k
    assert torch.equal(large[3].enc["input_ids"], small[0].enc["input_ids"])


def test_load_failure_is_skipped_logged_and_deterministic(toy, tmp_path):
    """A record whose frame is corrupted after validation is replaced by the next record that loads;
    the same index always gives the same replacement (so resume sees the same batches)."""
    ad = tiny("qwen2.5-vl-tiny")
    d = tmp_path / "late"
    _copy_imgs(toy, d)
    (d / "dift.jsonl").write_text((toy / "dift.jsonl").read_text())
    errs = tmp_path / "load_errors.jsonl"
    ds = DiftDataset(d, ad, k=4, targets=LatentTargetCache(ad, 4, tmp_path / "lt"), load_errors=errs, progress=False)
    assert len(ds) == 3
    frame = _rows(toy)[1]["frames"][0]
    (d / frame).write_text("corrupted after validation")
    s = ds[1]
    assert s.id == ds.record(2).id
    logged = [json.loads(x) for x in errs.read_text().splitlines()]
    assert len(logged) == 1 and logged[0]["line"] == 2 and frame in logged[0]["reason"]
    assert "not a readable image" in logged[0]["reason"]
    fresh = DiftDataset(d, ad, k=4, targets=LatentTargetCache(ad, 4, tmp_path / "lt"), progress=False)
    assert fresh[1].id == s.id and torch.equal(fresh[1].enc["input_ids"], s.enc["input_ids"])
    assert ds[2].id == s.id and ds[0].id == ds.record(0).id
    with pytest.raises(SampleError, match="not a readable image"):
        ds.load(1)


def test_overlong_sequences_are_skipped_not_truncated(toy, tmp_path):
    """Truncation could cut a latent block in half, so over-long samples are skipped with a reason:
    a response that alone is too long at validation, a full sequence when it is encoded."""
    ad = tiny("qwen2.5-vl-tiny")
    with pytest.raises(ValueError, match="no usable records.*field reasoning: response of \\d+ tokens alone reaches max_length 50"):
        DiftDataset(toy, ad, k=4, targets=LatentTargetCache(ad, 4, None), max_length=50, progress=False)
    ds = DiftDataset(toy, ad, k=4, targets=LatentTargetCache(ad, 4, None), max_length=120, progress=False)
    with pytest.raises(SampleError, match="exceeds max_length 120"):
        ds.load(0)
    with pytest.raises(RuntimeError, match="all failed to load.*exceeds max_length 120"):
        ds[0]


def test_pair_targets_in_the_dataset(toy, tmp_path):
    """``--latent-target pair``: the target pass fills the pair cache, each sample's latents are the
    record's (previous, this) imagery-pair targets, and a rebuild over the warm cache encodes nothing."""
    from fourdthinker.models.inputs import load_image

    ad = tiny("qwen2.5-vl-tiny")
    pc = LatentTargetCache(ad, 4, tmp_path / "lt", pairs=True)
    ds = DiftDataset(toy, ad, k=4, targets=pc, progress=False)
    assert pc.misses == 6 and not ds.skipped  # 3 records x 2 imagery images
    rec = _rows(toy)[0]
    imgs = [load_image(toy / p) for p in rec["imagery"]]
    want = torch.cat(LatentTargetCache(ad, 4, None, pairs=True).get(imgs), 0)
    assert torch.allclose(ds[0].latents, want, atol=1e-6)
    plain = torch.cat(LatentTargetCache(ad, 4, None).get(imgs), 0)
    assert torch.allclose(ds[0].latents[:4], plain[:4], atol=1e-6) and not torch.allclose(ds[0].latents[4:], plain[4:], atol=1e-3)
    warm = LatentTargetCache(ad, 4, tmp_path / "lt", pairs=True)
    DiftDataset(toy, ad, k=4, targets=warm, progress=False)
    assert warm.misses == 0
