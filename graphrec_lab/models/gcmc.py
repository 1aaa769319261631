"""GC-MC (van den Berg, Kipf and Welling, 2017, "Graph Convolutional Matrix Completion"): a graph
auto-encoder for explicit ratings.

Encoder: one graph convolution per rating level over the bipartite user-item graph (node ids are one-hot,
so each level's weight is an embedding table), messages summed over levels (``accumulation="sum"``) or
concatenated (``"stack"``), then a dense layer. Side features (optional, per side) pass through their
own dense layer (``side_hidden_dim`` units, ReLU, bias) and are concatenated with the convolution
output before the dense layer, as in the paper's side-information model. Decoder: a bilinear form per rating level whose matrices
share ``num_basis`` basis matrices, giving a softmax distribution over the levels; the prediction is the
expected rating. Node dropout removes whole nodes' messages during training.

Nodes are numbered users ``0..U-1`` then items ``U..U+I-1``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# The paper writes sigma for the dense layer; the authors' released code uses the identity there.
DENSE_ACTIVATIONS = {"relu": torch.relu, "identity": lambda x: x}


def rating_adjacencies(
    user: torch.Tensor, item: torch.Tensor, rating: torch.Tensor, num_users: int, num_items: int, levels: Sequence[float]
) -> list[torch.Tensor]:
    """One sparse [U+I, U+I] adjacency per rating level, edges in both directions, normalised by
    ``1 / sqrt(deg_i deg_j)`` with degrees over all levels (the paper's symmetric normalisation).

    user, item: [N] zero-based ids; rating: [N] values, each one of ``levels``.
    """
    n = num_users + num_items
    known = torch.zeros_like(rating, dtype=torch.bool)
    for level in levels:
        known |= rating == level
    if not bool(known.all()):
        bad = float(rating[~known][0])
        raise ValueError(f"rating {bad} is not one of the rating levels {list(levels)}")
    deg = torch.bincount(torch.cat([user, item + num_users]), minlength=n).double().clamp(min=1)
    adjs = []
    for level in levels:
        mask = rating == level
        rows = torch.cat([user[mask], item[mask] + num_users])
        cols = torch.cat([item[mask] + num_users, user[mask]])
        values = (deg[rows] * deg[cols]).rsqrt().float()
        adjs.append(torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n, n), check_invariants=False).coalesce())
    return adjs


class GCMC(nn.Module):
    """Rating-level graph convolution encoder, dense layer and basis-shared bilinear decoder."""

    trainable = True  # run_experiment fits it (task=rating)

    def __init__(
        self,
        num_users: int,
        num_items: int,
        levels: Sequence[float] = (1.0, 2.0, 3.0, 4.0, 5.0),
        hidden_dim: int = 500,
        out_dim: int = 75,
        num_basis: int = 2,
        dropout: float = 0.7,
        accumulation: str = "stack",
        dense_activation: str = "relu",
        side_hidden_dim: int = 10,
        user_features: torch.Tensor | None = None,
        item_features: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if accumulation not in ("sum", "stack"):
            raise ValueError(f"model.accumulation must be 'sum' or 'stack', got {accumulation!r}")
        if dense_activation not in DENSE_ACTIVATIONS:
            raise ValueError(f"model.dense_activation must be one of {list(DENSE_ACTIVATIONS)}, got {dense_activation!r}")
        num_levels = len(levels)
        if accumulation == "stack" and hidden_dim % num_levels:
            raise ValueError(f"model.hidden_dim ({hidden_dim}) must be divisible by the {num_levels} rating levels with stack accumulation")
        self.num_users, self.num_items, self.accumulation, self.dropout = num_users, num_items, accumulation, dropout
        self.dense_activation = DENSE_ACTIVATIONS[dense_activation]
        self.side = nn.ModuleDict()
        for name, values, rows in (("user", user_features, num_users), ("item", item_features, num_items)):
            if values is None:
                continue
            if values.dim() != 2 or values.shape[0] != rows:
                raise ValueError(f"{name}_features must be [{rows}, F], got {list(values.shape)}")
            self.register_buffer(f"{name}_side", values.float())
            self.side[name] = nn.Linear(values.shape[1], side_hidden_dim)
        self.register_buffer("levels", torch.tensor(list(levels), dtype=torch.float32))
        per_level = hidden_dim // num_levels if accumulation == "stack" else hidden_dim
        n = num_users + num_items
        self.level_weights = nn.Parameter(torch.empty(num_levels, n, per_level))
        self.user_dense = nn.Linear(hidden_dim + (side_hidden_dim if "user" in self.side else 0), out_dim, bias=False)
        self.item_dense = nn.Linear(hidden_dim + (side_hidden_dim if "item" in self.side else 0), out_dim, bias=False)
        self.basis = nn.Parameter(torch.empty(num_basis, out_dim, out_dim))
        self.coefficients = nn.Parameter(torch.empty(num_levels, num_basis))
        for p in (self.level_weights, self.basis, self.coefficients):
            nn.init.xavier_uniform_(p.view(p.shape[0], -1) if p.dim() == 3 else p)

    def encode(self, adjs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Users [U, out_dim] and items [I, out_dim] from the per-level adjacencies [U+I, U+I]."""
        n = self.num_users + self.num_items
        keep = torch.ones(n, 1, device=self.level_weights.device)
        if self.training and self.dropout > 0:
            # Node dropout: a dropped node sends no message at any level; survivors are rescaled.
            keep = torch.bernoulli(torch.full((n, 1), 1 - self.dropout, device=keep.device)) / (1 - self.dropout)
        messages = [torch.sparse.mm(adj, self.level_weights[r] * keep) for r, adj in enumerate(adjs)]
        h = torch.cat(messages, dim=1) if self.accumulation == "stack" else torch.stack(messages).sum(0)
        h = torch.relu(h)
        if not self.side:  # one dropout call over all nodes keeps featureless runs' random stream as it was
            h = nn.functional.dropout(h, p=self.dropout, training=self.training)
        users, items = h[: self.num_users], h[self.num_users :]
        if self.side:  # dropout on the dense layer's input: convolution output and side hidden units alike
            if "user" in self.side:
                users = torch.cat([users, torch.relu(self.side["user"](self.user_side))], dim=1)
            if "item" in self.side:
                items = torch.cat([items, torch.relu(self.side["item"](self.item_side))], dim=1)
            users = nn.functional.dropout(users, p=self.dropout, training=self.training)
            items = nn.functional.dropout(items, p=self.dropout, training=self.training)
        return self.dense_activation(self.user_dense(users)), self.dense_activation(self.item_dense(items))

    def logits(self, adjs: Sequence[torch.Tensor], user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """[B, num_levels] decoder scores ``u^T Q_r v`` of the pairs ``user`` [B], ``item`` [B]."""
        users, items = self.encode(adjs)
        q = torch.einsum("rb,bde->rde", self.coefficients, self.basis)  # [R, D, D] basis-shared
        return torch.einsum("bd,rde,be->br", users[user], q, items[item])

    def rating_distribution(self, adjs: Sequence[torch.Tensor], user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """[B, num_levels] probabilities over the rating levels (rows sum to 1)."""
        return torch.softmax(self.logits(adjs, user, item), dim=1)

    def forward(self, adjs: Sequence[torch.Tensor], user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """[B] expected ratings ``sum_r p(r) * r``."""
        return self.rating_distribution(adjs, user, item) @ self.levels
