"""GAT (Velickovic et al., "Graph Attention Networks", ICLR 2018) on the user-item graph.

    H       = E^(k) W_k                       viewed as [N, h, c], h heads, c = d / h, N = U + I
    s_i     = <H_i, a_dst>,  t_j = <H_j, a_src>                    [N, h]
    alpha_ij = softmax_{j in N(i) + i}( LeakyReLU(s_i + t_j) )     [E', h], E' = 2E + N (self-loops)
    E^(k+1)_i = || over heads of sum_j alpha_ij H_j + b            [N, h c] = [N, d]
    E = E^(K)                                                      (ELU between layers)

Parameters are PyG ``GATConv`` modules. Propagation never builds the [E', h, c] message tensor of
message passing: scores and the segment softmax are [E', h] (gathers + scatter_reduce, via PyG's
``utils.softmax``), and the weighted sum is one CSR spmm per head with a hand-written backward
(``ops.attention_propagate``). The test checks equality with ``GATConv.forward``; the seconds per
forward+backward on a Gowalla-size graph are in experiments/model_zoo/README.md.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GATConv

from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.models.gnn import ops
from graphrec_lab.models.gnn.base import GraphRecommender, hidden_activation


class GAT(GraphRecommender):
    """Args:
        num_users, num_items: node counts.
        embedding_dim: d = heads * c (paper: 8 heads of 8 features).
        num_layers: K (paper: 2).
        heads: h (paper: 8).
        negative_slope: LeakyReLU slope (paper: 0.2).
        attention_dropout: dropout on alpha (paper: 0.6 on Cora; 0 by default here, see the config).
        readout: ``last`` (paper); ``mean``/``concat`` also work.
        init, init_std, user_features, item_features, feature_mode: see ``GraphRecommender``.
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        embedding_dim: int = 64,
        num_layers: int = 2,
        heads: int = 8,
        negative_slope: float = 0.2,
        attention_dropout: float = 0.0,
        readout: str = "last",
        init: str = "normal",
        init_std: float = 0.1,
        user_features: Tensor | None = None,
        item_features: Tensor | None = None,
        feature_mode: str = "id",
    ) -> None:
        super().__init__(num_users, num_items, embedding_dim, num_layers, readout, init, init_std, user_features, item_features, feature_mode)
        if embedding_dim % heads:
            raise ValueError(f"embedding_dim={embedding_dim} must be a multiple of heads={heads}")
        self.heads = heads
        self.attention_dropout = attention_dropout
        self.convs = nn.ModuleList(
            GATConv(embedding_dim, embedding_dim // heads, heads=heads, negative_slope=negative_slope) for _ in range(num_layers)
        )

    def layer(self, k: int, x: Tensor, graph: TrainGraph, state: None) -> Tensor:
        conv = self.convs[k]
        h = conv.lin(x).view(x.size(0), self.heads, -1)  # [N, h, c]
        score_src = (h * conv.att_src).sum(-1)  # [N, h]
        score_dst = (h * conv.att_dst).sum(-1)
        out = ops.attention_propagate(
            ops.edge_structure(graph), h, score_src, score_dst, conv.negative_slope,
            dropout=self.attention_dropout if self.training else 0.0,
        )
        out = out.reshape(x.size(0), -1) + conv.bias
        return hidden_activation(self, k, out, F.elu)
