"""Benchmark one 4DRL step on the tiny Qwen2.5-VL preset (CPU, ~1-2 min).

Measures, in the same run:
1. the time split of one RL step: rollout (G sampled responses, one batched latent-recurrent
   decode) vs policy update (reference + policy replay forwards, GRPO loss, backward, AdamW);
2. the batched-group rollout (all G responses of a question in ONE decode batch, as
   ``train/rl.py`` does) vs generating them one by one (G decodes of batch 1), with the same
   per-response token budget and one forced latent block per response so both do the same work.

Run: ``python benchmarks/rl_step.py [--g 8] [--tokens 48] [--repeats 2]``.
Headline lines are printed last, one per line, ``name: value``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

# OpenMP threads that spin while waiting burn their time slices on an oversubscribed machine (this
# shared 2-core box): measured 9x slower batched decode steps with 2 spinning threads. Passive
# waiting gives the same speed as 1 thread there and costs nothing on a dedicated machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--g", type=int, default=8, help="responses per question (G)")
    ap.add_argument("--tokens", type=int, default=48, help="response budget (latent slots included)")
    ap.add_argument("--repeats", type=int, default=2, help="timed repeats (median reported)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from transformers.utils import logging as hf_logging

    from fourdthinker import models
    from fourdthinker.data.records import build_question_text
    from fourdthinker.labels import CAMERA_MOTIONS
    from fourdthinker.latent.decode import latent_generate, latent_ids
    from fourdthinker.train.grpo import group_advantages, grpo_loss
    from fourdthinker.train.rl import response_logps, text_token_mask

    hf_logging.disable_progress_bar()
    ad = models.load("qwen2.5-vl-tiny")
    ad.freeze_visual()
    ref = models.load("qwen2.5-vl-tiny")
    ref.model.requires_grad_(False)
    lid = latent_ids(ad)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (112, 112, 3), dtype=np.uint8) for _ in range(4)]
    text = build_question_text("What is the camera movement from 1s to 3s?", dict(zip("ABCD", CAMERA_MOTIONS[:4], strict=True)))
    G, T = args.g, args.tokens
    batch = ad.encode_prompts([frames] * G, [text] * G)
    one = ad.encode_prompts([frames], [text])
    L = batch["input_ids"].shape[1]

    def one_block_then_free(ids, scores):
        # Same work in both modes: every response opens one latent block at its first step and
        # never emits EOS/</answer> early (so every response uses the full budget).
        if ids.shape[1] == L:
            scores[:, :] = -float("inf")
            scores[:, lid.start] = 0.0
        else:
            scores[:, ad.eos_ids] = -float("inf")
        return scores

    def decode(b, seed):
        return latent_generate(ad, b, latent_size=4, max_new_tokens=T, do_sample=True, temperature=1.0, top_p=0.9,
                               generator=torch.Generator().manual_seed(seed), logits_processor=one_block_then_free,
                               stop_strings=())

    opt = torch.optim.AdamW([p for p in ad.model.parameters() if p.requires_grad], lr=1e-5)

    def update(results):
        rewards = torch.tensor([float(i % 2) for i in range(G)])  # any non-degenerate group
        adv, _ = group_advantages(rewards, G)
        ad.model.train()
        with torch.no_grad():
            ref_lp, _ = response_logps(ref, batch, results, grad=False)
        lp, rep = response_logps(ad, batch, results, grad=True)
        mask = text_token_mask(rep["response_ids"], rep["response_mask"], rep["latent_mask"], lid)
        loss, _ = grpo_loss(lp, adv, mask, None, ref_lp, beta=0.01)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ad.model.eval()

    decode(batch, 0)  # warm-up (allocator, first-call overheads)
    t_roll, t_upd, t_batched, t_single = [], [], [], []
    n_batched = n_single = 0
    for r in range(args.repeats):
        t0 = time.perf_counter()
        res = decode(batch, 100 + r)
        t1 = time.perf_counter()
        update(res)
        t2 = time.perf_counter()
        t_roll.append(t1 - t0)
        t_upd.append(t2 - t1)
        t_batched.append(t1 - t0)
        n_batched = sum(len(x.token_ids) for x in res)
        t0 = time.perf_counter()
        outs = [decode(one, 200 + r * G + i)[0] for i in range(G)]
        t_single.append(time.perf_counter() - t0)
        n_single = sum(len(x.token_ids) for x in outs)

    roll, upd = statistics.median(t_roll), statistics.median(t_upd)
    tb, ts = statistics.median(t_batched), statistics.median(t_single)
    print(f"device: cpu ({args.threads} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}); model qwen2.5-vl-tiny; prompt {L} tokens; G={G}; budget {T} tokens")
    print(f"one RL step: rollout {roll:.2f} s + update {upd:.2f} s (ref replay + policy replay + backward + AdamW)")
    print(f"rollout of {G} responses: batched {tb:.2f} s ({n_batched} tokens), one-by-one {ts:.2f} s ({n_single} tokens)")
    print(f"rl_step_s: {roll + upd:.3f}")
    print(f"rollout_share: {roll / (roll + upd):.3f}")
    print(f"update_share: {upd / (roll + upd):.3f}")
    print(f"batched_rollout_tokens_per_s: {n_batched / tb:.1f}")
    print(f"sequential_rollout_tokens_per_s: {n_single / ts:.1f}")
    print(f"batched_rollout_speedup: {(ts / n_single) / (tb / n_batched):.2f}")


if __name__ == "__main__":
    main()
