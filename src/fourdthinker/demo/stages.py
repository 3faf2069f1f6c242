"""Stage-level resume for long recipes: each finished stage leaves an atomic done-marker.

A recipe is a list of :class:`Stage` (name + zero-argument function returning a JSON-able summary).
:func:`run_stages` runs them in order; a stage whose marker ``<out>/.stages/<name>.json`` exists is
skipped and its recorded summary reused, so a killed run, rerun, resumes after the last finished
stage. The marker is written with ``atomic_write_json`` only after the stage function returned, so
a stage killed half-way is simply run again (stage functions must therefore tolerate leftovers of
their own half-finished earlier attempt, e.g. by writing their outputs atomically).

A recipe also pins its configuration: :func:`pin_config` stores it in ``<out>/config.json`` on the
first run and refuses, with a one-line error, to resume a folder made with a different one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fourdthinker.hashing import sha256_json
from fourdthinker.io import atomic_write_json

__all__ = ["ConfigMismatchError", "Stage", "marker_path", "pin_config", "run_stages"]

MARKER_DIR = ".stages"


class ConfigMismatchError(RuntimeError):
    """The output folder was made by a run with a different configuration."""


@dataclass(frozen=True)
class Stage:
    """One resumable step: ``fn()`` does the work and returns a JSON-able summary dict."""

    name: str
    title: str
    fn: Callable[[], dict[str, Any]]


def marker_path(out: str | Path, name: str) -> Path:
    return Path(out) / MARKER_DIR / f"{name}.json"


def pin_config(out: str | Path, config: dict[str, Any], defaults: dict[str, Any] | None = None) -> None:
    """Record ``config`` in ``out/config.json``; refuse to reuse ``out`` with a different one.
    A setting added to the package after the folder was made (absent from its config.json) counts
    as unchanged when ``config`` has it at its value in ``defaults``, so old folders still resume."""
    import json

    path = Path(out) / "config.json"
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ConfigMismatchError(f"{path}: not valid JSON ({e.msg}); delete the folder or use another --out") from None
        old = {**{k: v for k, v in (defaults or {}).items() if k in config and k not in old}, **old}
        if sha256_json(old) != sha256_json(config):
            diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            raise ConfigMismatchError(
                f"{path}: this folder was made with a different configuration (differs in {', '.join(diff)}); "
                "use another --out or --fresh"
            )
        return
    atomic_write_json(path, config)


def run_stages(
    out: str | Path,
    stages: list[Stage],
    *,
    on_start: Callable[[Stage], None] | None = None,
    on_done: Callable[[Stage, dict[str, Any], bool], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run ``stages`` in order, skipping those with a done-marker; returns ``{name: summary}``.

    ``on_done(stage, summary, skipped)`` is called after each stage (``skipped`` True when the
    marker already existed). Each summary gains ``elapsed_s`` (wall) and ``cpu_s`` (this process's
    CPU time, all threads) of the run that made it."""
    import json

    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise ValueError(f"stage names must be unique, got {names}")
    results: dict[str, dict[str, Any]] = {}
    for stage in stages:
        marker = marker_path(out, stage.name)
        if marker.exists():
            summary = json.loads(marker.read_text(encoding="utf-8"))
            results[stage.name] = summary
            if on_done:
                on_done(stage, summary, True)
            continue
        if on_start:
            on_start(stage)
        t0, c0 = time.perf_counter(), time.process_time()
        summary = dict(stage.fn() or {})
        summary["elapsed_s"] = round(time.perf_counter() - t0, 2)
        summary["cpu_s"] = round(time.process_time() - c0, 2)  # this process, all threads (not workers)
        atomic_write_json(marker, summary)
        results[stage.name] = summary
        if on_done:
            on_done(stage, summary, False)
    return results


def console_progress(console, stages: list[Stage]) -> tuple[Callable[[Stage], None], Callable[[Stage, dict, bool], None]]:
    """``(on_start, on_done)`` callbacks for ``run_stages`` that print one header per stage and a
    done/skipped line with its time (used by the demo and by the ablations)."""
    t0 = time.perf_counter()
    n = len(stages)
    index = {s.name: i + 1 for i, s in enumerate(stages)}

    def on_start(s: Stage) -> None:
        console.rule(f"[bold]{index[s.name]}/{n} {s.title}[/bold]  [dim]({s.name})[/dim]")

    def on_done(s: Stage, summary: dict, skipped: bool) -> None:
        if skipped:
            console.print(f"[dim]{index[s.name]}/{n} {s.name}: done earlier ({summary.get('elapsed_s', '?')} s), skipped[/dim]")
        else:
            console.print(f"[green]✓[/green] {s.name} in {summary['elapsed_s']:.1f} s "
                          f"[dim](total {time.perf_counter() - t0:.0f} s)[/dim]")

    return on_start, on_done
