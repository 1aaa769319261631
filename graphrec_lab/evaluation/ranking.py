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
    num_items = scores.size(1)
    k = min(k, num_items)
    # One extra column tells whether a tie straddles the cut-off: exactly when the (k+1)-th value
    # equals the k-th (cheaper than a full comparison pass over the scores).
    values, index = scores.topk(min(k + 1, num_items), dim=1)
    straddles = values[:, k] == values[:, k - 1] if k < num_items else None
    values, index = values[:, :k], index[:, :k]
    # Order inside the top-k: by value descending, then item id ascending.
    by_id = index.argsort(dim=1)
    index, values = index.gather(1, by_id), values.gather(1, by_id)
    by_value = values.argsort(dim=1, descending=True, stable=True)
    index = index.gather(1, by_value)
    # Rows with a straddling tie may have kept a higher id than the rule allows: sort them fully.
    if straddles is not None and bool(straddles.any()):
        rows = straddles.nonzero().flatten()
        index[rows] = scores[rows].sort(dim=1, descending=True, stable=True).indices[:, :k]
    return index
