"""Data-pipeline throughput: clips/minute with 1 worker and with all cores (same clips, same run).

    python benchmarks/pipeline.py [--clips 8] [--world PATH]

Builds a small synthetic world (or uses --world), then runs ``fourdthinker data build`` (rule
oracle, gt segmenter, poses camera labels) twice into fresh folders: ``--workers 1`` and
``--workers <cores>``. The outputs must be identical (checked). Prints headline figures last.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8, help="clips to build (more = steadier numbers, slower)")
    ap.add_argument("--world", type=str, default=None, help="an existing world folder (default: generate one)")
    args = ap.parse_args()
    from fourdthinker.data.config import BuildConfig
    from fourdthinker.data.runner import build

    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        world = Path(args.world) if args.world else tmp / "world"
        if not args.world:
            from fourdthinker.world import generate_world

            t = time.perf_counter()
            generate_world(world, args.clips, seed=123, progress=False)
            print(f"world: {args.clips} clips generated in {time.perf_counter() - t:.1f}s")
        import resource

        def cpu_s() -> float:
            a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
            return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

        rates = {}
        outs = {}
        for w in (1, cores):
            out = tmp / f"out_w{w}"
            t, c = time.perf_counter(), cpu_s()
            s = build(world, out, BuildConfig(), workers=w, progress=False, limit=args.clips)
            dt, dc = time.perf_counter() - t, cpu_s() - c
            rates[w] = s.clips_in / dt * 60
            outs[w] = (out / "dift.jsonl").read_bytes()
            print(f"workers={w}: {s.clips_in} clips, {sum(s.records.values())} records in {dt:.1f}s wall, "
                  f"{dc / s.clips_in:.2f} CPU-s per clip")
        # other jobs on the machine make wall-clock ratios meaningless; say how busy it was
        print(f"load_average_1min: {os.getloadavg()[0]:.1f}")
        assert outs[1] == outs[cores], "parallel output differs from the 1-worker output"
        print(f"cores: {cores}")
        print(f"clips_per_min_1_worker: {rates[1]:.1f}")
        print(f"clips_per_min_{cores}_workers: {rates[cores]:.1f}")
        print(f"parallel_speedup: {rates[cores] / rates[1]:.2f}")


if __name__ == "__main__":
    main()
