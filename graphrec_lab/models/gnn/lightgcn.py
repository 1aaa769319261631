"""LightGCN (He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation", SIGIR 2020).

Propagation over the symmetrically normalised user-item graph without transforms or
non-linearities, then a layer mean:

    E^(k+1) = D^-1/2 A D^-1/2 E^(k),      E = mean_{k=0..K} E^(k)

``E^(0)`` [(U+I), d] are the free embeddings (normal init, std 0.1 as in LightGCN-PyTorch; the paper's
TensorFlow code uses ``init="xavier_uniform"``). L2 acts on the batch's ``E^(0)`` rows only (the task does it).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from graphrec_lab.data.train_graph import TrainGraph, symmetric_spmm
from graphrec_lab.models.base import Recommender, init_embedding


class LightGCN(Recommender):
    """Args:
        num_users, num_items: node counts.
        embedding_dim: d (paper: 64).
        num_layers: K (paper: 3).
        init: ``normal`` (std ``init_std``), ``xavier_normal`` (RecBole) or ``xavier_uniform``.
        init_std: standard deviation for ``init=normal``.
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        embedding_dim: int = 64,
        num_layers: int = 3,
        init: str = "normal",
        init_std: float = 0.1,
    ) -> None:
        super().__init__(num_users, num_items)
        self.num_layers = num_layers
        self.embedding = nn.Embedding(num_users + num_items, embedding_dim)
        init_embedding(self.embedding.weight, init, init_std)

    def forward(self, graph: TrainGraph) -> tuple[Tensor, Tensor]:
        x = self.embedding.weight  # [U+I, d]
        out = x
        for _ in range(self.num_layers):
            # The normalised adjacency is symmetric, so the backward reuses it (no CSR transpose).
            x = symmetric_spmm(graph.norm_adj, x)
            out = out + x
        out = out / (self.num_layers + 1)
        return torch.split(out, [self.num_users, self.num_items])

    def ego_embeddings(self, users: Tensor, pos_items: Tensor, neg_items: Tensor) -> list[Tensor]:
        n = self.num_users
        rows = self.embedding.weight.index_select(0, torch.cat([users, pos_items + n, neg_items + n]))
        return list(rows.split([users.numel(), pos_items.numel(), neg_items.numel()]))
