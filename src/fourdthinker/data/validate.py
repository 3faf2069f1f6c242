"""The imagery-CoT validator (paper App. F; docs/method.md#validator).

Checks, each failing with a one-line reason (the runner counts drops per reason):

* format: exactly one ``<think>...</think>`` followed by exactly one ``<answer>...</answer>``,
  nothing but whitespace between/after, and no answer tag inside the think block (answer isolation);
* placeholders: the number of ``<imagery>`` inside the think block equals the overlay count,
  and none outside it;
* chronology: overlay times (when given) are non-decreasing, so placeholder k is image k;
* answer: the answer is exactly one option letter (``X`` or ``X. option text`` with the matching text).

Returns ``(keep, reason)`` like every filter here (datatrove style).
"""

from __future__ import annotations

import re

from fourdthinker.qa import IMAGERY

_FULL = re.compile(r"^\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*$", re.DOTALL)


def validate_cot(text: str, options: dict[str, str], n_images: int, times: list[float] | None = None,
                 expected: str | None = None) -> tuple[bool, str]:
    """App. F validator. ``expected``: the answer letter the record claims (must match)."""
    for tag in ("<think>", "</think>", "<answer>", "</answer>"):
        if text.count(tag) != 1:
            return False, f"format: {text.count(tag)} {tag} tags (want 1)"
    m = _FULL.match(text)
    if not m:
        return False, "format: want <think>...</think><answer>...</answer> and nothing else"
    think, ans = m.group("think"), m.group("answer").strip()
    n_in = think.count(IMAGERY)
    if n_in != n_images or text.count(IMAGERY) != n_in:
        return False, f"placeholders: {text.count(IMAGERY)} <imagery> for {n_images} overlays"
    if times is not None:
        if len(times) != n_images:
            return False, f"placeholders: {len(times)} overlay times for {n_images} overlays"
        if any(b < a for a, b in zip(times, times[1:], strict=False)):
            return False, "chronology: overlays are not in time order"
    letter = parse_answer_letter(ans, options)
    if letter is None:
        return False, f"answer: {ans[:40]!r} is not exactly one of the options"
    if expected is not None and letter != expected:
        return False, f"answer: reasoning concludes {letter}, record answer is {expected}"
    return True, "ok"


def parse_answer_letter(ans: str, options: dict[str, str]) -> str | None:
    """``B`` / ``B.`` / ``B. Pan Right`` / ``Pan Right`` -> ``B``; anything else -> None."""
    ans = ans.strip()
    m = re.fullmatch(r"([A-D])\.?(?:\s+(.*))?", ans, re.DOTALL)
    if m:
        letter, rest = m.group(1), (m.group(2) or "").strip()
        if letter in options and (not rest or rest == options[letter]):
            return letter
        return None
    hits = [k for k, v in options.items() if v == ans]
    return hits[0] if len(hits) == 1 else None
