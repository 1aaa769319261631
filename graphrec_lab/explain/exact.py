"""The exact decomposition of a LightGCN-family score into the user's training interactions and
path lengths.

With E^(k+1) = A E^(k) (A the propagation matrix, symmetric normalisation) and a linear readout,
the score is a sum over layers of user-side rows against an item-side vector t_k [D]:

    s(u, i) = sum_{k=0..K} E^(k)_u . t_k,
    t_k = w_k e_i  (readout ``mean``: w_k = 1/(K+1); ``mean_no_ego``: w_0 = 0, w_k = 1/K; ``last``: w_K = 1),
    t_k = E^(k)_i  (readout ``concat``).

Every walk of length k >= 1 from u starts along one of u's training edges (u, j), so

    E^(k)_u = sum_j A_uj E^(k-1)_j,   hence   s(u, i) = E^(0)_u . t_0 + sum_j sum_{k=1..K} c_{j,k},
    c_{j,k} = A_uj E^(k-1)_j . t_k,

where c_{j,k} is what the paths of length k through interaction (u, j) add to the score. The
contributions sum to the score exactly (up to float rounding); a self-loop of an isolated user
(``isolated_self_loops``) appears as the entry ``<self-loop>``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from graphrec_lab.inference.foldin import is_linear_propagation
from graphrec_lab.inference.run import InferenceError, LoadedRun

SELF_LOOP = "<self-loop>"


@dataclass
class InteractionContribution:
    """What one training interaction (u, j) contributes, per path length k = 1..K (``by_length[k-1]``)."""

    item: str  # raw item id (``SELF_LOOP`` for a self-loop)
    text: str | None
    by_length: list[float]

    @property
    def total(self) -> float:
        return float(sum(self.by_length))


@dataclass
class ScoreDecomposition:
    user: str
    item: str
    score: float  # the model's s(u, i), from its embeddings
    ego: float  # E^(0)_u . t_0: the user's own layer-0 embedding
    interactions: list[InteractionContribution]  # ranked by total, largest first
    seconds: float = 0.0

    @property
    def total(self) -> float:
        """ego + every interaction's contribution: equals ``score``."""
        return self.ego + sum(c.total for c in self.interactions)

    def by_length(self) -> list[float]:
        """Contribution of all paths of length k, k = 0..K."""
        k_max = len(self.interactions[0].by_length) if self.interactions else 0
        return [self.ego] + [sum(c.by_length[k] for c in self.interactions) for k in range(k_max)]

    def format(self, top: int = 10) -> str:
        lengths = ", ".join(f"k={k}: {v:+.5f}" for k, v in enumerate(self.by_length()))
        lines = [
            f"exact: s({self.user}, {self.item}) = {self.score:.6f}; sum of contributions = {self.total:.6f}",
            f"by path length: {lengths}",
            f"{'rank':>4}  {'history item':<14}  {'contribution':>12}  by length k=1..K  text",
        ]
        for r, c in enumerate(self.interactions[:top], start=1):
            per = " ".join(f"{v:+.4f}" for v in c.by_length)
            text = (c.text or "")[:50]
            lines.append(f"{r:>4}  {c.item:<14}  {c.total:+12.6f}  {per}  {text}")
        return "\n".join(lines)


def _item_side(model, layers: list[Tensor], item_row: int) -> list[Tensor]:
    """t_0..t_K [D] each (module docstring)."""
    k = len(layers) - 1
    mode = model.readout_mode
    if mode == "concat":
        return [x[item_row] for x in layers]
    e_i = model.readout(layers)[item_row]
    if mode == "mean":
        w = [1.0 / (k + 1)] * (k + 1)
    elif mode == "mean_no_ego":
        w = [0.0] + [1.0 / k] * k
    elif mode == "last":
        w = [0.0] * k + [1.0]
    else:
        raise InferenceError(f"readout {mode!r} has no exact decomposition")
    return [wk * e_i for wk in w]


def adjacency_row(graph, node: int) -> tuple[Tensor, Tensor]:
    """Columns [n] and values [n] of row ``node`` of the propagation matrix ``graph.norm_adj``."""
    adj = graph.norm_adj
    crow = adj.crow_indices()
    lo, hi = int(crow[node]), int(crow[node + 1])
    return adj.col_indices()[lo:hi].long(), adj.values()[lo:hi]


def decompose(run: LoadedRun, user: str, item: str, layers: list[Tensor] | None = None) -> ScoreDecomposition:
    """The exact decomposition of s(user, item) (raw ids); LightGCN family only.

    ``layers``: the model's ``propagate`` output, when the caller already has it (many pairs)."""
    import time

    model = run.model
    if not is_linear_propagation(model):
        raise InferenceError(
            f"{run.model_name}: the exact decomposition needs linear propagation (the LightGCN family); "
            "use --method gnnexplainer or captum_ig"
        )
    t0 = time.perf_counter()
    u = int(run.user_index([user])[0])
    i = int(run.item_index([item])[0])
    n_u = model.num_users
    if layers is None:
        with torch.no_grad():
            layers = model.propagate(run.train_graph)
    layers64 = [x.detach().double() for x in layers]
    t = _item_side(model, layers64, n_u + i)
    cols, vals = adjacency_row(run.train_graph, u)
    vals = vals.double()
    # c[j, k-1] = A_uj E^(k-1)_j . t_k
    per = torch.stack([vals * (layers64[k - 1].index_select(0, cols) @ t[k]) for k in range(1, len(layers64))], dim=1)
    ego = float(layers64[0][u] @ t[0])
    contributions = []
    for col, row in zip(cols.tolist(), per.tolist()):
        if col >= n_u:
            j = col - n_u
            text = run.item_text[j] if run.item_text is not None else None
            contributions.append(InteractionContribution(run.item_ids[j], text, row))
        else:
            contributions.append(InteractionContribution(SELF_LOOP if col == u else f"<user {run.user_ids[col]}>", None, row))
    contributions.sort(key=lambda c: -c.total)
    user_emb, item_emb = run.embeddings()
    score = float(user_emb[u].double() @ item_emb[i].double())
    return ScoreDecomposition(user, item, score, ego, contributions, time.perf_counter() - t0)


def interaction_scores(run: LoadedRun, user: int, layers: list[Tensor]) -> tuple[Tensor, Tensor]:
    """All items' scores decomposed for one dense user id: (items [n] of the user, c [n, I]), where
    c[j, i] is interaction j's total contribution to s(user, i) (every path length)."""
    model = run.model
    n_u = model.num_users
    cols, vals = adjacency_row(run.train_graph, user)
    keep = cols >= n_u
    cols, vals = cols[keep], vals[keep].double()
    layers64 = [x.detach().double() for x in layers]
    k_max = len(layers) - 1
    items_out = model.readout([x for x in layers64])[n_u:]  # [I, D]
    mode = model.readout_mode
    c = torch.zeros(cols.numel(), model.num_items, dtype=torch.float64)
    for k in range(1, k_max + 1):
        if mode == "concat":
            side = layers64[k][n_u:]
        else:
            w = {"mean": 1.0 / (k_max + 1), "mean_no_ego": 1.0 / k_max, "last": float(k == k_max)}[mode]
            side = w * items_out
        c += vals.unsqueeze(1) * (layers64[k - 1].index_select(0, cols) @ side.T)
    return cols - n_u, c
