"""Demo-scale training records: the built DIFT/RL data, reshaped so a tiny model can learn it.

Two pure text transforms (each documented, each tested) and one file step:

* :func:`answer_as_text` ``<answer>B</answer>`` -> ``<answer>Pan Left</answer>``. A tiny
  random-init VLM does not learn to bind letters to shuffled options within minutes
  (docs/results.md#learnability-study); answering with the option's text removes that binding, and the one answer
  parser (``eval.answers.parse_answer``) maps the text back to its letter, so scoring is unchanged.
* :func:`compact_cot` keeps the ``<think>`` sentences that hold ``<imagery>`` placeholders and the
  concluding sentence (which names the motion): the oracle's full template reasoning is ~240
  tokens, the compact one ~60, which is what makes the CPU budget of the demo.
* :func:`prepare_records` applies them to ``dift.jsonl`` / ``rl.jsonl`` of a built dataset and
  writes ``demo_dift.jsonl`` / ``demo_rl.jsonl`` beside them (same root, so record paths resolve).
  With ``rl_clips=N`` the last N clips (sorted by video path) give RL records only and the others
  SFT records only, as the paper trains 4DRL on its own question set: RL on questions the SFT
  model has already fitted has nothing left to learn (its reward starts near its ceiling).
* :func:`task_records` the records of some tasks only (the DIFT curriculum's first stage reads
  the camera records alone; docs/latent_feed_study.md#the-dift-curriculum-in-the-demo).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from fourdthinker.io import read_jsonl, write_jsonl
from fourdthinker.qa import IMAGERY
from fourdthinker.records import DiftRecord, RLRecord

__all__ = ["answer_as_text", "compact_cot", "prepare_records", "rl_clip_split", "task_records"]

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def answer_as_text(reasoning: str, options: dict[str, str]) -> str:
    """Replace the answer letter inside ``<answer>..</answer>`` by that option's text.

    >>> answer_as_text("<think>x</think><answer>B</answer>", {"A": "Pan Left", "B": "Tilt Up", "C": "c", "D": "d"})
    '<think>x</think><answer>Tilt Up</answer>'

    An answer that already is an option's text is kept; anything else raises ``ValueError``."""
    m = _ANSWER.search(reasoning)
    if m is None:
        raise ValueError(f"no <answer>...</answer> in reasoning {reasoning[-60:]!r}")
    ans = m.group(1).strip().rstrip(".")
    if ans in options:
        text = options[ans]
    elif ans in options.values():
        text = ans
    else:
        raise ValueError(f"answer {m.group(1)!r} is neither a letter nor an option text of {options}")
    return reasoning[: m.start()] + f"<answer>{text}</answer>" + reasoning[m.end():]


def compact_cot(reasoning: str) -> str:
    """Keep only the ``<think>`` sentences with ``<imagery>`` and the last sentence, in order.

    >>> compact_cot("<think>Intro. See <imagery> then <imagery> here. Shift. So: Pan Left.</think><answer>A</answer>")
    '<think>See <imagery> then <imagery> here. So: Pan Left.</think><answer>A</answer>'

    The placeholder count never changes (a sentence split inside the imagery chain keeps both
    parts); reasoning without a think block is returned unchanged."""
    m = _THINK.search(reasoning)
    if m is None:
        return reasoning
    sentences = [s for s in _SENTENCE_END.split(m.group(1).strip()) if s]
    keep = [s for i, s in enumerate(sentences) if IMAGERY in s or i == len(sentences) - 1]
    body = " ".join(keep)
    if body.count(IMAGERY) != m.group(1).count(IMAGERY):  # never lose a placeholder
        body = m.group(1).strip()
    return reasoning[: m.start()] + f"<think>{body}</think>" + reasoning[m.end():]


def rl_clip_split(videos: list[str], rl_clips: int) -> set[str]:
    """The clips (video paths) reserved for RL: the last ``rl_clips`` of the sorted unique paths.

    >>> sorted(rl_clip_split(["c/2.mp4", "c/0.mp4", "c/1.mp4", "c/2.mp4"], 1))
    ['c/2.mp4']

    Raises ``ValueError`` when that leaves no clip for SFT."""
    unique = sorted(set(videos))
    if rl_clips <= 0:
        return set()
    if rl_clips >= len(unique):
        raise ValueError(f"rl_clips={rl_clips} leaves no SFT clips (the data has {len(unique)} clips)")
    return set(unique[-rl_clips:])


def prepare_records(data_dir: str | Path, *, answer_style: str = "text", cot: str = "compact",
                    tasks: tuple[str, ...] | None = None, rl_clips: int = 0) -> dict:
    """``data_dir/{dift,rl}.jsonl`` -> ``data_dir/demo_{dift,rl}.jsonl``; returns counts.

    Records of other ``tasks`` are left out; a record the transforms break is dropped and counted
    (``drops``), never fatal. ``rl_clips > 0`` splits by clip (:func:`rl_clip_split`): RL records
    from those clips only, SFT records from the others only."""
    root = Path(data_dir)
    counts: dict = {"dift": 0, "rl": 0, "drops": Counter(), "by_task": Counter()}
    rows = [r for r in read_jsonl(root / "dift.jsonl") if not tasks or r.get("task") in tasks]
    rl_all = [r for r in read_jsonl(root / "rl.jsonl") if not tasks or r.get("task") in tasks]
    rl_set = rl_clip_split([r.get("video", "") for r in rows + rl_all], rl_clips)
    counts["rl_clips"] = len(rl_set)
    dift_rows = []
    for row in rows:
        if row.get("video") in rl_set:
            continue
        try:
            rec = DiftRecord.model_validate(row)
            text = rec.reasoning
            if cot == "compact":
                text = compact_cot(text)
            if answer_style == "text":
                text = answer_as_text(text, rec.options)
            rec = DiftRecord.model_validate(rec.model_dump() | {"reasoning": text})
        except ValueError as e:
            counts["drops"][str(e).splitlines()[0][:80]] += 1
            continue
        dift_rows.append(rec.model_dump(exclude_none=True))
        counts["by_task"][rec.task] += 1
    counts["dift"] = write_jsonl(root / "demo_dift.jsonl", dift_rows)
    rl_rows = [RLRecord.model_validate(r).model_dump(exclude_none=True) for r in rl_all
               if not rl_set or r.get("video") in rl_set]
    counts["rl"] = write_jsonl(root / "demo_rl.jsonl", rl_rows)
    counts["drops"] = dict(counts["drops"])
    counts["by_task"] = dict(counts["by_task"])
    return counts


def task_records(file: str | Path, tasks: tuple[str, ...]) -> Path:
    """The records of ``tasks`` in the JSONL ``file``, written once next to it
    (``demo_dift.camera.jsonl``; again when ``file`` is newer), where their relative paths resolve;
    returns that path.

    Raises ``ValueError`` (naming the file) when none of its records is of those tasks."""
    file = Path(file)
    sub = file.with_name(f"{file.stem}.{'-'.join(tasks)}.jsonl")
    if not sub.exists() or sub.stat().st_mtime_ns < file.stat().st_mtime_ns:  # made once, again if file changed
        keep = [r for r in read_jsonl(file) if r.get("task") in tasks]
        if not keep:
            raise ValueError(f"{file}: no records of task(s) {', '.join(tasks)}")
        write_jsonl(sub, keep)
    return sub
