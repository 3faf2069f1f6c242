"""Benchmark: our 1-FPS sampler vs the naive way (decode every frame to RGB, then pick).

Makes its test videos on the fly in a temp folder (H.264, 30 fps, a moving textured pattern):

* 60 s with a 1 s keyframe interval   -> the sampler seeks        -> ``speedup_1s_gop``
* 60 s with x264's default interval   -> one sequential pass that  -> ``speedup_default_gop``
  (250 frames, ~8 s)                     converts only kept frames, threaded decoding
* 10 min, default interval            -> peak RSS above the baseline while sampling it, measured in
                                         a fresh subprocess (``rss_mb``)

Each timing is the best of ``--repeats`` runs (the machine may be shared), naive and ours timed in
the same run and on the same file. Headline figures are printed last, one per line.

Run: ``python benchmarks/video_sampling.py [--size 320x240] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fourdthinker.video import probe, sample_frames, sample_frames_naive, write_video


def moving_frames(n: int, w: int, h: int):
    """A smooth periodic texture scrolling diagonally plus a bright moving square: it compresses
    like camera footage (cheap P-frames, costlier keyframes) and is cheap to generate."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    two_pi = 2 * np.pi
    tex = np.stack([
        128 + 100 * np.sin(two_pi * 3 * xx / w) * np.cos(two_pi * 2 * yy / h),
        128 + 90 * np.sin(two_pi * (5 * xx / w + 3 * yy / h)),
        128 + 80 * np.cos(two_pi * 7 * yy / h) * np.sin(two_pi * 2 * xx / w),
    ], axis=-1).clip(0, 255).astype(np.uint8)
    for i in range(n):
        f = np.roll(tex, (i * 2 % h, i * 3 % w), axis=(0, 1))
        c = (40 + i * 2) % (w - 40)
        f[h // 2 - 20:h // 2 + 20, c:c + 40] = 255
        yield f


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


RSS_CHILD = r"""
import os, sys, threading, time
from fourdthinker.video import sample_frames, probe
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
probe(sys.argv[1])
base = rss()
peak = [base]
done = threading.Event()
def watch():
    while not done.is_set():
        peak[0] = max(peak[0], rss())
        time.sleep(0.005)
th = threading.Thread(target=watch, daemon=True)
th.start()
s = sample_frames(sys.argv[1], 1.0)
done.set(); th.join()
peak[0] = max(peak[0], rss())
print(len(s), s.method, (peak[0] - base) / 2**20)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="320x240", help="frame size WxH of the test videos")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--long-minutes", type=float, default=10.0, help="length of the RSS test clip")
    args = ap.parse_args()
    w, h = (int(x) for x in args.size.split("x"))
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        t0 = time.perf_counter()
        gop1 = write_video(d / "gop1s.mp4", moving_frames(60 * 30, w, h), 30, gop=30)
        gopd = write_video(d / "gopdefault.mp4", moving_frames(60 * 30, w, h), 30)
        print(f"wrote 2 x 60 s {w}x{h} 30 fps H.264 in {time.perf_counter() - t0:.1f} s")
        speed = {}
        for name, path in (("1s_gop", gop1), ("default_gop", gopd)):
            info = probe(path)
            t_naive, naive = best_of(lambda p=path: sample_frames_naive(p, 1.0), args.repeats)
            t_ours, ours = best_of(lambda p=path: sample_frames(p, 1.0), args.repeats)
            same = naive.frame_indices == ours.frame_indices and all(
                np.array_equal(a, b) for a, b in zip(naive.frames, ours.frames, strict=True))
            speed[name] = t_naive / t_ours
            print(f"{name}: keyframe every {info.keyframe_interval_s:.2f} s; naive {t_naive:.3f} s, "
                  f"ours ({ours.method}) {t_ours:.3f} s for {len(ours)} frames; identical frames: {same}")
            if not same:
                raise SystemExit(f"{name}: sampler output differs from the naive reference")
        t0 = time.perf_counter()
        n_long = int(args.long_minutes * 60 * 30)
        long = write_video(d / "long.mp4", moving_frames(n_long, w, h), 30, preset="ultrafast")
        print(f"wrote {args.long_minutes:g} min clip ({n_long} frames) in {time.perf_counter() - t0:.1f} s")
        out = subprocess.run([sys.executable, "-c", RSS_CHILD, str(long)], capture_output=True, text=True, check=True)
        n, method, rss = out.stdout.split()
        print(f"long clip: {n} frames sampled ({method}); peak RSS above baseline {float(rss):.1f} MB")
    print(f"speedup_1s_gop: {speed['1s_gop']:.2f}")
    print(f"speedup_default_gop: {speed['default_gop']:.2f}")
    print(f"rss_mb: {float(rss):.1f}")


if __name__ == "__main__":
    main()
