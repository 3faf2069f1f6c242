"""The read-out check, and the stop rule built on it (docs/latent_feed_study.md#readout-check).

For a DIFT model trained with ``--response imagery-answer`` (the response is only the imagery
blocks and the answer), the check runs the training forward (``train.dift.dift_forward``, with the
model's bottleneck and feed norm) on held-out records and counts those whose whole answer (every
token between ``<answer>`` and ``</answer>``) is the argmax, with the latent slots fed:

* ``target``: the targets z, as in teacher-forced training;
* ``zero``:   zeros;
* ``roll``:   the targets of the next record with as many latent vectors (another scene);
* ``self``:   the model's own h_{t-1}, step by step as at inference (``--latent-feed self``).

``target`` well above ``zero``: the answer reads what the slots hold. ``self`` level with
``target``: the chain feeds itself what the answer reads.

``train dift --stop-when`` turns this into a stop rule (:class:`ReadoutGateCallback`): every
``--gate-every`` steps it checks the last ``--gate-records`` records of ``--gate-task``, which are
kept out of training, and stops the run when :func:`gate_decision` says the stage has done its job.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from fourdthinker.train.dift_config import GATES

__all__ = ["GATES", "GATE_ALPHA", "READOUT_FEEDS", "ReadoutGateCallback", "answer_span", "gate_decision",
           "gate_feeds", "gate_indices", "readout_accuracy"]

READOUT_FEEDS = ("target", "zero", "roll", "self")
GATE_ALPHA = 0.01  # the McNemar p a gate needs, on top of its margin (checks are repeated: kept strict)


def answer_span(tokenizer, row: list[int], after: int) -> tuple[int, int]:
    """(a, b): the token positions of the answer text in ``row``, searched after position ``after``
    (the last ``<|latent_end|>``): ``a`` is the first token after ``<answer>``, ``b`` the token that
    opens ``</answer>``. Raises ValueError when there is none."""
    dec = lambda s, e: tokenizer.decode(row[s:e], skip_special_tokens=False)  # noqa: E731
    a = after + 1
    while a <= len(row) and not dec(after + 1, a).endswith("<answer>"):
        a += 1
    b = a
    while b < len(row) and "</" not in dec(a, b + 1):
        b += 1
    if a > len(row) or b >= len(row) or b == a:
        raise ValueError("no <answer>...</answer> after the last latent block")
    return a, b


def gate_feeds(gate: str) -> tuple[str, ...]:
    """The feeds ``gate`` compares: ``readout`` target vs zero; ``self-level`` also self."""
    return {"readout": ("target", "zero"), "self-level": ("target", "zero", "self")}[gate]


def gate_decision(acc: Mapping[str, Sequence[bool]], gate: str, *, margin: float, tolerance: float,
                  alpha: float = GATE_ALPHA) -> tuple[bool, str]:
    """Has the stage done its job? ``acc[feed]`` is, per held-out record, whether the answer was
    right with the slots fed ``feed`` (:func:`readout_accuracy`); accuracies in points (0-100).

    * ``readout`` (the curriculum's first stage): the answer reads the slots::

          acc(target) - acc(zero) >= margin  and  McNemar p(target vs zero) < alpha

    * ``self-level`` (the second stage): the model's own vectors are read as well as the targets,
      and they are read at all::

          acc(self) >= acc(target) - tolerance  and  acc(self) - acc(zero) >= margin
          and  McNemar p(self vs zero) < alpha

    McNemar is the exact two-sided test on the records where the two feeds disagree
    (``fourdthinker.stats.mcnemar_exact``). Returns (met, one line saying why)."""
    from fourdthinker.stats import mcnemar_exact

    if gate not in GATES[1:]:
        raise ValueError(f"gate must be one of {GATES[1:]}, got {gate!r}")
    n = len(acc["target"])
    if n == 0 or any(len(acc[f]) != n for f in gate_feeds(gate)):
        raise ValueError(f"gate {gate}: every feed needs the same records, got {({f: len(acc[f]) for f in acc})}")
    pct = {f: 100.0 * sum(v) / n for f, v in acc.items()}

    def test(a: str, b: str) -> float:
        only_a = sum(x and not y for x, y in zip(acc[a], acc[b], strict=True))
        only_b = sum(y and not x for x, y in zip(acc[a], acc[b], strict=True))
        return mcnemar_exact(only_a, only_b)

    read = "self" if gate == "self-level" else "target"
    gap, p = pct[read] - pct["zero"], test(read, "zero")
    said = f"{read} {pct[read]:.1f} vs zero {pct['zero']:.1f} ({gap:+.1f} points, p {p:.2g})"
    met = gap >= margin and p < alpha
    if gate == "self-level":
        level = pct["self"] >= pct["target"] - tolerance
        said += f"; self {pct['self']:.1f} vs target {pct['target']:.1f} (tolerance {tolerance:g})"
        met = met and level
    return met, ("met: " if met else "not yet: ") + said


def readout_accuracy(adapter, samples: Sequence, cfg, feeds: Sequence[str], *, batch_size: int = 16,
                     progress: Callable | None = None) -> dict[str, list[bool]]:
    """Per sample (in order) and per feed: is the whole answer the argmax of the teacher-forced
    forward with the slots fed ``feed`` (module docstring)? ``samples`` are ``train.collate.Sample``s
    of ``--response imagery-answer`` (a list, or any sequence that encodes on access); ``cfg`` is the
    ``DiftConfig`` the forward runs under (its bottleneck and feed norm; its feed is set per ``feed``).
    ``progress(n)`` is called after each batch with its size (e.g. a rich bar's ``advance``)."""
    import dataclasses

    from fourdthinker.train.collate import DiftCollator
    from fourdthinker.train.dift import dift_forward

    bad = [f for f in feeds if f not in READOUT_FEEDS]
    if bad:
        raise ValueError(f"feeds must be among {READOUT_FEEDS}, got {bad}")
    nxt: dict[int, int] = {}
    if "roll" in feeds:  # each record -> the next one with as many latent vectors (cyclic)
        groups: dict[int, list[int]] = defaultdict(list)
        for i in range(len(samples)):
            groups[samples[i].latents.shape[0]].append(i)
        for g in groups.values():
            for j, i in enumerate(g):
                nxt[i] = g[(j + 1) % len(g)]
    collate = DiftCollator(adapter.pad_id)
    acc: dict[str, list[bool]] = {f: [] for f in feeds}
    for c in range(0, len(samples), batch_size):
        idx = list(range(c, min(len(samples), c + batch_size)))
        batch = [samples[i] for i in idx]
        b = collate(batch)
        rows = b["input_ids"]
        spans = []
        for r in range(len(idx)):
            row = rows[r].tolist()
            le = max(j for j, t in enumerate(row) if t == adapter.latent_end_id)
            spans.append(answer_span(adapter.tokenizer, row, le))
        for feed in feeds:
            fb = dict(b)
            if feed == "zero":
                fb["latents"] = torch.zeros_like(b["latents"])
            elif feed == "roll":
                fb["latents"] = torch.cat([samples[nxt[i]].latents for i in idx])
            fc = dataclasses.replace(cfg, latent_feed="self" if feed == "self" else "target")
            with torch.no_grad():
                _, _, out = dift_forward(adapter, fb, fc)
            for r, (s, e) in enumerate(spans):
                pred = out.logits[r, s - 1 : e - 1].argmax(-1).to(rows.device)
                acc[feed].append(bool((pred == rows[r, s:e]).all()))
        if progress is not None:
            progress(len(idx))
    return acc


def gate_indices(tasks: Sequence[str | None], task: str | None, n: int) -> list[int]:
    """The held-out records of a gated run: the last ``n`` items whose task is ``task`` (None: any
    task), in file order. ``tasks[i]`` is item i's task. Raises ValueError when there are fewer than
    ``4 * n`` such items (the check would take too much of the stage's data)."""
    pool = [i for i, t in enumerate(tasks) if task is None or t == task]
    if len(pool) < 4 * n:
        what = f"records of task {task!r}" if task else "records"
        raise ValueError(f"the read-out gate holds out {n} {what}, but the data has only {len(pool)} (needs at "
                         f"least {4 * n}): lower --gate-records or pass more data")
    return pool[-n:]


class ReadoutGateCallback(TrainerCallback):
    """``train dift --stop-when``: the read-out check on held-out records every ``every`` optimizer
    steps; stops training once :func:`gate_decision` is met (the model at that step is what
    ``train_dift`` saves). Each check is logged into the step's JSONL row (``readout_<feed>`` in %,
    via the trainer's ``record``: pass this callback before ``StepLogCallback``) and appended to
    ``gate.json`` in the output folder, with the step the gate fired at. Every process runs the
    check (the forward is collective under ZeRO-3); rank 0's decision is the one all follow."""

    def __init__(self, adapter, samples: Sequence, cfg, *, gate: str, every: int, margin: float, tolerance: float,
                 out: str | Path, batch_size: int = 16):
        self.adapter, self.samples, self.cfg, self.gate = adapter, samples, cfg, gate
        self.every, self.margin, self.tolerance, self.batch_size = every, margin, tolerance, batch_size
        self.file = Path(out) / "gate.json"
        self.trainer = None
        state = json.loads(self.file.read_text()) if self.file.exists() else {}
        self.checks: list[dict[str, Any]] = state.get("checks", []) if state.get("stop_when") == gate else []
        self.fired_at: int | None = state.get("fired_at") if self.checks else None

    def _write(self) -> None:
        from fourdthinker.io import atomic_write_json

        atomic_write_json(self.file, {"stop_when": self.gate, "every": self.every, "margin": self.margin,
                                      "tolerance": self.tolerance, "alpha": GATE_ALPHA, "records": len(self.samples),
                                      "fired_at": self.fired_at, "checks": self.checks}, indent=1)

    def check(self, model) -> tuple[bool, str, dict[str, float]]:
        was = model.training
        model.eval()
        try:
            acc = readout_accuracy(self.adapter, self.samples, self.cfg, gate_feeds(self.gate),
                                   batch_size=self.batch_size)
        finally:
            model.train(was)
        met, why = gate_decision(acc, self.gate, margin=self.margin, tolerance=self.tolerance)
        return met, why, {f: 100.0 * sum(v) / len(v) for f, v in acc.items()}

    def on_train_begin(self, args, state, control, **kw):
        # --resume: keep the checks up to the checkpoint's step (the steps after it are trained again)
        self.checks = [c for c in self.checks if c["step"] <= state.global_step]
        if self.fired_at is not None and self.fired_at > state.global_step:
            self.fired_at = None

    def on_step_end(self, args, state, control, model=None, **kw):
        step = state.global_step
        if self.fired_at is not None:  # resumed after the gate fired: stop at once
            control.should_training_stop = True
            return control
        if self.every <= 0 or (step % self.every and step != state.max_steps):  # and at the cap: the last state
            return control
        met, why, pct = self.check(model if model is not None else self.trainer.model)
        met = _rank0(met)
        if self.trainer is not None:
            self.trainer.record({f"readout_{f}": v for f, v in pct.items()})
        self.checks.append({"step": step, **{f: round(v, 2) for f, v in pct.items()}, "met": met, "why": why})
        if met:
            self.fired_at = step
            control.should_training_stop = True
        if state.is_world_process_zero:  # one line per check, bar or not (a few per run): logs show the trajectory
            self._write()
            from rich.console import Console

            Console(stderr=True).print(f"read-out gate ({self.gate}) at step {step}: {why}", soft_wrap=True,
                                       highlight=False)
        return control

    def on_train_end(self, args, state, control, **kw):
        if state.is_world_process_zero:
            self._write()


def _rank0(flag: bool) -> bool:
    """Rank 0's ``flag`` on every process (one decision when several train)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
        box = [flag]
        torch.distributed.broadcast_object_list(box, src=0)
        return bool(box[0])
    return flag
