"""``GraphRecommender``: the template every GNN of the zoo fills in.

    E^(0) = NodeInput()                        [N, D]      (N = U + I; IDs, features or both)
    E^(k+1) = layer_k(E^(k), graph)            [N, D_k]    k = 0..K-1
    E^(k+1) += eps * sign(E^(k+1)) * n_k        (only when perturb_eps > 0: SimGCL/XSimGCL views)
    E = readout([E^(0), ..., E^(K)])           [N, D_out]  mean / mean over k>=1 / last / concat

``propagate`` returns the per-layer list (XSimGCL contrasts one layer with the readout), ``forward``
the readout split into users [U, D_out] and items [I, D_out]. Subclasses implement ``layer`` and,
when they need per-forward state (operators, dropout masks), ``prepare``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.models.base import Recommender
from graphrec_lab.models.gnn import ops
from graphrec_lab.models.inputs import NodeInput

READOUTS = ("mean", "mean_no_ego", "last", "concat")


class GraphRecommender(Recommender):
    """Args (shared by every GNN of the zoo):
        num_users, num_items: node counts.
        embedding_dim: D, the width of E^(0).
        num_layers: K.
        readout: ``mean`` (over k=0..K), ``mean_no_ego`` (k=1..K), ``last`` or ``concat``.
        init, init_std: ID-embedding initialisation.
        user_features, item_features, feature_mode: optional input features (``inputs.NodeInput``).
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        embedding_dim: int,
        num_layers: int,
        readout: str = "mean",
        init: str = "normal",
        init_std: float = 0.1,
        user_features: Tensor | None = None,
        item_features: Tensor | None = None,
        feature_mode: str = "id",
    ) -> None:
        super().__init__(num_users, num_items)
        if readout not in READOUTS:
            raise ValueError(f"readout={readout!r}: expected one of {READOUTS}")
        self.embedding_dim = embedding_dim
        self.num_layers = num_layers
        self.readout_mode = readout
        self.input = NodeInput(
            num_users, num_items, embedding_dim, user_features, item_features, feature_mode, init, init_std,
            shared_table=True,
        )

    # ------------------------------------------------------------------ to implement
    def prepare(self, graph: TrainGraph) -> Any:
        """Per-forward state handed to every ``layer`` call (operators, dropout masks)."""
        return None

    def layer(self, k: int, x: Tensor, graph: TrainGraph, state: Any) -> Tensor:
        """E^(k) [N, D_k] -> E^(k+1) [N, D_k+1]."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the interface
    def propagate(
        self, graph: TrainGraph, perturb_eps: float = 0.0, generator: torch.Generator | None = None, x0: Tensor | None = None
    ) -> list[Tensor]:
        """Per-layer node embeddings ``[E^(0), ..., E^(K)]``, each [N, D_k].

        ``perturb_eps > 0`` adds SimGCL's sign-aligned uniform noise of norm eps to every E^(k), k >= 1.
        ``x0``: E^(0) of ``graph``'s nodes when ``graph`` is a sampled computation graph
        (``input_rows``), else the whole input table."""
        x = self.input() if x0 is None else x0
        layers = [x]
        state = self.prepare(graph)
        for k in range(self.num_layers):
            x = self.layer(k, x, graph, state)
            if perturb_eps > 0:
                x = ops.perturb(x, perturb_eps, generator)
            layers.append(x)
        return layers

    def input_rows(self, user_ids: Tensor, item_ids: Tensor) -> Tensor:
        """E^(0) of some users [U_s] and items [I_s], users first: [U_s + I_s, D] (a sampled
        computation graph's nodes, ``data.neighbor_sampling``)."""
        return torch.cat([self.input.users(user_ids), self.input.items(item_ids)])

    def readout(self, layers: list[Tensor]) -> Tensor:
        """[E^(0), ..., E^(K)] -> E [N, D_out]."""
        mode = self.readout_mode
        if mode == "last":
            return layers[-1]
        if mode == "concat":
            return torch.cat(layers, dim=-1)
        parts = layers if mode == "mean" else layers[1:]
        out = parts[0]
        for x in parts[1:]:  # sequential sums: exactly LightGCN's original arithmetic
            out = out + x
        return out / len(parts)

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """[N, D] -> users [U, D], items [I, D]."""
        return torch.split(x, [self.num_users, self.num_items])

    def embed(self, graph: TrainGraph) -> Tensor:
        """The unperturbed readout E [N, D_out] when the per-layer list is not needed; subclasses may
        compute it in a fused way (LightGCN)."""
        return self.readout(self.propagate(graph))

    def embed_rows(self, graph: TrainGraph, rows: Tensor) -> Tensor | None:
        """Rows [R] (sorted unique node ids) of ``embed(graph)``, [R, D_out], when the model can compute
        just those for less than the whole readout; None otherwise (the caller indexes ``embed``)."""
        return None

    def forward(self, graph: TrainGraph, perturb_eps: float = 0.0, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        if perturb_eps == 0:
            return self.split(self.embed(graph))
        return self.split(self.readout(self.propagate(graph, perturb_eps, generator)))

    def ego_embeddings(self, users: Tensor, pos_items: Tensor, neg_items: Tensor) -> list[Tensor]:
        return self.input.batch_rows(users, pos_items, neg_items)

    # ------------------------------------------------------------------ graph views
    @staticmethod
    def drop_edges(graph: TrainGraph, p: float, generator: torch.Generator | None = None) -> TrainGraph:
        """SGL-ED view: each undirected edge kept with probability 1 - p, re-normalised."""
        return ops.drop_edges(graph, p, generator)

    @staticmethod
    def drop_nodes(graph: TrainGraph, p: float, generator: torch.Generator | None = None) -> TrainGraph:
        """SGL-ND view: the edges of a share p of the nodes removed, re-normalised."""
        return ops.drop_nodes(graph, p, generator)


def hidden_activation(model: GraphRecommender, k: int, x: Tensor, activation=F.relu) -> Tensor:
    """Hidden layers get the non-linearity, the output layer does not (it feeds dot products)."""
    return activation(x) if k < model.num_layers - 1 else x
