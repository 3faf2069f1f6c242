"""Scoring against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fourdthinker.eval.metrics import (
    accuracy,
    bootstrap_ci,
    confusion_matrix,
    group_by_subtask,
    macro_average,
    mcnemar_exact,
    paired_compare,
    seed_spread,
)


def test_accuracy_and_macro_average_by_hand():
    assert accuracy([True, False, True, True]) == 0.75
    assert math.isnan(accuracy([]))
    # a: 3/3 = 1.0, b: 0/1 = 0.0 -> Avg = 0.5 although micro = 3/4
    by = group_by_subtask({"1": True, "2": True, "3": True, "4": False}, {"1": "a", "2": "a", "3": "a", "4": "b"})
    assert by == {"a": [True, True, True], "b": [False]}
    assert macro_average(by) == 0.5
    # (2/4 + 1/2 + 0/1) / 3 = 1/3
    assert macro_average({"x": [1, 0, 1, 0], "y": [1, 0], "z": [0]}) == pytest.approx(1 / 3)


def test_bootstrap_ci_hand_cases():
    assert bootstrap_ci({"a": [True] * 5}) == (1.0, 1.0)
    # one subtask [1, 0]: replicate mean 0 / .5 / 1 w.p. 1/4, 1/2, 1/4 -> 2.5% = 0, 97.5% = 1
    assert bootstrap_ci({"a": [1, 0]}, n_boot=4000) == (0.0, 1.0)
    # large n: close to the normal approximation p +- 1.96 sqrt(p(1-p)/n)
    x = [1] * 300 + [0] * 700
    lo, hi = bootstrap_ci({"a": x}, n_boot=4000, statistic="micro")
    half = 1.96 * math.sqrt(0.3 * 0.7 / 1000)
    assert lo == pytest.approx(0.3 - half, abs=0.006) and hi == pytest.approx(0.3 + half, abs=0.006)
    # stratified macro: a subtask that is always right adds no variance; the CI is halved around the mean
    lo2, hi2 = bootstrap_ci({"a": x, "b": [1] * 50}, n_boot=4000, statistic="macro")
    assert (lo2 + hi2) / 2 == pytest.approx((0.3 + 1) / 2, abs=0.005)
    assert hi2 - lo2 == pytest.approx((hi - lo) / 2, abs=0.006)


def test_mcnemar_exact_by_hand():
    assert mcnemar_exact(1, 5) == pytest.approx(14 / 64)  # 2 * (C(6,0) + C(6,1)) / 2^6
    assert mcnemar_exact(5, 1) == pytest.approx(14 / 64)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(3, 3) == 1.0  # min(1, 2 * 42/64)
    assert mcnemar_exact(0, 10) == pytest.approx(2 / 1024)
    from scipy.stats import binomtest

    assert mcnemar_exact(4, 13) == pytest.approx(binomtest(4, 17, 0.5).pvalue)


def test_paired_compare_flips():
    a = {"1": True, "2": True, "3": False, "4": False, "5": True, "only_a": True}
    b = {"1": True, "2": False, "3": True, "4": True, "5": True, "only_b": False}
    pc = paired_compare(a, b, "base", "dift")
    assert pc.n == 5 and pc.both_right == 2 and pc.both_wrong == 0
    assert pc.a_only == ["2"] and pc.b_only == ["3", "4"]
    assert pc.delta == pytest.approx(1 / 5)
    assert pc.p_value == pytest.approx(1.0)  # 2 * (1 + 3) / 8 = 1
    assert "dift vs base" in pc.summary() and "accuracy +20.0 pp" in pc.summary()


def test_seed_spread_and_confusion():
    s = seed_spread([0.2, 0.4])
    assert s["mean"] == pytest.approx(0.3) and s["std"] == pytest.approx(math.sqrt(0.02)) and s["n"] == 2
    assert seed_spread([0.5])["std"] == 0.0
    m = confusion_matrix(["A", "A", "B", "D"], ["A", None, "C", "D"])
    assert m.tolist() == [[1, 0, 0, 0, 1], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 1, 0]]
    assert np.sum(m) == 4
