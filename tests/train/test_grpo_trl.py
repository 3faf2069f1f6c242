"""Our GRPO loss == TRL 1.16's on identical tensors when there are no latent positions.

How: we CALL TRL's own code path, ``trl.GRPOTrainer._compute_loss`` (trl/trainer/grpo_trainer.py),
unbound, with a minimal stand-in for the trainer state (no model, no accelerator): the stand-in's
``_get_per_token_logps_and_entropies`` returns our log-probs, so TRL's ratio/clip/KL/aggregation
code runs verbatim on exactly our tensors. Options matched: ``loss_type`` in {grpo, bnpo},
``importance_sampling_level="token"``, ``epsilon=0.2`` (two-sided, ``epsilon_high`` = epsilon),
``beta`` in {0, 0.04}, KL = k3 (TRL's only estimator), no entropy mask/bonus, no vLLM correction,
gradient accumulation 1. TRL's ``completion_mask`` is our text mask (no latent positions here).
The advantage normalisation is compared against TRL's source reproduced with its own ``nanstd``
(it lives inside ``_generate_and_score_completions``, which needs a model to call).
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

trl_grpo = pytest.importorskip("trl.trainer.grpo_trainer")

from trl.trainer.utils import nanstd  # noqa: E402

from fourdthinker.train.grpo import group_advantages, grpo_loss  # noqa: E402


def _trl_loss(logps, old, ref, mask, adv, *, beta, loss_type, eps=0.2):
    acc = SimpleNamespace(reduce=lambda t, reduction="sum": t, gather=lambda t: t, gather_for_metrics=lambda t: t)
    fake = SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *a, **k: (logps, torch.zeros_like(logps), None),
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        importance_sampling_level="token",
        beta=beta,
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None),
        loss_type=loss_type,
        epsilon_low=eps,
        epsilon_high=eps,
        use_vllm=False,
        vllm_importance_sampling_correction=False,
        model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=1,
        _entropy_bonus_enabled=False,
        aux_loss_enabled=False,
        accelerator=acc,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
    )
    B, T = logps.shape
    inputs = {
        "prompt_ids": torch.zeros(B, 2, dtype=torch.long),
        "prompt_mask": torch.ones(B, 2, dtype=torch.long),
        "completion_ids": torch.zeros(B, T, dtype=torch.long),
        "completion_mask": mask.long(),
        "advantages": adv,
        "old_per_token_logps": old,
    }
    if beta:
        inputs["ref_per_token_logps"] = ref
    loss = trl_grpo.GRPOTrainer._compute_loss(fake, None, inputs)
    return loss, fake._metrics["train"]


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo"])
@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_loss_equals_trl(loss_type, beta):
    torch.manual_seed(1)
    B, T = 6, 9
    logps = (-torch.rand(B, T) * 3).requires_grad_(True)
    old = (logps + 0.4 * torch.randn(B, T)).detach()  # off-policy (mu > 1): clipping active
    ref = (logps + 0.2 * torch.randn(B, T)).detach()
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[torch.arange(B), torch.randint(3, T, (B,))] = False  # ragged ends
    mask = mask.cumprod(1).bool()  # padding after the first gap
    adv = torch.randn(B)

    ours, stats = grpo_loss(logps, adv, mask, old, ref, eps_low=0.2, beta=beta, kl="k3", loss_type=loss_type)
    (g_ours,) = torch.autograd.grad(ours, logps)
    theirs, metrics = _trl_loss(logps, old, ref, mask, adv, beta=beta, loss_type=loss_type)
    (g_theirs,) = torch.autograd.grad(theirs, logps)

    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)
    assert torch.allclose(g_ours, g_theirs, atol=1e-7), (g_ours - g_theirs).abs().max()
    assert stats["clip_frac"] == pytest.approx(metrics["clip_ratio/region_mean"][0], abs=1e-6)
    assert stats["clip_frac"] > 0, "test should exercise the clip"
    if beta:
        assert stats["kl"] == pytest.approx(metrics["kl"][0], abs=1e-6)


def test_advantages_equal_trl_group_normalisation():
    # TRL (grpo_trainer.py, scale_rewards="group"): A = (r - mean_g) / (nanstd_g + 1e-4)
    torch.manual_seed(2)
    G = 4
    r = torch.rand(3 * G)
    r[G : 2 * G] = 0.7  # a zero-variance group: TRL gives (0)/(0+1e-4) = 0 as well
    mean = r.view(-1, G).mean(1).repeat_interleave(G)
    std = nanstd(r.view(-1, G), dim=1).repeat_interleave(G)
    trl_adv = (r - mean) / (std + 1e-4)
    ours, stats = group_advantages(r, G, eps=1e-4)
    assert torch.allclose(ours, trl_adv, atol=1e-6)
    assert stats["zero_var_groups"] == 1.0
