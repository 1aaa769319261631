"""Full-ranking top-K with a defined tie rule.

``torch.topk`` leaves the order of equal scores unspecified, which makes metrics depend on the
batch shape and the backend. Here ties always rank the lower item id first, exactly as a stable
descending sort of the whole row would, at the cost of ``topk`` plus one comparison pass.
"""

from __future__ import annotations

import torch
from torch import Tensor


def mask_scores(scores: Tensor, exclude: Tensor) -> Tensor:
    """Set ``scores[row, item] = -inf`` for each (row, item) column of ``exclude`` [2, X]; in place."""
    if exclude.numel():
        scores[exclude[0], exclude[1]] = float("-inf")
    return scores


def topk_stable(scores: Tensor, k: int) -> Tensor:
    """Indices of the top ``k`` items per row, ties broken by lower item id: [B, I] -> [B, k]."""
    k = min(k, scores.size(1))
    values, index = scores.topk(k, dim=1)
    # 1) Order inside the top-k: by value descending, then item id ascending.
    by_id = index.argsort(dim=1)
    index, values = index.gather(1, by_id), values.gather(1, by_id)
    by_value = values.argsort(dim=1, descending=True, stable=True)
    index, values = index.gather(1, by_value), values.gather(1, by_value)
    # 2) Rows where a tie straddles the cut-off may have kept a higher id than the rule allows.
    kth = values[:, -1:]
    straddles = (scores >= kth).sum(dim=1) > k
    if bool(straddles.any()):
        rows = straddles.nonzero().flatten()
        index[rows] = scores[rows].sort(dim=1, descending=True, stable=True).indices[:, :k]
    return index
