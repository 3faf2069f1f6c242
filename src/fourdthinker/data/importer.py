"""Import the official 4DThinker release (docs/reference.md#data-formats) into our records.

* DIFT JSONL rows ``{id, text_input, text_output, image_input, image_output}``: ``text_input`` is
  ``"<question>\\n\\nA. ..\\nB. ..\\nC. ..\\nD. .."``; ``text_output`` is ``<think>`` (or
  ``<thinking>``) with ``<output_image>`` placeholders, then ``<answer>B. Pan Right</answer>``;
  ``image_input`` the frame paths, ``image_output`` the overlay paths (one per placeholder).
  -> :class:`DiftRecord` with ``<imagery>`` placeholders, answer letter and ``answer_text``.
* RL JSONL rows ``{Question, A, B, C, D, Correct, video_path | frame_paths}`` -> :class:`RLRecord`.

Paths are taken relative to ``root`` (the folder the release was unpacked in) and must stay
inside it (``resolve_inside``); a row that escapes, misses fields or fails validation is skipped
with its reason (counted, and written to the returned ``rejects`` list), the import goes on.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from pydantic import ValidationError

from fourdthinker.data.validate import parse_answer_letter
from fourdthinker.io import read_jsonl, resolve_inside
from fourdthinker.labels import CAMERA_MOTIONS
from fourdthinker.qa import IMAGERY
from fourdthinker.records import DiftRecord, RLRecord

_OPT = re.compile(r"^\s*([A-D])[.:)]\s*(.+?)\s*$")


def split_text_input(text: str) -> tuple[str, dict[str, str]]:
    """``question\\n\\nA. x\\nB. y ...`` -> (question, {A: x, ...}); suffix lines after D are dropped."""
    lines = text.strip().splitlines()
    opts: dict[str, str] = {}
    q_lines = []
    for line in lines:
        m = _OPT.match(line)
        if m and m.group(1) not in opts and len(opts) < 4 and m.group(1) == "ABCD"[len(opts)]:
            opts[m.group(1)] = m.group(2)
        elif not opts:
            q_lines.append(line)
        elif len(opts) == 4:
            break
    if list(opts) != ["A", "B", "C", "D"]:
        raise ValueError(f"text_input has options {list(opts)}, want A-D")
    return "\n".join(q_lines).strip(), opts


def convert_reasoning(text: str) -> tuple[str, str]:
    """Official ``text_output`` -> (our reasoning string, answer text inside the tag)."""
    t = text.replace("<thinking>", "<think>").replace("</thinking>", "</think>").replace("<output_image>", IMAGERY)
    m = re.search(r"<answer>\s*(.*?)\s*</answer>", t, re.DOTALL)
    if not m:
        raise ValueError("text_output has no <answer>...</answer>")
    return t, m.group(1)


def _task_of(rid: str, answer_text: str) -> str:
    for k in ("bbox", "distance", "speed", "direction"):
        if f"_{k}" in rid or f"dynamic_{k}" in rid:
            return k
    if "dynamic" in rid:
        return "direction"
    return "camera" if answer_text in CAMERA_MOTIONS else "direction"


def _rel(root: Path, p: str) -> str:
    resolve_inside(root, p)  # raises UnsafePathError on escape
    return str(Path(p))


def import_dift(path: str | Path, root: str | Path) -> tuple[list[dict], list[dict]]:
    root = Path(root)
    recs, rejects = [], []
    for i, row in enumerate(read_jsonl(path)):
        rid = str(row.get("id", f"row{i}"))
        try:
            q, opts = split_text_input(row["text_input"])
            reasoning, ans = convert_reasoning(row["text_output"])
            letter = parse_answer_letter(ans, opts)
            if letter is None:
                raise ValueError(f"answer {ans!r} is not one of the options")
            reasoning = re.sub(r"<answer>.*?</answer>", f"<answer>{letter}</answer>", reasoning, flags=re.DOTALL).strip()
            frames = [_rel(root, p) for p in row.get("image_input", [])]
            imagery = [_rel(root, p) for p in row.get("image_output", [])]
            video = row.get("video") or (str(Path(frames[0]).parent) if frames else None)
            if video is None:
                raise ValueError("no image_input frames and no video")
            rec = DiftRecord(id=rid, video=_rel(root, video), frames=frames or None, question=q, options=opts,
                             answer=letter, answer_text=opts[letter], task=_task_of(rid, opts[letter]),
                             reasoning=reasoning, imagery=imagery, source="4dthinker-official")
            recs.append(rec.model_dump())
        except (KeyError, ValueError, ValidationError) as e:
            rejects.append({"id": rid, "line": i + 1, "reason": _one_line(e)})
    return recs, rejects


def import_rl(path: str | Path, root: str | Path) -> tuple[list[dict], list[dict]]:
    root = Path(root)
    recs, rejects = [], []
    for i, row in enumerate(read_jsonl(path)):
        rid = str(row.get("id", f"rl{i:06d}"))
        try:
            opts = {k: str(row[k]).strip() for k in "ABCD"}
            letter = str(row["Correct"]).strip().upper()[:1]
            frames = [_rel(root, p) for p in row.get("frame_paths") or []]
            video = row.get("video_path") or (str(Path(frames[0]).parent) if frames else None)
            if video is None:
                raise ValueError("neither video_path nor frame_paths")
            rec = RLRecord(id=rid, video=_rel(root, video), frames=frames or None, question=str(row["Question"]),
                           options=opts, answer=letter, answer_text=opts.get(letter), task=_task_of(rid, opts.get(letter, "")),
                           source="4dthinker-official")
            recs.append(rec.model_dump())
        except (KeyError, ValueError, ValidationError) as e:
            rejects.append({"id": rid, "line": i + 1, "reason": _one_line(e)})
    return recs, rejects


def _one_line(e: Exception) -> str:
    if isinstance(e, ValidationError):
        err = e.errors()[0]
        return f"{'.'.join(map(str, err['loc'])) or 'record'}: {err['msg']}"
    if isinstance(e, KeyError):
        return f"missing field {e.args[0]!r}"
    return str(e).splitlines()[0]


def reject_counts(rejects: list[dict]) -> Counter:
    return Counter(r["reason"].split(":")[0] for r in rejects)
