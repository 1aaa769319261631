"""Pairwise losses. Each returns a scalar; the task sums the terms it is configured with."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def bpr_loss(pos_scores: Tensor, neg_scores: Tensor) -> Tensor:
    """Bayesian personalised ranking: mean of -log sigmoid(s_pos - s_neg) over the batch ([B] -> [])."""
    return F.softplus(neg_scores - pos_scores).mean()


def l2_batch_loss(embeddings: list[Tensor]) -> Tensor:
    """LightGCN's regulariser: (1/2) sum of squared norms of the batch's layer-0 rows, / batch size."""
    batch = embeddings[0].size(0)
    return 0.5 * sum(e.pow(2).sum() for e in embeddings) / batch  # type: ignore[return-value]


def l2_total(embeddings: list[Tensor]) -> Tensor:
    return torch.stack([e.pow(2).sum() for e in embeddings]).sum()
