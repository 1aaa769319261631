"""Shared item table and full-ranking scores of the sequential models."""

from __future__ import annotations

import torch
from torch import nn


class SequentialBase(nn.Module):
    """Item embeddings with row 0 as padding; scores are state · item embedding over all items."""

    def __init__(self, num_items: int, dim: int) -> None:
        super().__init__()
        self.num_items = num_items
        self.item_embedding = nn.Embedding(num_items + 1, dim, padding_idx=0)
        nn.init.normal_(self.item_embedding.weight, std=0.02)

    def forward(self, items: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def full_scores(self, items: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` 1-based padded items → ``[B, num_items]`` scores of every 0-based item."""
        return self(items) @ self.item_embedding.weight[1:].T
