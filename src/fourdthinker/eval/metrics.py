"""Scoring: exact-match accuracy, per-subtask accuracy, "Avg." (mean over subtasks), bootstrap
CIs, paired comparison (McNemar exact test) and the spread across sampled seeds.

Every function is pure (lists in, numbers out) so it can be checked by hand; see
``tests/eval/test_metrics.py`` for the hand computations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fourdthinker.stats import mcnemar_exact, stratified_bootstrap_ci


def accuracy(correct: Sequence[bool]) -> float:
    """acc = (1/n) * sum_i 1[pred_i == gold_i]; NaN for an empty list (not 0: "no data" is not "all wrong")."""
    return float(np.mean(np.asarray(correct, dtype=float))) if len(correct) else float("nan")


def group_by_subtask(scores: Mapping[str, float], subtask_of: Mapping[str, str]) -> dict[str, list]:
    """{item id: correct (or score in [0, 1])} + {item id: subtask} -> {subtask: [score, ...]}
    (ids without a subtask are dropped)."""
    out: dict[str, list] = {}
    for iid, ok in scores.items():
        if iid in subtask_of:
            out.setdefault(subtask_of[iid], []).append(ok)
    return out


def macro_average(by_subtask: Mapping[str, Sequence[bool]]) -> float:
    """Paper's "Avg.": Avg = (1/S) * sum_s acc_s over the S subtasks that have items.

    It differs from the micro accuracy whenever subtasks have different sizes:
    {a: [1, 1, 1], b: [0]} -> Avg = (1 + 0) / 2 = 0.5 while micro = 3/4."""
    accs = [accuracy(v) for v in by_subtask.values() if len(v)]
    return float(np.mean(accs)) if accs else float("nan")


def bootstrap_ci(by_subtask: Mapping[str, Sequence[bool]], *, statistic: str = "macro", n_boot: int = 2000,
                 alpha: float = 0.05, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) CI of the macro "Avg." (or the ``"micro"`` accuracy).

    Stratified: each replicate resamples n_s items with replacement *within* each subtask s (the
    benchmark's subtask sizes are fixed by design), recomputes the statistic, and the CI is the
    (alpha/2, 1 - alpha/2) quantiles of the B replicates. E.g. one subtask with items [1, 0]: the
    replicate mean is 0, 0.5, 1 with probability 1/4, 1/2, 1/4, so the 95% CI is [0, 1]. The
    resampling is :func:`fourdthinker.stats.stratified_bootstrap_ci` (shared with the paired CIs)."""
    return stratified_bootstrap_ci(list(by_subtask.values()), statistic=statistic, n_boot=n_boot, alpha=alpha,
                                   seed=seed)


@dataclass
class PairedComparison:
    """Two runs on the same items: who flipped where, and whether the difference is significant."""

    name_a: str
    name_b: str
    n: int
    both_right: int
    both_wrong: int
    a_only: list[str] = field(default_factory=list)  # ids A got right and B got wrong
    b_only: list[str] = field(default_factory=list)
    p_value: float = 1.0

    @property
    def delta(self) -> float:
        """acc_B - acc_A on the common items."""
        return (len(self.b_only) - len(self.a_only)) / self.n if self.n else float("nan")

    def summary(self) -> str:
        if not self.n:
            return f"{self.name_b} vs {self.name_a}: no items scored by both"
        return (f"{self.name_b} vs {self.name_a}: {self.n} common items, accuracy {100 * self.delta:+.1f} pp, "
                f"{len(self.b_only)} fixed, {len(self.a_only)} broken, McNemar exact p = {self.p_value:.3g}")


def paired_compare(a: Mapping[str, bool], b: Mapping[str, bool], name_a: str = "A", name_b: str = "B") -> PairedComparison:
    """Compare two {item id: correct} maps on their common ids (McNemar exact test on the flips)."""
    common = sorted(set(a) & set(b))
    a_only = [i for i in common if a[i] and not b[i]]
    b_only = [i for i in common if b[i] and not a[i]]
    both_right = sum(1 for i in common if a[i] and b[i])
    return PairedComparison(name_a, name_b, len(common), both_right, len(common) - both_right - len(a_only) - len(b_only),
                            a_only, b_only, mcnemar_exact(len(a_only), len(b_only)))


def seed_spread(values: Sequence[float]) -> dict[str, float]:
    """Spread of a score across sampled seeds: mean, sample std (ddof=1; 0 for one seed), min, max."""
    v = np.asarray(values, dtype=float)
    if not len(v):
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "n": len(v)}


def confusion_matrix(golds: Sequence[str], preds: Sequence[str | None], letters: Sequence[str] = ("A", "B", "C", "D")
                     ) -> np.ndarray:
    """Counts [gold letter, predicted letter]; the last column counts unparsed answers (None)."""
    idx = {L: i for i, L in enumerate(letters)}
    m = np.zeros((len(letters), len(letters) + 1), dtype=int)
    for g, p in zip(golds, preds, strict=True):
        if g in idx:
            m[idx[g], idx.get(p, len(letters)) if p is not None else len(letters)] += 1
    return m
