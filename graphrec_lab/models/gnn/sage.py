"""GraphSAGE (Hamilton et al., "Inductive Representation Learning on Large Graphs", NeurIPS 2017),
mean (default), max or sum aggregator, on the user-item graph.

    M^(k)   = D^-1 A E^(k)                                      [N, d]  (mean over neighbours;
              max: elementwise max over neighbours; sum: A E^(k))
    E^(k+1) = normalize( sigma( M^(k) W_l + b + E^(k) W_r ) )   [N, d], N = U + I
    E = E^(K)                                                   (no sigma on the last layer)

The paper samples 25/10 neighbours per layer for minibatches; full-graph training here aggregates
over all neighbours with one CSR product per layer (D^-1 A and its cached transpose), which costs less
on a 1.6M-edge graph than sampling would. Parameters are PyG ``SAGEConv`` modules (the test checks
equality with ``SAGEConv.forward``).
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import SAGEConv
from torch_geometric.utils import scatter

from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.models.gnn import ops
from graphrec_lab.models.gnn.base import GraphRecommender, hidden_activation


class GraphSAGE(GraphRecommender):
    """Args:
        num_users, num_items: node counts.
        embedding_dim: d.
        num_layers: K (paper: 2).
        normalize: L2-normalise every layer's output (paper: yes, Algorithm 1 line 7).
        readout: ``last`` (paper); ``mean``/``concat`` also work.
        aggr: the neighbourhood aggregator: ``mean`` (default), ``max`` (elementwise, over the [E, d]
            gathered neighbour rows; 0 for a node without neighbours, as PyG) or ``sum``.
        init, init_std, user_features, item_features, feature_mode: see ``GraphRecommender``.
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        embedding_dim: int = 64,
        num_layers: int = 2,
        normalize: bool = True,
        readout: str = "last",
        init: str = "normal",
        init_std: float = 0.1,
        user_features: Tensor | None = None,
        item_features: Tensor | None = None,
        feature_mode: str = "id",
        aggr: Literal["mean", "max", "sum"] = "mean",
    ) -> None:
        super().__init__(num_users, num_items, embedding_dim, num_layers, readout, init, init_std, user_features, item_features, feature_mode)
        if aggr not in ("mean", "max", "sum"):
            raise ValueError(f"model.aggr={aggr!r}: expected mean, max or sum")
        self.aggr = aggr
        self.convs = nn.ModuleList(
            SAGEConv(embedding_dim, embedding_dim, aggr=aggr, normalize=normalize) for _ in range(num_layers)
        )

    def _aggregate(self, x: Tensor, graph: TrainGraph) -> Tensor:
        """Each node's neighbourhood aggregate [N, d] of ``x`` [N, d]."""
        if self.aggr == "max":
            src, dst = graph.edge_index
            return scatter(x.index_select(0, src), dst, dim=0, dim_size=graph.num_nodes, reduce="max")
        return ops.spmm(ops.adjacency(graph, self.aggr), x)

    def layer(self, k: int, x: Tensor, graph: TrainGraph, state: None) -> Tensor:
        conv = self.convs[k]
        out = conv.lin_l(self._aggregate(x, graph)) + conv.lin_r(x)
        if conv.normalize:
            out = F.normalize(out, p=2.0, dim=-1)
        return hidden_activation(self, k, out)
