"""Versioned data contracts (docs/data.md#records), validated with pydantic.

* ``DiftRecord``  one imagery-CoT training sample (Eq. 4, docs/method.md#eq-4), JSONL + PNG overlays beside it.
* ``RLRecord``    one DSR-Train-style QA pair (no reasoning) for 4DRL.
* ``BenchItem``   one normalised benchmark question (every loader produces these).
* ``Prediction``  one model answer, appended to a predictions JSONL as it comes.

All paths inside records are relative to their dataset root; ``resolve_inside`` refuses escapes.
The prompt and answer format the records feed (``build_question_text``, ``format_options``,
``IMAGERY``, ``parse_answer``) is ``fourdthinker.qa``; both modules sit at the package root so every
stage imports them without importing another stage (docs/architecture.md).

Dataset root layout written by ``fourdthinker data build`` (the root is the folder holding
``dift.jsonl``; trainers resolve every path relative to it)::

    dift.jsonl  rl.jsonl  quarantine.jsonl  manifest.json  summary.json
    clips/<clip>/video.mp4            hard link (or copy) of the source video   -> record["video"]
    clips/<clip>/frames/<k>.png       the 1-FPS sampled frames, in time order    -> record["frames"]
    clips/<clip>/img/<id>_<k>.png     overlay k of record <id> (Eq. 1)           -> record["imagery"][k]

Consumers should prefer ``frames`` (exactly the frames the questions were built on, 1 FPS) and
fall back to decoding ``video`` at ``frames_fps``. ``answer`` is the letter; ``answer_text`` the
option text (``options[answer]``), kept for answer formats that want the words.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fourdthinker.io import resolve_inside
from fourdthinker.labels import OPTION_LETTERS, TASKS
from fourdthinker.qa import IMAGERY

SCHEMA_VERSION = 1

Task = Literal["camera", "direction", "bbox", "distance", "speed"]
assert set(TASKS) == {"camera", "direction", "bbox", "distance", "speed"}


def _check_window(v: tuple[float, float] | None) -> tuple[float, float] | None:
    if v is not None and not 0.0 <= v[0] < v[1]:
        raise ValueError(f"window_s must be [start, end] seconds with 0 <= start < end, got {list(v)}")
    return v


WINDOW_HELP = ("[start, end] seconds of the video the question asks about; frames come from this span "
               "only when a stage runs with span='window' (docs/models.md#frame-span-the-whole-video-or-the-asked-window)")


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    options: dict[str, str]
    answer: str

    @field_validator("options")
    @classmethod
    def _four_options(cls, v: dict[str, str]) -> dict[str, str]:
        if list(v) != list(OPTION_LETTERS):
            raise ValueError(f"options must have keys A, B, C, D in order, got {list(v)}")
        if any(not str(t).strip() for t in v.values()):
            raise ValueError("options must not be empty")
        if len(set(v.values())) != len(v):
            raise ValueError(f"options must be distinct, got {list(v.values())}")
        return v

    @field_validator("answer")
    @classmethod
    def _letter(cls, v: str) -> str:
        if v not in OPTION_LETTERS:
            raise ValueError(f"answer must be one of A-D, got {v!r}")
        return v


class RLRecord(_Options):
    """``{id, video, question, options, answer, task}`` (DSR-Train style, no reasoning)."""

    id: str
    video: str = Field(description="clip folder or video file, relative to the dataset root")
    question: str
    task: str = "camera"
    frames: list[str] | None = Field(default=None, description="optional pre-extracted frame PNGs")
    answer_text: str | None = Field(default=None, description="options[answer], the answer in words")
    meta: dict = Field(default_factory=dict, description="provenance: times, label source, segment, objects")
    window_s: tuple[float, float] | None = Field(default=None, description=WINDOW_HELP)
    source: str = "synthetic"
    schema_version: int = SCHEMA_VERSION

    @field_validator("window_s")
    @classmethod
    def _window(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        return _check_window(v)

    @field_validator("question")
    @classmethod
    def _question(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("question is empty")
        return v

    @model_validator(mode="after")
    def _answer_text_matches(self) -> RLRecord:
        if self.answer_text is not None and self.options.get(self.answer) != self.answer_text:
            raise ValueError(f"record {self.id}: answer_text {self.answer_text!r} != options[{self.answer}]")
        return self


class DiftRecord(RLRecord):
    """``{id, video, frames_fps, question, options, answer, task, reasoning, imagery, source}``.

    ``reasoning`` is ``<think> .. <imagery> .. </think><answer>X</answer>``, one ``<imagery>``
    placeholder per entry of ``imagery`` (overlay PNG paths), in chronological order.
    """

    frames_fps: float = 1.0
    reasoning: str
    imagery: list[str]

    @model_validator(mode="after")
    def _imagery_count(self) -> DiftRecord:
        n = self.reasoning.count(IMAGERY)
        if n != len(self.imagery):
            raise ValueError(f"record {self.id}: {n} <imagery> placeholders but {len(self.imagery)} imagery images")
        return self

    def resolve(self, root: str | Path) -> tuple[Path, list[Path]]:
        """Absolute (video, imagery paths), refusing any that escape ``root``."""
        return resolve_inside(root, self.video), [resolve_inside(root, p) for p in self.imagery]


class BenchItem(_Options):
    """Normalised benchmark item: ``{id, video, question, options, answer, subtask, bench}``.

    ``video`` is a video file or a folder of frames, relative to the benchmark root (or absolute
    when the loader was given absolute paths by the user)."""

    id: str
    video: str
    question: str
    subtask: str
    bench: str
    meta: dict = Field(default_factory=dict)
    window_s: tuple[float, float] | None = Field(default=None, description=WINDOW_HELP)

    @field_validator("window_s")
    @classmethod
    def _window(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        return _check_window(v)


class Prediction(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    raw_output: str
    parsed_answer: str | None
    correct: bool
    latency_s: float = 0.0
    n_latent_steps: int = 0
