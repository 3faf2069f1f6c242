"""Eq. 5 pooling and Eq. 6 block helpers against hand computations."""

from __future__ import annotations

import pytest
import torch

from fourdthinker.latent.blocks import (
    IGNORE_INDEX,
    check_blocks,
    expand_imagery,
    latent_mask,
    response_labels,
    scatter_latents,
    strip_imagery,
)
from fourdthinker.latent.pooling import partition_mean_pool


def test_pooling_hand_computed():
    # E rows: [0,1],[2,3],[4,5],[6,7],[8,9],[10,11]; K=3 -> groups {0,1},{2,3},{4,5}
    # z_1 = ([0,1]+[2,3])/2 = [1,2]; z_2 = ([4,5]+[6,7])/2 = [5,6]; z_3 = ([8,9]+[10,11])/2 = [9,10]
    E = torch.arange(12.0).view(6, 2)
    assert partition_mean_pool(E, 3).tolist() == [[1.0, 2.0], [5.0, 6.0], [9.0, 10.0]]
    # K=1 is the global mean: [5, 6]
    assert partition_mean_pool(E, 1).tolist() == [[5.0, 6.0]]
    # K=n is the identity
    assert torch.equal(partition_mean_pool(E, 6), E)


def test_pooling_uneven_groups_keep_every_row():
    # n=5, K=2 -> groups {0,1,2},{3,4}: z_1 = (0+1+2)/3 = 1, z_2 = (3+4)/2 = 3.5
    E = torch.arange(5.0).view(5, 1)
    assert partition_mean_pool(E, 2).flatten().tolist() == [1.0, 3.5]


def test_pooling_errors():
    with pytest.raises(ValueError, match="cannot form K=4"):
        partition_mean_pool(torch.zeros(3, 2), 4)
    with pytest.raises(ValueError, match="K must be >= 1"):
        partition_mean_pool(torch.zeros(3, 2), 0)
    with pytest.raises(ValueError, match=r"expected \[n, D\]"):
        partition_mean_pool(torch.zeros(3), 1)


def test_expand_and_strip():
    r = "<think>a <imagery> b <imagery>.</think><answer>A</answer>"
    assert expand_imagery(r, 2, "S", "P", "E") == "<think>a SPPE b SPPE.</think><answer>A</answer>"
    assert strip_imagery(r) == "<think>a b.</think><answer>A</answer>"


def test_scatter_writes_in_row_major_order_and_checks_counts():
    ids = torch.tensor([[0, 9, 9, 1], [9, 2, 3, 9]])  # 9 = latent pad
    m = latent_mask(ids, 9)
    emb = torch.zeros(2, 4, 2)
    lat = torch.tensor([[1.0, 1], [2, 2], [3, 3], [4, 4]])
    out = scatter_latents(emb, m, lat)
    assert out[0, 1].tolist() == [1, 1] and out[0, 2].tolist() == [2, 2]
    assert out[1, 0].tolist() == [3, 3] and out[1, 3].tolist() == [4, 4]
    assert out[0, 0].tolist() == [0, 0] and emb.abs().sum() == 0  # input untouched
    with pytest.raises(ValueError, match="4 latent positions"):
        scatter_latents(emb, m, lat[:3])


def test_response_labels_mask_prompt_pad_and_latents():
    # prompt (2 tokens) | start 7, pad 9, pad 9, end 8, text 5
    ids = torch.tensor([[3, 4, 7, 9, 9, 8, 5]])
    resp = torch.tensor([[0, 0, 1, 1, 1, 1, 1]]).bool()
    lab = response_labels(ids, resp, [9])
    X = IGNORE_INDEX
    assert lab.tolist() == [[X, X, 7, X, X, 8, 5]]  # start/end supervised, latent pads not


def test_check_blocks():
    check_blocks([1, 7, 9, 9, 8, 2], 2, 7, 9, 8, 1)
    with pytest.raises(ValueError, match="misaligned"):
        check_blocks([1, 7, 9, 9, 8, 2], 2, 7, 9, 8, 2)
    with pytest.raises(ValueError, match="not start"):
        check_blocks([7, 9, 8, 9], 2, 7, 9, 8, 1)
