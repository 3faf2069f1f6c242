"""4DRL trainer (`train/rl.py`): records refused before training, exact replay of latent rollouts,
text-token masking, a quick end-to-end run with resume on the tiny Qwen2.5-VL preset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fourdthinker.train.rl import RLConfig, load_rl_records, text_token_mask
from fourdthinker.train.rl_data import synthetic_rl_records


def make_rl_data(root: Path, n: int = 4, frames: int = 2, size: int = 56, seed: int = 0) -> Path:
    """``n`` RL records with pre-extracted frames (PNG) under ``root``; returns the JSONL path."""
    return synthetic_rl_records(root, n=n, frames=frames, size=size, seed=seed)


def test_bad_records_are_refused_with_reasons(tmp_path):
    path = make_rl_data(tmp_path, n=2)
    good = json.loads(path.read_text().splitlines()[0])
    bad = [
        {**good, "id": "no_answer", "answer": None},
        {k: v for k, v in good.items() if k != "answer"} | {"id": "missing_key"},
        {**good, "id": "letter_E", "answer": "E"},
        {**good, "id": "lowercase", "answer": "b"},
        {**good, "id": "three_options", "options": {"A": "x", "B": "y", "C": "z"}},
        {**good, "id": "escape", "frames": ["../../etc/passwd"]},
        {**good, "id": "gone", "frames": ["frames/nope.png"]},
    ]
    with open(path, "a") as f:
        for r in bad:
            f.write(json.dumps(r) + "\n")
        f.write("{not json\n")
    records, root, rejected = load_rl_records(tmp_path)
    assert [r.id for r in records] == ["q0", "q1"] and root == tmp_path
    why = {r["id"]: r["reason"] for r in rejected}
    assert why["no_answer"] == "missing answer" and why["missing_key"] == "missing answer"
    assert "answer must be one of A-D" in why["letter_E"] and "answer must be one of A-D" in why["lowercase"]
    assert "keys A, B, C, D" in why["three_options"]
    assert "outside" in why["escape"].lower() or "escape" in why["escape"].lower()
    assert "not found" in why["gone"]
    assert any("not JSON" in r["reason"] for r in rejected)
    assert all(r["line"] > 2 and r["file"].endswith("rl.jsonl") for r in rejected)
    with open(path, "a") as f:  # a duplicated id refuses the whole file, naming both lines
        f.write(json.dumps(good) + "\n")
    with pytest.raises(ValueError, match=r"rl.jsonl:11: duplicated id 'q0' \(first on line 1\)"):
        load_rl_records(tmp_path)


def test_nothing_usable_is_a_clear_error(tmp_path):
    (tmp_path / "rl.jsonl").write_text(json.dumps({"id": "x", "question": "q"}) + "\n")
    with pytest.raises(ValueError, match=r"rl.jsonl: no usable RL records .*missing answer"):
        load_rl_records(tmp_path / "rl.jsonl")
    with pytest.raises(ValueError, match="no rl.jsonl"):
        (tmp_path / "empty").mkdir()
        load_rl_records(tmp_path / "empty")


def test_config_validation_and_yaml(tmp_path):
    with pytest.raises(ValueError, match="num_generations must be >= 2"):
        RLConfig(num_generations=1)
    with pytest.raises(ValueError, match="mode must be one of"):
        RLConfig(mode="ppo")
    y = tmp_path / "rl.yaml"
    y.write_text("lr: 0.001\nnum_generations: 4\nbeta: 0.0\n")
    cfg = RLConfig.from_yaml(y, steps=7, lr=None)
    assert (cfg.lr, cfg.num_generations, cfg.beta, cfg.steps) == (0.001, 4, 0.0, 7)
    y.write_text("learning_rate: 1\n")
    with pytest.raises(ValueError, match="unknown RL config keys \\['learning_rate'\\]"):
        RLConfig.from_yaml(y)
    d = RLConfig()  # reference launch-script defaults
    assert (d.lr, d.num_generations, d.beta, d.acc_weight, d.fmt_weight, d.epsilon, d.kl) == (
        1e-6, 8, 0.01, 1.0, 0.2, 0.2, "k3")


def test_text_token_mask_excludes_latent_and_padding():
    from fourdthinker.latent.decode import LatentIds

    lid = LatentIds(start=10, end=11, pad=12)
    ids = torch.tensor([[5, 10, 12, 12, 11, 6, 7, 0]])
    resp_mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 0]])
    lat = torch.tensor([[0, 0, 1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    m = text_token_mask(ids, resp_mask, lat, lid)
    assert m.tolist() == [[True, False, False, False, False, True, True, False]]
    m2 = text_token_mask(ids, resp_mask, lat, lid, score_latent_start=True)
    assert m2.tolist() == [[True, True, False, False, False, True, True, False]]


# ---------------------------------------------------------------------------- tiny model


@pytest.fixture(scope="module")
def adapter():
    torch.set_num_threads(2)
    from fourdthinker import models

    return models.load("qwen2.5-vl-tiny")


def _prompt_batch(adapter, data_dir, G):
    from fourdthinker.data.records import build_question_text
    from fourdthinker.train.rl import load_prompt_frames

    recs, root, _ = load_rl_records(data_dir)
    recs = [recs[0]] * G
    frames = [load_prompt_frames(r, root) for r in recs]
    return recs, adapter.encode_prompts(frames, [build_question_text(r.question, r.options) for r in recs])


def test_replay_reinjects_the_rollout_latents(adapter, tmp_path):
    """Policy/reference forwards must see exactly the rollout's inputs at latent slots.

    1. In the replay, the hidden state at the position before each latent slot equals the vector
       that the rollout fed into that slot (e_t = h_{t-1}, Eq. 10) -> the replay is the rollout.
    2. Feeding the <|latent_pad|> embedding instead (the reference's RL forward) changes the
       log-probs of the text tokens after the block -> that shortcut is off-policy."""
    from fourdthinker.latent.decode import latent_generate, latent_ids, replay_forward
    from fourdthinker.train.rl import response_logps

    make_rl_data(tmp_path, n=1)
    recs, batch = _prompt_batch(adapter, tmp_path, 2)
    lid = latent_ids(adapter)

    def open_block_first(ids, scores):  # force one latent block at the first response step
        if ids.shape[1] == batch["input_ids"].shape[1]:
            scores[:, :] = -float("inf")
            scores[:, lid.start] = 0.0
        return scores

    res = latent_generate(adapter, batch, latent_size=3, max_new_tokens=10, do_sample=True,
                          generator=torch.Generator().manual_seed(0), logits_processor=open_block_first)
    assert all(r.n_latent_steps == 3 and r.token_ids[0] == lid.start for r in res)
    rep = replay_forward(adapter, batch, res)
    L = batch["input_ids"].shape[1]
    for b, r in enumerate(res):
        slots = [i for i, f in enumerate(r.is_latent) if f]
        h_before = rep["hidden"][b, [L + i - 1 for i in slots]]  # hidden that produced each slot's input
        assert torch.allclose(h_before, r.latent_inputs, atol=1e-4), (h_before - r.latent_inputs).abs().max()

    lp, _ = response_logps(adapter, batch, res, grad=False)
    pad_res = [type(r)(**{**r.__dict__, "latent_inputs": adapter.embed_tokens(
        torch.full((r.n_latent_steps,), lid.pad)).detach()}) for r in res]
    lp_pad, rep_pad = response_logps(adapter, batch, pad_res, grad=False)
    after = torch.zeros_like(lp, dtype=torch.bool)
    after[:, 5:] = rep_pad["response_mask"][:, 5:].bool()  # text tokens after <lat_s> + 3 slots + <lat_e>
    assert (lp - lp_pad)[after].abs().max() > 1e-3


def test_rl_quick_end_to_end_and_resume(adapter, tmp_path):
    """Two real 4DRL steps (rollout -> rewards -> advantages -> replay -> GRPO update) on the tiny
    preset, with a reward that varies at init so the update is non-trivial; then a rerun with more
    steps resumes from the saved state instead of starting over."""
    from fourdthinker.train.rl import train_rl

    data = make_rl_data(tmp_path / "data", n=2)
    V = adapter.model.get_output_embeddings().weight.shape[0]

    def low_ids(completions, completion_ids, is_latent, **kw):  # varies at init: fraction of "low" ids
        return [float(np.mean([t < V // 2 for t, lat in zip(ids, la, strict=True) if not lat] or [0]))
                for ids, la in zip(completion_ids, is_latent, strict=True)]

    before = {n: p.detach().clone() for n, p in adapter.model.named_parameters()}
    cfg = RLConfig(data=str(data), out=str(tmp_path / "run"), steps=2, questions_per_step=1, num_generations=3,
                   lr=1e-3, max_new_tokens=8, save_every=1, beta=0.01, samples_per_step=1, max_frames=2)
    res = train_rl(cfg, adapter=adapter, progress=False, extra_rewards={"low_ids": (low_ids, 1.0)})
    assert [m["step"] for m in res.metrics] == [1, 2]
    m = res.metrics[-1]
    for k in ("reward_mean", "reward_std", "accuracy", "format_rate", "kl", "clip_frac", "latent_blocks",
              "response_len", "zero_var_groups", "t_rollout_s", "t_update_s", "reward_low_ids"):
        assert k in m and np.isfinite(m[k]), k
    assert m["ratio_mean"] == pytest.approx(1.0) and m["clip_frac"] == 0.0, "mu=1: on-policy, ratio 1"
    assert res.curve_png.exists() and res.curve_png.stat().st_size > 10_000
    assert (res.final_dir / "model.safetensors").exists()
    # the frame span RL ran with (unset: the init model's, else video) is saved for eval/probe
    assert json.loads((res.final_dir / "config.json").read_text())["frame_span"] == "video"
    assert (tmp_path / "run" / "checkpoints" / "step-1" / "trainer_state.json").exists()
    changed = [n for n, p in adapter.model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    frozen_moved = [n for n, p in adapter.model.named_parameters() if not p.requires_grad
                    and not torch.equal(p, before[n])]
    assert changed, "the update must move trainable weights"
    assert not frozen_moved, f"frozen (vision) weights moved: {frozen_moved[:3]}"
    assert any(n.startswith("model.visual") and not p.requires_grad for n, p in adapter.model.named_parameters())

    cfg3 = RLConfig(**{**cfg.__dict__, "steps": 3})
    res3 = train_rl(cfg3, progress=False, extra_rewards={"low_ids": (low_ids, 1.0)})
    assert [m["step"] for m in res3.metrics] == [1, 2, 3], "resumed at step 2, ran only step 3"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["resumed_from"] == 2


def test_probe_expected_reward_before_after(adapter, tmp_path):
    """probe_questions: fixed questions scored with S sampled responses before and after training;
    'before' is the init policy's (recomputed independently here), the summary's delta is the paired
    mean of after - before, and a resumed run keeps the stored 'before'."""
    from fourdthinker.train.rl import load_prompt_frames, load_rl_records, probe_expected_reward, train_rl

    data = make_rl_data(tmp_path / "data", n=3)
    cfg = RLConfig(data=str(data), out=str(tmp_path / "run"), steps=1, questions_per_step=1, num_generations=2,
                   lr=1e-3, max_new_tokens=8, save_every=1, beta=0.0, max_frames=2, probe_questions=2, probe_samples=3,
                   fmt_weight=0.2)
    recs, root, _ = load_rl_records(str(data))
    frames = {r.id: load_prompt_frames(r, root, max_frames=2) for r in recs}
    res = train_rl(cfg, adapter=adapter, progress=False)
    probe = json.loads((tmp_path / "run" / "probe.json").read_text())
    assert len(probe["ids"]) == 2 and len(probe["before"]) == len(probe["after"]) == 2
    assert all(0.0 <= v <= 1.2 for v in probe["before"] + probe["after"])  # accuracy 1.0 + format 0.2 at most
    p = res.probe
    assert p["questions"] == 2 and p["samples"] == 3
    assert p["delta"] == pytest.approx(np.mean(probe["after"]) - np.mean(probe["before"]))
    assert p["ci95"][0] <= p["delta"] <= p["ci95"][1]
    # the 'after' numbers are the final policy's: recomputing them with the same seed gives the same values
    by_id = {r.id: r for r in recs}
    again = probe_expected_reward(adapter, [by_id[i] for i in probe["ids"]], frames, cfg, {"accuracy": 1.0, "format": 0.2},
                                  latent_size=4, seed=cfg.seed + 99)
    assert again == pytest.approx(probe["after"])
    res2 = train_rl(RLConfig(**{**cfg.__dict__, "steps": 2}), progress=False)
    assert json.loads((tmp_path / "run" / "probe.json").read_text())["before"] == probe["before"]
    assert res2.probe["questions"] == 2
    with pytest.raises(ValueError, match="probe_questions"):
        RLConfig(probe_questions=-1)


def test_zero_advantage_step_skips_the_replay_exactly(adapter, tmp_path):
    """A constant reward gives every group zero variance: with beta 0 the GRPO gradient is exactly
    zero, so the replay forward/backward is skipped (logged) and, with a fresh AdamW and no decay,
    the weights stay bit-identical, as the full computation would leave them."""
    from fourdthinker.train.grpo import grpo_loss
    from fourdthinker.train.rl import train_rl

    lp = torch.randn(2, 5, requires_grad=True)
    loss, _ = grpo_loss(lp, torch.zeros(2), torch.ones(2, 5, dtype=torch.bool), None, None, beta=0.0)
    loss.backward()
    assert float(loss) == 0.0 and torch.count_nonzero(lp.grad) == 0  # what the skip relies on

    data = make_rl_data(tmp_path / "data", n=2)
    before = {n: p.detach().clone() for n, p in adapter.model.named_parameters()}
    cfg = RLConfig(data=str(data), out=str(tmp_path / "run"), steps=2, questions_per_step=1, num_generations=2,
                   lr=1e-2, max_new_tokens=6, save_every=0, beta=0.0, max_frames=2, acc_weight=0.0, fmt_weight=0.0)
    res = train_rl(cfg, adapter=adapter, progress=False, extra_rewards={"const": (lambda c, **kw: [1.0] * len(c), 1.0)})
    assert all(m["update_skipped"] and m["loss"] == 0.0 for m in res.metrics)
    assert all(torch.equal(p, before[n]) for n, p in adapter.model.named_parameters())
