"""DIFT step cost vs CoT-SFT step cost, and the latent-target cache speed-up (docs/benchmarks.md#dift-step).

Same model (qwen2.5-vl-tiny), same records (toy world-like DIFT records), same batch size; one
"step" = forward + backward + AdamW update. The DIFT step reads its targets through the on-disk
``LatentTargetCache`` (warm); the uncached variant runs the frozen encoder on the batch's overlay
images every step. Steps of the three kinds are interleaved and the median is taken, so a busy
machine affects them alike. Each step is timed twice: wall clock and this process's CPU time
(``time.process_time``); the headline ratios use the *minimum* CPU time over the interleaved steps (the least-disturbed
estimate of the work a step costs: on a shared, overloaded box other processes inflate wall time
and medians; medians and wall times are printed too).

    python benchmarks/dift_step.py [--steps 12] [--batch 2]

Headline lines (last): ``dift_over_sft: X`` (goal <= 1.15) and ``cache_speedup: X``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--model", default="qwen2.5-vl-tiny")
    a = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)

    from fourdthinker.latent.targets import LatentTargetCache
    from fourdthinker.latent.toy import make_toy_dift
    from fourdthinker.models import load
    from fourdthinker.models.inputs import load_image
    from fourdthinker.train.collate import DiftCollator, DiftDataset
    from fourdthinker.train.dift import DiftConfig, dift_forward

    tmp = Path(tempfile.mkdtemp(prefix="dift_bench_"))
    make_toy_dift(tmp / "data", 2 * a.batch, size=112)
    ad = load(a.model)
    ad.freeze_visual()
    cache = LatentTargetCache(ad, 4, tmp / "targets")
    dift_ds = DiftDataset(tmp / "data", ad, mode="dift", k=4, targets=cache, progress=False)
    cot_ds = DiftDataset(tmp / "data", ad, mode="cot", progress=False)
    col = DiftCollator(ad.pad_id)
    dift_b = col([dift_ds[i] for i in range(a.batch)])
    cot_b = col([cot_ds[i] for i in range(a.batch)])
    import json

    rows = [json.loads(x) for x in (tmp / "data" / "dift.jsonl").read_text().splitlines()][: a.batch]
    images = [load_image(tmp / "data" / p) for r in rows for p in r["imagery"]]
    opt = torch.optim.AdamW([p for p in ad.model.parameters() if p.requires_grad], lr=1e-5, fused=True)  # as the DIFT trainer
    cfg = DiftConfig()
    ad.model.train()

    cpu: dict[str, list[float]] = {"sft": [], "dift": [], "unc": []}

    def step(batch, targets=None, kind=None):
        t = time.perf_counter()
        c = time.process_time()
        if targets is not None:  # the latent targets of this batch: cached lookup or encoder run
            batch = dict(batch, latents=torch.cat(targets(images), 0))
        loss, _, _ = dift_forward(ad, batch, cfg)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if kind:
            cpu[kind].append(time.process_time() - c)
        return time.perf_counter() - t

    for _ in range(2):  # warm-up
        step(cot_b), step(dift_b, cache.get), step(dift_b, cache.compute)
    t_sft, t_dift, t_unc, t_get, t_comp = [], [], [], [], []
    for _ in range(a.steps):
        t_sft.append(step(cot_b, kind="sft"))
        t_dift.append(step(dift_b, cache.get, kind="dift"))
        t_unc.append(step(dift_b, cache.compute, kind="unc"))
        t0 = time.perf_counter()
        cache.get(images)
        t_get.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        cache.compute(images)
        t_comp.append(time.perf_counter() - t0)
    med = statistics.median
    L_cot, L_dift = cot_b["input_ids"].shape[1], dift_b["input_ids"].shape[1]
    print(f"model {a.model}, batch {a.batch}, {len(images)} overlay images/batch, K=4, {a.steps} interleaved steps")
    print(f"sequence length: cot {L_cot}, dift {L_dift} (+{L_dift - L_cot} latent-block tokens)")
    print(f"median step wall s: cot-sft {med(t_sft):.4f}, dift cached {med(t_dift):.4f}, dift uncached {med(t_unc):.4f}")
    print(f"median step cpu s:  cot-sft {med(cpu['sft']):.4f}, dift cached {med(cpu['dift']):.4f}, "
          f"dift uncached {med(cpu['unc']):.4f}")
    print(f"wall ratios: dift/sft {med(t_dift) / med(t_sft):.3f}, uncached/cached {med(t_unc) / med(t_dift):.3f}")
    print(f"median target lookup s: cached {med(t_get):.5f}, encoder {med(t_comp):.5f}")
    print(f"target_lookup_speedup: {med(t_comp) / med(t_get):.2f}")
    print(f"min step cpu s:     cot-sft {min(cpu['sft']):.4f}, dift cached {min(cpu['dift']):.4f}, "
          f"dift uncached {min(cpu['unc']):.4f}")
    print(f"dift_over_sft: {min(cpu['dift']) / min(cpu['sft']):.3f}")
    print(f"cache_speedup: {min(cpu['unc']) / min(cpu['dift']):.3f}")


if __name__ == "__main__":
    main()
