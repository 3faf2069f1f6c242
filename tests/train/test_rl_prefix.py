"""4DRL with and without prefix sharing (``RLConfig.prefix_sharing``): the same rollouts, rewards,
losses and updated weights; the probe scores the same samples (docs/rl_speed.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.train.test_rl import make_rl_data

torch.set_num_threads(2)


def _run(tmp_path, sharing: bool, **kw):
    from fourdthinker.models import load
    from fourdthinker.train.rl import RLConfig, train_rl

    ad = load("qwen2.5-vl-tiny")
    V = ad.model.get_output_embeddings().weight.shape[0]

    def low_ids(completions, completion_ids, is_latent, **_):  # a reward that varies at init
        return [float(np.mean([t < V // 2 for t, lat in zip(ids, la, strict=True) if not lat] or [0]))
                for ids, la in zip(completion_ids, is_latent, strict=True)]

    cfg = RLConfig(data=str(tmp_path / "data" / "rl.jsonl"), out=str(tmp_path / f"run-{sharing}"), steps=2,
                   questions_per_step=2, num_generations=3, lr=1e-4, max_new_tokens=8, save_every=0, beta=0.01, mu=2,
                   max_frames=2, prefix_sharing=bool(sharing), **kw)
    res = train_rl(cfg, adapter=ad, progress=False, extra_rewards={"low_ids": (low_ids, 1.0)})
    return res, {n: p.detach().clone() for n, p in ad.model.named_parameters()}


def test_rl_steps_equal_with_and_without_prefix_sharing(tmp_path):
    make_rl_data(tmp_path / "data", n=3)
    shared, w_shared = _run(tmp_path, True, probe_questions=2, probe_samples=3)
    plain, w_plain = _run(tmp_path, False, probe_questions=2, probe_samples=3)
    _check_same(shared, w_shared, plain, w_plain)
    assert shared.probe["before"] == pytest.approx(plain.probe["before"])
    assert shared.probe["after"] == pytest.approx(plain.probe["after"])
    # micro-batches of 2 responses: each question's 3 responses replayed as 2 + 1 on its shared prompt
    micro, w_micro = _run(tmp_path, "micro", micro_batch_size=2)
    _check_same(micro, w_micro, plain, w_plain)


def _check_same(shared, w_shared, plain, w_plain):
    for a, b in zip(shared.metrics, plain.metrics, strict=True):
        for k in ("reward_mean", "reward_std", "accuracy", "format_rate", "response_len", "latent_blocks"):
            assert a[k] == b[k], k
        for k in ("loss", "kl", "ratio_mean", "grad_norm"):
            assert a[k] == pytest.approx(b[k], abs=1e-5), k
    assert shared.metrics[-1]["kl"] > 0  # the reference replay ran; mu=2 ran the rollout-policy replay
    worst = max((w_shared[n] - w_plain[n]).abs().max().item() for n in w_shared)
    assert worst <= 1e-5, worst


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo"])
def test_shared_microbatches_equal_unshared_whole_batch(tmp_path, loss_type):
    """The RLRecipe's micro-batches under sharing (Q=2, G=4, micro_batch_size 3: each question's
    responses as 3 + 1 on its own prompt; 6: one whole question each) accumulate the gradient of the
    unshared whole batch on the same trajectory."""
    from tests.train.test_rl_scale import _assert_same_grads, _grads, _recipe

    full = _recipe(tmp_path, "full", loss_type=loss_type)  # unshared, whole batch
    traj = full.generate_trajectory(1)
    full.grpo_step(traj)
    shared = _recipe(tmp_path, "shared", loss_type=loss_type, prefix_sharing=True)
    straj = shared.generate_trajectory(1)  # the same rollouts from one prefill per question
    assert [r.token_ids for r in straj.results] == [r.token_ids for r in traj.results]
    assert straj.chunks[0].batch["input_ids"].shape[0] == 2 and straj.chunks[0].vision is not None
    for m, n_mb in ((3, 4), (6, 2)):
        micro = _recipe(tmp_path, f"micro{m}", loss_type=loss_type, prefix_sharing=True, micro_batch_size=m)
        assert len(micro._micro_batches(straj)) == n_mb
        micro.grpo_step(straj)
        _assert_same_grads(_grads(full), _grads(micro))
