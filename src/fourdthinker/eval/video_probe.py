"""Does the model use the motion? Run one benchmark under every video intervention.

Same model, same items, same greedy decoder; only the frames change (``video.interventions``:
normal, first, reversed, shuffled, blank). Per intervention and per task (subtask) the table
reports the accuracy and the *opposite share*: among items whose true label has an opposite under
time reversal that is one of the options (``labels.OPPOSITE``: Moving Left <-> Moving Right, Pan
Left <-> Pan Right, Speeding Up <-> Slowing Down ...), the share of answers equal to that opposite.
A model that reads the motion answers the opposite under ``reversed`` (its share rises there),
falls under ``first``/``blank`` (no motion to read) and is unchanged by nothing.

Verdict "uses the motion": accuracy drops significantly under ``first`` (McNemar exact p < 0.05,
more items broken than fixed, vs ``normal``), or, when ``first`` was not run, under ``blank``. The
``reversed`` flip share is reported with it (its rise over ``normal`` is the second sign).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fourdthinker.video.interventions import opposite_label

__all__ = ["FrameRow", "frames_table", "motion_verdict", "opposite_share", "to_markdown"]

ALPHA = 0.05
ALL = "all"


@dataclass
class FrameRow:
    frames: str
    task: str  # a subtask, or "all"
    n: int
    accuracy: float
    opposite_n: int  # items whose true label has an opposite among the options
    opposite_share: float  # share of those answered with the opposite
    fixed: int = 0  # (task "all" only) paired flips vs normal
    broken: int = 0
    p_value: float = 1.0


def _opposite_letter(item) -> str | None:
    """The option letter holding the opposite of the item's true label (None if absent)."""
    truth = item.options.get(item.answer) if item.options else None
    opp = opposite_label(truth) if truth else None
    if opp is None:
        return None
    return next((k for k, v in item.options.items() if v.strip().lower() == opp.lower()), None)


def opposite_share(items: Mapping[str, object], answers: Mapping[str, str | None]) -> tuple[int, float]:
    """(n, share): over ``items`` (id -> BenchItem) that have an opposite option and an entry in
    ``answers`` (id -> parsed letter), the share answered with the opposite letter.

    share = |{i : answer_i = opp_i}| / |{i : opp_i exists}|, NaN when that set is empty."""
    hits, n = 0, 0
    for iid, item in items.items():
        if iid not in answers:
            continue
        opp = _opposite_letter(item)
        if opp is None:
            continue
        n += 1
        hits += answers[iid] == opp
    return n, (hits / n if n else float("nan"))


def frames_table(results: Mapping[str, object]) -> list[FrameRow]:
    """Rows per (intervention, task) from ``{frames kind: EvalResult}`` (``normal`` first and required)."""
    from fourdthinker.eval.metrics import accuracy, paired_compare

    if "normal" not in results:
        raise ValueError("the video probe needs the 'normal' run as the reference")
    ref = results["normal"].correct()
    rows: list[FrameRow] = []
    for kind, res in results.items():
        correct = res.correct()
        answers = {i: p.parsed_answer for i, p in res.predictions.items()}
        tasks = sorted({res.items[i].subtask for i in correct if i in res.items})
        for task in [ALL, *tasks]:
            ids = [i for i in correct if i in res.items and (task == ALL or res.items[i].subtask == task)]
            n_opp, share = opposite_share({i: res.items[i] for i in ids}, answers)
            row = FrameRow(kind, task, len(ids), accuracy([correct[i] for i in ids]), n_opp, share)
            if task == ALL and kind != "normal":
                cmp = paired_compare(ref, correct, "normal", kind)
                row.fixed, row.broken, row.p_value = len(cmp.b_only), len(cmp.a_only), cmp.p_value
            rows.append(row)
    return rows


def motion_verdict(rows: Sequence[FrameRow]) -> tuple[bool, str]:
    """(uses_motion, one-line reason) from :func:`frames_table` rows (module docstring)."""
    by = {r.frames: r for r in rows if r.task == ALL}
    if "normal" not in by or by["normal"].n == 0:
        return False, "no scored items under 'normal' frames"
    probe = "first" if "first" in by else "blank" if "blank" in by else None
    if probe is None:
        return False, "neither 'first' nor 'blank' frames were run"
    r = by[probe]
    rev = by.get("reversed")
    flip = ""
    if rev is not None and rev.opposite_n:
        flip = (f"; under 'reversed' {100 * rev.opposite_share:.0f}% of reversible items get the opposite answer "
                f"(normal: {100 * by['normal'].opposite_share:.0f}%)")
    if r.p_value < ALPHA and r.broken > r.fixed:
        return True, f"accuracy drops significantly with '{probe}' frames (McNemar p = {r.p_value:.3g}){flip}"
    return False, f"accuracy does not drop significantly with '{probe}' frames (p = {r.p_value:.3g}){flip}"


def _pct(x: float) -> str:
    return "-" if x != x else f"{100 * x:.1f}"


def to_markdown(rows: Sequence[FrameRow], model: str, bench: str, uses: bool, reason: str) -> str:
    head = ("| frames | task | n | accuracy % | opposite answers % (n) | fixed | broken | McNemar p |\n"
            "|---|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| {r.frames} | {r.task} | {r.n} | {_pct(r.accuracy)} | {_pct(r.opposite_share)} ({r.opposite_n}) | "
        + (f"{r.fixed} | {r.broken} | {r.p_value:.3g} |\n" if r.task == ALL and r.frames != "normal" else "- | - | - |\n")
        for r in rows
    )
    flag = "uses the motion" if uses else "NOT shown to use the motion"
    return f"## Video probe: {model} on {bench}\n\n{head}{body}\n**Verdict: {flag}.** {reason}.\n"
