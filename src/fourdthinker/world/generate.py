"""Generate a world: many clips in parallel, resumable, deterministic; plus the label tally.

Each clip is written into a hidden temp folder and renamed to ``clip_NNNNN`` when complete, so a
killed run never leaves a half clip under a final name; a rerun skips complete clips, removes stale
temp folders and redoes anything partial. A clip that fails is recorded in ``quarantine.jsonl``
with its reason and the run goes on.
"""

from __future__ import annotations

import json
import os
import shutil
import traceback
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

import numpy as np

from fourdthinker.io import append_jsonl, atomic_write_json
from fourdthinker.labels import CAMERA_MOTIONS, DIRECTIONS, DISTANCES, SPEEDS
from fourdthinker.world.clip import is_complete_clip
from fourdthinker.world.config import WorldConfig
from fourdthinker.world.truth import ClipMeta, ClipTruth


def clip_name(index: int) -> str:
    return f"clip_{index:05d}"


def write_clip(out_dir: str | os.PathLike, seed: int, index: int, config: WorldConfig | None = None) -> Path:
    """Generate clip ``index`` and write its folder atomically; returns the final folder."""
    from fourdthinker.video.write import write_video
    from fourdthinker.world.clipgen import make_clip

    cfg = config or WorldConfig()
    out_dir = Path(out_dir)
    final = out_dir / clip_name(index)
    tmp = out_dir / f".{clip_name(index)}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        r = make_clip(seed, index, cfg)
        meta = ClipMeta.model_validate(r.meta)
        truth = ClipTruth.model_validate(r.truth)
        write_video(tmp / "video.mp4", iter(r.frames), fps=cfg.fps, codec=cfg.codec, crf=cfg.crf, threads=1)
        np.savez_compressed(tmp / "poses.npz", c2w=r.c2w, K=r.K)
        np.savez_compressed(tmp / "masks.npz", static=r.masks_static, dynamic=r.masks_dynamic)
        atomic_write_json(tmp / "meta.json", meta.model_dump())
        atomic_write_json(tmp / "truth.json", truth.model_dump(), indent=None)
        for f in tmp.iterdir():  # temp files are created 0600; clip folders are meant to be shared
            f.chmod(0o644)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _worker(out_dir: str, seed: int, index: int, cfg_dict: dict) -> tuple[int, str | None, str | None]:
    try:
        cfg = WorldConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg_dict.items()})
        return index, str(write_clip(out_dir, seed, index, cfg)), None
    except Exception as e:  # noqa: BLE001 - quarantined with the reason, the run goes on
        tb = traceback.format_exc(limit=3).strip().splitlines()[-1]
        return index, None, f"{type(e).__name__}: {e}" if str(e) else tb


def generate_world(
    out_dir: str | os.PathLike,
    n_videos: int,
    seed: int = 0,
    *,
    workers: int | None = None,
    config: WorldConfig | None = None,
    progress: bool = True,
) -> list[Path]:
    """Generate clips ``clip_00000 .. clip_{n-1}`` under ``out_dir`` (see the module docstring).

    ``workers``: process count (default: all cores; 1 = in this process). Clip ``i`` depends only
    on (seed, i, config), never on the worker count. Returns the folders of all complete clips
    (skipped + new), in index order; failures are listed in ``out_dir/quarantine.jsonl``.
    """
    cfg = config or WorldConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".clip_*.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    manifest = out / "world.json"
    if manifest.exists():
        prev = json.loads(manifest.read_text(encoding="utf-8"))
        if prev.get("seed") != seed or prev.get("config") != json.loads(json.dumps(cfg.to_dict())):
            raise ValueError(f"{manifest}: this folder holds a world with a different seed/config "
                             f"(seed {prev.get('seed')}); use another --out or delete it")
    atomic_write_json(manifest, {"seed": seed, "config": cfg.to_dict(), "n_videos": max(n_videos, 0)})
    manifest.chmod(0o644)
    todo = [i for i in range(n_videos) if not is_complete_clip(out / clip_name(i))]
    done: dict[int, Path] = {i: out / clip_name(i) for i in range(n_videos) if i not in set(todo)}
    workers = workers or os.cpu_count() or 1
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("[bold]world"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("clips", total=n_videos, completed=len(done))

        def record(index: int, path: str | None, err: str | None) -> None:
            if path:
                done[index] = Path(path)
            else:
                append_jsonl(out / "quarantine.jsonl", {"clip": clip_name(index), "seed": seed, "reason": err})
            bar.advance(task)

        if workers <= 1 or len(todo) <= 1:
            for i in todo:
                record(*_worker(str(out), seed, i, asdict(cfg)))
        else:
            with ProcessPoolExecutor(max_workers=workers) as ex:
                futs = [ex.submit(_worker, str(out), seed, i, asdict(cfg)) for i in todo]
                for fut in as_completed(futs):
                    record(*fut.result())
    return [done[i] for i in sorted(done)]


def label_distribution(clip_dirs: list[Path]) -> dict[str, Counter]:
    """Count every label over the clips: {"camera": Counter, "direction": ..., "distance": ..., "speed": ...}."""
    counts = {k: Counter() for k in ("camera", "direction", "distance", "speed")}
    for d in clip_dirs:
        t = json.loads((Path(d) / "truth.json").read_text(encoding="utf-8"))
        for s in t["camera_segments"]:
            counts["camera"][s["label"]] += 1
        om = t["object_motion"]
        counts["direction"][om["direction"]] += 1
        counts["distance"][om["distance"]] += 1
        if om.get("speed_defined", True):
            counts["speed"][om["speed"]] += 1
    return counts


VOCAB = {"camera": CAMERA_MOTIONS, "direction": DIRECTIONS, "distance": DISTANCES, "speed": SPEEDS}


def missing_labels(counts: dict[str, Counter]) -> list[str]:
    return [f"{k}:{lab}" for k, vocab in VOCAB.items() for lab in vocab if counts[k][lab] == 0]


def print_label_table(counts: dict[str, Counter], console=None) -> None:
    """Rich table of the 32 labels with their counts (a zero is shown in red)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title="Label distribution (camera: per segment; speed: moving objects only)")
    table.add_column("task")
    table.add_column("label")
    table.add_column("count", justify="right")
    for k, vocab in VOCAB.items():
        for lab in vocab:
            c = counts[k][lab]
            table.add_row(k, lab, f"[red]{c}[/red]" if c == 0 else str(c))
        table.add_section()
    console.print(table)
