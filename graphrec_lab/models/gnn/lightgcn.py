"""LightGCN (He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation", SIGIR 2020).

Propagation over the symmetrically normalised user-item graph without transforms or
non-linearities, then a layer mean:

    E^(k+1) = D^-1/2 A D^-1/2 E^(k)           [N, d], N = U + I
    E = mean_{k=0..K} E^(k)                    [N, d]

``E^(0)`` [N, d] are the free embeddings (normal init, std 0.1 as in LightGCN-PyTorch; the paper's
TensorFlow code uses ``init="xavier_uniform"``) or projected input features. L2 acts on the batch's
``E^(0)`` rows only (the task does it). SGL, SimGCL and XSimGCL reuse this encoder.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.models.gnn.base import GraphRecommender
from graphrec_lab.ops.sparse import block_adjacency, propagate_layer_mean, symmetric_spmm


class LightGCN(GraphRecommender):
    """Args:
        num_users, num_items: node counts.
        embedding_dim: d (paper: 64).
        num_layers: K (paper: 3).
        init: ``normal`` (std ``init_std``), ``xavier_normal`` (RecBole) or ``xavier_uniform``.
        init_std: standard deviation for ``init=normal``.
        user_features, item_features, feature_mode: optional input features (``models.inputs``).
        readout: ``mean`` over layers 0..K (the paper); SimGCL/XSimGCL use ``mean_no_ego``.
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        embedding_dim: int = 64,
        num_layers: int = 3,
        init: str = "normal",
        init_std: float = 0.1,
        user_features: Tensor | None = None,
        item_features: Tensor | None = None,
        feature_mode: str = "id",
        readout: str = "mean",
    ) -> None:
        super().__init__(
            num_users, num_items, embedding_dim, num_layers, readout, init, init_std, user_features, item_features, feature_mode
        )

    @property
    def embedding(self) -> nn.Embedding | None:
        """The shared [U+I, d] ID table (None when features replace both sides' IDs)."""
        return self.input.embedding

    def layer(self, k: int, x: Tensor, graph: TrainGraph, state: Any) -> Tensor:
        # The normalised adjacency is symmetric, so the backward reuses it (no CSR transpose).
        return symmetric_spmm(block_adjacency(graph), x)

    # The rows of a batch hold this share of the graph's nonzeros or less: restricting the last product
    # (and the backward's first) pays. Measured (experiments/speed/kernels.py, fwd + bwd of the mean):
    # Gowalla, 16% -> 1.2-1.3x faster; ml-100k, 92% -> 0.6x (slicing costs more than it saves).
    ROW_RESTRICTION_MAX_SHARE = 0.35

    def _fused(self) -> bool:
        return type(self).layer is LightGCN.layer and self.readout_mode in ("mean", "mean_no_ego")

    def embed(self, graph: TrainGraph) -> Tensor:
        # The layer mean in one autograd node (same products, fewer ops); subclasses that change the
        # layer or the readout fall back to the generic layer-by-layer path.
        if self._fused():
            return propagate_layer_mean(block_adjacency(graph), self.input(), self.num_layers, self.readout_mode == "mean")
        return super().embed(graph)

    def embed_rows(self, graph: TrainGraph, rows: Tensor) -> Tensor | None:
        if not self._fused() or self.num_layers < 1:
            return None
        adj = block_adjacency(graph)
        if adj.rest is not None or adj.row_share(rows) > self.ROW_RESTRICTION_MAX_SHARE:
            return None
        return propagate_layer_mean(adj, self.input(), self.num_layers, self.readout_mode == "mean", rows=rows)
