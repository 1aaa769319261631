"""DiffNet (Wu et al., "A Neural Influence Diffusion Model for Social Recommendation", SIGIR 2019).

User preferences diffuse over the social graph; the result is fused with the mean of the items the
user consumed. With S the normalised social operator [U, U] (``social_norm``), R̄ = D_R^-1 R [U, I] the
row-normalised training interactions (mean over a user's items), P [U, d] and Q [I, d] the layer-0
user and item embeddings (free IDs and/or projected features, ``NodeInput``):

    H^(0)   = P                                                   [U, d]
    H^(k+1) = S H^(k)                             (linear)        [U, d]
            = sigmoid(W_k [S H^(k) ; H^(k)] + b_k)  (mlp)         [U, d]
    u       = sum_{k=0..K} H^(k) + R̄ Q            (readout sum)   [U, d]
            = H^(K) + R̄ Q                         (readout last)
    v       = Q                                                   [I, d]
    score(u, i) = u · v_i

The defaults are RecBole-GNN's DiffNet (the implementation behind its LastFM leaderboard number):
linear diffusion, sum over layers 0..K, ``social_norm="source"`` (edge weight 1 / out-degree of the
sender, ``get_norm_net_adj_mat(row_norm=True)``), separate Xavier-uniform user and item tables.
The paper's model is ``diffusion="mlp"``, ``readout="last"``, ``social_norm="mean"`` (mean pooling of
the neighbours, then a sigmoid layer on [pooled ; own]); its fusion of free embeddings with review
features is ``feature_mode="sum"`` with ``user_features``/``item_features``.

Every product is a CSR spmm (S and R̄ are built once per graph): no per-edge message tensors.
``propagate`` returns the terms of the sum readout, each [U + I, d]: ``[E^(0), (H^(1); 0), ...,
(H^(K); 0), (R̄ Q; 0)]`` (readout sum) or ``[(H^(K); Q), (R̄ Q; 0)]`` (readout last); ``readout`` adds
them up. Needs a ``data.social.SocialTrainGraph`` (a ``SocialDataModule``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from graphrec_lab.data.social import SOCIAL_NORMS
from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.models.gnn import ops
from graphrec_lab.models.gnn.base import GraphRecommender
from graphrec_lab.models.inputs import NodeInput

DIFFUSIONS = ("linear", "mlp")
DIFFNET_READOUTS = ("sum", "last")


def social_operator(graph: TrainGraph, kind: str) -> tuple[Tensor, Tensor | None]:
    """``graph.social_operator(kind)`` with a clear error for a graph without ties."""
    fn = getattr(graph, "social_operator", None)
    if fn is None:
        raise TypeError(
            f"{type(graph).__name__} has no user-user ties: social models need the training graph of a "
            "SocialDataModule (data=hetrec_lastfm, lastfm, yelp_social, ...)"
        )
    return fn(kind)


def item_mean_operator(graph: TrainGraph) -> tuple[Tensor, Tensor]:
    """R̄ [U, I] (sparse CSR, row u = 1/|R_u| on u's training items) and its transpose [I, U].

    Read from the user->item edges of ``graph.edge_index`` (user-user edges of a joined graph are not
    items). Cached per graph object."""
    cache = ops._cache(graph)
    if "item_mean" not in cache:
        src, dst = graph.edge_index
        u_count = graph.num_users
        sel = (src < u_count) & (dst >= u_count)
        users, items = src[sel], dst[sel] - u_count
        deg = torch.bincount(users, minlength=u_count).float()
        w = 1.0 / deg.clamp(min=1)[users]
        shape = (u_count, graph.num_items)
        r = torch.sparse_coo_tensor(torch.stack([users, items]), w, shape).coalesce().to_sparse_csr()
        r_t = torch.sparse_coo_tensor(torch.stack([items, users]), w, shape[::-1]).coalesce().to_sparse_csr()
        cache["item_mean"] = (r, r_t)
    return cache["item_mean"]


class DiffNet(GraphRecommender):
    """Args:
        num_users, num_items: node counts.
        embedding_dim: d (RecBole-GNN and the paper: 64).
        num_layers: K diffusion layers (RecBole-GNN's best on LastFM: 1; the paper: 2).
        diffusion: ``linear`` (RecBole-GNN) or ``mlp`` (the paper's sigmoid layer over [S H ; H]).
        readout: ``sum`` over layers 0..K (RecBole-GNN) or ``last`` (the paper).
        social_norm: ``source`` (RecBole-GNN), ``mean`` (the paper's mean pooling) or ``sym``
            (see ``SocialTrainGraph.social_operator``).
        init, init_std: ID-embedding initialisation (RecBole-GNN: ``xavier_uniform``).
        shared_table: one [U+I, d] ID table (LightGCN's layout) instead of separate user and item
            tables (RecBole-GNN's DiffNet; Xavier's bound then depends on each table's rows).
        user_features, item_features, feature_mode: optional input features (``models.inputs``).
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        embedding_dim: int = 64,
        num_layers: int = 1,
        diffusion: str = "linear",
        readout: str = "sum",
        social_norm: str = "source",
        init: str = "xavier_uniform",
        init_std: float = 0.1,
        shared_table: bool = False,
        user_features: Tensor | None = None,
        item_features: Tensor | None = None,
        feature_mode: str = "id",
    ) -> None:
        if diffusion not in DIFFUSIONS:
            raise ValueError(f"diffusion={diffusion!r}: expected one of {DIFFUSIONS}")
        if readout not in DIFFNET_READOUTS:
            raise ValueError(f"readout={readout!r}: expected one of {DIFFNET_READOUTS}")
        if social_norm not in SOCIAL_NORMS:
            raise ValueError(f"social_norm={social_norm!r}: expected one of {SOCIAL_NORMS}")
        # The template's readout is replaced below; "mean" only passes its check.
        super().__init__(num_users, num_items, embedding_dim, num_layers, "mean", init, init_std, user_features, item_features, feature_mode)
        self.input = NodeInput(
            num_users, num_items, embedding_dim, user_features, item_features, feature_mode, init, init_std,
            shared_table=shared_table,
        )  # fmt: skip
        self.diffusion = diffusion
        self.readout_mode = readout
        self.social_norm = social_norm
        self.fuse = nn.ModuleList()
        if diffusion == "mlp":
            self.fuse = nn.ModuleList(nn.Linear(2 * embedding_dim, embedding_dim) for _ in range(num_layers))
            for lin in self.fuse:
                nn.init.xavier_uniform_(lin.weight)
                nn.init.zeros_(lin.bias)

    def propagate(self, graph: TrainGraph, perturb_eps: float = 0.0, generator: torch.Generator | None = None) -> list[Tensor]:
        """The terms of the readout sum, each [U + I, d] (module docstring)."""
        x0 = self.input()
        users, items = self.split(x0)
        s_op = social_operator(graph, self.social_norm)
        zeros_i = items.new_zeros(items.shape)
        terms = [x0] if self.readout_mode == "sum" else []
        h = users
        for k in range(self.num_layers):
            pooled = ops.spmm(s_op, h)  # [U, d]
            h = pooled if self.diffusion == "linear" else torch.sigmoid(self.fuse[k](torch.cat([pooled, h], dim=-1)))
            if perturb_eps > 0:
                h = ops.perturb(h, perturb_eps, generator)
            if self.readout_mode == "sum":
                terms.append(torch.cat([h, zeros_i]))
        if self.readout_mode == "last":
            terms.append(torch.cat([h, items]))
        from_items = ops.spmm(item_mean_operator(graph), items)  # [U, d]
        terms.append(torch.cat([from_items, zeros_i]))
        return terms

    def readout(self, layers: list[Tensor]) -> Tensor:
        """Sum of the terms from ``propagate``: [U + I, d]."""
        out = layers[0]
        for x in layers[1:]:
            out = out + x
        return out
