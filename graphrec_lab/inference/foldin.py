"""Fold a new user in without retraining: an embedding for a user who is not in the training graph,
from the raw ids of the items they interacted with.

* LightGCN family (LightGCN, SGL, SimGCL, XSimGCL; any readout): the new user is attached to the
  frozen graph by its history H. With the model's normalisation on the graph that includes the user
  (user degree |H|, item degrees d_i + 1), its layer-k row is

      e_u^(k+1) = sum_{i in H} e_i^(k) / sqrt(|H| (d_i + 1))          [D]

  over the items' trained layer outputs e_i^(k), and the model's readout combines the layers. A new
  user has no trained ID row, so e_u^(0) = 0. The other nodes' outputs are not recomputed: one extra
  user barely changes them. Text-fused models of the family (``feature_mode`` ``features``/``sum``/
  ``gated`` on items) fold in the same way: the item rows carry the history's projected text.
* Matrix factorisation: the regularised least-squares fit of implicit feedback against the item
  factors Q [I, D], e_u = (Q^T Q + lambda I)^-1 Q^T r with r_i = 1 for i in H, else 0 (ALS's fold-in).
* Popularity: every user gets the same scores; any history works.
* Other models (NGCF, GCN, GAT, GraphSAGE, GIN, gated GNN, social models) transform the user's own
  trained row through trained layers (or mix in a social channel): no fold-in without retraining, and
  ``FoldInError`` says so, naming the model.
"""

from __future__ import annotations

import torch
from torch import Tensor

from graphrec_lab.inference.run import InferenceError, LoadedRun
from graphrec_lab.models.gnn.lightgcn import LightGCN
from graphrec_lab.models.mf import MatrixFactorization
from graphrec_lab.models.popularity import Popularity


class FoldInError(InferenceError):
    """The run's model cannot embed a new user without retraining."""


def is_linear_propagation(model: object) -> bool:
    """True for the LightGCN family: the layer is LightGCN's parameter-free normalised propagation."""
    return isinstance(model, LightGCN) and type(model).layer is LightGCN.layer


def fold_in(run: LoadedRun, history: list[str], l2: float = 1.0) -> Tensor:
    """The embedding [D] of a new user with training history ``history`` (raw item ids).

    ``l2``: lambda of the least-squares fit (matrix factorisation only)."""
    if not history:
        raise InferenceError("fold-in needs at least one history item (--history)")
    items = torch.unique(run.item_index(history))
    model = run.model
    if is_linear_propagation(model):
        return _fold_in_propagation(run, items)
    if isinstance(model, MatrixFactorization):
        return _fold_in_least_squares(run.embeddings()[1], items, l2)
    if isinstance(model, Popularity):
        return run.embeddings()[0][0]
    raise FoldInError(
        f"{run.model_name} cannot fold in a new user without retraining: its user embedding is not a function of "
        "the user's item history alone (trained layer weights act on the user's own row, or a social channel). Fold-in works for the LightGCN family (LightGCN, SGL, SimGCL, XSimGCL), "
        "matrix factorisation and popularity"
    )


def propagated_user(layers: list[Tensor], items: Tensor, weights: Tensor, x0: Tensor) -> list[Tensor]:
    """Per-layer rows of one user [E^(0)_u, ..., E^(K)_u], each [D]: ``E^(k+1)_u = sum_j w_j E^(k)_j``
    over its items ``items`` [n] (node ids) with edge weights ``weights`` [n]; ``x0`` [D] is E^(0)_u."""
    out = [x0]
    for k in range(len(layers) - 1):
        out.append(weights @ layers[k].index_select(0, items))
    return out


def _fold_in_propagation(run: LoadedRun, items: Tensor) -> Tensor:
    model = run.model
    graph = run.train_graph
    with torch.no_grad():
        layers = model.propagate(graph)
    n_u = model.num_users
    deg = graph.item_degree.index_select(0, items) + 1.0  # the item gains the new user as a neighbour
    weights = (deg * items.numel()).rsqrt()
    rows = propagated_user(layers, items + n_u, weights, torch.zeros_like(layers[0][0]))
    with torch.no_grad():
        return model.readout([r.unsqueeze(0) for r in rows])[0]


def _fold_in_least_squares(item_emb: Tensor, items: Tensor, l2: float) -> Tensor:
    q = item_emb.double()
    r = torch.zeros(q.size(0), dtype=torch.float64)
    r[items] = 1.0
    gram = q.T @ q + l2 * torch.eye(q.size(1), dtype=torch.float64)
    return torch.linalg.solve(gram, q.T @ r).float()
