"""GCN (Kipf & Welling, "Semi-Supervised Classification with Graph Convolutional Networks", ICLR 2017)
on the user-item graph.

    E^(k+1) = sigma( D~^-1/2 (A + I) D~^-1/2 E^(k) W_k + b_k )     [N, d], W_k [d, d], N = U + I
    E = E^(K)                                                        (no sigma on the last layer)

sigma = ReLU; D~ = D + I (the renormalisation trick). Parameters are PyG ``GCNConv`` modules (same
layout and initialisation); propagation uses the cached CSR operator instead of GCNConv's scatter
message passing (see ``ops``; the test checks equality with ``GCNConv.forward``).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GCNConv

from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.models.gnn import ops
from graphrec_lab.models.gnn.base import GraphRecommender, hidden_activation


class GCN(GraphRecommender):
    """Args:
        num_users, num_items: node counts.
        embedding_dim: d (64, the zoo's common width; the paper's 16 hidden units are for Cora).
        num_layers: K (paper: 2).
        dropout: dropout on each layer's input (paper: 0.5 on citation graphs; 0 here by default,
            as BPR on ID embeddings has no input features to regularise).
        readout: ``last`` (the paper's output layer); ``mean``/``concat`` also work.
        init, init_std, user_features, item_features, feature_mode: see ``GraphRecommender``.
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        embedding_dim: int = 64,
        num_layers: int = 2,
        dropout: float = 0.0,
        readout: str = "last",
        init: str = "normal",
        init_std: float = 0.1,
        user_features: Tensor | None = None,
        item_features: Tensor | None = None,
        feature_mode: str = "id",
    ) -> None:
        super().__init__(num_users, num_items, embedding_dim, num_layers, readout, init, init_std, user_features, item_features, feature_mode)
        self.dropout = dropout
        self.convs = nn.ModuleList(GCNConv(embedding_dim, embedding_dim) for _ in range(num_layers))

    def layer(self, k: int, x: Tensor, graph: TrainGraph, state: None) -> Tensor:
        conv = self.convs[k]
        x = F.dropout(x, self.dropout, self.training)
        out = ops.spmm(ops.adjacency(graph, "sym_self"), conv.lin(x)) + conv.bias
        return hidden_activation(self, k, out)
