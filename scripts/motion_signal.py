"""Do a demo's 1-FPS frames carry the camera motion? A small classifier on frame differences.

For every camera question of a demo's training records (``<demo>/data/demo_dift.jsonl``), the
frames of the asked segment are reduced to 56 x 42 grayscale and the global translation between
consecutive frames is measured by phase correlation (numpy FFT); its mean (dx, dy) is the feature.
A one-hidden-layer classifier (torch) trains on 80% of the clips and is scored on the other 20%.
Well above chance means the frames carry the signal a VLM would have to learn
(docs/latent_feed_study.md#results).

    python scripts/motion_signal.py --demo demo_out

Headline lines (last): ``name: value``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def gray(path: Path, size: tuple[int, int] = (56, 42)) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("L").resize(size, Image.BILINEAR), dtype=np.float32) / 255.0


def phase_shift(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """Global translation (dx, dy) from ``a`` to ``b`` by phase correlation (wrapped to +-size/2)."""
    f = np.fft.fft2(a) * np.conj(np.fft.fft2(b))
    r = np.fft.ifft2(f / (np.abs(f) + 1e-6)).real
    y, x = np.unravel_index(int(np.argmax(r)), r.shape)
    h, w = r.shape
    return (x + w // 2) % w - w // 2, (y + h // 2) % h - h // 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", default="demo_out", help="a `fourdthinker demo --out` folder")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    import torch

    root = Path(a.demo) / "data"
    f = root / "demo_dift.jsonl"
    if not f.is_file():
        raise SystemExit(f"error: {f}: not found — run `fourdthinker demo --out {a.demo}` first")
    cam = [r for r in (json.loads(x) for x in f.read_text(encoding="utf-8").splitlines() if x.strip())
           if r["task"] == "camera"]
    labels = sorted({r["answer_text"] for r in cam})
    feats, ys, clips = [], [], []
    for r in cam:
        t0, t1 = r["meta"]["times_s"]
        frames = [gray(root / p) for p in r["frames"][int(round(t0)): int(round(t1)) + 1]]
        if len(frames) < 2:
            continue
        feats.append(np.mean([phase_shift(frames[i], frames[i + 1]) for i in range(len(frames) - 1)], 0))
        ys.append(labels.index(r["answer_text"]))
        clips.append(r["id"].rsplit("_", 2)[0])
    x = torch.tensor(np.array(feats), dtype=torch.float32)
    y = torch.tensor(ys)
    held = set(sorted(set(clips))[::5])
    te = torch.tensor([c in held for c in clips])
    x = (x - x[~te].mean(0)) / (x[~te].std(0) + 1e-6)
    torch.manual_seed(a.seed)
    m = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.ReLU(), torch.nn.Linear(64, len(labels)))
    opt = torch.optim.Adam(m.parameters(), 1e-2, weight_decay=1e-3)
    for _ in range(400):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(x[~te]), y[~te]).backward()
        opt.step()
    acc = (m(x[te]).argmax(-1) == y[te]).float().mean().item()
    print(f"camera questions: {int((~te).sum())} train / {int(te.sum())} held out (by clip), {len(labels)} labels")
    print(f"motion_signal_accuracy: {acc:.3f}")
    print(f"chance: {1 / len(labels):.3f}")


if __name__ == "__main__":
    main()
