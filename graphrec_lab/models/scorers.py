"""How a user and an item representation become a score: the dot product, or an NCF-style MLP.

``task.scorer`` picks one (docs/training.md). Both score pairs with ``score(users, items)`` (any
matching leading shape, ``[..., D]`` -> ``[...]``) and a user batch against every item with
``all_items(users [B, D], items [I, D]) -> [B, I]``.

``mlp`` follows NeuMF (He et al., 2017, "Neural Collaborative Filtering"): an MLP over the
concatenated pair ``[u; i]`` and, with ``gmf``, the element-wise product ``u * i``, fused by one
linear layer. Scoring every item costs an MLP pass per (user, item) pair, so ``all_items`` works
through the users in chunks of at most ``chunk_pairs`` pairs; an approximate-nearest-neighbour
index cannot serve it (it needs a dot product).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

SCORERS = ("dot", "mlp")
MLP_OPTIONS = {"hidden", "dropout", "gmf", "chunk_pairs"}  # read by kind=mlp only


class DotScorer(nn.Module):
    """``u . i``: the scorer every zoo model's paper uses."""

    kind = "dot"

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        return (users * items).sum(-1)

    def all_items(self, users: Tensor, items: Tensor) -> Tensor:
        return users @ items.T


class MLPScorer(nn.Module):
    """NeuMF-style: ``w . [gmf(u * i); mlp([u; i])]`` (gmf branch optional).

    Args:
        dim: the representation width D.
        hidden: widths of the MLP tower over ``[u; i]`` (ReLU between layers).
        dropout: dropout before each tower layer.
        gmf: add the element-wise product branch (NeuMF's GMF part).
        chunk_pairs: at most this many (user, item) pairs per MLP pass in ``all_items``.
    """

    kind = "mlp"

    def __init__(self, dim: int, hidden: Sequence[int] = (64, 32), dropout: float = 0.0, gmf: bool = True, chunk_pairs: int = 1 << 20) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("task.scorer.hidden: the MLP needs at least one layer")
        layers: list[nn.Module] = []
        width = 2 * dim
        for h in hidden:
            layers += [nn.Dropout(dropout), nn.Linear(width, int(h)), nn.ReLU()]
            width = int(h)
        self.tower = nn.Sequential(*layers)
        self.gmf = gmf
        self.out = nn.Linear(width + (dim if gmf else 0), 1)
        self.chunk_pairs = chunk_pairs

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        users, items = torch.broadcast_tensors(users, items)
        parts = [self.tower(torch.cat([users, items], dim=-1))]
        if self.gmf:
            parts.insert(0, users * items)
        return self.out(torch.cat(parts, dim=-1)).squeeze(-1)

    def all_items(self, users: Tensor, items: Tensor) -> Tensor:
        rows = max(1, self.chunk_pairs // max(1, items.shape[0]))
        return torch.cat([self.score(chunk.unsqueeze(1), items.unsqueeze(0)) for chunk in torch.split(users, rows)])


def scorer_kind(spec: dict[str, Any] | None) -> str:
    """The checked ``task.scorer.kind`` of a spec (``dot`` when unset); unknown kinds or keys name the
    key. The MLP options may be present with ``kind=dot`` (the config declares them), unused there."""
    spec = dict(spec or {})
    kind = spec.pop("kind", "dot")
    if kind not in SCORERS:
        raise ValueError(f"task.scorer.kind={kind!r}: expected one of {list(SCORERS)}")
    unknown = sorted(set(spec) - MLP_OPTIONS)
    if unknown:
        raise ValueError(f"task.scorer: unknown keys {unknown} (accepted: kind, {', '.join(sorted(MLP_OPTIONS))})")
    return kind


def build_scorer(spec: dict[str, Any] | None, dim: int) -> nn.Module:
    """The scorer ``task.scorer`` names, for representations of width ``dim``: ``{kind: dot}``
    (default) or ``{kind: mlp, hidden, dropout, gmf, chunk_pairs}``."""
    if scorer_kind(spec) == "dot":
        return DotScorer()
    options = {k: v for k, v in dict(spec or {}).items() if k != "kind"}
    return MLPScorer(dim, **options)
