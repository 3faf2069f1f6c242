"""fourdthinker.stats: the one stratified bootstrap, checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fourdthinker.stats import paired_delta_ci, stratified_bootstrap_ci


def test_one_stratum_by_hand():
    # [1, 0]: replicate mean 0 / 0.5 / 1 w.p. 1/4, 1/2, 1/4 -> 2.5% quantile 0, 97.5% quantile 1
    assert stratified_bootstrap_ci([[1, 0]], n_boot=4000) == (0.0, 1.0)
    assert stratified_bootstrap_ci([[1.0] * 5]) == (1.0, 1.0)  # no spread, no width
    assert all(math.isnan(v) for v in stratified_bootstrap_ci([[], []]))  # no values at all
    with pytest.raises(ValueError, match="'macro' or 'micro'"):
        stratified_bootstrap_ci([[1, 0]], statistic="median")


def test_macro_weights_strata_equally_micro_weights_items():
    # stratum a = [0]*3 (always 0), b = [1] (always 1): no spread inside either stratum, so every
    # replicate equals the point value: macro (0 + 1) / 2 = 0.5, micro 1 / 4 = 0.25
    assert stratified_bootstrap_ci([[0, 0, 0], [1]], statistic="macro") == (0.5, 0.5)
    assert stratified_bootstrap_ci([[0, 0, 0], [1]], statistic="micro") == (0.25, 0.25)


def test_same_draws_as_a_hand_written_single_stratum_bootstrap():
    """One stratum, macro: replicate b is mean(d[idx_b]) with idx from default_rng(seed).integers
    (the paired-mean bootstrap a training report writes by hand gives the same interval)."""
    d = np.array([0.0, 0.5, -0.25, 1.0, 0.0, 0.75])
    idx = np.random.default_rng(7).integers(0, d.size, size=(300, d.size))
    boots = d[idx].mean(axis=1)
    want = (float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975)))
    assert stratified_bootstrap_ci([d], n_boot=300, seed=7) == want


def test_paired_delta_ci_is_the_bootstrap_of_per_item_differences():
    sub = {"a": "s", "b": "s", "c": "t", "d": "t", "e": "t"}
    a = {"a": False, "b": True, "c": False, "d": True, "e": False}
    b = {"a": True, "b": True, "c": True, "d": False, "e": True}
    d, lo, hi = paired_delta_ci(a, b, sub, n_boot=1000, seed=3)
    # s: diffs [1, 0] -> 0.5; t: diffs [1, -1, 1] -> 1/3; macro delta (0.5 + 1/3) / 2
    assert d == pytest.approx((0.5 + 1 / 3) / 2)
    assert (lo, hi) == stratified_bootstrap_ci([[1.0, 0.0], [1.0, -1.0, 1.0]], n_boot=1000, seed=3)


def test_old_homes_point_here():
    from fourdthinker.demo.report import paired_delta_ci as demo_paired
    from fourdthinker.eval.metrics import bootstrap_ci

    assert demo_paired is paired_delta_ci
    assert bootstrap_ci({"x": [1, 0], "y": [1]}, seed=5) == stratified_bootstrap_ci([[1, 0], [1]], seed=5)


def test_rl_probe_gain_uses_the_one_bootstrap():
    from fourdthinker.train.rl_probe import paired_mean_delta_ci

    before, after = [0.0, 0.5, 1.0, 0.25], [0.5, 0.5, 0.75, 1.0]  # differences [0.5, 0, -0.25, 0.75]
    d, lo, hi = paired_mean_delta_ci(before, after, n_boot=500, seed=2)
    assert d == pytest.approx(1.0 / 4)  # (0.5 + 0 - 0.25 + 0.75) / 4
    assert (lo, hi) == stratified_bootstrap_ci([[0.5, 0.0, -0.25, 0.75]], n_boot=500, seed=2)
