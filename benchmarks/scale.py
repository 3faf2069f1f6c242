"""DIFT at scale: peak memory and time to the first step do not grow with the number of records.

Every measured run is ``train_dift`` in a fresh subprocess (so peak RSS is that run's own), on a
synthetic dataset of records with 16 frames of 448x448 each and two imagery overlays (records
share a few clips' files, as records of one source video do). The latent-target cache is filled
by a warm-up subprocess first, so both sizes start from the same warm cache.

* ``dift_rss_growth``   peak RSS of 20 DIFT steps (batch 1, tiny preset) on 2,000 records / on 200
                        (goal <= 1.15; the up-front encoding this replaced grew by ~38.6 MB a record).
* ``first_step_growth`` time from ``train_dift`` to the end of the first optimizer step, 2,000 vs
                        200 records (goal <= 1.5: the validation pass decodes no video), in this
                        process's CPU time (``first_step_growth_wall``: the wall-clock ratio, which
                        on a shared, overloaded machine mostly measures the other processes).
* ``validate_ms_per_record`` the validation pass's cost per record on a warm cache (from the runs).
* ``shallow_dift_step_s`` / ``shallow_dift_peak_rss_gb``: DIFT steps on the full-width shallow
  preset (``--shallow-model``; real Qwen2.5-VL-3B tensor shapes with 2 LM layers; bf16 weights and
  AdamW state, ``--shallow-frames`` 4 frames of 448x448), for the record; ``n/a`` when that preset
  cannot run here.

    python benchmarks/scale.py [--small 200] [--large 2000] [--steps 20] [--shallow-model qwen2.5-vl-3b-shallow]

``--src DIR`` runs the children on another checkout's ``src`` (how the old code's numbers in
docs/dift_full_size.md were taken; the old code needs small ``--small/--large``: it holds every
encoded record in memory). Headline lines (last): ``name: value``.
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

N_CLIPS = 4
FRAMES = 16
SIZE = 448


# ----------------------------------------------------------------------------- data
def make_data(root: Path, sizes: list[int]) -> dict[int, Path]:
    """``root/src`` holds N_CLIPS clips (16 PNG frames of 448x448 + 2 overlays); ``root/d<n>`` a
    ``dift.jsonl`` of n records over them (files hard-linked: every path stays inside its root)."""
    import numpy as np
    from PIL import Image

    src = root / "src"
    rng = np.random.default_rng(0)
    clips = []
    for c in range(N_CLIPS):
        d = src / f"clip{c}"
        d.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 255, (SIZE // 16, SIZE // 16, 3), dtype=np.uint8)
        big = np.asarray(Image.fromarray(base).resize((SIZE + 64, SIZE + 64), Image.BILINEAR))
        frames = []
        for t in range(FRAMES):
            f = big[2 * t : 2 * t + SIZE, 3 * t : 3 * t + SIZE]
            Image.fromarray(f).save(d / f"f{t:02d}.png", compress_level=1)
            frames.append(f"clip{c}/f{t:02d}.png")
        imgs = []
        for t in (0, FRAMES - 1):
            o = np.asarray(Image.open(d / f"f{t:02d}.png")).copy()
            o[SIZE // 3 : SIZE // 2, SIZE // 3 : SIZE // 2] = (255, 0, 0)
            Image.fromarray(o).save(d / f"o{t:02d}.png", compress_level=1)
            imgs.append(f"clip{c}/o{t:02d}.png")
        clips.append((frames, imgs))
    names = ["Pan Left", "Pan Right", "Tilt Up", "Tilt Down"]
    out = {}
    for n in sizes:
        d = root / f"d{n}"
        for c in range(N_CLIPS):
            (d / f"clip{c}").mkdir(parents=True, exist_ok=True)
            for p in (src / f"clip{c}").iterdir():
                q = d / f"clip{c}" / p.name
                if not q.exists():
                    os.link(p, q)
        with open(d / "dift.jsonl", "w") as f:
            for i in range(n):
                frames, imgs = clips[i % N_CLIPS]
                label = names[i % 4]
                f.write(json.dumps({
                    "id": f"r{i:05d}", "video": f"clip{i % N_CLIPS}", "frames": frames, "frames_fps": 1.0,
                    "question": f"What is the camera movement from 0s to {FRAMES - 1}s? ({i})",
                    "options": dict(zip("ABCD", names, strict=True)), "answer": "ABCD"[names.index(label)],
                    "task": "camera", "imagery": imgs, "source": "bench",
                    "reasoning": f"<think>At 0s the block is here <imagery> and at {FRAMES - 1}s there <imagery>, "
                                 f"so the camera moved: {label}.</think><answer>{'ABCD'[names.index(label)]}. {label}</answer>",
                }) + "\n")
        out[n] = d
    return out


# ----------------------------------------------------------------------------- child
def child(spec: dict) -> dict:
    """One ``train_dift`` run (or the cache warm-up) in this process; returns its figures."""
    import resource

    import torch

    torch.set_num_threads(spec.get("threads", 2))
    if spec["kind"] == "warm":
        from fourdthinker.latent.targets import LatentTargetCache
        from fourdthinker.models import load
        from fourdthinker.train.collate import DiftDataset

        ad = load(spec["model"])
        cache = LatentTargetCache(ad, 4, spec["cache"])
        for d in spec["data"]:
            DiftDataset(d, ad, k=4, targets=cache, progress=False)
        return {}
    import fourdthinker.train.trainer as T
    from fourdthinker.train.dift import DiftConfig, train_dift

    marks: list[float] = []
    cpu: list[float] = []
    orig = T.StepLogCallback.on_step_end

    def on_step_end(self, args, state, control, **kw):
        marks.append(time.perf_counter())
        cpu.append(time.process_time())
        return orig(self, args, state, control, **kw)

    T.StepLogCallback.on_step_end = on_step_end
    cfg = DiftConfig(data=spec["data"], out=spec["out"], model=spec["model"], max_steps=spec["steps"], batch_size=1,
                     lr=1e-4, warmup_steps=1, save_steps=10**6, progress=False, health_heldout=0,
                     max_frames=spec.get("frames", FRAMES),
                     max_pixels=SIZE * SIZE, target_cache=spec["cache"], dtype=spec.get("dtype", "float32"))
    t0, c0 = time.perf_counter(), time.process_time()
    res = train_dift(cfg)
    steps = sorted(b - a for a, b in zip(marks, marks[1:], strict=False))
    csteps = sorted(b - a for a, b in zip(cpu, cpu[1:], strict=False))
    return {"first_step_s": marks[0] - t0, "first_step_cpu_s": cpu[0] - c0,
            "step_s": steps[len(steps) // 2] if steps else None, "step_cpu_s": csteps[len(csteps) // 2] if csteps else None,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "n": res.n_samples}


def start_child(spec: dict, src: str | None = None) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS=str(spec.get("threads", 2)))
    if src:
        env["PYTHONPATH"] = src
    return subprocess.Popen([sys.executable, __file__, "--child", json.dumps(spec)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_child(proc: subprocess.Popen, spec: dict, timeout: int = 1800) -> dict:
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"child {spec['kind']} on {spec.get('data')} failed:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def run_child(spec: dict, src: str | None = None) -> dict:
    return wait_child(start_child(spec, src), spec)


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=200)
    ap.add_argument("--large", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--model", default="qwen2.5-vl-tiny")
    ap.add_argument("--shallow-model", default="qwen2.5-vl-3b-shallow")
    ap.add_argument("--shallow-steps", type=int, default=3)
    ap.add_argument("--shallow-frames", type=int, default=4,
                    help="frames per sample in the shallow run (16 frames need ~8 GB more for the 151,936-column logits)")
    ap.add_argument("--shallow-dtype", default="bfloat16", help="weights/optimizer dtype of the shallow run (bf16, as on a GPU)")
    ap.add_argument("--src", default=None, help="run the children on this src folder (e.g. the old code's)")
    ap.add_argument("--no-rl", dest="rl", action="store_false",
                    help="skip the 4DRL figures (benchmarks/scale_rl.py on the shallow preset)")
    a = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="dift_scale_"))
    t_all = time.perf_counter()
    data = make_data(tmp, [a.small, a.large])
    cache = str(tmp / "lt")
    base = {"model": a.model, "cache": cache, "steps": a.steps}
    if not a.src:  # the old code has no validation-only pass; its runs compute targets themselves
        run_child({**base, "kind": "warm", "data": [str(data[a.small]), str(data[a.large])]})
    # the two sizes run side by side, one thread each (peak RSS and CPU time are per process)
    specs = {n: {**base, "kind": "train", "data": str(data[n]), "out": str(tmp / f"run{n}"), "threads": 1}
             for n in (a.small, a.large)}
    procs = {n: start_child(sp, src=a.src) for n, sp in specs.items()}
    r = {n: wait_child(procs[n], specs[n]) for n in procs}
    for n in (a.small, a.large):
        print(f"{n} records: first step {r[n]['first_step_s']:.1f} s wall / {r[n]['first_step_cpu_s']:.1f} s CPU, "
              f"step {r[n]['step_s']:.2f} s wall / {r[n]['step_cpu_s']:.2f} s CPU, peak RSS {r[n]['peak_rss_gb']:.2f} GB",
              flush=True)
    # time ratios use this process's CPU time: on a shared, overloaded machine wall time mostly
    # measures the other processes (wall-clock ratios are printed too)
    figures = {
        "dift_rss_growth": round(r[a.large]["peak_rss_gb"] / r[a.small]["peak_rss_gb"], 3),
        "first_step_growth": round(r[a.large]["first_step_cpu_s"] / r[a.small]["first_step_cpu_s"], 3),
        "first_step_growth_wall": round(r[a.large]["first_step_s"] / r[a.small]["first_step_s"], 3),
        "validate_ms_per_record": round(1000 * (r[a.large]["first_step_cpu_s"] - r[a.small]["first_step_cpu_s"])
                                        / (a.large - a.small), 3),
        f"peak_rss_gb_{a.small}": round(r[a.small]["peak_rss_gb"], 3),
        f"peak_rss_gb_{a.large}": round(r[a.large]["peak_rss_gb"], 3),
        f"first_step_s_{a.small}": round(r[a.small]["first_step_s"], 2),
        f"first_step_s_{a.large}": round(r[a.large]["first_step_s"], 2),
        "tiny_dift_step_s": round(r[a.small]["step_s"], 3),
        "tiny_dift_step_cpu_s": round(r[a.small]["step_cpu_s"], 3),
    }
    if a.shallow_model and not a.src:
        try:
            s = run_child({"model": a.shallow_model, "cache": cache, "steps": a.shallow_steps, "kind": "train",
                           "data": str(data[a.small]), "out": str(tmp / "shallow"), "dtype": a.shallow_dtype,
                           "frames": a.shallow_frames})
            figures["shallow_dift_step_s"] = round(s["step_s"], 2)
            figures["shallow_dift_step_cpu_s"] = round(s["step_cpu_s"], 2)
            figures["shallow_dift_peak_rss_gb"] = round(s["peak_rss_gb"], 2)
        except RuntimeError as e:
            print(f"shallow run skipped: {str(e).splitlines()[-1]}", flush=True)
            figures["shallow_dift_step_s"] = "n/a"
            figures["shallow_dift_peak_rss_gb"] = "n/a"
    if a.rl and not a.src:  # the RL figures: replay memory with / without micro-batches (scale_rl.py)
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import scale_rl

        figures.update(scale_rl.main([]))
    figures["bench_wall_s"] = round(time.perf_counter() - t_all, 1)
    for k, v in figures.items():
        print(f"{k}: {v}")
    return figures


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(child(json.loads(sys.argv[2]))))
    else:
        main()
