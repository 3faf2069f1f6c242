"""The one bootstrap: stratified percentile-bootstrap CIs for accuracies and paired accuracy gains;
and the exact McNemar test.

Evaluation (``eval.metrics.bootstrap_ci``: the CI of "Avg."), the demo's report (the CI of a
model's gain over another on the same items) and training reports all resample the same way, so
the resampling lives here once, at the package root, importable by every stage. McNemar lives here
for the same reason: evaluation's paired comparisons and training's read-out gate both test with it.

Pure numpy; hand computations in ``tests/test_stats.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["mcnemar_exact", "paired_delta_ci", "stratified_bootstrap_ci"]


def stratified_bootstrap_ci(groups: Sequence[Sequence[float]], *, statistic: str = "macro", n_boot: int = 2000,
                            alpha: float = 0.05, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) CI of a mean over strata (subtasks).

    Each of the B replicates resamples, *within* every stratum s, its n_s values with replacement
    (strata sizes are fixed by the benchmark's design; strata are drawn in the given order from one
    ``np.random.default_rng(seed)``) and recomputes the statistic: ``"macro"`` = (1/S) sum_s
    mean_s (the paper's "Avg."), ``"micro"`` = the mean over all values. The CI is the
    (alpha/2, 1 - alpha/2) quantiles of the B replicates. Empty strata are skipped; no values at
    all gives (nan, nan).

    Paired data (two runs on the same items) is passed as per-item differences ``b_i - a_i``, so
    both values of an item are always drawn together (:func:`paired_delta_ci`).

    Hand check: one stratum [1, 0]: the replicate mean is 0, 0.5, 1 with probability 1/4, 1/2,
    1/4, so the 95% CI is [0, 1].
    """
    arrs = [np.asarray(g, dtype=float) for g in groups if len(g)]
    if not arrs:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    sizes = np.array([len(g) for g in arrs], dtype=float)  # [S]
    sums = np.empty((n_boot, len(arrs)))  # [B, S] per-stratum sum of each replicate
    for s, g in enumerate(arrs):
        idx = rng.integers(0, len(g), size=(n_boot, len(g)))  # [B, n_s]
        sums[:, s] = g[idx].sum(axis=1)
    if statistic == "macro":
        stat = (sums / sizes).mean(axis=1)  # [B]
    elif statistic == "micro":
        stat = sums.sum(axis=1) / sizes.sum()
    else:
        raise ValueError(f"statistic must be 'macro' or 'micro', got {statistic!r}")
    lo, hi = np.quantile(stat, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def paired_delta_ci(a: Mapping[str, bool], b: Mapping[str, bool], subtask_of: Mapping[str, str], *,
                    n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> tuple[float, float, float]:
    """Gain of B over A in macro "Avg." accuracy, with a paired stratified bootstrap CI.

    ``delta = mean_s [acc_s(B) - acc_s(A)]`` over the subtasks ``s`` of the items both answered.
    Each replicate resamples, within every subtask, the *same* item indices for A and B (paired),
    so the CI reflects per-item disagreements only. Returns ``(delta, lo, hi)``.

    Hand check: one subtask, per-item differences [1, 0] (B fixes one item, ties the other):
    delta = 0.5; replicates are 0, 0.5, 1 with probability 1/4, 1/2, 1/4, so the 95% CI is [0, 1].
    """
    common = sorted(set(a) & set(b) & set(subtask_of))
    if not common:
        return float("nan"), float("nan"), float("nan")
    groups: dict[str, list[float]] = {}
    for i in common:
        groups.setdefault(subtask_of[i], []).append(float(b[i]) - float(a[i]))
    diffs = [np.asarray(v) for _, v in sorted(groups.items())]
    delta = float(np.mean([d.mean() for d in diffs]))
    lo, hi = stratified_bootstrap_ci(diffs, statistic="macro", n_boot=n_boot, alpha=alpha, seed=seed)
    return delta, lo, hi


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts.

    b = items only run A got right, c = items only run B got right, n = b + c. Under H0 each
    discordant item is A's with probability 1/2, so p = min(1, 2 * sum_{k=0}^{min(b,c)} C(n,k) / 2^n).
    E.g. b=1, c=5: p = 2 * (1 + 6) / 64 = 0.21875. No discordant items -> p = 1."""
    if b < 0 or c < 0:
        raise ValueError(f"counts must be >= 0, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)
