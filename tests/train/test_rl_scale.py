"""4DRL at scale, checked small (tiny preset, fp32, CPU): the micro-batched replay and --grad-accum
give exactly the whole-batch gradient for every loss normalisation, logits computed only at
response positions (chunked) give the full-logits log-probs, the frozen reference never moves
while the KL grows, generators live on the model's device, and a bf16 (mixed-precision) step runs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fourdthinker import models
from fourdthinker.train.rl import RLConfig, RLRecipe
from fourdthinker.train.rl_step import merge_loss_stats, microbatch_weight

sys.path.insert(0, str(Path(__file__).parent))
from test_rl import make_rl_data  # noqa: E402


def _low_ids(V):
    def low_ids(completions, completion_ids, is_latent, **kw):  # varies at init: a non-zero advantage
        return [float(np.mean([t < V // 2 for t, lat in zip(ids, la, strict=True) if not lat] or [0]))
                for ids, la in zip(completion_ids, is_latent, strict=True)]
    return low_ids


def _recipe(tmp_path, name, **kw) -> RLRecipe:
    """A set-up recipe on a fresh tiny adapter (same init weights every time), lr 0 so that a
    ``grpo_step`` leaves the accumulated gradient in ``.grad`` without moving the weights."""
    ad = models.load("qwen2.5-vl-tiny")
    V = ad.model.get_output_embeddings().weight.shape[0]
    base = dict(data=str(make_rl_data(tmp_path / "data", n=4)), out=str(tmp_path / name), steps=1,
                questions_per_step=2, num_generations=4, lr=0.0, max_new_tokens=10, beta=0.1, max_frames=2,
                max_grad_norm=0.0, threads=1, temperature=1.0,
                prefix_sharing=False)  # one prompt row per response: these tests cut and re-encode rows (the shared
    # layout's micro-batches are tested in tests/train/test_rl_prefix.py)
    r = RLRecipe(RLConfig(**{**base, **kw}), adapter=ad, progress=False, extra_rewards={"low": (_low_ids(V), 1.0)})
    r.setup()
    return r


def _grads(r: RLRecipe) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in r.adapter.model.named_parameters() if p.grad is not None}


def _assert_same_grads(a: dict, b: dict, tol: float = 1e-5) -> None:
    assert a.keys() == b.keys() and a, (len(a), len(b))
    worst = max(((a[n] - b[n]).abs().max().item(), n) for n in a)
    assert worst[0] <= tol, f"largest gradient difference {worst[0]:.2e} at {worst[1]}"
    assert any(g.abs().sum() > 0 for g in a.values()), "the gradient is all zero: nothing was compared"


@pytest.mark.parametrize("loss_type,ckpt", [("grpo", False), ("bnpo", True), ("dr_grpo", False)])
def test_microbatched_gradient_equals_whole_batch(tmp_path, loss_type, ckpt):
    """Same trajectory (Q*G = 8 responses), replayed whole vs in micro-batches of 3, 3, 2 (uneven, so
    a wrong normalisation shows): every parameter's gradient within 1e-5. The bnpo case also turns on
    gradient checkpointing on the micro-batched side."""
    full = _recipe(tmp_path, "full", loss_type=loss_type)
    traj = full.generate_trajectory(1)
    assert traj.adv.abs().sum() > 0, "the reward must vary so that the policy term is non-zero"
    upd_full = full.grpo_step(traj)
    micro = _recipe(tmp_path, "micro", loss_type=loss_type, micro_batch_size=3, gradient_checkpointing=ckpt)
    assert len(micro._micro_batches(traj)) == 3
    upd_micro = micro.grpo_step(traj)
    _assert_same_grads(_grads(full), _grads(micro))
    assert float(upd_micro.loss) == pytest.approx(float(upd_full.loss), abs=1e-6)
    for k in ("kl", "clip_frac", "ratio_mean", "text_tokens"):
        assert upd_micro.loss_stats[k] == pytest.approx(upd_full.loss_stats[k], abs=1e-6), k


def test_grad_accum_equals_one_batch_of_the_union(tmp_path):
    """--grad-accum 2 (two decodes of Q=1 question x G) gives the gradient of one whole batch holding
    both decodes' responses (the same rollouts, prompts encoded together), for token-mean bnpo."""
    from fourdthinker.train.rl import Chunk, Trajectory

    acc = _recipe(tmp_path, "accum", questions_per_step=1, grad_accum=2, loss_type="bnpo")
    traj = acc.generate_trajectory(1)
    assert len(traj.chunks) == 2 and len(traj.results) == 8
    acc.grpo_step(traj)
    one = _recipe(tmp_path, "one", questions_per_step=2, loss_type="bnpo")
    frames = [f for c in traj.chunks for f in c.frames]
    texts = [t for c in traj.chunks for t in c.texts]
    batch = one.adapter.encode_prompts(frames, texts, fps=one.cfg.fps)
    union = Trajectory(traj.recs, [Chunk(batch, frames, texts, 0, 8)], traj.results, traj.per, traj.rewards,
                       traj.adv, traj.adv_stats, 0.0)
    one.grpo_step(union)
    _assert_same_grads(_grads(acc), _grads(one))


def test_sliced_chunked_logits_equal_full_logits(tmp_path):
    """Log-probs from the lm_head applied only at response positions, 3 positions at a time under
    checkpointing, equal the full-logits path (head over prompt + response, then sliced), and so do
    their gradients."""
    from fourdthinker.latent.decode import replay_forward
    from fourdthinker.train.grpo import token_logps
    from fourdthinker.train.rl_step import response_logps

    r = _recipe(tmp_path, "x", beta=0.0)
    traj = r.generate_trajectory(1)
    batch, results, model = traj.chunks[0].batch, traj.results, r.adapter.model
    R = max(len(x.token_ids) for x in results)
    assert R > 3, "the chunked path must really cut the responses"
    rep = replay_forward(r.adapter, batch, results, grad=True)
    L = int(rep["prompt_len"])
    full = token_logps(rep["logits"][:, L - 1 : L + R - 1], rep["response_ids"])
    mask = rep["response_mask"].bool()
    (full * mask).sum().backward()
    g_full = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    sliced, _ = response_logps(r.adapter, batch, results, grad=True, logit_chunk=3)
    assert sliced.shape == full.shape
    assert (sliced - full)[mask].abs().max() <= 1e-5
    (sliced * mask).sum().backward()
    _assert_same_grads(g_full, {n: p.grad for n, p in model.named_parameters() if p.grad is not None}, tol=1e-4)


def test_reference_never_moves_and_kl_grows(tmp_path):
    """Two real steps with beta > 0 and micro-batching: the policy moves, the frozen reference's
    weights stay bit-identical to the init, and the KL of step 2 (after one update) is > 0."""
    r = _recipe(tmp_path, "kl", lr=1e-2, steps=2, beta=0.1, micro_batch_size=3, max_grad_norm=1.0)
    init = {n: p.detach().clone() for n, p in r.ref_adapter.model.named_parameters()}
    assert all(not p.requires_grad for p in r.ref_adapter.model.parameters())
    metrics = []
    for step in (1, 2):
        traj = r.generate_trajectory(step)
        metrics.append(r.log(step, traj, r.grpo_step(traj)))
    moved = [n for n, p in r.adapter.model.named_parameters() if p.requires_grad and not torch.equal(p, init[n])]
    assert moved, "the policy did not move"
    changed = [n for n, p in r.ref_adapter.model.named_parameters() if not torch.equal(p, init[n])]
    assert not changed, f"reference weights changed: {changed[:3]}"
    assert metrics[0]["kl"] == pytest.approx(0.0, abs=1e-6), "step 1 replays the init policy: KL 0"
    assert metrics[1]["kl"] > 0, metrics[1]


def test_generators_and_models_on_the_run_device(tmp_path):
    """Sampling generators are created on the model's device (CPU here; the same code puts them on
    CUDA), the policy/reference sit on the resolved device, and no CPU-only generator is left in the
    training code."""
    from fourdthinker.train.distributed import resolve_device_dtype

    r = _recipe(tmp_path, "dev", beta=0.1)
    dev = next(r.adapter.model.parameters()).device
    assert r.step_generator(1).device == dev == r.device
    assert next(r.ref_adapter.model.parameters()).device == dev
    assert resolve_device_dtype("auto", "auto")[1] == (torch.bfloat16 if torch.cuda.is_available() else torch.float32)
    assert resolve_device_dtype("cpu", "bf16") == (torch.device("cpu"), torch.bfloat16)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device_dtype("cuda", "auto")
    src = Path(__file__).parents[2] / "src" / "fourdthinker" / "train"
    bare = [p.name for p in src.glob("*.py") if "torch.Generator()" in p.read_text()]
    assert not bare, f"CPU-only torch.Generator() in {bare}"


def test_bf16_mixed_precision_step_runs(tmp_path):
    """--dtype bf16 on CPU: trained weights and AdamW stay float32, the reference is stored in bf16,
    one step gives a finite loss and KL and moves the policy."""
    r = _recipe(tmp_path, "bf16", dtype="bf16", lr=1e-2, beta=0.1, micro_batch_size=4)
    assert r.mixed and next(r.ref_adapter.model.parameters()).dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in r.params)
    before = [p.detach().clone() for p in r.params]
    traj = r.generate_trajectory(1)
    upd = r.grpo_step(traj)
    assert np.isfinite(float(upd.loss)) and np.isfinite(upd.loss_stats["kl"])
    assert any(not torch.equal(a, p) for a, p in zip(before, r.params, strict=True))


def test_microbatch_weight_and_stats_by_hand():
    # bnpo: 12 text tokens in all, this micro-batch holds 3 -> its token mean counts 3/12 of the whole.
    assert microbatch_weight("bnpo", rows=2, text_tokens=3, width=5, total_rows=8, total_text_tokens=12,
                             total_width=9) == 0.25
    # grpo: a mean over responses -> rows / total rows = 2/8.
    assert microbatch_weight("grpo", rows=2, text_tokens=3, width=5, total_rows=8, total_text_tokens=12,
                             total_width=9) == 0.25
    # dr_grpo: sum / (B*T) -> (2*5)/(8*10) = 0.125.
    assert microbatch_weight("dr_grpo", rows=2, text_tokens=3, width=5, total_rows=8, total_text_tokens=12,
                             total_width=10) == 0.125
    s = merge_loss_stats([({"policy_loss": 1.0, "kl": 0.2, "clip_frac": 0.0, "ratio_mean": 1.0}, 1),
                          ({"policy_loss": 3.0, "kl": 0.6, "clip_frac": 0.5, "ratio_mean": 1.0}, 3)])
    # token-weighted: kl = (0.2*1 + 0.6*3)/4 = 0.5; clip = 1.5/4
    assert s["kl"] == pytest.approx(0.5) and s["clip_frac"] == pytest.approx(0.375) and s["text_tokens"] == 4


def test_paper_config_loads_with_the_reference_settings():
    cfg = RLConfig.from_yaml(Path(__file__).parents[2] / "configs" / "rl_qwen2.5vl3b_paper.yaml", data="x")
    assert (cfg.questions_per_step, cfg.num_generations, cfg.grad_accum, cfg.max_new_tokens) == (8, 8, 2, 8192)
    assert (cfg.lr, cfg.beta, cfg.acc_weight, cfg.fmt_weight, cfg.dtype) == (1e-6, 0.01, 1.0, 0.2, "bfloat16")
    assert (cfg.max_frames, cfg.max_pixels, cfg.fps) == (50, 200704, 1.0)  # = configs/dift_qwen2.5vl3b_paper.yaml
    assert cfg.gradient_checkpointing and cfg.micro_batch_size == 4
