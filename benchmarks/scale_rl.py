"""Memory and time of one 4DRL policy update at real widths, on a CPU (docs/rl_full_size.md).

What it measures, on ``--model`` (default ``qwen2.5-vl-3b-shallow``: Qwen2.5-VL-3B's widths and
151,936-row vocabulary with 2 LM layers and 2 vision blocks), with Q = 2 questions x G = 8
responses = 16 responses per update, fp32, through the real ``RLRecipe`` code path
(``generate_trajectory`` then ``grpo_step``; ``--beta 0.01`` adds the frozen reference, off by
default for memory, see below):

* ``rl_replay_peak_ratio``: the memory one policy update (``grpo_step``: reference replay, policy
  replay with gradients, backward, AdamW step) adds on top of what the process holds just before
  it (weights, frozen reference, AdamW state, the rollout), with ``--micro-batch-size 2`` divided
  by the same with the whole batch (``--micro-batch-size 0``). Target <= 0.35.
* ``rl_microbatch_grad_maxdiff``: the largest absolute difference, over every trainable
  parameter, between the two runs' gradients (same rollouts: same seed, same init). Target <= 1e-5.
* ``shallow_rl_step_s`` / ``shallow_rl_peak_rss_gb``: wall time of one whole RL step (rollout +
  update) with micro-batches of 2, and that process's peak RSS.

Method (memory). One FRESH subprocess (``--child``) rolls out once and runs both updates on that
rollout (micro-batched first, then the whole batch; lr 0, so the weights and the rollouts are the
same for both), so no allocator cache or earlier peak carries over from other work, with glibc's
mmap threshold fixed at 128 KiB (``MALLOC_MMAP_THRESHOLD_``): every tensor buffer is its own mapping and is returned to the OS
when freed, so the resident set follows the live tensors. In the child: set up the recipe, make
AdamW's state exist (one step on zero gradients, which leaves the weights as they are: the state
is "held before" an update in any run after the first), roll out, then ``held`` = RSS (psutil)
just before ``grpo_step``; during it a thread samples RSS every 2 ms, and ``getrusage``'s
``ru_maxrss`` is read after it (used when it rose during the update, i.e. when the update set the
process's lifetime peak). ``added = peak - held``. Gradient buffers (freed between steps with
``zero_grad(set_to_none=True)``) count as added memory, as they do in training.

Memory plan for this shared 24 GB machine (one process must stay under ~8 GB): the vision tower is
frozen (as in every 4DRL run) and so is the tied embedding / lm_head matrix (311 M of the ~0.54 B
parameters), so the trained parameters are the two LM layers and norms (154 M), and there is no
reference copy (beta 0). That keeps weights + AdamW state near 4 GB. The activations measured are
those of a full fine-tune of those layers; the float32 gradient buffer (0.62 GB) is in both
configurations' "added" memory and is what keeps the ratio above the activations' own ratio.

What grows with a step's size. With prefix sharing (``train rl``'s default), a question's prompt
runs once for its G responses, and a micro-batch smaller than G still holds its question's whole
prompt. So what micro-batching bounds is the RESPONSES' share: the default shape is 2 frames of
224 x 224 (a 257-token prompt) and 192-token responses (16 x 192 response tokens against 2 prompts),
where the whole batch adds ~7 GB and fits this 24 GB machine. With 16-token responses the update's
memory is the two prompts plus constants (the gradient buffer) in both configurations and the
ratio is ~1 (measured 1.09 with 8-frame, 689-token prompts). ``--no-prefix-sharing`` gives every
response its own prompt copy (the setting where the prompt length is what grows the whole batch).
Measured numbers: docs/rl_full_size.md.

    python benchmarks/scale_rl.py [--model qwen2.5-vl-3b-shallow] [--frames 2] [--size 224] [--tokens 192] [--no-prefix-sharing]

Headline lines (last), one per line: ``name: value``. ``main()`` returns them as a dict.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "OMP_WAIT_POLICY": "PASSIVE"}


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _maxrss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def child(spec: dict) -> dict:
    """Both configurations in this (fresh) process, on ONE rollout: the micro-batched update first,
    then the whole-batch one (lr 0: the weights stay, so both updates see the same model and the
    same rollouts). Each update's memory is measured from what the process holds just before it."""
    import gc
    import threading

    import torch

    from fourdthinker import models
    from fourdthinker.train.rl import RLConfig, RLRecipe
    from fourdthinker.train.rl_data import synthetic_rl_records

    torch.set_num_threads(spec["threads"])
    tmp = Path(spec["tmp"])
    data = synthetic_rl_records(tmp / "data", n=2, frames=spec["frames"], size=spec["size"])
    ad = models.load(spec["model"])
    ad.model.get_input_embeddings().weight.requires_grad_(False)  # memory plan (docstring): tied lm_head too
    cfg = RLConfig(data=str(data), init=spec["model"], out=str(tmp / "out"), steps=1,
                   questions_per_step=2, num_generations=8, lr=0.0, beta=spec["beta"], max_new_tokens=spec["tokens"],
                   max_frames=spec["frames"], max_pixels=spec["size"] ** 2, max_grad_norm=0.0, save_every=0,
                   micro_batch_size=spec["micro"], threads=spec["threads"], device="cpu", dtype="float32", seed=0,
                   prefix_sharing=spec.get("sharing", True))

    def even_ids(completions, completion_ids, **kw):  # varies at init, so no group has zero advantage
        return [sum(t % 2 == 0 for t in ids) / max(1, len(ids)) for ids in completion_ids]

    r = RLRecipe(cfg, adapter=ad, progress=False, extra_rewards={"even_ids": (even_ids, 1.0)})
    r.setup()
    for p in r.params:  # AdamW state exists before the measured update (zero gradients: weights unchanged)
        p.grad = torch.zeros_like(p)
    r.opt.step()
    r.opt.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    traj = r.generate_trajectory(1)
    t_roll = time.perf_counter() - t0
    out = {"t_rollout_s": t_roll, "prompt_len": int(traj.chunks[0].batch["input_ids"].shape[1]),
           "response_len": sum(len(x.token_ids) for x in traj.results) / len(traj.results),
           "trainable": sum(p.numel() for p in r.params), "params": sum(p.numel() for p in r.adapter.model.parameters())}
    grads = {}
    for name, micro in (("micro", spec["micro"]), ("whole", 0)):  # the smaller peak first
        r.cfg.micro_batch_size = micro
        r.opt.zero_grad(set_to_none=True)
        gc.collect()
        held, maxrss_before = _rss(), _maxrss()
        peak, done = [held], threading.Event()

        def sample(peak=peak, done=done):
            while not done.is_set():
                peak[0] = max(peak[0], _rss())
                time.sleep(0.002)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        t1 = time.perf_counter()
        upd = r.grpo_step(traj)
        t_upd = time.perf_counter() - t1
        done.set()
        th.join()
        if upd.skipped:
            raise RuntimeError("the update was skipped (no advantage, beta 0): nothing was measured")
        maxrss_after = _maxrss()
        top = max(peak[0], maxrss_after if maxrss_after > maxrss_before else 0)
        grads[name] = {n: p.grad.detach().clone() for n, p in r.adapter.model.named_parameters() if p.grad is not None}
        if name == "micro":  # kept on disk, not in memory, while the whole batch is measured
            from safetensors.torch import save_file

            save_file(grads.pop(name), str(tmp / "micro.safetensors"))
        out[name] = {"held": held, "peak": top, "added": top - held, "t_update_s": t_upd, "maxrss": maxrss_after,
                     "loss": float(upd.loss)}
    from safetensors.torch import load_file

    micro_g = load_file(str(tmp / "micro.safetensors"))
    if set(micro_g) != set(grads["whole"]):
        raise RuntimeError("the two updates have different trainable parameters")
    out["grad_maxdiff"] = max(float((micro_g[k] - grads["whole"][k]).abs().max()) for k in micro_g)
    return out


def _run_child(spec: dict, min_free_gb: float) -> dict:
    import psutil

    for _ in range(60):  # a shared machine: wait (up to 2 min) for room before a big process
        if psutil.virtual_memory().available / 2**30 >= min_free_gb:
            break
        time.sleep(2)
    env = {**os.environ, **CHILD_ENV}
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], env=env, capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        why = " (killed: out of memory?)" if out.returncode < 0 else ""
        raise RuntimeError(f"scale_rl child exited {out.returncode}{why}:\n"
                           f"{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-vl-3b-shallow")
    ap.add_argument("--frames", type=int, default=2, help="frames per prompt video")
    ap.add_argument("--size", type=int, default=224, help="frame side in pixels (prompt length grows with its square)")
    ap.add_argument("--tokens", type=int, default=192, help="response budget (max_new_tokens); the responses are what micro-batches divide")
    ap.add_argument("--prefix-sharing", action=argparse.BooleanOptionalAction, default=True,
                    help="replay each question's prompt once for its G responses (train rl's default); "
                         "--no-prefix-sharing: every response with its own prompt copy")
    ap.add_argument("--micro", type=int, default=2, help="micro-batch size compared with the whole batch (16)")
    ap.add_argument("--beta", type=float, default=0.0, help="KL weight; 0 (default) = no reference model: one model copy less on this 24 GB box")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-free-gb", type=float, default=8.0, help="wait for this much free memory before a child")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(child(json.loads(a.child))))
        return {}
    with tempfile.TemporaryDirectory(prefix="scale_rl_") as tmp:
        spec = {"model": a.model, "frames": a.frames, "size": a.size, "tokens": a.tokens, "threads": a.threads,
                "beta": a.beta, "sharing": a.prefix_sharing, "micro": a.micro, "tmp": tmp}
        r = _run_child(spec, a.min_free_gb)
    gb = 2**30
    whole, micro = r["whole"], r["micro"]
    print(f"# one rollout ({r['t_rollout_s']:.1f} s), then two updates on it:")
    for name, m in (("whole batch", whole), (f"micro-batch {a.micro}", micro)):
        print(f"# {name}: held {m['held'] / gb:.2f} GB, update peak {m['peak'] / gb:.2f} GB, added "
              f"{m['added'] / gb:.2f} GB; update {m['t_update_s']:.1f} s")
    print(f"# {a.model}: {r['params'] / 1e6:.0f} M params ({r['trainable'] / 1e6:.0f} M trained), "
          f"prompt {r['prompt_len']} tokens ({a.frames} frames of {a.size}x{a.size}), responses "
          f"{r['response_len']:.0f} tokens, 16 per update, prefix sharing {'on' if a.prefix_sharing else 'off'}")
    res = {
        "rl_replay_peak_ratio": round(micro["added"] / whole["added"], 4),
        "rl_microbatch_grad_maxdiff": float(f"{r['grad_maxdiff']:.3g}"),
        "shallow_rl_step_s": round(r["t_rollout_s"] + micro["t_update_s"], 2),
        "shallow_rl_peak_rss_gb": round(micro["maxrss"] / gb, 3),  # the process peak up to the micro-batched update
    }
    for k, v in res.items():
        print(f"{k}: {v}")
    return res


if __name__ == "__main__":
    main()
