"""lmms-eval task functions for the fourdthinker benchmarks (``!function utils.*`` in the YAML).

Same prompt (``build_question_text``), same answer parser (``parse_answer``) and same "Avg." (mean
over subtasks) as ``fourdthinker eval``, so numbers from either harness are comparable. Importable
without lmms-eval installed (the functions are plain Python on dict docs).

Doc fields (one JSON line per item, written by ``export.py``): ``id``, ``video_path`` (absolute),
``question``, ``options`` (A-D dict), ``answer`` (letter), ``subtask``.
"""

from __future__ import annotations

from fourdthinker.eval.metrics import macro_average
from fourdthinker.qa import build_question_text, parse_answer


def fourdthinker_doc_to_visual(doc: dict) -> list[str]:
    """The video file (lmms-eval video models take paths)."""
    return [doc["video_path"]]


def fourdthinker_doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    kw = lmms_eval_specific_kwargs or {}
    text = build_question_text(doc["question"], doc["options"])
    pre, post = kw.get("pre_prompt", ""), kw.get("post_prompt", "")
    return "\n".join(p for p in (pre, text, post) if p)


def fourdthinker_process_results(doc: dict, results: list[str]) -> dict:
    """Parse the letter from the first generation; keep what aggregation needs."""
    pred = results[0] if results else ""
    letter = parse_answer(pred, doc["options"])
    return {"fourdthinker_avg": {"id": doc["id"], "subtask": doc["subtask"], "parsed": letter,
                                 "correct": letter == doc["answer"]}}


def fourdthinker_aggregate_results(results: list[dict]) -> float:
    """"Avg." in percent: the mean over subtasks of the per-subtask accuracy (as the paper)."""
    by: dict[str, list[bool]] = {}
    for r in results:
        by.setdefault(r["subtask"], []).append(bool(r["correct"]))
    return 100.0 * macro_average(by)
