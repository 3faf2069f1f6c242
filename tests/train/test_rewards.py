"""Rewards (Eq. 11, docs/method.md#eq-11) on a table of tricky outputs; `train/rewards.py`."""

from __future__ import annotations

import math

import pytest

from fourdthinker.train.rewards import (
    accuracy_reward,
    combine_rewards,
    format_reward,
    latent_blocks_ok,
)

OPTS = {"A": "Pan Left", "B": "Pan Right", "C": "Tilt Up", "D": "Move Left"}
BLK = "<|latent_start|><|latent_pad|><|latent_pad|><|latent_end|>"

# (completion, accuracy vs key "B", format, why)
TABLE = [
    ("<think>pans</think><answer>B</answer>", 1.0, 1.0, "canonical"),
    (f"<think>look {BLK} then {BLK}</think><answer>B</answer><|im_end|>", 1.0, 1.0, "latent blocks + eos"),
    ("<think>x</think>\n<answer> B. Pan Right </answer>", 1.0, 1.0, "letter + text, spaces"),
    ("<think>x</think><answer>Pan Right</answer>", 1.0, 1.0, "option text only"),
    ("<think>x</think><answer>A</answer>", 0.0, 1.0, "well formed but wrong"),
    ("<answer>B</answer>", 1.0, 0.0, "no think"),
    ("<think>x</think><answer>B</answer> trailing", 1.0, 0.0, "text after answer"),
    ("<think>x</think><answer>E</answer>", 0.0, 0.0, "not an option"),
    ("<think>At first the camera...</think><answer></answer>", 0.0, 0.0, "empty answer, 'A' of 'At'"),
    ("<think>x <answer>A</answer></think><answer>B</answer>", 1.0, 0.0, "answer tag inside think"),
    ("<think>x</think><answer>A</answer><answer>B</answer>", 1.0, 0.0, "two answers: last wins, bad format"),
    (f"<think>x</think>{BLK}<answer>B</answer>", 1.0, 0.0, "latent block outside think"),
    ("<think>x <|latent_end|></think><answer>B</answer>", 1.0, 0.0, "stray latent end"),
    ("<think>x <|latent_start|><|latent_pad|></think><answer>B</answer>", 0.0, 0.0, "unclosed block eats the rest"),
    ("<think>x <|latent_start|><|latent_start|><|latent_end|><|latent_end|></think><answer>B</answer>", 1.0, 0.0,
     "nested blocks"),
    ("The answer is B.", 1.0, 0.0, "plain statement"),
    ("A camera pans right, so B", 1.0, 0.0, "article 'A' is not option A"),
    ("<think>x</think><answer>B", 1.0, 0.0, "truncated answer tag"),
    ("", 0.0, 0.0, "empty"),
    ("<THINK>x</THINK><ANSWER>b</ANSWER>", 1.0, 1.0, "upper-case tags, lower-case letter"),
]


@pytest.mark.parametrize(("text", "acc", "fmt", "why"), TABLE, ids=[t[3] for t in TABLE])
def test_reward_table(text, acc, fmt, why):
    assert accuracy_reward([text], ["B"], options=[OPTS]) == [acc], why
    assert format_reward([text], ["B"], options=[OPTS]) == [fmt], why


def test_latent_size_is_checked_when_given():
    t = f"<think>{BLK}</think><answer>B</answer>"
    assert format_reward([t], "B", latent_size=2) == [1.0]
    assert format_reward([t], "B", latent_size=4) == [0.0]
    assert latent_blocks_ok("<think><imagery:4></think><answer>A</answer>", 4)
    assert not latent_blocks_ok("<think><imagery:2></think><answer>A</answer>", 4)


def test_conversational_completions_and_broadcast():
    conv = [[{"role": "assistant", "content": "<think>x</think><answer>C</answer>"}]]
    assert accuracy_reward(conv, "C") == [1.0]
    assert format_reward(conv) == [1.0]


def test_missing_key_is_unscorable_and_length_mismatch_is_an_error():
    assert accuracy_reward(["<answer>B</answer>", "B"], [None, "B"]) == [None, 1.0]
    with pytest.raises(ValueError, match="2 entries for 3 completions"):
        accuracy_reward(["a", "b", "c"], ["A", "B"])


def test_combine_weights_and_ablation_flags():
    per = {"accuracy": [1.0, 0.0, None], "format": [1.0, 1.0, None]}
    assert combine_rewards(per, {"accuracy": 1.0, "format": 0.2})[:2] == pytest.approx([1.2, 0.2])
    assert math.isnan(combine_rewards(per, {"accuracy": 1.0, "format": 0.2})[2])
    assert combine_rewards(per, {"accuracy": 1.0, "format": 0.0})[:2] == [1.0, 0.0]  # Table 4: no format reward
    assert combine_rewards(per, {"accuracy": 0.0, "format": 0.2})[:2] == pytest.approx([0.2, 0.2])
    with pytest.raises(ValueError, match="all reward weights are zero"):
        combine_rewards(per, {"accuracy": 0.0, "format": 0.0})


def test_docstring_examples_run():
    import doctest

    import fourdthinker.train.grpo as grpo
    import fourdthinker.train.rewards as rewards

    for mod in (grpo, rewards):
        res = doctest.testmod(mod)
        assert res.attempted > 0 and res.failed == 0, (mod.__name__, res)
