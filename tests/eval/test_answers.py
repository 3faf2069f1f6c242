"""Table-driven tests of the one shared answer parser (fourdthinker.eval.answers)."""

from __future__ import annotations

import pytest

from fourdthinker.eval.answers import answer_span, has_valid_format, parse_answer, strip_special_tokens

CAM = {"A": "Pan Right", "B": "Pan Left", "C": "Tilt Up", "D": "Move Left"}
PAN = {"A": "Pan Left", "B": "Tilt Up", "C": "Pan Right", "D": "Tilt Down"}
DIR = {"A": "Moving Left", "B": "Moving Left-Up", "C": "Moving Right", "D": "Stationary"}

CASES = [
    # (text, options, expected)
    ("<answer>B</answer>", None, "B"),
    ("<think>the landmark shifts</think><answer>C</answer>", None, "C"),
    ("<ANSWER> d </ANSWER>", None, "D"),
    ("<answer>\nB.\n</answer>", None, "B"),
    ("<answer>(B)</answer>", None, "B"),
    ("<answer>[C]</answer>", None, "C"),
    ("<answer>**A**</answer>", None, "A"),
    ("<answer>B) Pan Left</answer>", CAM, "B"),
    ("<answer>B. Pan Left</answer>", CAM, "B"),
    ("<answer>b. pan left</answer>", CAM, "B"),
    ("<answer>Pan Left</answer>", CAM, "B"),
    ("<answer>pan left.</answer>", CAM, "B"),
    ("<answer>The camera is doing a Pan Left</answer>", CAM, "B"),
    ("<answer>The answer is B</answer>", None, "B"),
    ("<answer>Answer: The answer is C.</answer>", None, "C"),
    ("<answer>Option D</answer>", None, "D"),
    ("<answer>A</answer>", None, "A"),
    ("<answer>A camera pan to the left</answer>", None, None),  # article, not option A
    ("<answer>A is correct</answer>", None, "A"),
    ("<answer>Moving Left-Up</answer>", DIR, "B"),  # not "Moving Left"
    ("<answer>the object is moving left-up in the frame</answer>", DIR, "B"),
    ("<answer>Moving Left</answer>", DIR, "A"),
    ("<answer>nothing useful</answer>", CAM, None),
    ("<answer></answer>", None, None),
    ("<answer>B or C</answer>", None, None),  # ambiguous
    ("<answer>E</answer>", None, None),  # not an option letter
    ("<answer>D</answer>", {"A": "x", "B": "y", "C": "z"}, None),  # letter not among the options given
    # tag choice: last complete tag; unclosed tag at the end (truncated) still counts
    ("<think>maybe <answer>A</answer>?</think><answer>C</answer>", None, "C"),
    ("<think>ok</think><answer>B", None, "B"),
    # latent tokens and markers are stripped
    ("<think>see <|latent_start|><|latent_pad|><|latent_pad|><|latent_end|></think><answer><|latent_pad|>B</answer><|im_end|>", None, "B"),
    ("<think>see <imagery:4> then</think><answer>A</answer>", None, "A"),
    # no tag: bare letters, stated answers; never a capital inside a word
    ("B", None, "B"),
    ("(C)", None, "C"),
    ("D.", None, "D"),
    ("Pan Left", CAM, "B"),
    ("The answer is (C).", None, "C"),
    ("After looking at the frames carefully, the correct answer is D because the box rises.", None, "D"),
    ("At first the camera moves. Clearly Backward.", None, None),  # reference's false positive 'A' in 'At'
    ("Camera Becomes Dark", None, None),
    ("", None, None),
    ("   ", None, None),
    ("a long reasoning " * 10 + "with no decision at all", CAM, None),
    # untagged text: a stated "answer is a <word>" is the article, not option A
    ("The answer is a rightward pan of the camera, so Pan Right", PAN, "C"),
    ("The answer is a rightward pan.", None, None),
    ("The correct answer is a tilt upward: Tilt Up", PAN, "B"),
    ("I think the answer is a Pan Right", PAN, "C"),
    ("After watching the whole clip the answer is a clear " + "and steady " * 4 + "motion to the left, Pan Left", PAN, None),  # long, no stated letter: no guess (was "A")
    ("The answer is A because the landmark shifts right.", PAN, "A"),
    ("The answer is (a) here.", None, "A"),
    ("the answer is a.", None, "A"),
    ("the answer is a", None, "A"),
]


@pytest.mark.parametrize(("text", "options", "expected"), CASES)
def test_parse_answer(text, options, expected):
    assert parse_answer(text, options) == expected, text


def test_parse_answer_non_string():
    assert parse_answer(None) is None  # type: ignore[arg-type]


def test_strip_special_tokens_removes_latent_blocks_and_markers():
    out = strip_special_tokens("x<|latent_start|><|latent_pad|><|latent_end|>y<imagery:4>z<|im_end|>")
    assert out.split() == ["x", "y", "z"]


def test_answer_span_prefers_last_tag():
    assert answer_span("<answer>A</answer> <answer>B</answer>") == ("B", True)
    assert answer_span("<think>t</think> C") == (" C", False)


FORMAT_CASES = [
    ("<think>pans <|latent_start|><|latent_pad|><|latent_end|> left</think><answer>A</answer><|im_end|>", None, True),
    ("<think>r</think>\n<answer>Pan Left</answer>", CAM, True),
    ("  <think>r</think><answer>B</answer>  ", None, True),
    ("<answer>A</answer>", None, False),
    ("<think>r</think>", None, False),
    ("<think>r</think><answer>A</answer> trailing", None, False),
    ("<think>r</think><answer>A</answer><answer>B</answer>", None, False),
    ("<think><answer>A</answer></think><answer>A</answer>", None, False),
    ("<think>r</think><answer>no idea</answer>", CAM, False),
    ("<think>r<answer>A</answer>", None, False),
    (None, None, False),
]


@pytest.mark.parametrize(("text", "options", "expected"), FORMAT_CASES)
def test_has_valid_format(text, options, expected):
    assert has_valid_format(text, options) is expected, text
