"""Latent targets by partitioned mean pooling (Eq. 5, docs/method.md#eq-5).

z_k = mean(E[P_k]) for k = 1..K, where the n rows of E (an image's visual embeddings in the LM
input space, in the encoder's raster order) are split in order into K contiguous groups. When K
does not divide n, the groups are as equal as possible: the first ``n mod K`` groups get one row
more (``torch.tensor_split``), so no row is dropped (the reference trims the tail instead).
"""

from __future__ import annotations

import torch


def partition_mean_pool(embeddings: torch.Tensor, k: int) -> torch.Tensor:
    """Eq. 5: ``[n, D] -> [K, D]``, z_k = (1/|P_k|) * sum_{i in P_k} E_i, P_1..P_K contiguous.

    >>> partition_mean_pool(torch.arange(8.).view(4, 2), 2).tolist()
    [[1.0, 2.0], [5.0, 6.0]]
    """
    if embeddings.dim() != 2:
        raise ValueError(f"partition_mean_pool: expected [n, D], got shape {tuple(embeddings.shape)}")
    n = embeddings.shape[0]
    if k < 1:
        raise ValueError(f"partition_mean_pool: latent size K must be >= 1, got {k}")
    if n < k:
        raise ValueError(f"partition_mean_pool: {n} embeddings cannot form K={k} groups (image too small?)")
    groups = torch.tensor_split(embeddings, k, dim=0)  # K views of [n_k, D]
    return torch.stack([g.float().mean(0) for g in groups]).to(embeddings.dtype)  # [K, D]
