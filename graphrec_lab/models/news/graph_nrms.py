"""Graph-enhanced NRMS: the text view of NRMS plus a collaborative view propagated over the
user-article click graph by a GNN of the zoo, fused into one click score.

    text view:   u_t = NRMS user encoder(history),  n_t = NRMS news encoder(text)      [D]
    graph view:  (U_g, N_g) = GNN(E^(0), click graph)                                   [d]
                 E^(0): user ID embeddings; article ID embeddings + projected text vectors
                 (``gnn_feature_mode``; ``models.inputs.NodeInput``)
                 optional co-click hop: N_g <- (N_g + C N_g) / 2, C the row-normalised
                 article-article co-click matrix (top ``co_click_topk`` neighbours per article)
    fusion:      ``score``:  s = <u_t, n_t> + <u_g, n_g>
                 ``concat``: s = <W_u [u_t; u_g], W_n [n_t; n_g]>
                 (+ b * log(1 + deg_i) with ``popularity_bias``: the article's clicks in the graph)

Nodes outside the graph (a user without history or clicks, an article published after the graph
was built) get a zero graph vector, so their score falls back to the text view instead of to an
untrained ID embedding. During training the task propagates over the graph of the batch's fold
(``data.graph_protocol``: by default the clicks of earlier days), so a target click is never a graph
edge and today's articles are as new to the graph as they are at test time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from graphrec_lab.data.news import ImpressionBatch
from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.models.gnn import GAT, GCN, GIN, NGCF, GraphSAGE, LightGCN
from graphrec_lab.models.gnn.base import GraphRecommender
from graphrec_lab.models.news.nrms import NRMS

GNNS: dict[str, type[GraphRecommender]] = {
    "lightgcn": LightGCN, "gcn": GCN, "sage": GraphSAGE, "gin": GIN, "gat": GAT, "ngcf": NGCF,
}
FUSIONS = ("score", "concat")


def co_click_matrix(graph: TrainGraph, min_count: int = 2, topk: int = 20) -> Tensor:
    """Row-normalised article-article co-click matrix of a click graph: ``C[i, j]`` ∝ the number of
    users connected to both ``i`` and ``j`` (``>= min_count``; ``i != j``), keeping each row's ``topk``
    largest. Sparse CSR [I, I] float32 (rows without neighbours are empty)."""
    u_nodes, i_nodes = graph.edge_index[0], graph.edge_index[1]
    is_ui = u_nodes < graph.num_users  # the user -> item half of the symmetric edge list
    users = u_nodes[is_ui].cpu().numpy()
    items = (i_nodes[is_ui] - graph.num_users).cpu().numpy()
    a = sp.csr_matrix((np.ones(users.size, dtype=np.float32), (users, items)), shape=(graph.num_users, graph.num_items))
    a.data[:] = 1.0  # duplicates count once
    co = (a.T @ a).tocsr()
    co.setdiag(0)
    co.eliminate_zeros()
    co.data[co.data < min_count] = 0
    co.eliminate_zeros()
    rows, cols, vals = [], [], []
    for r in range(co.shape[0]):
        lo, hi = co.indptr[r], co.indptr[r + 1]
        if hi == lo:
            continue
        c, v = co.indices[lo:hi], co.data[lo:hi]
        if v.size > topk:
            keep = np.argpartition(-v, topk - 1)[:topk]
            c, v = c[keep], v[keep]
        rows.append(np.full(c.size, r))
        cols.append(c)
        vals.append(v / v.sum())
    n = graph.num_items
    if not rows:
        return torch.sparse_csr_tensor(torch.zeros(n + 1, dtype=torch.long), torch.zeros(0, dtype=torch.long), torch.zeros(0), (n, n))
    idx = torch.from_numpy(np.stack([np.concatenate(rows), np.concatenate(cols)])).long()
    return torch.sparse_coo_tensor(idx, torch.from_numpy(np.concatenate(vals)).float(), (n, n)).coalesce().to_sparse_csr()


class GraphNRMS(NRMS):
    """Args (besides NRMS's):
        gnn: the zoo GNN of the graph view (``lightgcn``, ``gcn``, ``sage``, ``gin``, ``gat``, ``ngcf``).
        gnn_dim, gnn_layers: its width and depth.
        gnn_feature_mode: layer-0 input of the GNN (``id``, ``features``, ``sum``, ``gated``: article
            text vectors projected and/or ID embeddings; users always have ID embeddings); None:
            ``feature_mode`` (which ``configs/text/*`` set), else ``sum``.
        gnn_kwargs: further constructor arguments of the GNN.
        fusion: ``score`` (sum of the two views' scores) or ``concat`` (one vector per side).
        co_click_topk: > 0 adds a hop over the article co-click matrix (``co_click_matrix``) to the
            articles' graph vectors; ``co_click_min_count`` is its threshold.
        popularity_bias: add a learned multiple of ``log(1 + clicks in the graph)`` to the score.
        gnn_lr_scale: the graph view's parameters (ID embeddings above all, which a click touches
            once per epoch) learn at ``gnn_lr_scale`` times the task's learning rate.
    """

    uses_graph = True

    def __init__(
        self,
        num_users: int,
        num_items: int,
        item_features: Tensor | None = None,
        embedding_dim: int = 128,
        heads: int = 4,
        attention_hidden: int = 128,
        news_layers: int = 1,
        dropout: float = 0.2,
        gnn: str = "lightgcn",
        gnn_dim: int = 64,
        gnn_layers: int = 2,
        gnn_feature_mode: str | None = None,
        gnn_kwargs: dict[str, Any] | None = None,
        fusion: str = "score",
        co_click_topk: int = 0,
        co_click_min_count: int = 2,
        popularity_bias: bool = True,
        gnn_lr_scale: float = 3.0,
        feature_mode: str | None = None,
    ) -> None:
        super().__init__(num_users, num_items, item_features, embedding_dim, heads, attention_hidden, news_layers, dropout, feature_mode)
        gnn_feature_mode = "id" if self.id_only else (gnn_feature_mode or feature_mode or "sum")
        if gnn not in GNNS:
            raise ValueError(f"model.gnn={gnn!r}: expected one of {sorted(GNNS)}")
        if fusion not in FUSIONS:
            raise ValueError(f"model.fusion={fusion!r}: expected one of {FUSIONS}")
        self.gnn_name = gnn
        self.gnn = GNNS[gnn](
            num_users, num_items, embedding_dim=gnn_dim, num_layers=gnn_layers,
            item_features=None if self.id_only else self.input.item_features, feature_mode=gnn_feature_mode,
            **dict(gnn_kwargs or {}),
        )
        if not self.id_only:
            self.input.followers.append(self.gnn.input)  # LoRA live features reach the GNN's input too
        self.fusion = fusion
        if fusion == "concat":
            self.user_fuse = nn.Linear(embedding_dim + gnn_dim, embedding_dim)
            self.news_fuse = nn.Linear(embedding_dim + gnn_dim, embedding_dim)
        self.co_click_topk = co_click_topk
        self.co_click_min_count = co_click_min_count
        self._co_click: dict[int, Tensor] = {}
        self.popularity_weight = nn.Parameter(torch.zeros(())) if popularity_bias else None
        if gnn_lr_scale <= 0:
            raise ValueError(f"model.gnn_lr_scale={gnn_lr_scale}: must be positive")
        self.gnn_lr_scale = gnn_lr_scale

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        graph = {id(p) for p in self.gnn.parameters()}
        if self.popularity_weight is not None:
            graph.add(id(self.popularity_weight))
        params = [p for p in self.parameters() if p.requires_grad]
        return [
            {"params": [p for p in params if id(p) not in graph], "lr": lr},
            {"params": [p for p in params if id(p) in graph], "lr": lr * self.gnn_lr_scale},
        ]

    # ------------------------------------------------------------------ graph view
    def _co_click_for(self, graph: TrainGraph) -> Tensor:
        key = id(graph)
        if key not in self._co_click:
            self._co_click[key] = co_click_matrix(graph, self.co_click_min_count, self.co_click_topk)
        mat = self._co_click[key]
        if mat.device != graph.edge_index.device:
            mat = self._co_click[key] = mat.to(graph.edge_index.device)
        return mat

    def propagate(self, graph: TrainGraph) -> tuple[Tensor, Tensor, Tensor]:
        """Graph vectors of all users [U, d] and articles [I, d] (zero for nodes without edges) and
        the articles' ``log(1 + degree)`` [I]."""
        users, items = self.gnn(graph)
        if self.co_click_topk > 0:
            items = 0.5 * (items + torch.sparse.mm(self._co_click_for(graph), items))
        users = users * (graph.user_degree > 0).unsqueeze(1).to(users.dtype)
        items = items * (graph.item_degree > 0).unsqueeze(1).to(items.dtype)
        return users, items, torch.log1p(graph.item_degree)

    def precompute(self, graph: TrainGraph | None) -> Any:
        if graph is None:
            raise ValueError("GraphNRMS needs the click graph: NewsTask.attach_graph(datamodule.train_graph)")
        return self.propagate(graph)

    # ------------------------------------------------------------------ scoring
    def score(self, batch: ImpressionBatch, graph: TrainGraph | None = None, state: Any = None) -> Tensor:
        if state is None:
            state = self.precompute(graph)
        users_g, items_g, log_degree = state
        both = self.encode_news(torch.cat([batch.history, batch.candidates], 1))
        hist, cand_t = both.split([batch.history.size(1), batch.candidates.size(1)], 1)
        user_t = self.user_encoder(hist, batch.history_mask)  # [B, D]
        user_g = users_g.index_select(0, batch.users)  # [B, d]
        cand_g = items_g[batch.candidates]  # [B, C, d]
        if self.fusion == "score":
            scores = torch.einsum("bd,bcd->bc", user_t, cand_t) + torch.einsum("bd,bcd->bc", user_g, cand_g)
        else:
            user = self.user_fuse(torch.cat([user_t, user_g], -1))
            cand = self.news_fuse(torch.cat([cand_t, cand_g], -1))
            scores = torch.einsum("bd,bcd->bc", user, cand)
        if self.popularity_weight is not None:
            scores = scores + self.popularity_weight * log_degree[batch.candidates]
        return scores
