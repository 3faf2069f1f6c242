"""MCQ builder (related distractors, balanced answer slot) and the App. F validator."""

import random
from collections import Counter

import pytest

from fourdthinker.data.mcq import build_mcq, related_distractors
from fourdthinker.data.validate import parse_answer_letter, validate_cot
from fourdthinker.labels import LABELS_BY_TASK, TASKS

OPTS = {"A": "Pan Left", "B": "Pan Right", "C": "Move Left", "D": "Tilt Up"}


def test_related_distractors_order():
    assert related_distractors("Pan Left", "camera")[:3] == ["Pan Right", "Move Left", "Move Right"]
    assert related_distractors("Moving Left", "direction")[:3] == ["Moving Right", "Moving Left-Up", "Moving Left-Down"]
    with pytest.raises(ValueError, match="not a camera label"):
        related_distractors("Moving Left", "camera")


@pytest.mark.parametrize("task", TASKS)
def test_build_mcq_every_label(task):
    for label in LABELS_BY_TASK[task]:
        for pos in range(4):
            opts, letter = build_mcq(label, task, position=pos, rng=random.Random(pos))
            assert opts[letter] == label and letter == "ABCD"[pos]
            assert len(set(opts.values())) == 4


def test_answer_slots_balanced():
    c = Counter(build_mcq("Pan Left", "camera", position=off + i, rng=random.Random(i))[1]
                for off in range(7) for i in range(6))
    assert max(c.values()) - min(c.values()) <= 3, c


def _hub_rule_accuracy(style: str, n: int = 400) -> float:
    """An options-only rule: pick the option whose two most related labels are also offered (ties
    split). It needs no video; its accuracy is what the option sets give away."""
    rng = random.Random(0)
    hits = 0.0
    for i in range(n):
        task = ("camera", "direction")[i % 2]
        label = LABELS_BY_TASK[task][i % len(LABELS_BY_TASK[task])]
        opts, ans = build_mcq(label, task, position=i, rng=rng, style=style)
        vals = set(opts.values())
        score = {k: len(set(related_distractors(v, task)[:2]) & vals) for k, v in opts.items()}
        best = [k for k, v in score.items() if v == max(score.values())]
        hits += (ans in best) / len(best)
    return hits / n


def test_uniform_distractors_do_not_reveal_the_answer():
    """The paper's recipe (opposite, then analog) makes the answer the options' hub: the rule above
    scores far above chance on it, and at chance (1/4) with uniform distractors."""
    assert _hub_rule_accuracy("paper") > 0.6
    assert abs(_hub_rule_accuracy("uniform") - 0.25) < 0.07
    rng = random.Random(1)
    for task in TASKS:
        for label in LABELS_BY_TASK[task]:
            opts, ans = build_mcq(label, task, position=3, rng=rng, style="uniform")
            assert opts[ans] == label and len(set(opts.values())) == 4
    with pytest.raises(ValueError, match="mcq style"):
        build_mcq("Pan Left", "camera", position=0, rng=rng, style="hub")


def test_validator_accepts_and_rejects():
    good = "<think>first <imagery> then <imagery> so pan right</think><answer>B</answer>"
    assert validate_cot(good, OPTS, 2, [0.0, 2.0], expected="B") == (True, "ok")
    cases = {
        "<think>x <imagery></think><answer>B</answer>": "placeholders",
        "<think>x <imagery> <imagery><answer>B</answer></think>": "format",
        "<think>x <imagery> <imagery></think>": "format",
        "<think>x <imagery> <imagery></think><answer>E</answer>": "answer",
        "<think>x <imagery> <imagery></think><answer>A</answer>": "answer: reasoning concludes A",
        "<think>x <imagery></think><imagery><answer>B</answer>": "format",
    }
    for text, why in cases.items():
        ok, reason = validate_cot(text, OPTS, 2, [0.0, 2.0], expected="B")
        assert not ok and reason.startswith(why), (text, reason)
    assert validate_cot(good, OPTS, 2, [2.0, 0.0])[1].startswith("chronology")


def test_parse_answer_letter():
    assert parse_answer_letter("B. Pan Right", OPTS) == "B"
    assert parse_answer_letter("Pan Right", OPTS) == "B"
    assert parse_answer_letter("B. Tilt Up", OPTS) is None
    assert parse_answer_letter("the answer is B", OPTS) is None
