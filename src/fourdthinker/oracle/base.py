"""The oracle protocol: the "high-level model" of docs/method.md#oracle (the paper used Gemini-3-pro).

An oracle does four jobs in the data pipeline, each a method here:

1. ``select_landmarks``  pick one static and one dynamic object (App. A rules), structured output;
2. ``verify_static``     Eq. 2 consistency filter for the static overlays (all-or-nothing);
3. ``verify_dynamic``    Eq. 2 per-frame validity for the dynamic overlays (indices kept);
4. ``write_cot``         the imagery chain of thought for one MCQ (App. B Fig. 10/11 rules).

Backends: ``rule`` (offline, deterministic, answers from the synthetic world's truth and the
pipeline's measurements) and ``openai`` (any OpenAI-compatible chat endpoint). Both count their
calls/tokens/cost in :class:`OracleUsage`, which the runner sums into the summary table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


class OracleError(RuntimeError):
    """The oracle could not answer (bad JSON after retries, HTTP failure, missing truth)."""


@dataclass(frozen=True)
class Landmark:
    name: str
    description: str


@dataclass(frozen=True)
class Landmarks:
    static: Landmark
    dynamic: Landmark


@dataclass
class CotRequest:
    """Everything the oracle needs to write one imagery CoT.

    ``facts`` carries the pipeline's measurements in words/numbers (camera shift of the static
    landmark, the compensated object displacement, ...); the rule oracle turns them into text,
    the openai oracle passes them as context. ``overlays``/``frames`` are RGB uint8 images.
    """

    record_id: str
    task: str
    question: str
    options: dict[str, str]
    answer: str
    answer_text: str
    times: list[float]
    facts: dict[str, Any] = field(default_factory=dict)
    overlays: list[np.ndarray] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)
    attempt: int = 0

    @property
    def n_images(self) -> int:
        return len(self.times)


@dataclass
class OracleUsage:
    calls: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, other: OracleUsage | dict) -> None:
        d = other if isinstance(other, dict) else other.__dict__
        for k in ("calls", "cached", "prompt_tokens", "completion_tokens", "cost_usd"):
            setattr(self, k, getattr(self, k) + d.get(k, 0))

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@runtime_checkable
class Oracle(Protocol):
    name: str
    usage: OracleUsage

    def select_landmarks(self, frames: list[np.ndarray], *, clip: Any = None) -> Landmarks: ...

    def verify_static(self, overlays: list[np.ndarray], landmark: Landmark, masks: list[np.ndarray]) -> tuple[bool, str]: ...

    def verify_dynamic(self, overlays: list[np.ndarray], landmark: Landmark, masks: list[np.ndarray]) -> list[int]: ...

    def write_cot(self, req: CotRequest) -> str: ...


def make_oracle(name: str, **kw: Any) -> Oracle:
    """``rule`` or ``openai`` (alias ``openai-compatible``)."""
    if name == "rule":
        from fourdthinker.oracle.rule import RuleOracle

        return RuleOracle(**kw)
    if name in ("openai", "openai-compatible"):
        from fourdthinker.oracle.openai_backend import OpenAIOracle

        return OpenAIOracle(**kw)
    raise ValueError(f"unknown oracle {name!r}; choose 'rule' (offline) or 'openai' (any OpenAI-compatible endpoint)")
