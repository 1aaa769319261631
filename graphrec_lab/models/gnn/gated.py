"""Gated graph neural network (Li et al., "Gated Graph Sequence Neural Networks", ICLR 2016) on the
user-item graph.

    M^(k)   = P (E^(k) W_k)                          [N, d], W_k [d, d], N = U + I
    E^(k+1) = GRU(M^(k), E^(k))                      [N, d]   (one GRU cell shared by all steps)
    E = E^(K)

Parameters are one PyG ``GatedGraphConv`` (weights [K, d, d] and its GRU cell). P is the
propagation operator: ``sym`` = D^-1/2 A D^-1/2 by default (the paper's, and PyG's, plain sum over
neighbours lets item degrees in the thousands saturate the GRU; ``adjacency="sum"`` restores it).
Each step is one CSR product; the test checks equality with ``GatedGraphConv.forward``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.nn import GatedGraphConv

from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.models.gnn import ops
from graphrec_lab.models.gnn.base import GraphRecommender


class GatedGNN(GraphRecommender):
    """Args:
        num_users, num_items: node counts.
        embedding_dim: d.
        num_layers: K propagation steps (the paper unrolls a fixed number of steps; 3 here).
        adjacency: ``sym`` (normalised) or ``sum`` (the paper's).
        readout: ``last`` (paper), or ``mean``/``concat``.
        init, init_std, user_features, item_features, feature_mode: see ``GraphRecommender``.
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        embedding_dim: int = 64,
        num_layers: int = 3,
        adjacency: str = "sym",
        readout: str = "last",
        init: str = "normal",
        init_std: float = 0.1,
        user_features: Tensor | None = None,
        item_features: Tensor | None = None,
        feature_mode: str = "id",
    ) -> None:
        super().__init__(num_users, num_items, embedding_dim, num_layers, readout, init, init_std, user_features, item_features, feature_mode)
        if adjacency not in ("sym", "sum"):
            raise ValueError(f"adjacency={adjacency!r}: expected 'sym' or 'sum'")
        self.adjacency = adjacency
        self.conv = GatedGraphConv(embedding_dim, num_layers, aggr="add")

    def layer(self, k: int, x: Tensor, graph: TrainGraph, state: None) -> Tensor:
        m = ops.spmm(ops.adjacency(graph, self.adjacency), torch.matmul(x, self.conv.weight[k]))
        return self.conv.rnn(m, x)
