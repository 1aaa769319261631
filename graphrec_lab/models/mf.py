"""Matrix factorisation trained with BPR (Rendle et al., UAI 2009)."""

from __future__ import annotations

from torch import Tensor, nn

from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.models.base import Recommender, init_embedding


class MatrixFactorization(Recommender):
    """``score(u, i) = e_u . e_i`` with free embeddings e_u, e_i in R^d (normal init, std 0.1).

    Args:
        num_users, num_items: node counts.
        embedding_dim: d.
        init: ``normal`` (std ``init_std``), ``xavier_normal`` (RecBole) or ``xavier_uniform``.
        init_std: standard deviation for ``init=normal`` (LightGCN-PyTorch uses 0.1).
    """

    def __init__(
        self, num_users: int, num_items: int, embedding_dim: int = 64, init: str = "normal", init_std: float = 0.1
    ) -> None:
        super().__init__(num_users, num_items)
        self.user_embedding = nn.Embedding(num_users, embedding_dim)
        self.item_embedding = nn.Embedding(num_items, embedding_dim)
        init_embedding(self.user_embedding.weight, init, init_std)
        init_embedding(self.item_embedding.weight, init, init_std)

    def forward(self, graph: TrainGraph) -> tuple[Tensor, Tensor]:
        return self.user_embedding.weight, self.item_embedding.weight

    def ego_embeddings(self, users: Tensor, pos_items: Tensor, neg_items: Tensor) -> list[Tensor]:
        return [self.user_embedding(users), self.item_embedding(pos_items), self.item_embedding(neg_items)]
