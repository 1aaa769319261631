"""The interface of news recommenders and the pieces NRMS-style models share.

A ``NewsRecommender`` scores the candidates of a batch of impressions: ``score(batch, graph)`` ->
[B, C]. Graph models propagate over the user-article click graph once per training step (or once
per evaluation, through ``precompute``); text models read the articles' text-encoder vectors from a
``NewsTextInput`` (a frozen [I, H] buffer, or, with LoRA, the bank with the batch's rows freshly
encoded, handed in by the task for one step).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphrec_lab.data.news import ImpressionBatch
from graphrec_lab.data.train_graph import TrainGraph


class NewsRecommender(nn.Module):
    """Base class: ``num_users``, ``num_items`` (articles) and ``score``. ``uses_graph``: whether
    ``score`` reads the click graph (the task builds per-fold training graphs only then)."""

    uses_graph: bool = False

    def __init__(self, num_users: int, num_items: int) -> None:
        super().__init__()
        self.num_users = num_users
        self.num_items = num_items

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.parameters())

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimizer parameter groups (the task's ``lr`` unless a model asks otherwise)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    def precompute(self, graph: TrainGraph | None) -> Any:
        """State reused by every ``score`` call of one evaluation pass (graph embeddings); None here."""
        return None

    def score(self, batch: ImpressionBatch, graph: TrainGraph | None = None, state: Any = None) -> Tensor:
        """Scores of ``batch.candidates``: [B, C] (padding entries are arbitrary)."""
        raise NotImplementedError


class NewsTextInput(nn.Module):
    """The articles' text vectors ``[I, H]`` as a non-persistent buffer (data, rebuilt with the model,
    kept out of checkpoints), with the ``item_features`` / ``set_live_features`` interface of
    ``models.inputs.NodeInput`` that ``models.text.fusion.ItemTextFeatures`` drives in LoRA mode.
    ``followers``: other ``NodeInput``s sharing the buffer (a graph branch) get the live features too.
    """

    def __init__(self, item_features: Tensor) -> None:
        super().__init__()
        if item_features.dim() != 2:
            raise ValueError(f"item_features must be [num_items, H], got {tuple(item_features.shape)}")
        self.register_buffer("item_features", item_features.float(), persistent=False)
        self._live: Tensor | None = None
        self.followers: list[Any] = []

    @property
    def dim(self) -> int:
        return int(self.item_features.size(1))

    def features(self, side: str = "item") -> Tensor:
        """[I, H]: the live features during a LoRA step, else the buffer."""
        return self._live if self._live is not None else self.item_features

    def set_live_features(self, side: str, features: Tensor | None) -> None:
        if side != "item":
            raise ValueError(f"news models have item (article) features only, not {side!r}")
        if features is not None and features.shape != self.item_features.shape:
            raise ValueError(f"live item features must have shape {tuple(self.item_features.shape)}, got {tuple(features.shape)}")
        self._live = features
        for follower in self.followers:
            follower.set_live_features("item", features)

    @torch.no_grad()
    def sync_followers(self) -> None:
        """Copy the buffer into the followers' (after a LoRA refresh: a device move gives every module
        its own copy of a once-shared buffer)."""
        for follower in self.followers:
            theirs = getattr(follower, "item_features", None)
            if theirs is not None and theirs is not self.item_features:
                theirs.copy_(self.item_features)


class AdditiveAttention(nn.Module):
    """NRMS's additive attention pooling: ``a_l = q^T tanh(W x_l + b)``, softmax over valid ``l``,
    ``sum_l a_l x_l``. [B, L, D] (+ mask [B, L]) -> [B, D]; rows without a valid entry give 0."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, hidden)
        self.query = nn.Parameter(torch.empty(hidden).uniform_(-0.1, 0.1))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        logits = torch.tanh(self.proj(x)) @ self.query  # [B, L]
        logits = logits.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(logits, dim=1).nan_to_num(0.0)  # all-masked rows: 0
        return torch.einsum("bl,bld->bd", weights, x)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """[B, L, D] mean over the valid ``L`` entries -> [B, D] (0 for rows without one)."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


def l2_normalize(x: Tensor) -> Tensor:
    return F.normalize(x, dim=-1)
