"""Run one model on one benchmark, resumably, and score it: ``evaluate(runner, items, out_dir)``.

Files written under ``out_dir`` (one folder per model x benchmark):

* ``run.json``            what was run (model, bench, decoding); a rerun with other settings is refused
* ``predictions.jsonl``   one ``Prediction`` per item, appended and fsync'ed as it comes
                          (``predictions_seed{S}.jsonl`` per seed with ``samples > 1``)
* ``quarantine.jsonl``    items that failed (missing video, runner error), with the reason; retried on rerun
* ``summary.json``        accuracy, per-subtask accuracy, "Avg." with its 95% bootstrap CI, seed spread;
                          for latent-decoder runners also ``latent_health`` (mean norm of the fed-back
                          latent vectors vs the token embeddings, ``latent.health.decode_health``)

A rerun skips every item already in the predictions file. A truncated last line (a killed run) is
dropped with a warning and its item re-run; nothing already written is lost.

Data-parallel (``accelerate launch --num_processes N -m fourdthinker eval ...`` or torchrun): the
batches still to do are dealt round-robin to the N processes -- batch ``j`` of the one-process run
goes to process ``j mod N``, with the same items, so each batch decodes exactly as it would alone --
and after every round the outcomes are gathered in batch order; the main process alone writes the
files (same order as one process), so resuming, with any number of processes, works unchanged.
See docs/models.md.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fourdthinker.data.records import BenchItem, Prediction
from fourdthinker.errors import redact
from fourdthinker.eval.answers import parse_answer
from fourdthinker.eval.loaders import LoadResult
from fourdthinker.eval.metrics import accuracy, bootstrap_ci, group_by_subtask, macro_average, seed_spread
from fourdthinker.eval.runners.base import FatalRunnerError, Runner
from fourdthinker.io import append_jsonl, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

DEFAULT_TEMPERATURE = 0.7  # the reference's sampling settings (dsr_eval.py), used when samples > 1
DEFAULT_TOP_P = 0.9


@dataclass
class _Processes:
    """This process's place in a data-parallel eval (one process: rank 0 of 1, no communication)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def gather(self, obj) -> list:
        """Every process's ``obj``, in rank order, on every process."""
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out: list = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()


def _processes() -> _Processes:
    """Rank and world size when launched by accelerate/torchrun (``WORLD_SIZE`` > 1), else one process.
    Joins (or sets up, from the launcher's env) the default process group: gloo on CPUs (the outcomes
    exchanged are small Python objects), nccl when each process has a GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return _Processes()
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0") or 0))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return _Processes(dist.get_rank(), dist.get_world_size())


@dataclass
class EvalResult:
    """Predictions of one model on one benchmark (one dict per seed) and everything to score them."""

    name: str
    bench: str
    items: dict[str, BenchItem]
    runs: list[dict[str, Prediction]]  # one {id: Prediction} per seed; runs[0] is the headline run
    seeds: list[int] = field(default_factory=lambda: [0])
    skipped: list[dict] = field(default_factory=list)  # dropped by the loader
    failed: list[dict] = field(default_factory=list)  # quarantined at run time
    out_dir: Path | None = None
    warnings: list[str] = field(default_factory=list)
    latent_health: dict | None = None  # latent-decoder runners: decode_health over the run (None: not measured)

    @property
    def predictions(self) -> dict[str, Prediction]:
        return self.runs[0] if self.runs else {}

    def correct(self, run: int = 0) -> dict[str, bool]:
        """{item id: correct} of one run (seed); what paired comparisons use."""
        return {i: p.correct for i, p in self.runs[run].items() if i in self.items}

    def item_scores(self, run: int | None = None) -> dict[str, float]:
        """{item id: score}: 0/1 for one run, or the mean over seeds (items answered in every run)."""
        if run is not None or len(self.runs) == 1:
            return {i: float(ok) for i, ok in self.correct(run or 0).items()}
        maps = [self.correct(r) for r in range(len(self.runs))]
        common = set(maps[0]).intersection(*maps[1:])
        return {i: sum(m[i] for m in maps) / len(maps) for i in sorted(common)}

    def by_subtask(self, run: int | None = None) -> dict[str, list[float]]:
        """{subtask: item scores}; ``run=None`` averages each item over the seeds first."""
        return group_by_subtask(self.item_scores(run), {i: it.subtask for i, it in self.items.items()})

    def subtask_accuracy(self, run: int | None = None) -> dict[str, float]:
        return {s: accuracy(v) for s, v in self.by_subtask(run).items()}

    def avg(self, run: int | None = None) -> float:
        """The paper's "Avg.": mean over subtasks (of the seed-averaged item scores by default)."""
        return macro_average(self.by_subtask(run))

    def micro(self, run: int | None = None) -> float:
        return accuracy(list(self.item_scores(run).values()))

    def ci(self, statistic: str = "macro", run: int | None = None, n_boot: int = 2000) -> tuple[float, float]:
        """95% stratified bootstrap CI over items (seed-averaged item scores by default)."""
        return bootstrap_ci(self.by_subtask(run), statistic=statistic, n_boot=n_boot)

    def spread(self) -> dict[str, float]:
        """Spread of Avg. across the sampled seeds."""
        return seed_spread([self.avg(r) for r in range(len(self.runs))])

    def summary(self) -> dict:
        """The reference's summary keys (dsr_eval.py) plus CIs, seeds and skip/failure reasons."""
        by = self.by_subtask()
        lo, hi = self.ci()
        return {
            "model": self.name, "bench": self.bench,
            "total": len(self.items) + len(self.skipped), "eval_count": len(self.correct()),
            "skipped": len(self.skipped), "failed": len(self.failed),
            "correct": round(float(sum(self.item_scores().values())), 4), "accuracy": self.micro(),
            "subtask_accuracy": {s: accuracy(v) for s, v in by.items()},
            "subtask_correct": {s: round(float(sum(v)), 4) for s, v in by.items()},
            "subtask_total": {s: len(v) for s, v in by.items()},
            "subtask_macro_avg": self.avg(), "subtask_macro_avg_ci95": [lo, hi],
            "seeds": self.seeds, "seed_spread_avg": self.spread(),
            "skip_reasons": _count_reasons(self.skipped), "failure_reasons": _count_reasons(self.failed),
            "warnings": self.warnings,
        } | ({"latent_health": self.latent_health} if self.latent_health is not None else {})


def _count_reasons(rows: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        k = str(r.get("reason", "?")).split(":")[0]
        out[k] = out.get(k, 0) + 1
    return out


def read_predictions(path: Path, *, repair: bool = True) -> tuple[dict[str, Prediction], list[str]]:
    """Read a predictions JSONL, tolerating damage: a truncated last line (a killed run) is dropped
    (and, with ``repair``, cut from the file so appends stay valid); a broken middle line is
    skipped. Returns the predictions and one warning per problem, naming the file and line."""
    if not path.exists():
        return {}, []
    raw = path.read_bytes().decode("utf-8", errors="replace")
    lines = raw.split("\n")
    preds: dict[str, Prediction] = {}
    warnings: list[str] = []
    good: list[str] = []
    last_n = max((n for n, line in enumerate(lines, 1) if line.strip()), default=0)
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            p = Prediction(**json.loads(line))
        except (json.JSONDecodeError, TypeError, ValueError) as e:
            what = "truncated last line" if n == last_n else "unreadable line"
            warnings.append(f"{path}:{n}: {what} dropped, its item will be re-run ({type(e).__name__})")
            continue
        preds[p.id] = p
        good.append(line)
    if warnings and repair:
        atomic_write_text(path, "".join(g + "\n" for g in good))
    return preds, warnings


def _check_manifest(out_dir: Path, manifest: dict, overwrite: bool, write: bool = True) -> None:
    path = out_dir / "run.json"
    if path.exists() and not overwrite:
        old = json.loads(path.read_text())
        diff = sorted(k for k in set(old) | set(manifest) if old.get(k) != manifest.get(k))
        if diff:
            raise ValueError(
                f"{path}: this folder holds a run with other settings ({', '.join(diff)} differ); "
                f"use another --out, or --overwrite to start again"
            )
    if write:
        atomic_write_json(path, manifest)


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    disable=not enabled, transient=False)


def evaluate(runner: Runner, items: Sequence[BenchItem] | LoadResult, out_dir: str | os.PathLike, *,
             root: str | os.PathLike | None = None, bench: str | None = None, name: str | None = None, samples: int = 1, seed: int = 0,
             skipped: Sequence[dict] = (), overwrite: bool = False, progress: bool = True,
             limit: int | None = None) -> EvalResult:
    """Run ``runner`` on ``items`` (greedy; ``samples`` > 1 = sampled runs with seeds seed..seed+N-1),
    append predictions to ``out_dir``, skip what is done, quarantine failures, and score.

    ``items`` is a ``LoadResult`` (from ``load_benchmark``; gives root, bench and skipped rows) or a
    list of ``BenchItem``s with ``root``, the folder their ``video`` paths are relative to.

    >>> # res = evaluate(make_runner("random"), load_benchmark("synthetic", "data/world_test"), "reports/random")
    """
    if isinstance(items, LoadResult):
        root = root or items.root
        bench = bench or items.bench
        skipped = list(skipped) or items.skipped
        items = items.items
    if root is None:
        raise ValueError("evaluate: pass root= (the folder item.video paths are relative to) or a LoadResult")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    items = list(items)[:limit] if limit else list(items)
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"duplicated item id {dup!r}: ids key the predictions file, they must be unique")
    bench = bench or (items[0].bench if items else "unknown")
    name = name or runner.name
    do_sample = samples > 1
    seeds = [seed + s for s in range(samples)]
    manifest = {"model": name, "bench": bench, "samples": samples, "seed": seed, "do_sample": do_sample,
                "runner": runner.settings()}
    if do_sample and hasattr(runner, "plan_samples"):  # how the N samples are drawn is part of the resume key
        manifest["prefix_sharing"] = bool(getattr(runner, "prefix_sharing", False))
    procs = _processes()
    fresh = not (out_dir / "run.json").exists() or overwrite
    _check_manifest(out_dir, manifest, overwrite, write=False)  # every process refuses a changed run alike
    procs.barrier()
    if procs.main:  # only the main process writes (data-parallel runs: see the module docstring)
        if overwrite:
            for p in out_dir.glob("predictions*.jsonl"):
                p.unlink()
            (out_dir / "quarantine.jsonl").unlink(missing_ok=True)
        _check_manifest(out_dir, manifest, True)
    try:
        return _evaluate_items(runner, items, out_dir, procs, root=root, bench=bench, name=name, seeds=seeds,
                               do_sample=do_sample, skipped=skipped, overwrite=overwrite, progress=progress)
    except BaseException:
        # A run that failed before answering anything (model not loadable, endpoint down, Ctrl-C)
        # leaves no run.json behind, so the corrected command is not refused as "other settings".
        if procs.main and fresh and not any(p.stat().st_size for p in out_dir.glob("predictions*.jsonl")):
            (out_dir / "run.json").unlink(missing_ok=True)
        raise


def _evaluate_items(runner: Runner, items: list[BenchItem], out_dir: Path, procs: _Processes, *, root, bench: str,
                    name: str, seeds: list[int], do_sample: bool, skipped, overwrite: bool,
                    progress: bool) -> EvalResult:
    samples = len(seeds)
    previous_health = None if overwrite else _previous_latent_health(out_dir / "summary.json")
    if hasattr(runner, "reset_latent_health"):
        runner.reset_latent_health()
    if procs.main:
        (out_dir / "quarantine.jsonl").unlink(missing_ok=True)  # failures are retried; re-recorded if they fail again
    procs.barrier()
    if do_sample and hasattr(runner, "plan_samples"):  # e.g. one prefill per item for all N samples
        runner.plan_samples(seeds)

    runs: list[dict[str, Prediction]] = []
    warnings: list[str] = []
    failed: dict[str, dict] = {}
    by_id = {it.id: it for it in items}
    resumed = 0  # items already answered by an earlier (interrupted or finished) run of this folder
    for s in seeds:
        pred_path = out_dir / ("predictions.jsonl" if samples == 1 else f"predictions_seed{s}.jsonl")
        done, warn = read_predictions(pred_path, repair=procs.main)
        procs.barrier()  # every process has read the same file before the main one appends to it
        for w in warn:
            log.warning(w)
        warnings += warn
        todo = [it for it in items if it.id not in done]
        resumed += len(items) - len(todo)
        desc = f"{name} · {bench}" + (f" · seed {s}" if samples > 1 else "")
        with _progress(progress and procs.main) as bar:
            task = bar.add_task(desc, total=len(items), completed=len(items) - len(todo))
            bs = max(1, int(getattr(runner, "batch_size", 1)))
            n_batches = -(-len(todo) // bs)
            for first in range(0, n_batches, procs.world):  # one round: batch first + rank on each process
                j = first + procs.rank
                batch = todo[j * bs:(j + 1) * bs] if j < n_batches else []
                try:
                    mine = [_outcome(it, res, s) for it, res in _run_batch(runner, batch, Path(root), s, do_sample)] \
                        if batch else []
                except FatalRunnerError as e:
                    if procs.world == 1:
                        raise
                    mine = [("", "fatal", str(e))]  # stop every process, not only this one
                for iid, kind, val in (o for share in procs.gather(mine) for o in share):
                    if kind == "fatal":
                        raise FatalRunnerError(val)
                    if kind == "failed":
                        failed[iid] = val
                        if procs.main:
                            append_jsonl(out_dir / "quarantine.jsonl", val)
                        continue
                    if procs.main:
                        append_jsonl(pred_path, val.model_dump())
                    done[iid] = val
                    bar.advance(task)
        runs.append({i: p for i, p in done.items() if i in by_id})
    if procs.world > 1 and hasattr(runner, "gather_latent_health"):
        runner.gather_latent_health(procs.gather)  # sum every process's tally
    health = runner.latent_health(previous_health if resumed else None) if hasattr(runner, "latent_health") else None
    result = EvalResult(name, bench, by_id, runs, seeds, list(skipped), list(failed.values()), out_dir, warnings,
                        latent_health=health)
    if procs.main:
        atomic_write_json(out_dir / "summary.json", result.summary())
    procs.barrier()
    return result


def _outcome(it: BenchItem, res, seed: int) -> tuple[str, str, object]:
    """(item id, "pred", Prediction) or (item id, "failed", quarantine row) of one runner output."""
    if isinstance(res, Exception):
        return it.id, "failed", {"id": it.id, "seed": seed, "reason": redact(f"{type(res).__name__}: {res}")}
    parsed = parse_answer(res.text, it.options)
    return it.id, "pred", Prediction(id=it.id, raw_output=res.text, parsed_answer=parsed, correct=parsed == it.answer,
                                     latency_s=round(res.latency_s, 4), n_latent_steps=res.n_latent_steps,
                                     subtask=it.subtask, gold=it.answer, seed=seed, imagery=res.imagery)


def _previous_latent_health(path: Path) -> dict | None:
    """The ``latent_health`` a finished earlier part of this run stored (merged on resume)."""
    try:
        old = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, json.JSONDecodeError):
        return None
    h = old.get("latent_health") if isinstance(old, dict) else None
    return h if isinstance(h, dict) else None


def _run_batch(runner: Runner, batch: list[BenchItem], root: Path, seed: int, do_sample: bool):
    """Yield (item, RunOutput | Exception); a failing batch is retried item by item."""
    t0 = time.perf_counter()
    try:
        outs = runner.generate(batch, root, seed=seed, do_sample=do_sample)
        if len(outs) != len(batch):
            raise RuntimeError(f"runner returned {len(outs)} outputs for {len(batch)} items")
        dt = (time.perf_counter() - t0) / len(batch)
        for it, o in zip(batch, outs, strict=True):
            if isinstance(o, Exception):  # runners may report per-item failures in place
                yield it, o
                continue
            if not o.latency_s:
                o.latency_s = dt
            yield it, o
        return
    except (KeyboardInterrupt, FatalRunnerError):
        raise
    except Exception as e:
        if len(batch) == 1:
            yield batch[0], e
            return
        log.warning("batch of %d failed (%s); retrying one by one", len(batch), e)
    for it in batch:
        yield from _run_batch(runner, [it], root, seed, do_sample)


def load_result(out_dir: str | os.PathLike, items: Sequence[BenchItem], *, name: str | None = None) -> EvalResult:
    """Re-open a finished (or partial) run folder for reports and paired comparisons, without running."""
    out_dir = Path(out_dir)
    manifest = json.loads((out_dir / "run.json").read_text()) if (out_dir / "run.json").exists() else {}
    paths = sorted(out_dir.glob("predictions_seed*.jsonl"), key=lambda p: int(p.stem.rsplit("seed", 1)[1])) \
        or [out_dir / "predictions.jsonl"]
    by_id = {it.id: it for it in items}
    runs, warnings = [], []
    for p in paths:
        preds, w = read_predictions(p, repair=False)
        runs.append({i: q for i, q in preds.items() if i in by_id})
        warnings += w
    seeds = [int(p.stem.rsplit("seed", 1)[1]) for p in paths] if "seed" in paths[0].stem else [manifest.get("seed", 0)]
    return EvalResult(name or manifest.get("model", out_dir.name), manifest.get("bench", "unknown"), by_id, runs, seeds,
                      out_dir=out_dir, warnings=warnings)
