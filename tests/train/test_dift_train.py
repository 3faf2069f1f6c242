"""DIFT training end to end on tiny real models: losses fall, the encoder stays frozen,
save/load round trip is exact, resume equals an uninterrupted run."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from fourdthinker.latent.targets import LatentTargetCache
from fourdthinker.latent.toy import make_toy_dift
from fourdthinker.models import load, preset_dir
from fourdthinker.models.testing import TINY_PRESETS
from fourdthinker.train.collate import DiftCollator, DiftDataset
from fourdthinker.train.dift import DiftConfig, dift_forward, train_dift

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy")
    make_toy_dift(d, 8, size=56)
    return d


def _cfg(toy, out, **kw):
    base = dict(data=str(toy), out=str(out), lr=2e-3, warmup_steps=1, batch_size=2, save_steps=3,
                target_cache=str(out.parent / "lt"), progress=False, max_frames=4)
    base.update(kw)
    return DiftConfig(**base)


def _encoder(sd):
    return {k: v for k, v in sd.items() if k.startswith(("model.visual.", "model.vision_tower.", "model.multi_modal_projector."))}


def test_visual_encoder_gets_no_gradient(toy, tmp_path):
    ad = load("qwen2.5-vl-tiny")
    frozen = ad.freeze_visual()
    assert frozen and all(n.startswith("model.visual.") for n in frozen)
    ds = DiftDataset(toy, ad, k=4, targets=LatentTargetCache(ad, 4, None), progress=False)
    batch = DiftCollator(ad.pad_id)([ds[0], ds[1]])
    ad.model.train()
    loss, stats, _ = dift_forward(ad, batch, DiftConfig())
    loss.backward()
    assert stats["sim"] is not None and stats["ce"] > 0
    for n, p in ad.model.named_parameters():
        if n.startswith("model.visual."):
            assert p.grad is None, n
    assert ad.model.get_input_embeddings().weight.grad is not None
    assert ad.model.get_output_embeddings().weight.grad.abs().sum() > 0


def test_dift_quick_end_to_end(toy, tmp_path):
    """5 steps: both loss parts fall, the encoder is unchanged on disk, the saved folder loads with
    stock Auto classes and gives identical logits, the loss log and curve are written."""
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText, AutoProcessor

    out = tmp_path / "run"
    res = train_dift(_cfg(toy, out, model="qwen2.5-vl-tiny", max_steps=5, save_steps=100))
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5] and res.n_samples == 8 and res.n_skipped == 0
    assert rows[-1]["sim"] < rows[0]["sim"] and rows[-1]["ce"] < rows[0]["ce"]
    assert res.loss_png is not None and res.loss_png.stat().st_size > 1000
    before = _encoder(load_file(preset_dir("qwen2.5-vl-tiny") / "model.safetensors"))
    after = _encoder(load_file(out / "model.safetensors"))
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    # stock round trip
    m = AutoModelForImageTextToText.from_pretrained(out).eval()
    proc = AutoProcessor.from_pretrained(out)
    assert proc.tokenizer.convert_tokens_to_ids("<|latent_pad|>") == res.adapter.latent_pad_id
    assert m.config.latent_size == 4
    ad = res.adapter
    ad.model.eval()
    ds = DiftDataset(toy, ad, k=4, targets=LatentTargetCache(ad, 4, None), progress=False)
    b = DiftCollator(ad.pad_id)([ds[0], ds[1]])
    with torch.no_grad():
        _, _, o1 = dift_forward(ad, b, DiftConfig())
        ad.model = m
        _, _, o2 = dift_forward(ad, b, DiftConfig())
    assert torch.equal(o1.logits, o2.logits)


def test_record_failing_mid_training_is_skipped_and_logged(toy, tmp_path):
    """A frame that passes validation (the file exists) but cannot be decoded when the DataLoader
    fetches it: the run finishes all its steps, and the record is in load_errors.jsonl with why."""
    import os

    d = tmp_path / "data"
    shutil.copytree(toy, d)
    rows = [json.loads(x) for x in (d / "dift.jsonl").read_text().splitlines()]
    (d / rows[2]["frames"][1]).write_bytes(b"garbage, not a png")
    out = tmp_path / "run"
    res = train_dift(_cfg(d, out, model="qwen2.5-vl-tiny", max_steps=4, save_steps=100, health_heldout=0))
    assert [r["step"] for r in res.losses] == [1, 2, 3, 4] and res.n_skipped == 0 and res.n_samples == 8
    logged = [json.loads(x) for x in (out / "load_errors.jsonl").read_text().splitlines()]
    assert logged and {e["line"] for e in logged} == {3}
    assert rows[2]["frames"][1] in logged[0]["reason"] and "not a readable image" in logged[0]["reason"]
    assert all(e["pid"] == os.getpid() for e in logged) and res.n_load_errors == len(logged)
    assert (out / "quarantine.jsonl").read_text() == "", "validation (stat only) accepted it"
    # DataLoader workers encode in other processes: same batches (same replacement), same losses
    w = train_dift(_cfg(d, tmp_path / "workers", model="qwen2.5-vl-tiny", max_steps=4, save_steps=100,
                        health_heldout=0, dataloader_workers=2))
    wlog = [json.loads(x) for x in (tmp_path / "workers" / "load_errors.jsonl").read_text().splitlines()]
    # (train_dift samples a few items for the target norm in the main process first: the workers it
    # forks then know the record is bad and skip it silently, with the same replacement)
    assert {e["line"] for e in wlog} == {3}
    for a, b in zip(res.losses, w.losses, strict=True):
        assert abs(a["loss"] - b["loss"]) < 1e-6, (a, b)


def test_existing_checkpoints_need_resume(toy, tmp_path):
    out = tmp_path / "run"
    (out / "checkpoint-3").mkdir(parents=True)
    (out / "checkpoint-3" / "trainer_state.json").write_text("{}")
    with pytest.raises(FileExistsError, match="--resume"):
        train_dift(_cfg(toy, out, max_steps=2))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train_dift(_cfg(toy, tmp_path / "empty", max_steps=2, resume=True))


@pytest.mark.slow
def test_resume_equals_uninterrupted(toy, tmp_path):
    full = train_dift(_cfg(toy, tmp_path / "a", model="qwen2.5-vl-tiny", max_steps=6))
    out = tmp_path / "b"
    train_dift(_cfg(toy, out, model="qwen2.5-vl-tiny", max_steps=6))
    # simulate a kill after step 3: drop the later checkpoint, the final model and the log tail
    shutil.rmtree(out / "checkpoint-6")
    (out / "model.safetensors").unlink()
    res = train_dift(_cfg(toy, out, model="qwen2.5-vl-tiny", max_steps=6, resume=True))
    assert [r["step"] for r in res.losses] == [1, 2, 3, 4, 5, 6]
    assert abs(res.final_loss - full.final_loss) < 1e-5, (res.final_loss, full.final_loss)
    for a, b in zip(full.losses, res.losses, strict=True):
        assert abs(a["loss"] - b["loss"]) < 1e-5, (a, b)
    sa, sb = full.adapter.model.state_dict(), res.adapter.model.state_dict()
    assert max((sa[k] - sb[k]).abs().max().item() for k in sa) < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("name", TINY_PRESETS)
def test_each_family_30_steps_both_losses_fall(toy, tmp_path, name):
    res = train_dift(_cfg(toy, tmp_path / "run", model=name, max_steps=30, save_steps=100))
    r = res.losses
    first = {k: sum(x[k] for x in r[:4]) / 4 for k in ("ce", "sim")}
    last = {k: sum(x[k] for x in r[-4:]) / 4 for k in ("ce", "sim")}
    assert last["ce"] < 0.8 * first["ce"], (first, last)
    assert last["sim"] < 0.8 * first["sim"], (first, last)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["cot", "raw-qa"])
def test_baseline_modes_train(toy, tmp_path, mode):
    res = train_dift(_cfg(toy, tmp_path / "run", model="qwen2.5-vl-tiny", max_steps=4, mode=mode))
    assert all(r.get("sim") is None for r in res.losses), "baselines have no latent positions"
    assert res.losses[-1]["ce"] < res.losses[0]["ce"]


@pytest.mark.slow
def test_lora_and_ablation_flags(toy, tmp_path):
    res = train_dift(_cfg(toy, tmp_path / "lora", model="qwen2.5-vl-tiny", max_steps=3, lora=True, use_ce=False))
    from transformers import AutoModelForImageTextToText

    m = AutoModelForImageTextToText.from_pretrained(tmp_path / "lora")
    assert not any("lora" in k for k in m.state_dict())
    assert res.losses[-1]["loss"] == pytest.approx(res.losses[-1]["sim"], rel=1e-5)


@pytest.mark.slow
def test_grad_checkpointing_and_accumulation(toy, tmp_path):
    """Grad checkpointing + accumulation give the same first-step loss as the plain run."""
    a = train_dift(_cfg(toy, tmp_path / "a", model="qwen2.5-vl-tiny", max_steps=2, batch_size=1, grad_accum=2))
    b = train_dift(_cfg(toy, tmp_path / "b", model="qwen2.5-vl-tiny", max_steps=2, batch_size=1, grad_accum=2,
                        grad_checkpointing=True))
    assert abs(a.losses[0]["loss"] - b.losses[0]["loss"]) < 1e-5
    assert abs(a.losses[1]["loss"] - b.losses[1]["loss"]) < 1e-4


def test_pair_targets_train_and_are_recorded(toy, tmp_path):
    """``--latent-target pair`` trains from the pair cache and saves ``latent_target`` in the config;
    a family without a temporal patch is refused with the reason."""
    train_dift(_cfg(toy, tmp_path / "run", model="qwen2.5-vl-tiny", max_steps=2, latent_target="pair"))
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["latent_target"] == "pair"
    assert list((tmp_path / "lt").rglob("K4-pair/*/*.safetensors"))
    with pytest.raises(NotImplementedError, match="temporal patch"):
        train_dift(_cfg(toy, tmp_path / "ivl", model="internvl3.5-tiny", max_steps=1, latent_target="pair"))


def test_imagery_answer_response_trains_and_is_recorded(toy, tmp_path):
    """``--response imagery-answer`` trains (both losses present) and saves ``dift_response``."""
    train_dift(_cfg(toy, tmp_path / "run", model="qwen2.5-vl-tiny", max_steps=2, response="imagery-answer"))
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["dift_response"] == "imagery-answer"
    rows = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert rows and all(r["ce"] > 0 and r["sim"] > 0 for r in rows if "ce" in r)
