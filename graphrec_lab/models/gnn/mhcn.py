"""MHCN (Yu et al., "Self-Supervised Multi-Channel Hypergraph Convolutional Network for Social
Recommendation", WWW 2021).

Three motif-induced user hypergraphs, each with its own channel of hypergraph convolution, an
attention that mixes the channels, a plain user-item channel, and a self-supervised objective that
maximises hierarchical mutual information between users and their hypergraph neighbourhoods.

Motif adjacency (the authors' QRec code, ``buildMotifInducedAdjacencyMatrix``; S [U, U] the training
ties, B = S ∘ S^T the reciprocal part, N = S - B the one-way part, Y [U, I] the training interactions):
A1..A7 count, for each user pair, the triangles of the seven social motifs they share
(e.g. A4 = (B B) ∘ B for mutual triangles), A8 = (Y Y^T) ∘ B, A9 = (Y Y^T) ∘ N + transpose,
A10 = Y Y^T - A8 - A9. Then

    H_s = rownorm(A1 + ... + A7)      social channel       [U, U]
    H_j = rownorm(A8 + A9)            joint channel        [U, U]
    H_p = rownorm(A10 ∘ [A10 > 1])    purchase channel     [U, U]
    R̂ = D_u^-1/2 Y D_i^-1/2                                 [U, I]

Propagation, with P [U, d], Q [I, d] the layer-0 embeddings and g_c(x) = x ∘ sigmoid(W_c x + b_c):

    P_c^(0) = g_c(P) (c = s, j, p),  P_r^(0) = g_r(P),  Q^(0) = Q
    M^(k)     = att(P_s^(k), P_j^(k), P_p^(k)) + P_r^(k) / 2          [U, d]
    P_c^(k+1) = H_c P_c^(k)                                          [U, d]
    Q^(k+1)   = R̂^T M^(k)        P_r^(k+1) = R̂ Q^(k)                 [I, d], [U, d]
    u = att(sum_k n(P_s^(k)), sum_k n(P_j^(k)), sum_k n(P_p^(k))) + sum_k n(P_r^(k)) / 2
    v = sum_k n(Q^(k))           (n = row L2 normalisation for k >= 1, identity for k = 0)

att(x_1..x_3) = sum_c softmax_c(a^T W x_c) x_c per user (W [d, d], a [d]). The self-supervised loss
(``training.objectives.mhcn.MHCNSelfSupervision``, an ``Objective`` weighted by ``weight``) uses, per channel, the
ss-gated final user embeddings z = g'_c(u) and their hypergraph neighbourhood e = H_c z: a local
term -log σ(z·e - z̃·e) - log σ(z̃·e - z·ẽ) (z̃ rows shuffled, ẽ rows and columns shuffled) and a
global term -log σ(e·ē - ẽ·ē) (ē = mean_u e), summed over users.

H_c are multiplied as written in the paper and QRec (row-normalised: a mean over the hypergraph
neighbours). RecBole-GNN's PyG port multiplies by H_c^T instead (messages from row to column
index); on an undirected social graph the two differ only in the normalisation. Dense [U, U]
operators are used when a matrix is denser than ``dense_threshold`` (LastFM's Y Y^T is ~50% dense,
where a BLAS matmul beats a sparse one), CSR otherwise. Needs a ``data.social.SocialTrainGraph``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.models.gnn import ops
from graphrec_lab.models.gnn.base import GraphRecommender
from graphrec_lab.models.gnn.diffnet import social_operator
from graphrec_lab.models.inputs import NodeInput

CHANNELS = ("social", "joint", "purchase")


def motif_matrices(social: sp.csr_matrix, inter: sp.csr_matrix) -> dict[str, sp.csr_matrix]:
    """The three row-normalised channel matrices (module docstring) from binary S [U, U], Y [U, I]."""
    s = social.astype(np.float64)
    y = inter.astype(np.float64)
    b = s.multiply(s.T).tocsr()
    n = (s - b).tocsr()
    c1 = n.dot(n).multiply(n.T)
    c2 = b.dot(n).multiply(n.T) + n.dot(b).multiply(n.T) + n.dot(n).multiply(b)
    c3 = b.dot(b).multiply(n) + b.dot(n).multiply(b) + n.dot(b).multiply(b)
    a4 = b.dot(b).multiply(b)
    c5 = n.dot(n).multiply(n) + n.dot(n.T).multiply(n) + n.T.dot(n).multiply(n)
    a6 = n.dot(b).multiply(n) + b.dot(n.T).multiply(n.T) + n.T.dot(n).multiply(b)
    a7 = n.T.dot(b).multiply(n.T) + b.dot(n).multiply(n) + n.dot(n.T).multiply(b)
    h_s = (c1 + c1.T) + (c2 + c2.T) + (c3 + c3.T) + a4 + (c5 + c5.T) + a6 + a7
    yy = y.dot(y.T).tocsr()
    a8 = yy.multiply(b)
    a9 = yy.multiply(n)
    a9 = a9 + a9.T
    h_j = a8 + a9
    a10 = (yy - a8 - a9).tocsr()
    h_p = a10.multiply(a10 > 1)
    out = {}
    for name, m in zip(CHANNELS, (h_s, h_j, h_p)):
        m = sp.csr_matrix(m)
        m.eliminate_zeros()
        rows = np.asarray(m.sum(axis=1)).ravel()
        out[name] = sp.diags(np.where(rows > 0, 1.0 / np.maximum(rows, 1e-12), 0.0)).dot(m).tocsr()
    return out


def _to_torch(m: sp.csr_matrix, dense_threshold: float, device: torch.device) -> tuple[Tensor, Tensor | None]:
    """(operator, transpose) for ``ops.spmm``-style products: dense [n, n] or CSR."""
    n = m.shape[0]
    if m.nnz > dense_threshold * n * n:
        dense = torch.from_numpy(m.toarray()).float().to(device)
        return dense, dense.t().contiguous()
    coo = m.tocoo()
    idx = torch.from_numpy(np.vstack([coo.row, coo.col])).long()
    val = torch.from_numpy(coo.data).float()
    op = torch.sparse_coo_tensor(idx, val, m.shape).coalesce().to_sparse_csr().to(device)
    op_t = torch.sparse_coo_tensor(idx.flip(0), val, m.shape[::-1]).coalesce().to_sparse_csr().to(device)
    return op, op_t


def matmul(op: tuple[Tensor, Tensor | None], x: Tensor) -> Tensor:
    """``op @ x`` for a dense or sparse operator from ``_to_torch``."""
    if not op[0].is_sparse_csr:
        return op[0] @ x
    return ops.spmm(op, x)


def mhcn_operators(graph: TrainGraph, dense_threshold: float = 0.05) -> dict[str, tuple[Tensor, Tensor | None]]:
    """Channel operators ``social``/``joint``/``purchase`` [U, U] and ``inter`` (R̂ [U, I], with its
    transpose), built from the graph's training ties and user->item edges; cached per graph object."""
    cache = ops._cache(graph)
    key = ("mhcn", dense_threshold)
    if key not in cache:
        social_operator(graph, "sym")  # clear error for graphs without ties
        u_count, i_count = graph.num_users, graph.num_items
        ties = graph.social_edge_index.cpu().numpy()  # type: ignore[attr-defined]
        src, dst = graph.edge_index.cpu()
        sel = (src < u_count) & (dst >= u_count)
        users, items = src[sel].numpy(), (dst[sel] - u_count).numpy()
        s = sp.csr_matrix((np.ones(ties.shape[1]), (ties[0], ties[1])), shape=(u_count, u_count))
        s.data[:] = 1.0
        y = sp.csr_matrix((np.ones(users.size), (users, items)), shape=(u_count, i_count))
        y.data[:] = 1.0
        device = graph.edge_index.device
        out = {name: _to_torch(m, dense_threshold, device) for name, m in motif_matrices(s, y).items()}
        du = np.asarray(y.sum(axis=1)).ravel()
        di = np.asarray(y.sum(axis=0)).ravel()
        r = sp.diags(np.where(du > 0, du, 1.0) ** -0.5).dot(y).dot(sp.diags(np.where(di > 0, di, 1.0) ** -0.5)).tocsr()
        coo = r.tocoo()
        idx = torch.from_numpy(np.vstack([coo.row, coo.col])).long()
        val = torch.from_numpy(coo.data).float()
        r_t = torch.sparse_coo_tensor(idx, val, (u_count, i_count)).coalesce().to_sparse_csr().to(device)
        r_tt = torch.sparse_coo_tensor(idx.flip(0), val, (i_count, u_count)).coalesce().to_sparse_csr().to(device)
        out["inter"] = (r_t, r_tt)
        out["inter_t"] = (r_tt, r_t)
        cache[key] = out
    return cache[key]


class SelfGating(nn.Module):
    """``x ∘ sigmoid(W x + b)``: [n, d] -> [n, d]."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(self.linear(x))


class ChannelAttention(nn.Module):
    """Per-user softmax over channels of ``a^T W x_c``; returns ``sum_c alpha_c x_c`` [U, d]."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim, dim))
        self.query = nn.Parameter(torch.empty(1, dim))
        nn.init.xavier_uniform_(self.weight)
        nn.init.xavier_uniform_(self.query)

    def forward(self, *xs: Tensor) -> Tensor:
        stacked = torch.stack(xs)  # [C, U, d]
        scores = ((stacked @ self.weight) * self.query).sum(-1)  # [C, U]
        return (torch.softmax(scores, dim=0).unsqueeze(-1) * stacked).sum(0)


class MHCN(GraphRecommender):
    """Args:
        num_users, num_items: node counts.
        embedding_dim: d (paper: 50; RecBole-GNN: 64).
        num_layers: K (RecBole-GNN's best on LastFM: 2).
        dense_threshold: channel matrices denser than this share of [U, U] are kept dense.
        init, init_std, shared_table: ID-embedding initialisation (RecBole-GNN: Xavier-uniform per side).
        user_features, item_features, feature_mode: optional input features (``models.inputs``).

    The self-supervised term is the objective ``training.objectives.MHCNSelfSupervision``
    (``configs/model/mhcn.yaml``).
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        embedding_dim: int = 64,
        num_layers: int = 2,
        dense_threshold: float = 0.05,
        init: str = "xavier_uniform",
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
        self.dense_threshold = dense_threshold
        self.gates = nn.ModuleDict({c: SelfGating(embedding_dim) for c in (*CHANNELS, "simple")})
        self.ss_gates = nn.ModuleDict({c: SelfGating(embedding_dim) for c in CHANNELS})
        self.attention = ChannelAttention(embedding_dim)

    def operators(self, graph: TrainGraph) -> dict[str, tuple[Tensor, Tensor | None]]:
        return mhcn_operators(graph, self.dense_threshold)

    def propagate(self, graph: TrainGraph, perturb_eps: float = 0.0, generator: torch.Generator | None = None) -> list[Tensor]:
        """The two terms of the readout, each [U + I, d]: ``[(att(channels); items), (simple / 2; 0)]``."""
        ops_ = self.operators(graph)
        p, q = self.split(self.input())
        chans = {c: self.gates[c](p) for c in CHANNELS}
        simple = self.gates["simple"](p)
        sums = {c: x for c, x in chans.items()}
        sum_simple, sum_items, items = simple, q, q
        for _ in range(self.num_layers):
            mixed = self.attention(*chans.values()) + simple / 2
            chans = {c: matmul(ops_[c], x) for c, x in chans.items()}
            for c in CHANNELS:
                sums[c] = sums[c] + F.normalize(chans[c], p=2.0, dim=-1)
            new_items = ops.spmm(ops_["inter_t"], mixed)  # R̂^T M    [I, d]
            simple = ops.spmm(ops_["inter"], items)  # R̂ Q        [U, d]
            sum_items = sum_items + F.normalize(new_items, p=2.0, dim=-1)
            sum_simple = sum_simple + F.normalize(simple, p=2.0, dim=-1)
            items = new_items
        users = self.attention(*sums.values())
        return [torch.cat([users, sum_items]), torch.cat([sum_simple / 2, torch.zeros_like(sum_items)])]

    def readout(self, layers: list[Tensor]) -> Tensor:
        return layers[0] + layers[1]


__all__ = ["CHANNELS", "MHCN", "matmul", "mhcn_operators", "motif_matrices"]
