"""Benchmark one 4DRL step: prefix sharing on the shallow full-width preset, and batched rollouts.

Part 1 (``prefix_sharing_speedup``): one RL step (rollout of G responses per question, then the
reference replay, the policy replay with its backward, and AdamW) with prefix sharing off (every
response re-reads its own copy of the video prompt: Q*G vision passes and prefills) and on (one
vision pass and one prefill per question, shared by its G responses in the rollout and in both
replays; ``train/rl.py`` ``prefix_sharing``). Model: ``qwen2.5-vl-3b-shallow`` (Qwen2.5-VL-3B's
real widths, heads, vocabulary and vision width; 2 LM layers, 2 vision blocks; random init;
``--model`` picks another).
Default shape (runs here): 2 frames of 448x448 (a 375-token prompt) and 48-token responses;
the target shape is ``--frames 8 --tokens 150`` (a 1,143-token prompt, 150-token responses;
~37 TFLOP for both modes, too much for this shared 2-core machine in 5 minutes). Every response
opens one latent block at its first step and never stops early, so both modes do the same decode
work; the same generator seed in both modes gives the same samples (checked). Reported per
phase: vision encoder, LM prefill, decode, replay (reference forward + policy forward/backward,
vision excluded), optimizer. bf16 (as on GPUs; this CPU has AMX, fp32 is ~3x slower).
``--estimate`` prints the FLOP model of the step (shallow and 3B) without running anything.

Part 2 (``batched_rollout_speedup``): on the tiny Qwen2.5-VL preset, the batched-group rollout
(all G responses of a question in ONE decode batch) vs generating them one by one.

Run: ``python benchmarks/rl_step.py [--g 8] [--q 2] [--tokens 48] [--frames 2] [--estimate]``. Q = 2 questions
per step is ``train rl``'s default; the replay runs one question per micro-batch.
Headline lines are printed last, one per line, ``name: value``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict
from contextlib import contextmanager

# OpenMP threads that spin while waiting burn their time slices on an oversubscribed machine (this
# shared 2-core box): measured 9x slower batched decode steps with 2 spinning threads. Passive
# waiting gives the same speed as 1 thread there and costs nothing on a dedicated machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

SHALLOW = "qwen2.5-vl-3b-shallow"


class PhaseClock:
    """Wall time per phase: forward hooks time the vision encoder (per phase) and the LM calls of
    the rollout (more than one position: prefill; one position: a decode step); ``phase`` times
    whole phases. Hooks are removed by ``close``."""

    def __init__(self, model, mode: str = "rollout"):
        self.t: dict[str, float] = defaultdict(float)
        self.mode = mode
        self._start: dict[str, float] = {}
        self._handles = []
        base = model.model
        for name, mod in (("vision", base.visual), ("lm", base.language_model)):
            self._handles.append(mod.register_forward_pre_hook(self._pre(name)))
            self._handles.append(mod.register_forward_hook(self._post(name), with_kwargs=True))

    def _pre(self, name):
        def hook(_m, args):
            self._start[name] = (time.perf_counter(), time.process_time())
        return hook

    def _post(self, name):
        def hook(_m, args, kwargs, out):
            w0, c0 = self._start.pop(name)
            dt, dc = time.perf_counter() - w0, time.process_time() - c0
            key = None
            if name == "vision":
                key = f"vision_{self.mode}"
            elif self.mode == "rollout":
                emb = kwargs.get("inputs_embeds")
                key = "prefill" if emb is not None and emb.shape[1] > 1 else "decode_lm"
            if key:
                self.t[key] += dt
                self.t["cpu_" + key] += dc
        return hook

    @contextmanager
    def phase(self, name):
        self.mode = name
        t0, c0 = time.perf_counter(), time.process_time()
        yield
        self.t[name] += time.perf_counter() - t0
        self.t["cpu_" + name] += time.process_time() - c0

    def close(self):
        for h in self._handles:
            h.remove()


# ---------------------------------------------------------------------------------------------
# FLOP model of one step (matmul FLOPs, 2 per multiply-add; used for the 3B estimate in docs/rl_speed.md)

QWEN25VL_3B = dict(layers=36, d=2048, ffn=11008, heads=16, kv_heads=2, vocab=151936,
                   vis_layers=32, vis_d=1280, vis_ffn=3420, merge_in=5120)


def step_flops(m: dict, *, L: int, V: int, R: int, G: int, Q: int = 1, sharing: bool, layers: int | None = None,
               vis_layers: int | None = None) -> dict[str, float]:
    """Matmul FLOPs of one 4DRL step (mu = 1, beta > 0: rollout, reference forward, policy
    forward + backward) per phase, for Q questions with L-token prompts (V of them video tokens,
    4 vision patches each), G responses of R tokens. Per LM token per layer:
    ``2 * (2 d^2 + 2 d d_kv + 3 d ffn)`` plus attention ``4 d * context``; the lm_head (``2 d vocab``)
    runs at response positions only (and once per decode step); vision per patch per block
    ``2 * (4 vd^2 + 3 vd vffn)`` + the 2x2 merger per token; backward = 2 x forward (trunk and
    head; the frozen encoder has none)."""
    nl = layers or m["layers"]
    nv = vis_layers or m["vis_layers"]
    d, f = m["d"], m["ffn"]
    dkv = d * m["kv_heads"] // m["heads"]
    lin = 2 * (2 * d * d + 2 * d * dkv + 3 * d * f)  # per token per layer
    head = 2 * d * m["vocab"]
    vis = nv * 2 * (4 * m["vis_d"] ** 2 + 3 * m["vis_d"] * m["vis_ffn"]) * 4 + 2 * (m["merge_in"] ** 2 + m["merge_in"] * d)

    def lm(tokens: float, ctx: float) -> float:  # tokens attending to ctx keys on average
        return nl * tokens * (lin + 4 * d * ctx)

    n = 1 if sharing else G
    fwd_prompt = n * lm(L, L / 2)
    resp_fwd = G * lm(R, L + R / 2) + G * R * head
    out = {
        "vision": Q * V * vis * (1 if sharing else 3 * G),
        "prefill": Q * fwd_prompt,
        "decode": Q * resp_fwd,
        "replay": Q * 4 * (fwd_prompt + resp_fwd),  # reference fwd + policy fwd + policy bwd (2 x fwd)
    }
    out["step"] = sum(out.values())
    return out


def replay_logps(ad, batch, res, *, grad, vision):
    """Log-probs of the responses. Both modes use ``shared_prompt_replay``, which computes logits
    only where the loss needs them: unshared (``batch`` repeats each prompt G times, n = 1) every
    response re-reads its own prompt copy; shared (each prompt once, n = G) the prompt is read once."""
    from fourdthinker.latent.prefix import shared_prompt_replay
    from fourdthinker.train.grpo import token_logps

    with torch.set_grad_enabled(grad):
        rep = shared_prompt_replay(ad, batch, res, grad=grad, vision=vision)
        return token_logps(rep["logits"], rep["response_ids"]), rep


def sharing_step(ad, ref, opt, frames, text, *, G, Q, T, sharing, seed, clock):
    """One step over Q questions (``frames[q]`` each) with G responses each; the replay runs one
    question per micro-batch (its G responses, gradients accumulated), as ``train rl
    --micro-batch-size G`` does, so the memory of a step does not grow with Q."""
    from fourdthinker.latent.decode import ForceTokens, latent_generate, latent_ids
    from fourdthinker.latent.prefix import encode_vision, select_prompts
    from fourdthinker.train.grpo import group_advantages, grpo_loss
    from fourdthinker.train.rl import text_token_mask

    lid = latent_ids(ad)
    n = G if sharing else 1  # responses per prompt row
    per = 1 if sharing else G  # prompt rows per question
    batch = ad.encode_prompts([f for f in frames[:Q] for _ in range(per)], [text] * (Q * per))
    L = batch["input_ids"].shape[1]
    force = ForceTokens(L, {0: lid.start})

    def hook(ids, scores):  # one latent block at the first step, then never an early stop
        scores = force(ids, scores)
        scores[:, ad.eos_ids] = -float("inf")
        return scores

    with clock.phase("rollout"), torch.no_grad():
        ad.model.eval()
        vision = encode_vision(ad.model, batch) if sharing else None  # once per question, reused below
        res = latent_generate(ad, batch, latent_size=4, max_new_tokens=T, do_sample=True, temperature=1.0, top_p=0.9,
                              generator=torch.Generator().manual_seed(seed), logits_processor=hook, stop_strings=(),
                              num_return_sequences=n, vision=vision)
    rewards = torch.tensor([float(i % 2) for i in range(Q * G)])  # any non-degenerate group
    adv, _ = group_advantages(rewards, G)
    total = 0.0
    with clock.phase("replay"):
        ad.model.train()
        opt.zero_grad(set_to_none=True)
        for q in range(Q):
            rows = list(range(q * per, (q + 1) * per))
            sub, vis = select_prompts(ad.model, batch, vision, rows) if Q > 1 else (batch, vision)
            res_q, adv_q = res[q * G : (q + 1) * G], adv[q * G : (q + 1) * G]
            ref_lp, _ = replay_logps(ref, sub, res_q, grad=False, vision=vis)
            lp, rep = replay_logps(ad, sub, res_q, grad=True, vision=vis)
            mask = text_token_mask(rep["response_ids"], rep["response_mask"], rep["latent_mask"], lid)
            loss, _ = grpo_loss(lp.float(), adv_q, mask, None, ref_lp.float(), beta=0.01)
            (loss / Q).backward()
            total += float(loss.detach()) / Q
            del lp, rep, ref_lp, loss
    with clock.phase("optimizer"):
        opt.step()
    ad.model.eval()
    return L, res, total


def part_sharing(args) -> dict[str, float]:
    from fourdthinker import models
    from fourdthinker.data.records import build_question_text
    from fourdthinker.labels import CAMERA_MOTIONS

    ad = models.load(args.model, dtype={"bf16": "bfloat16", "fp32": "float32"}[args.dtype])
    ad.freeze_visual()
    import copy

    ref = copy.copy(ad)
    ref.model = copy.deepcopy(ad.model).requires_grad_(False)
    # lr 0: AdamW does all its work but leaves the weights as they were, so both modes sample the same
    opt = torch.optim.AdamW([p for p in ad.model.parameters() if p.requires_grad], lr=0.0, fused=True)  # as train/rl.py
    rng = np.random.default_rng(0)
    frames = [[rng.integers(0, 255, (args.size, args.size, 3), dtype=np.uint8) for _ in range(args.frames)]
              for _ in range(args.q)]  # one video per question
    text = build_question_text("What is the camera movement from 1s to 3s?", dict(zip("ABCD", CAMERA_MOTIONS[:4], strict=True)))
    n_params = sum(p.numel() for p in ad.model.parameters())
    warm = PhaseClock(ad.model)  # first-call overheads (allocator, kernels) paid outside the timed steps
    sharing_step(ad, ref, opt, frames, text, G=2, Q=1, T=4, sharing=True, seed=args.seed, clock=warm)
    warm.close()
    out, samples = {}, {}
    for sharing in (False, True):
        clock, clock_ref = PhaseClock(ad.model), PhaseClock(ref.model, mode="replay")
        t0 = time.perf_counter()
        L, res, loss = sharing_step(ad, ref, opt, frames, text, G=args.g, Q=args.q, T=args.tokens, sharing=sharing,
                                    seed=args.seed, clock=clock)
        wall = time.perf_counter() - t0
        t, tr = clock.t, clock_ref.t
        clock.close()
        clock_ref.close()
        ph = {}
        for pre in ("", "cpu_"):  # wall time, and this process's CPU time (robust to other load)
            T, TR = (lambda k, t=t, pre=pre: t[pre + k]), (lambda k, tr=tr, pre=pre: tr[pre + k])
            ph.update({
                pre + "rollout": T("rollout"), pre + "replay": T("replay"), pre + "optimizer": T("optimizer"),
                pre + "vision": T("vision_rollout") + T("vision_replay") + TR("vision_replay"),
                pre + "prefill": T("prefill"),
                pre + "decode": T("rollout") - T("prefill") - T("vision_rollout"),
                pre + "replay_lm": T("replay") - T("vision_replay") - TR("vision_replay"),
            })
        ph["cpu_step"] = ph["cpu_rollout"] + ph["cpu_replay"] + ph["cpu_optimizer"]
        out[sharing] = {**ph, "step": wall, "L": L, "tokens": sum(len(r.token_ids) for r in res), "loss": loss}
        samples[sharing] = [r.token_ids for r in res]
    out["same_samples"] = samples[False] == samples[True]
    out["n_params"] = n_params
    return out


def part_batched(args) -> dict[str, float]:
    """Tiny preset: all G responses in one decode batch vs one by one (same budget, same work)."""
    from fourdthinker import models
    from fourdthinker.data.records import build_question_text
    from fourdthinker.labels import CAMERA_MOTIONS
    from fourdthinker.latent.decode import latent_generate, latent_ids

    ad = models.load("qwen2.5-vl-tiny")
    lid = latent_ids(ad)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (112, 112, 3), dtype=np.uint8) for _ in range(4)]
    text = build_question_text("What is the camera movement from 1s to 3s?", dict(zip("ABCD", CAMERA_MOTIONS[:4], strict=True)))
    G, T = args.g, 48
    batch = ad.encode_prompts([frames] * G, [text] * G)
    one = ad.encode_prompts([frames], [text])
    L = batch["input_ids"].shape[1]

    def one_block_then_free(ids, scores):
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

    decode(batch, 0)  # warm-up
    tb, ts = [], []
    nb = ns = 0
    for r in range(2):
        t0 = time.perf_counter()
        res = decode(batch, 100 + r)
        tb.append(time.perf_counter() - t0)
        nb = sum(len(x.token_ids) for x in res)
        t0 = time.perf_counter()
        outs = [decode(one, 200 + r * G + i)[0] for i in range(G)]
        ts.append(time.perf_counter() - t0)
        ns = sum(len(x.token_ids) for x in outs)
    tb_, ts_ = statistics.median(tb), statistics.median(ts)
    return {"batched_s": tb_, "single_s": ts_, "batched_tps": nb / tb_, "single_tps": ns / ts_,
            "speedup": (ts_ / ns) / (tb_ / nb)}


def print_estimate(args) -> None:
    """The FLOP model at the shallow preset (to check against the measurement) and at 3B."""
    V = args.frames // 2 * (args.size // 28) ** 2
    L = V + 119  # the question, options and chat template around the video: 119 tokens (measured)
    print(f"FLOP model (TFLOP per step; Q={args.q}, G={args.g}, prompt {L} tokens ({V} video), responses {args.tokens}):")
    print(f"{'phase':<10}{'shallow off':>13}{'shallow on':>12}{'3B off':>10}{'3B on':>10}")
    rows = {}
    for name, kw in (("shallow", dict(layers=2, vis_layers=2)), ("3B", {})):
        for sh in (False, True):
            rows[name, sh] = step_flops(QWEN25VL_3B, L=L, V=V, R=args.tokens, G=args.g, Q=args.q, sharing=sh, **kw)
    for k in ("vision", "prefill", "decode", "replay", "step"):
        print(f"{k:<10}" + "".join(f"{rows[key][k] / 1e12:>{w}.2f}" for key, w in
                                   ((("shallow", False), 13), (("shallow", True), 12), (("3B", False), 10), (("3B", True), 10))))
    for name in ("shallow", "3B"):
        print(f"flop_speedup_{name}: {rows[name, False]['step'] / rows[name, True]['step']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=SHALLOW, help="model for the prefix-sharing step (a preset or a folder)")
    ap.add_argument("--g", type=int, default=8, help="responses per question (G)")
    ap.add_argument("--q", type=int, default=2, help="questions per step (Q; 2 = train rl's default questions_per_step)")
    ap.add_argument("--tokens", type=int, default=48, help="response budget (latent slots included); 150 = the target shape")
    ap.add_argument("--frames", type=int, default=2, help="video frames per prompt (8 at 448x448: a 1,143-token prompt)")
    ap.add_argument("--size", type=int, default=448, help="frame side in pixels")
    ap.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-batched", action="store_true", help="skip part 2 (tiny batched vs one-by-one)")
    ap.add_argument("--estimate", action="store_true", help="print only the FLOP model (shallow and 3B), no run")
    args = ap.parse_args()
    if args.estimate:
        print_estimate(args)
        return
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    t_all = time.perf_counter()
    sh = part_sharing(args)
    off, on = sh[False], sh[True]
    print(f"device: cpu ({args.threads} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}); model {args.model} "
          f"({sh['n_params'] / 1e6:.0f} M params, {args.dtype}); Q={args.q}, G={args.g}; prompt {off['L']} tokens; "
          f"responses {off['tokens'] / (args.q * args.g):.0f} tokens (one latent block each)")
    print(f"{'phase (s)':<12}{'wall off':>10}{'wall on':>10}{'ratio':>8}{'cpu off':>10}{'cpu on':>10}{'ratio':>8}")
    for k in ("vision", "prefill", "decode", "replay_lm", "optimizer", "rollout", "replay", "step"):
        c = "cpu_" + k
        print(f"{k:<12}{off[k]:>10.2f}{on[k]:>10.2f}{off[k] / max(on[k], 1e-9):>8.2f}"
              f"{off[c]:>10.2f}{on[c]:>10.2f}{off[c] / max(on[c], 1e-9):>8.2f}")
    print(f"same samples with and without sharing: {sh['same_samples']} (exact in fp32, tests/latent/test_prefix.py; "
          f"bf16 roundings differ with the batch shape and can flip a sample)")
    bt = None if args.skip_batched else part_batched(args)
    if bt:
        print(f"tiny preset, G={args.g} responses of 48 tokens: batched {bt['batched_s']:.2f} s, one-by-one {bt['single_s']:.2f} s")
    print_estimate(args)
    print(f"total benchmark time: {time.perf_counter() - t_all:.0f} s")
    print(f"rl_step_unshared_s: {off['step']:.2f}")
    print(f"rl_step_shared_s: {on['step']:.2f}")
    print(f"rollout_speedup: {off['rollout'] / on['rollout']:.2f}")
    print(f"replay_speedup: {off['replay'] / on['replay']:.2f}")
    print(f"prefix_sharing_speedup: {off['step'] / on['step']:.2f}")
    print(f"rollout_speedup_cpu: {off['cpu_rollout'] / on['cpu_rollout']:.2f}")
    print(f"replay_speedup_cpu: {off['cpu_replay'] / on['cpu_replay']:.2f}")
    print(f"prefix_sharing_speedup_cpu: {off['cpu_step'] / on['cpu_step']:.2f}")
    if bt:
        print(f"batched_rollout_tokens_per_s: {bt['batched_tps']:.1f}")
        print(f"sequential_rollout_tokens_per_s: {bt['single_tps']:.1f}")
        print(f"batched_rollout_speedup: {bt['speedup']:.2f}")


if __name__ == "__main__":
    main()
