"""Each ranking loss against values computed by hand from its definition."""

from __future__ import annotations

import math

import pytest
import torch

from graphrec_lab.training.losses import RANKING_LOSSES, bce_loss, bpr_loss, softmax_loss


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


POS = torch.tensor([1.0, 0.0], dtype=torch.float64)
NEG = torch.tensor([[0.0, 2.0], [0.0, -1.0]], dtype=torch.float64)  # two rows, K = 2 negatives


def test_bpr_is_the_mean_pairwise_log_loss_over_every_negative() -> None:
    # -log sigmoid(pos - neg) = softplus(neg - pos) for the pairs (1,0), (1,2), (0,0), (0,-1)
    expected = (_softplus(-1.0) + _softplus(1.0) + _softplus(0.0) + _softplus(-1.0)) / 4
    assert float(bpr_loss(POS, NEG)) == pytest.approx(expected, rel=1e-12)


def test_bpr_with_one_negative_keeps_the_one_negative_arithmetic() -> None:
    pos, neg = torch.randn(64), torch.randn(64)
    assert torch.equal(bpr_loss(pos, neg), torch.nn.functional.softplus(neg - pos).mean())
    assert float(bpr_loss(pos, neg.unsqueeze(1))) == pytest.approx(float(bpr_loss(pos, neg)), rel=1e-6)


def test_bce_labels_the_positive_one_and_each_negative_zero() -> None:
    # -log sigmoid(p) = softplus(-p); -log(1 - sigmoid(n)) = softplus(n); mean over all 6 scores
    positives = _softplus(-1.0) + _softplus(0.0)
    negatives = _softplus(0.0) + _softplus(2.0) + _softplus(0.0) + _softplus(-1.0)
    assert float(bce_loss(POS, NEG)) == pytest.approx((positives + negatives) / 6, rel=1e-12)


def test_softmax_is_the_cross_entropy_of_the_positive_among_its_negatives_with_temperature() -> None:
    t = 0.5
    row0 = -2.0 + math.log(math.exp(2.0) + math.exp(0.0) + math.exp(4.0))  # logits [1, 0, 2] / 0.5
    row1 = -0.0 + math.log(math.exp(0.0) + math.exp(0.0) + math.exp(-2.0))  # logits [0, 0, -1] / 0.5
    assert float(softmax_loss(POS, NEG, t)) == pytest.approx((row0 + row1) / 2, rel=1e-12)
    # one negative: the softmax over two is the logistic of the difference, i.e. BPR at t = 1
    pos, neg = torch.randn(32, dtype=torch.float64), torch.randn(32, dtype=torch.float64)
    assert float(softmax_loss(pos, neg)) == pytest.approx(float(bpr_loss(pos, neg)), rel=1e-12)


def test_registry_names_the_three_losses() -> None:
    assert set(RANKING_LOSSES) == {"bpr", "bce", "softmax"}
