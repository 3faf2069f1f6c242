"""What every evaluation runner provides. Frames and prompts come from the one input builder
(``fourdthinker.models.inputs``) that DIFT, 4DRL and ``infer`` use too.

A runner turns a batch of ``BenchItem``s into raw model outputs (text). Parsing, scoring,
resuming and reporting are done once, by ``fourdthinker.eval.evaluate``, for every runner.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from fourdthinker.data.records import BenchItem
from fourdthinker.models.inputs import (
    MissingMediaError,  # re-exported: an item's media is missing (quarantined)
)

__all__ = ["FatalRunnerError", "MissingMediaError", "RandomRunner", "RunOutput", "Runner"]


class FatalRunnerError(RuntimeError):
    """The runner cannot work at all (model does not load, ...): stops the run with one clear error
    instead of quarantining every item."""


@dataclass
class RunOutput:
    text: str
    latency_s: float = 0.0
    n_latent_steps: int = 0
    imagery: list[str] = field(default_factory=list)  # optional image paths shown in the HTML report


@runtime_checkable
class Runner(Protocol):
    """``generate(items, root, seed=, do_sample=)`` -> one ``RunOutput`` per item, same order
    (or, in place, the exception of an item that failed on its own).

    A runner may also raise for a whole batch; ``evaluate`` then retries the items one by one and
    quarantines only the ones that still fail."""

    name: str
    batch_size: int

    def settings(self) -> dict: ...

    def generate(self, items: Sequence[BenchItem], root: Path, *, seed: int, do_sample: bool) -> list[RunOutput]: ...


class RandomRunner:
    """The chance baseline: a uniformly random letter per item (seeded by item id and seed).

    Useful as the "chance" row of a table and as a model-free check of the whole eval path."""

    name = "random"
    batch_size = 64

    def settings(self) -> dict:
        return {"runner": "random"}

    def generate(self, items: Sequence[BenchItem], root: Path, *, seed: int, do_sample: bool) -> list[RunOutput]:
        out = []
        for it in items:
            letter = random.Random(f"{seed}:{it.id}").choice(list(it.options))
            out.append(RunOutput(text=f"<think>chance baseline</think><answer>{letter}</answer>"))
        return out
