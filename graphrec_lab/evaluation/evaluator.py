"""Full-ranking evaluation over all items with exclusion masks.

Each user's items are scored, the user's known items (training, plus validation at test time) are
masked out, the top ``max(K)`` are taken with a fixed tie rule, and PyG's link-prediction metrics
(torchmetrics ``Metric``s, so they sum correctly across DDP ranks) accumulate per-user values.
Users are independent, so results do not depend on the evaluation batch size.

Definitions (per user with ``n`` held-out items, ``rel_j`` = 1 if the j-th ranked item is held out):
    recall@K = hits/n, precision@K = hits/K, hit@K = [hits > 0], mrr@K = 1/rank of first hit,
    ndcg@K = sum_j rel_j / log2(j+1) / IDCG(min(n, K)),
    map@K = sum_j precision@j * rel_j / min(n, K)  (RecBole's definition),
    itemcoverage@K = share of all items that appear in some user's top K.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch_geometric.metrics import (
    LinkPredCoverage,
    LinkPredHitRatio,
    LinkPredMAP,
    LinkPredMetricCollection,
    LinkPredMRR,
    LinkPredNDCG,
    LinkPredPrecision,
    LinkPredRecall,
)

from graphrec_lab.data.sampling import EvalBatch
from graphrec_lab.evaluation.ranking import mask_scores, topk_stable

_PER_USER = {
    "recall": LinkPredRecall,
    "ndcg": LinkPredNDCG,
    "precision": LinkPredPrecision,
    "hit": LinkPredHitRatio,
    "mrr": LinkPredMRR,
    "map": LinkPredMAP,
}
METRICS = (*_PER_USER, "itemcoverage")


@contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """PyG's metrics compute per-user values, batch sums and states in the default dtype. In float32
    the batch sums round differently for different batch sizes (~1e-9); in float64 the result does
    not depend on batching or on the DDP split (to ~1e-15)."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(default)


class FullRankingEvaluator(nn.Module):
    """Accumulates top-K metrics over batches of users.

    Args:
        num_items: size of the ranked catalogue.
        ks: cut-offs, e.g. (10, 20).
        metrics: names from ``METRICS``.
    """

    def __init__(self, num_items: int, ks: Sequence[int] = (10, 20), metrics: Sequence[str] = METRICS) -> None:
        super().__init__()
        unknown = sorted(set(metrics) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; known: {list(METRICS)}")
        if not ks or min(ks) <= 0:
            raise ValueError(f"ks={list(ks)}: need positive cut-offs")
        self.num_items = num_items
        self.ks = tuple(sorted(set(int(k) for k in ks)))
        self.max_k = max(self.ks)
        collection: dict[str, nn.Module] = {}
        with _default_dtype(torch.float64):  # states and NDCG's discount table in float64
            for name in metrics:
                for k in self.ks:
                    metric = LinkPredCoverage(k, num_items) if name == "itemcoverage" else _PER_USER[name](k)
                    collection[f"{name}@{k}"] = metric
        self.metrics = LinkPredMetricCollection(collection)
        self.num_users = 0

    @torch.no_grad()
    def update(self, scores: Tensor, batch: EvalBatch) -> Tensor:
        """Rank one batch. ``scores``: [B, I] (modified in place by the mask). Returns top-k [B, maxK]."""
        mask_scores(scores, batch.exclude)
        top = topk_stable(scores, self.max_k)
        with _default_dtype(torch.float64):
            self.metrics.update(top, batch.target)
        self.num_users += batch.users.numel()
        return top

    def compute(self) -> dict[str, float]:
        """Means over all users seen since the last reset (synchronised across DDP ranks)."""
        with _default_dtype(torch.float64):
            return {name: float(value) for name, value in self.metrics.compute().items()}

    def reset(self) -> None:
        self.metrics.reset()
        self.num_users = 0
