"""GIN (Xu et al., "How Powerful are Graph Neural Networks?", ICLR 2019) on the user-item graph.

    E^(k+1) = MLP_k( (1 + eps_k) E^(k) + A E^(k) )     [N, d], N = U + I   (sum aggregation)
    MLP_k   = Linear(d, d) -> BatchNorm -> ReLU -> Linear(d, d)
    E = [E^(0) || E^(1) || ... || E^(K)]               [N, (K+1) d]   (the paper's layer concat)

ReLU between layers; eps_k learnable (GIN-eps). Parameters are PyG ``GINConv`` modules; the sum over
neighbours is one CSR product with the binary adjacency (the test checks equality with
``GINConv.forward``).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch_geometric.nn import GINConv

from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.models.gnn import ops
from graphrec_lab.models.gnn.base import GraphRecommender, hidden_activation


def _mlp(d: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d, d), nn.BatchNorm1d(d), nn.ReLU(), nn.Linear(d, d))


class GIN(GraphRecommender):
    """Args:
        num_users, num_items: node counts.
        embedding_dim: d (paper: 64).
        num_layers: K (paper: 4 GIN layers after the input layer; 2 here, see the config).
        train_eps: learn eps (GIN-eps; paper's GIN-0 fixes it to 0).
        readout: ``concat`` (paper), or ``mean``/``last``.
        init, init_std, user_features, item_features, feature_mode: see ``GraphRecommender``.
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        embedding_dim: int = 64,
        num_layers: int = 4,
        train_eps: bool = True,
        readout: str = "concat",
        init: str = "normal",
        init_std: float = 0.1,
        user_features: Tensor | None = None,
        item_features: Tensor | None = None,
        feature_mode: str = "id",
    ) -> None:
        super().__init__(num_users, num_items, embedding_dim, num_layers, readout, init, init_std, user_features, item_features, feature_mode)
        self.convs = nn.ModuleList(GINConv(_mlp(embedding_dim), train_eps=train_eps) for _ in range(num_layers))

    def layer(self, k: int, x: Tensor, graph: TrainGraph, state: None) -> Tensor:
        conv = self.convs[k]
        out = conv.nn(ops.spmm(ops.adjacency(graph, "sum"), x) + (1 + conv.eps) * x)
        return hidden_activation(self, k, out)
