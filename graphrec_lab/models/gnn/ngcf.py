"""NGCF (Wang et al., "Neural Graph Collaborative Filtering", SIGIR 2019).

    L       = D^-1/2 A D^-1/2                                                   [N, N], N = U + I
    E^(k+1) = LeakyReLU( (L + I) E^(k) W1_k + b1_k + ((L E^(k)) * E^(k)) W2_k + b2_k )   [N, d]
    E = [E^(0) || E^(1)/|E^(1)| || ... || E^(K)/|E^(K)|]                        [N, (K+1) d]

Eq. (7) of the paper (one LeakyReLU over both terms; ``*`` is the element-wise bi-interaction), with
the authors' code's row-normalisation of each propagated layer in the concatenation. Regularisers of
Section 2.4.2, in training mode only:
  * message dropout: dropout with rate ``message_dropout`` on each layer's output E^(k+1);
  * node dropout: per forward, a share ``node_dropout`` of the nodes is blocked, i.e. all their outgoing
    messages are dropped (columns of L zeroed, survivors rescaled by 1/(1-p)). It is applied as a row
    mask on E^(k) before ``L @``, so it costs one multiply instead of rebuilding L.
Everything is CSR spmm plus dense [N, d] ops: no per-edge tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.models.gnn.base import GraphRecommender
from graphrec_lab.ops.sparse import symmetric_spmm


class NGCF(GraphRecommender):
    """Args:
        num_users, num_items: node counts.
        embedding_dim: d (paper: 64; every layer keeps d).
        num_layers: K (paper: 3).
        node_dropout: share of nodes blocked per forward (paper: 0.1).
        message_dropout: dropout on layer outputs (paper: 0.1).
        negative_slope: LeakyReLU slope (authors' code: 0.2).
        init: ``xavier_uniform`` (authors' code) for embeddings; W1, W2 are Xavier-initialised too.
        init_std, user_features, item_features, feature_mode: see ``GraphRecommender``.
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        embedding_dim: int = 64,
        num_layers: int = 3,
        node_dropout: float = 0.1,
        message_dropout: float = 0.1,
        negative_slope: float = 0.2,
        init: str = "xavier_uniform",
        init_std: float = 0.1,
        user_features: Tensor | None = None,
        item_features: Tensor | None = None,
        feature_mode: str = "id",
    ) -> None:
        super().__init__(num_users, num_items, embedding_dim, num_layers, "concat", init, init_std, user_features, item_features, feature_mode)
        self.node_dropout = node_dropout
        self.message_dropout = message_dropout
        self.negative_slope = negative_slope
        self.w1 = nn.ModuleList(nn.Linear(embedding_dim, embedding_dim) for _ in range(num_layers))
        self.w2 = nn.ModuleList(nn.Linear(embedding_dim, embedding_dim) for _ in range(num_layers))
        for lin in [*self.w1, *self.w2]:
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def prepare(self, graph: TrainGraph) -> Tensor | None:
        """The node-dropout mask [N, 1] of this forward (None in eval mode or with p = 0)."""
        if not self.training or self.node_dropout <= 0:
            return None
        keep = torch.rand(graph.num_nodes, 1, device=graph.norm_adj.device) >= self.node_dropout
        return keep.float() / (1 - self.node_dropout)

    def layer(self, k: int, x: Tensor, graph: TrainGraph, mask: Tensor | None) -> Tensor:
        side = symmetric_spmm(graph.norm_adj, x if mask is None else x * mask)  # L E [N, d]
        out = F.leaky_relu(self.w1[k](side + x) + self.w2[k](side * x), self.negative_slope)
        return F.dropout(out, self.message_dropout, self.training)

    def readout(self, layers: list[Tensor]) -> Tensor:
        return torch.cat([layers[0], *(F.normalize(x, p=2.0, dim=-1) for x in layers[1:])], dim=-1)
