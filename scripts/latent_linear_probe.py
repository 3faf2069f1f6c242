"""Can the answer be read linearly from a DIFT model's latents? (docs/latent_feed_study.md#linear-read-out)

For the records of one task in a DIFT data folder (``dift.jsonl`` from ``fourdthinker data build``),
each model decodes the record's prompt as at evaluation (``latent_generate``, its own frame span,
bottleneck and feed norm) and the vectors it feeds at its first ``--blocks`` latent blocks are
kept; the targets z of the record's first ``--blocks`` imagery images are the reference. A linear
read-out (``fourdthinker.latent.linear_probe``) is fitted on the first ``--train-frac`` of the
records (whole clips) and scored on the rest. ``--only-block N`` reads block N alone (does one
image carry the label, or only the change between two?); ``--latent-target pair`` takes pair
targets as the reference (default: what the first model was trained with).

    PYTHONPATH=src python scripts/latent_linear_probe.py --data runs/big6k/data \\
        --model study/runs/dift-target --model study/runs/dift-target-bn --n 1200

Ends with ``name: value`` lines: ``majority``, ``target_linear_acc`` and one ``fed_linear_acc[<model
folder>]`` per model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="folder holding dift.jsonl (and the files it names)")
    ap.add_argument("--model", action="append", required=True, help="a DIFT model folder (repeat for several)")
    ap.add_argument("--task", default="camera", help="the records' task whose answer is read out")
    ap.add_argument("--n", type=int, default=1200, help="records used (the first N of the task)")
    ap.add_argument("--blocks", type=int, default=2, help="latent blocks (imagery images) per record used")
    ap.add_argument("--only-block", type=int, default=0,
                    help="read out from this block alone (1-based, at most --blocks); 0 = the first --blocks together")
    ap.add_argument("--latent-target", default="auto", choices=("auto", "image", "pair"),
                    help="the reference targets z: image (Eq. 5) or pair (train dift --latent-target pair); auto = what "
                         "the first model was trained with")
    ap.add_argument("--train-frac", type=float, default=0.75, help="share of records (whole clips) to fit on")
    ap.add_argument("--target-cache", default="auto", help="latent-target cache folder (auto: the default one)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-frames", type=int, default=8)
    ap.add_argument("--frames", default="normal",
                    help="video intervention while decoding (normal|first|reversed|shuffled|blank): with first, a "
                         "read-out that stays high finds the label in something other than the motion")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if not 0 <= a.only_block <= a.blocks:
        ap.error(f"--only-block {a.only_block}: must lie in 0..--blocks ({a.blocks})")

    import numpy as np
    import torch
    from PIL import Image
    from rich.progress import track

    from fourdthinker.eval.runners.model import LatentModelRunner
    from fourdthinker.latent.decode import latent_generate
    from fourdthinker.latent.linear_probe import linear_probe
    from fourdthinker.latent.targets import LatentTargetCache
    from fourdthinker.records import DiftRecord
    from fourdthinker.train.dift import default_target_cache

    torch.set_num_threads(a.threads)
    data = Path(a.data)
    path = data / "dift.jsonl" if data.is_dir() else data
    data = path.parent
    recs = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            r = DiftRecord.model_validate(json.loads(line))
        except ValueError as e:
            raise SystemExit(f"{path}:{i}: not a DIFT record ({str(e).splitlines()[0]})") from None
        if r.task == a.task and len(r.imagery) >= a.blocks:
            recs.append(r)
    recs = recs[: a.n]
    if len(recs) < 20:
        raise SystemExit(f"{path}: only {len(recs)} {a.task} records with >= {a.blocks} imagery images")
    labels = sorted({r.answer_text for r in recs})
    y = torch.tensor([labels.index(r.answer_text) for r in recs])
    clip = [r.video or r.id for r in recs]
    cut = first = int(a.train_frac * len(recs))
    while 0 < cut < len(recs) and clip[cut] == clip[cut - 1]:  # no clip on both sides
        cut += 1
    if cut > len(recs) - 2:  # records that all name one video (a frame folder): split by record
        cut = first

    def split(X):
        return linear_probe(X[:cut], y[:cut], X[cut:], y[cut:])

    out: dict[str, float] = {}
    z_feats = None
    for model in a.model:
        run = LatentModelRunner(model, batch_size=a.batch_size, max_new_tokens=160, max_frames=a.max_frames,
                                frames=a.frames)
        ad = run.adapter
        K = ad.latent_size or 4
        n_vec = a.blocks * K
        feats, zs = [], []
        kind = getattr(ad.model.config, "latent_target", None) or "image" if a.latent_target == "auto" else a.latent_target
        cache = LatentTargetCache(ad, K, default_target_cache() if a.target_cache == "auto" else a.target_cache,
                                  pairs=kind == "pair")
        keep = slice((a.only_block - 1) * K, a.only_block * K) if a.only_block else slice(None)
        for c in track(range(0, len(recs), a.batch_size), description=f"decode {Path(model).name}"):
            chunk = recs[c : c + a.batch_size]
            with torch.no_grad():
                res = latent_generate(ad, run._batch(chunk, data), max_new_tokens=160, options=[r.options for r in chunk])
            for r, rec in zip(res, chunk, strict=True):
                v = r.latent_inputs.float()[:n_vec]  # fewer blocks than asked: zeros stand in
                feats.append(torch.cat([v, v.new_zeros(n_vec - v.shape[0], v.shape[1])])[keep].flatten())
                if z_feats is None:
                    imgs = [np.asarray(Image.open(data / p).convert("RGB")) for p in rec.imagery[: a.blocks]]
                    zs.append(torch.cat([z.float() for z in cache.get(imgs)])[keep].flatten())
        if z_feats is None:
            z_feats = torch.stack(zs)
            t = split(z_feats)
            out["majority"], out["target_linear_acc"] = t.majority, t.accuracy
            print(f"targets z = {kind}" + (f", block {a.only_block} alone" if a.only_block else f", blocks 1-{a.blocks}"))
        out[f"fed_linear_acc[{Path(model).name}]"] = split(torch.stack(feats)).accuracy
    print(f"{a.task}: {len(recs)} records, {len(labels)} labels, fit on {cut}, scored on {len(recs) - cut}, "
          f"frames {a.frames}")
    for k, v in out.items():
        print(f"{k}: {v:.3f}")


if __name__ == "__main__":
    main()
