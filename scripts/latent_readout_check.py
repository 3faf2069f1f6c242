"""Does the answer read the latents? The teacher-forced check (docs/latent_feed_study.md#readout-check).

For a DIFT model trained with ``--response imagery-answer`` (the response is the imagery blocks and
the answer), this runs the training forward (``train.dift.dift_forward``: the model's bottleneck and
feed norm) on records of a DIFT file and counts the records whose whole answer (every token
between ``<answer>`` and ``</answer>``) is the argmax, with the latent slots fed:

* ``target``: the targets z, as in teacher-forced training;
* ``zero``:   zeros;
* ``roll``:   the targets of the next record with as many latent vectors (another scene);
* ``self``:   the model's own h_{t-1}, step by step as at inference (``--latent-feed self``).

``target`` well above ``zero``/``roll``: the answer reads what the slots hold. ``self`` near
``target``: what the model feeds itself at inference is as good as the targets; near ``zero``: the
read-out is there but the chain that feeds it is not. ``fourdthinker probe`` asks the same of free
decoding, where both are mixed. The check itself is ``train.readout.readout_accuracy``, which
``train dift --stop-when`` also runs on held-out records to stop a curriculum stage.

    PYTHONPATH=src python scripts/latent_readout_check.py --model runs/dift-ans --data data/dift/dift.jsonl \\
        --task camera --n 200

Ends with ``name: value`` lines: ``answer_acc[<feed>]`` for each feed (all tasks asked together).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a DIFT model folder trained with --response imagery-answer")
    ap.add_argument("--data", required=True, help="a DIFT records file (or a folder holding dift.jsonl); paths in it "
                                                  "are relative to its folder")
    ap.add_argument("--task", action="append", default=None, help="records of this task (repeat; default: all)")
    ap.add_argument("--n", type=int, default=200, help="records per task: the last N of the file (the first ones are "
                                                       "what a run with fewer steps than records trains on)")
    ap.add_argument("--target-cache", default="auto", help="latent-target cache folder (auto: the default one)")
    ap.add_argument("--max-frames", type=int, default=8, help="video frames per record (as eval's --max-frames)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    import os
    import tempfile

    import torch
    from rich.progress import Progress, track

    from fourdthinker.eval.runners.model import LatentModelRunner
    from fourdthinker.latent.bottleneck import model_bottleneck
    from fourdthinker.latent.targets import LatentTargetCache
    from fourdthinker.train.collate import DiftDataset, read_records
    from fourdthinker.train.dift import DiftConfig, default_target_cache
    from fourdthinker.train.readout import READOUT_FEEDS as FEEDS
    from fourdthinker.train.readout import readout_accuracy

    torch.set_num_threads(a.threads)
    cfg_file = Path(a.model) / "config.json"
    mcfg = json.loads(cfg_file.read_text()) if cfg_file.exists() else {}
    if mcfg.get("dift_response") != "imagery-answer":
        raise SystemExit(f"{a.model}: not trained with --response imagery-answer (dift_response is "
                         f"{mcfg.get('dift_response')!r}); after a full reasoning the answer repeats the conclusion, "
                         "so this check would count copying")
    root, records = read_records(a.data)  # the file (or the folder's dift.jsonl); bad records are skipped below
    by: dict[str, list[dict]] = defaultdict(list)
    for row in records:
        if a.task is None or row.get("task") in a.task:
            by[row.get("task")].append(row)
    rows = [r for t in sorted(by) for r in by[t][-a.n:]]
    if not rows:
        raise SystemExit(f"{a.data}: no records of task {a.task}")

    run = LatentModelRunner(a.model, max_frames=a.max_frames)  # frames as eval loads them (the trained span)
    ad = run.adapter
    ad.model.eval()
    K = ad.latent_size or 4
    cache = LatentTargetCache(ad, K, default_target_cache() if a.target_cache == "auto" else a.target_cache,
                              pairs=mcfg.get("latent_target") == "pair")
    # the chosen records, written next to the file so that their relative paths still resolve; removed after
    with tempfile.NamedTemporaryFile("w", dir=root, prefix=".readout_", suffix=".jsonl", delete=False) as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    try:
        ds = DiftDataset(f.name, ad, k=K, targets=cache, progress=False, response="imagery-answer",
                         fps=run.fps, max_frames=run.max_frames, max_pixels=run.max_pixels, span=run.span)
        samples = [ds[i] for i in track(range(len(ds)), description="encode records")]
        kept = [rows[ds.lines[i] - 1] for i in range(len(ds))]
    finally:
        os.unlink(f.name)
    norm = mcfg.get("latent_feed_norm")
    cfg = DiftConfig(imagery_bottleneck=model_bottleneck(ad), latent_size=K, feed_norm=bool(norm), latent_feed_norm=norm)
    with Progress(transient=True) as bar:
        job = bar.add_task("read-out check (4 feeds)", total=len(samples))
        right = readout_accuracy(ad, samples, cfg, FEEDS, batch_size=a.batch_size,
                                 progress=lambda n: bar.advance(job, n))
    acc: dict[str, dict[str, list[bool]]] = {}
    for feed in FEEDS:
        acc[feed] = defaultdict(list)
        for i, ok in enumerate(right[feed]):
            acc[feed][kept[i]["task"]].append(ok)
    tasks = sorted(acc["target"])
    print(f"teacher-forced answer accuracy, {Path(a.model).name}, {len(samples)} records of {a.data}")
    print("| feed | " + " | ".join(tasks) + " | all |")
    print("|---|" + "---|" * (len(tasks) + 1))
    total = {feed: [x for t in tasks for x in acc[feed][t]] for feed in FEEDS}
    for feed in FEEDS:
        cells = [f"{100 * sum(acc[feed][t]) / len(acc[feed][t]):.1f} ({len(acc[feed][t])})" for t in tasks]
        print(f"| {feed} | " + " | ".join(cells) + f" | {100 * sum(total[feed]) / len(total[feed]):.1f} |")
    for feed in FEEDS:
        print(f"answer_acc[{feed}]: {sum(total[feed]) / len(total[feed]):.3f}")


if __name__ == "__main__":
    main()
