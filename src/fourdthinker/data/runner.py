"""The build runner: clips -> per-clip shards (atomic, resumable) -> assembled JSONL + summary.

How a run is made safe to kill (docs/data.md#resume):

* Each clip is built in ``OUT/.tmp/<clip>.<pid>/`` and, last, ``done.json`` is written there; the
  folder is then renamed to ``OUT/clips/<clip>/`` in one ``os.replace``. A clip is done iff
  ``clips/<clip>/done.json`` exists; anything else is leftover scratch and is deleted on rerun.
* Bad clips are "done" too, with ``status: quarantined`` and a one-line ``reason``, so a rerun
  neither retries them nor duplicates their quarantine row (``--retry-quarantined`` retries).
* ``dift.jsonl``, ``rl.jsonl`` and ``quarantine.jsonl`` are rebuilt from the shards in sorted clip
  order (records in their per-clip order) every time, so a killed-and-resumed run yields byte for
  byte the files of an uninterrupted one.
* ``manifest.json`` pins the settings that change the output; a rerun with other settings into
  the same folder is refused (use a new ``--out`` or ``--overwrite``).

Work is spread over clips with a process pool (default: all cores) or Ray (``--executor ray``);
the runner, not the steps, splits the work (datatrove style).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fourdthinker.data.config import BuildConfig
from fourdthinker.io import atomic_write_json, read_jsonl, write_jsonl

MANIFEST_VERSION = 1
_WORKER: dict[str, Any] = {}


class BuildError(RuntimeError):
    """The run cannot start (bad folders, settings mismatch, unknown executor)."""


@dataclass
class Summary:
    clips_in: int = 0
    clips_ok: int = 0
    clips_quarantined: int = 0
    clips_skipped_done: int = 0
    records: Counter = field(default_factory=Counter)
    drops: Counter = field(default_factory=Counter)
    quarantine: Counter = field(default_factory=Counter)
    letters: Counter = field(default_factory=Counter)
    oracle: dict = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        n = sum(self.records.values())
        return {"clips_in": self.clips_in, "clips_ok": self.clips_ok, "clips_quarantined": self.clips_quarantined,
                "clips_resumed": self.clips_skipped_done, "records": n, "records_by_task": dict(sorted(self.records.items())),
                "records_per_clip": round(n / max(self.clips_ok, 1), 3), "drops": dict(sorted(self.drops.items())),
                "quarantine_reasons": dict(sorted(self.quarantine.items())),
                "answer_letters": {k: round(100 * v / max(n, 1), 2) for k, v in sorted(self.letters.items())},
                "oracle": self.oracle, "seconds": round(self.seconds, 2)}


# ---------------------------------------------------------------- worker side


def _init_worker(cfg_dict: dict) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass
    _WORKER.clear()
    _WORKER["cfg"] = BuildConfig(**cfg_dict)


def _components(cfg: BuildConfig, out: Path):
    if _WORKER.get("out") != str(out):  # the oracle's response cache lives in the dataset root
        _WORKER.pop("oracle", None)
        _WORKER["out"] = str(out)
    if "oracle" not in _WORKER:
        from fourdthinker.oracle import make_oracle
        from fourdthinker.segment import make_segmenter

        kw: dict[str, Any] = {"seed": cfg.seed} if cfg.oracle == "rule" else {
            "base_url": cfg.oracle_base_url, "model": cfg.oracle_model, "api_key_env": cfg.oracle_api_key_env,
            "cache_dir": out / ".oracle_cache", "price_in": cfg.price_in, "price_out": cfg.price_out}
        _WORKER["oracle"] = make_oracle(cfg.oracle, **kw)
        _WORKER["segmenter"] = make_segmenter(cfg.segmenter, **({"model_path": cfg.sam3_model} if cfg.segmenter == "sam3" else {}))
    return _WORKER["oracle"], _WORKER["segmenter"]


def build_one(clip_dir: str, out: str, cfg_dict: dict) -> dict:
    """Build one clip into ``out/clips/<name>/`` atomically; returns its ``done.json`` content.
    Never raises for a bad clip: it is quarantined with the reason."""
    if _WORKER.get("cfg") is None or _WORKER["cfg"].to_dict() != cfg_dict:
        _init_worker(cfg_dict)
    cfg: BuildConfig = _WORKER["cfg"]
    src, root = Path(clip_dir), Path(out)
    name = src.name
    tmp = root / ".tmp" / f"{name}.{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    oracle, segmenter = _components(cfg, root)
    before = oracle.usage.to_dict()
    t0 = time.perf_counter()
    from fourdthinker.endpoints import EndpointError
    from fourdthinker.errors import redact

    try:
        done = _build_into(src, tmp, cfg, oracle, segmenter)
    except EndpointError:  # the endpoint is down or refuses the key: every clip would fail, stop the run
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except Exception as e:  # noqa: BLE001 - any failure of one clip quarantines it, the run goes on
        shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        reason = redact(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".strip())
        done = {"clip": name, "status": "quarantined", "reason": reason[:300], "n_dift": 0, "n_rl": 0,
                "records_by_task": {}, "drops": {}, "letters": {}}
    after = oracle.usage.to_dict()
    done["oracle"] = {k: after[k] - before[k] for k in after}
    done["seconds"] = round(time.perf_counter() - t0, 3)
    atomic_write_json(tmp / "done.json", done)
    dest = root / "clips" / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():  # a stale, unfinished copy (no done.json): replace it
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return done


def _build_into(src: Path, tmp: Path, cfg: BuildConfig, oracle, segmenter) -> dict:
    from fourdthinker.data.pipeline import process_clip
    from fourdthinker.data.sources import open_clip
    from fourdthinker.io import resolve_inside

    clip = open_clip(src)
    clip.clip_id = src.name
    res = process_clip(clip, cfg, oracle, segmenter)
    prefix = f"clips/{src.name}/"
    for im in res.images:
        if not im.rel.startswith(prefix):
            raise ValueError(f"image path {im.rel} outside the clip folder")
        _write_png(resolve_inside(tmp, im.rel[len(prefix):]), im.image)
    for r in res.dift + res.rl:
        for p in [r["video"], *(r.get("frames") or []), *r.get("imagery", [])]:
            if not p.startswith(prefix):
                raise ValueError(f"record {r['id']}: path {p} escapes its clip folder")
    vid = tmp / f"video{clip.video_path.suffix}"
    try:
        if cfg.link_video:
            os.link(clip.video_path, vid)
        else:
            raise OSError
    except OSError:
        shutil.copyfile(clip.video_path, vid)
    write_jsonl(tmp / "dift.jsonl", res.dift)
    write_jsonl(tmp / "rl.jsonl", res.rl)
    atomic_write_json(tmp / "labels.json", res.labels)
    return {"clip": src.name, "status": "ok", "n_dift": len(res.dift), "n_rl": len(res.rl),
            "records_by_task": dict(Counter(r["task"] for r in res.dift)), "drops": dict(res.drops),
            "letters": dict(Counter(r["answer"] for r in res.dift))}


def _write_png(path: Path, rgb) -> None:
    """Fast PNG (zlib level 1: ~5x faster than PIL's default, files ~30 % larger). Not atomic by
    itself: it only ever writes inside the clip's scratch folder, which is renamed atomically."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), rgb[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise OSError(f"{path}: could not write PNG")


# ---------------------------------------------------------------- driver side


def _check_manifest(out: Path, cfg: BuildConfig, videos: Path, overwrite: bool) -> None:
    man = out / "manifest.json"
    want = {"manifest_version": MANIFEST_VERSION, "videos": str(videos.resolve()), "config": cfg.fingerprint()}
    if man.exists():
        have = json.loads(man.read_text())
        if {k: have.get(k) for k in want} != want:
            if not overwrite:
                raise BuildError(f"{man}: this folder was built with other settings or videos; "
                                 "use a new --out or pass --overwrite to rebuild it")
            shutil.rmtree(out / "clips", ignore_errors=True)
    atomic_write_json(man, want)


def build(videos: str | os.PathLike, out: str | os.PathLike, cfg: BuildConfig | None = None, *, workers: int | None = None,
          executor: str = "process", overwrite: bool = False, retry_quarantined: bool = False, limit: int | None = None,
          progress: bool = True) -> Summary:
    """Build a dataset from every clip folder under ``videos`` into ``out`` (see module docstring)."""
    from fourdthinker.data.sources import list_clips

    cfg = cfg or BuildConfig()
    videos, out = Path(videos), Path(out)
    clips = list_clips(videos)
    if limit is not None:
        clips = clips[:limit]
    if not clips:
        raise BuildError(f"{videos}: no clip folders (a folder with meta.json or an .mp4) found")
    out.mkdir(parents=True, exist_ok=True)
    _check_manifest(out, cfg, videos, overwrite)
    shutil.rmtree(out / ".tmp", ignore_errors=True)
    t0 = time.perf_counter()
    summary = Summary(clips_in=len(clips))
    todo = []
    for c in clips:
        done_p = out / "clips" / c.name / "done.json"
        if done_p.exists():
            d = json.loads(done_p.read_text())
            if not (retry_quarantined and d.get("status") == "quarantined"):
                summary.clips_skipped_done += 1
                continue
        todo.append(c)
    workers = workers or os.cpu_count() or 1
    cfg_dict = cfg.to_dict()
    with _progress(progress) as prog:
        task = prog.add_task("building clips", total=len(clips), completed=len(clips) - len(todo)) if prog else None

        def tick(d: dict) -> None:
            if prog is not None:
                prog.advance(task)

        if not todo:
            pass
        elif executor == "ray":
            _run_ray(todo, out, cfg_dict, workers, tick)
        elif executor != "process":
            raise BuildError(f"unknown executor {executor!r}; choose process or ray")
        elif workers == 1 or len(todo) == 1:
            _init_worker(cfg_dict)
            for c in todo:
                tick(build_one(str(c), str(out), cfg_dict))
        else:
            _run_pool(todo, out, cfg_dict, workers, tick)
    assemble(out, [c.name for c in clips], summary)
    summary.seconds = time.perf_counter() - t0
    atomic_write_json(out / "summary.json", summary.to_dict())
    shutil.rmtree(out / ".tmp", ignore_errors=True)
    return summary


def _progress(enabled: bool):
    import contextlib

    if not enabled:
        return contextlib.nullcontext(None)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), transient=False)


def _run_pool(todo: list[Path], out: Path, cfg_dict: dict, workers: int, tick) -> None:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # fork is fast; but never fork a parent that has torch loaded (thread pools do not survive fork)
    method = "fork" if ("torch" not in sys.modules and "fork" in mp.get_all_start_methods()) else "spawn"
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context(method), initializer=_init_worker,
                             initargs=(cfg_dict,)) as ex:
        futs = [ex.submit(build_one, str(c), str(out), cfg_dict) for c in todo]
        try:
            for f in as_completed(futs):
                tick(f.result())
        except BaseException:  # a fatal error (endpoint down, Ctrl-C): do not start the remaining clips
            ex.shutdown(wait=True, cancel_futures=True)
            raise


def _run_ray(todo: list[Path], out: Path, cfg_dict: dict, workers: int, tick) -> None:
    try:
        import ray
    except ImportError:
        raise BuildError("--executor ray needs Ray: pip install 'ray' (or use --executor process)") from None
    started = False
    if not ray.is_initialized():
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        remote = ray.remote(num_cpus=1)(build_one)
        pending = [remote.remote(str(c), str(out), cfg_dict) for c in todo]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            tick(ray.get(ready[0]))
    finally:
        if started:
            ray.shutdown()


def reason_key(reason: str) -> str:
    """Group quarantine reasons: ``ClipSkip: empty masks: ...`` -> ``ClipSkip: empty masks``;
    other errors by their type (their messages name files, which are unique per clip)."""
    parts = reason.split(": ")
    return ": ".join(parts[:2]) if parts[0] == "ClipSkip" else parts[0]


def assemble(out: Path, names: list[str], summary: Summary | None = None) -> Summary:
    """Concatenate the per-clip shards (sorted clip order) into dift.jsonl, rl.jsonl, quarantine.jsonl."""
    summary = summary or Summary(clips_in=len(names))
    dift: list[dict] = []
    rl: list[dict] = []
    quarantine: list[dict] = []
    oracle: Counter = Counter()
    for name in sorted(names):
        d_p = out / "clips" / name / "done.json"
        if not d_p.exists():
            continue
        d = json.loads(d_p.read_text())
        for k, v in (d.get("oracle") or {}).items():
            oracle[k] += v
        if d["status"] == "quarantined":
            summary.clips_quarantined += 1
            summary.quarantine[reason_key(d["reason"])] += 1
            quarantine.append({"clip": name, "reason": d["reason"]})
            continue
        summary.clips_ok += 1
        summary.drops.update(d.get("drops", {}))
        dift += read_jsonl(out / "clips" / name / "dift.jsonl")
        rl += read_jsonl(out / "clips" / name / "rl.jsonl")
    summary.records = Counter(r["task"] for r in dift)
    summary.letters = Counter(r["answer"] for r in dift)
    summary.oracle = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in sorted(oracle.items())}
    write_jsonl(out / "dift.jsonl", dift)
    write_jsonl(out / "rl.jsonl", rl)
    write_jsonl(out / "quarantine.jsonl", quarantine)
    return summary


def summary_table(s: Summary):
    """A rich table of the run (clips in/out, records per task, drops, oracle usage)."""
    from rich.table import Table

    d = s.to_dict()
    t = Table(title="fourdthinker data build", show_header=True)
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("clips in", str(d["clips_in"]))
    t.add_row("clips with records", str(d["clips_ok"]))
    t.add_row("clips quarantined", str(d["clips_quarantined"]))
    t.add_row("clips resumed (already done)", str(d["clips_resumed"]))
    t.add_row("records", f"{d['records']} ({d['records_per_clip']}/clip)")
    for k, v in d["records_by_task"].items():
        t.add_row(f"  task {k}", str(v))
    for k, v in d["answer_letters"].items():
        t.add_row(f"  answer {k}", f"{v}%")
    for k, v in d["drops"].items():
        t.add_row(f"drop: {k}", str(v))
    for k, v in d["quarantine_reasons"].items():
        t.add_row(f"quarantine: {k}", str(v))
    for k, v in d["oracle"].items():
        t.add_row(f"oracle {k}", str(v))
    t.add_row("seconds", str(d["seconds"]))
    return t
