"""SocialLGN (Liao et al., "SocialLGN: Light graph convolution network for social recommendation",
Information Sciences 589, 2022).

Light graph convolution (no transforms, no non-linearity) on the user-item graph and on the social
graph; at every layer the two views of a user are fused, items only take the user-item view:

    Â = D^-1/2 A D^-1/2      [N, N], N = U + I    (user-item graph, ``graph.norm_adj``)
    Ŝ = D^-1/2 S D^-1/2      [U, U]               (social graph, ``graph.social_adj``)
    [U_R^(k+1); V^(k+1)] = Â [U^(k); V^(k)]        [N, d]
    U_S^(k+1) = Ŝ U^(k)                            [U, d]
    U^(k+1) = norm( W_c [tanh(W_s U_S^(k+1)) ; tanh(W_r U_R^(k+1))] + b_c )    [U, d]
    E = mean_{k=0..K} [U^(k); V^(k)]               [N, d]

W_s, W_r [d, d] (no bias) and W_c [d, 2d] form one fusion module shared by all layers, as in the
authors' code (``Graph_Comb``). ``norm`` (``fusion_norm``): ``row`` L2-normalises each user's vector;
``matrix`` divides the whole [U, d] matrix by its Frobenius norm, which is what the authors' code
does (``output / output.norm(2)``); ``none`` skips it. Layer-0 embeddings: separate user and item
tables, normal init with std 0.1 (the authors' code, from LightGCN-PyTorch), or features.
Two CSR spmms per layer (Â over all nodes, Ŝ over users). Needs a ``data.social.SocialTrainGraph``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.models.gnn import ops
from graphrec_lab.models.gnn.base import GraphRecommender
from graphrec_lab.models.gnn.diffnet import social_operator
from graphrec_lab.models.inputs import NodeInput
from graphrec_lab.ops.sparse import symmetric_spmm

FUSION_NORMS = ("row", "matrix", "none")


class SocialFusion(nn.Module):
    """``norm(W_c [tanh(W_s s) ; tanh(W_r r)] + b_c)``: two user views [U, d] -> [U, d]."""

    def __init__(self, dim: int, norm: str = "row") -> None:
        super().__init__()
        if norm not in FUSION_NORMS:
            raise ValueError(f"fusion_norm={norm!r}: expected one of {FUSION_NORMS}")
        self.social = nn.Linear(dim, dim, bias=False)
        self.interaction = nn.Linear(dim, dim, bias=False)
        self.combine = nn.Linear(2 * dim, dim)
        self.norm = norm

    def forward(self, social: Tensor, interaction: Tensor) -> Tensor:
        out = self.combine(torch.cat([torch.tanh(self.social(social)), torch.tanh(self.interaction(interaction))], dim=-1))
        if self.norm == "row":
            return F.normalize(out, p=2.0, dim=-1)
        if self.norm == "matrix":
            return out / out.norm(2)
        return out


class SocialLGN(GraphRecommender):
    """Args:
        num_users, num_items: node counts.
        embedding_dim: d (paper: 64).
        num_layers: K (paper: 3 on LastFM).
        fusion_norm: ``row``, ``matrix`` (the authors' code) or ``none`` (module docstring).
        init, init_std: ID-embedding initialisation (authors' code: normal, std 0.1).
        shared_table: one [U+I, d] ID table instead of separate user and item tables (authors' code).
        user_features, item_features, feature_mode: optional input features (``models.inputs``).
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        embedding_dim: int = 64,
        num_layers: int = 3,
        fusion_norm: str = "row",
        init: str = "normal",
        init_std: float = 0.1,
        shared_table: bool = False,
        user_features: Tensor | None = None,
        item_features: Tensor | None = None,
        feature_mode: str = "id",
    ) -> None:
        super().__init__(num_users, num_items, embedding_dim, num_layers, "mean", init, init_std, user_features, item_features, feature_mode)
        self.input = NodeInput(
            num_users, num_items, embedding_dim, user_features, item_features, feature_mode, init, init_std,
            shared_table=shared_table,
        )  # fmt: skip
        self.fusion = SocialFusion(embedding_dim, fusion_norm)

    def prepare(self, graph: TrainGraph) -> Any:
        return social_operator(graph, "sym")

    def layer(self, k: int, x: Tensor, graph: TrainGraph, state: Any) -> Tensor:
        users = x[: self.num_users]
        from_friends = ops.spmm(state, users)  # Ŝ U^(k)       [U, d]
        propagated = symmetric_spmm(graph.norm_adj, x)  # Â E^(k)  [N, d]
        from_items, items = self.split(propagated)
        return torch.cat([self.fusion(from_friends, from_items), items])
