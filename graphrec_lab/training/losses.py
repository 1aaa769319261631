"""Ranking losses over a positive and K sampled negatives per row, and the L2 terms.

Every ranking loss takes ``pos_scores`` [B] (user . positive item) and ``neg_scores`` [B] or [B, K]
(user . each negative) and returns a scalar; ``RANKING_LOSSES`` maps the config names
(``task.loss``) to them. The task sums the ranking loss, the L2 term and any objectives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

LossName = Literal["bpr", "bce", "softmax"]


def _columns(pos_scores: Tensor, neg_scores: Tensor) -> tuple[Tensor, Tensor]:
    """``pos`` [B, 1] and ``neg`` [B, K] (a [B] ``neg`` is one negative per row)."""
    return pos_scores.unsqueeze(-1), neg_scores if neg_scores.dim() == 2 else neg_scores.unsqueeze(-1)


def bpr_loss(pos_scores: Tensor, neg_scores: Tensor, temperature: float = 1.0) -> Tensor:
    """Bayesian personalised ranking: mean of -log sigmoid(s_pos - s_neg) over every (row, negative)
    pair ([B] or [B, K] -> []). ``temperature`` is unused (the pairwise loss has none)."""
    if neg_scores.dim() == 1:  # one negative: the exact arithmetic of the one-negative loss
        return F.softplus(neg_scores - pos_scores).mean()
    return F.softplus(neg_scores - pos_scores.unsqueeze(-1)).mean()


def bce_loss(pos_scores: Tensor, neg_scores: Tensor, temperature: float = 1.0) -> Tensor:
    """Pointwise binary cross-entropy: the positive labelled 1 and each negative 0, averaged over all
    B (1 + K) scores: mean of [-log sigmoid(s_pos), -log(1 - sigmoid(s_neg_k))]. ``temperature`` unused."""
    pos, neg = _columns(pos_scores, neg_scores)
    total = F.softplus(-pos).sum() + F.softplus(neg).sum()  # -log sigmoid(x) = softplus(-x)
    return total / (pos.numel() + neg.numel())


def softmax_loss(pos_scores: Tensor, neg_scores: Tensor, temperature: float = 1.0) -> Tensor:
    """Sampled softmax / InfoNCE: cross-entropy of the positive among itself and its K negatives,
    logits divided by ``temperature``: mean over rows of -log(exp(s_pos/t) / sum_j exp(s_j/t))."""
    pos, neg = _columns(pos_scores, neg_scores)
    logits = torch.cat([pos, neg], dim=1) / temperature  # [B, 1 + K], the positive in column 0
    return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()


RANKING_LOSSES: dict[str, Callable[[Tensor, Tensor, float], Tensor]] = {
    "bpr": bpr_loss,
    "bce": bce_loss,
    "softmax": softmax_loss,
}


def l2_batch_loss(embeddings: list[Tensor]) -> Tensor:
    """LightGCN's regulariser: (1/2) sum of squared norms of the batch's layer-0 rows, / batch size."""
    batch = embeddings[0].size(0)
    return 0.5 * sum(e.pow(2).sum() for e in embeddings) / batch  # type: ignore[return-value]


def l2_total(embeddings: list[Tensor]) -> Tensor:
    return torch.stack([e.pow(2).sum() for e in embeddings]).sum()
