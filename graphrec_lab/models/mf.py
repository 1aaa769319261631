"""Matrix factorisation trained with BPR (Rendle et al., UAI 2009)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.models.base import Recommender
from graphrec_lab.models.inputs import NodeInput


class MatrixFactorization(Recommender):
    """``score(u, i) = e_u . e_i`` with free embeddings e_u, e_i in R^d (normal init, std 0.1), or
    projected input features (``models.inputs.NodeInput``).

    Args:
        num_users, num_items: node counts.
        embedding_dim: d.
        init: ``normal`` (std ``init_std``), ``xavier_normal`` (RecBole) or ``xavier_uniform``.
        init_std: standard deviation for ``init=normal`` (LightGCN-PyTorch uses 0.1).
        user_features, item_features, feature_mode: optional input features.
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        embedding_dim: int = 64,
        init: str = "normal",
        init_std: float = 0.1,
        user_features: Tensor | None = None,
        item_features: Tensor | None = None,
        feature_mode: str = "id",
    ) -> None:
        super().__init__(num_users, num_items)
        # One table per side (not LightGCN's shared table): Xavier's fan differs, results would too.
        self.input = NodeInput(num_users, num_items, embedding_dim, user_features, item_features, feature_mode, init, init_std)

    @property
    def user_embedding(self) -> nn.Embedding | None:
        return self.input.user_embedding

    @property
    def item_embedding(self) -> nn.Embedding | None:
        return self.input.item_embedding

    def forward(self, graph: TrainGraph, perturb_eps: float = 0.0, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Users [U, d], items [I, d]; the graph is not used (``perturb_eps`` is accepted, and ignored,
        for interface uniformity)."""
        return self.input.users(), self.input.items()

    def ego_embeddings(self, users: Tensor, pos_items: Tensor, neg_items: Tensor) -> list[Tensor]:
        return self.input.batch_rows(users, pos_items, neg_items)
