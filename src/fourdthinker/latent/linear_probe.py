"""Linear read-out of the answer from latent vectors: is the information there at all?

``fourdthinker probe`` asks whether a model's answers *change* when its latents are zeroed or
shuffled. That leaves two cases apart: latents that carry nothing about the answer, and latents
that carry it while the text after the block does not read them. This module tells them apart:
a multinomial logistic regression from a record's latent vectors (its fed h_{t-1} at inference, or
its targets z) to its label, fitted on one set of clips and scored on others
(``scripts/latent_linear_probe.py`` collects the vectors and prints the accuracies).

The regression: features standardised with the training split's mean and standard deviation;
minimise CE(X W + b, y) + wd * ||W||^2 (full-batch L-BFGS); ``wd`` chosen from ``wds`` by accuracy
on the last ``val_frac`` of the training split, then refitted on the whole training split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["LinearProbeResult", "fit_softmax", "linear_probe"]


@dataclass
class LinearProbeResult:
    accuracy: float  # on the test split
    majority: float  # the test accuracy of always answering the training split's most frequent label
    wd: float  # the chosen L2 weight
    val: dict[float, float]  # validation accuracy per candidate wd
    n_train: int
    n_test: int


def fit_softmax(X: torch.Tensor, y: torch.Tensor, n_classes: int, wd: float, steps: int = 500
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """argmin_{W, b} CE(X W + b, y) + wd * ||W||^2 by full-batch L-BFGS -> (W [D, C], b [C])."""
    X = X.float()
    W = torch.zeros(X.shape[1], n_classes, requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(X @ W + b, y) + wd * (W**2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return W.detach(), b.detach()


def linear_probe(X_train: torch.Tensor, y_train: torch.Tensor, X_test: torch.Tensor, y_test: torch.Tensor, *,
                 wds: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0), val_frac: float = 0.2) -> LinearProbeResult:
    """Test accuracy of the L2 logistic regression of the module docstring (labels are ints 0..C-1)."""
    if len(X_train) != len(y_train) or len(X_test) != len(y_test):
        raise ValueError("linear_probe: features and labels differ in length")
    n_val = int(round(val_frac * len(X_train)))
    if n_val < 1 or len(X_train) - n_val < 2 or len(X_test) < 1:
        raise ValueError(f"linear_probe: too few records ({len(X_train)} train, {len(X_test)} test)")
    C = int(max(int(y_train.max()), int(y_test.max())) + 1)
    mu, sd = X_train.float().mean(0), X_train.float().std(0) + 1e-6
    tr, te = (X_train.float() - mu) / sd, (X_test.float() - mu) / sd
    fit, val = tr[:-n_val], tr[-n_val:]

    def acc(W, b, X, y) -> float:
        return float(((X @ W + b).argmax(1) == y).float().mean())

    scores = {float(wd): acc(*fit_softmax(fit, y_train[:-n_val], C, wd), val, y_train[-n_val:]) for wd in wds}
    best = max(scores, key=lambda w: (scores[w], w))  # ties: the stronger regularisation
    W, b = fit_softmax(tr, y_train, C, best)
    majority = float((y_test == torch.mode(y_train).values).float().mean())
    return LinearProbeResult(acc(W, b, te, y_test), majority, best, scores, len(X_train), len(X_test))
