"""GRU4Rec (Hidasi et al., 2016) in the RecBole form: embedding → GRU → last hidden state."""

from __future__ import annotations

import torch
from torch import nn

from graphrec_lab.models.sequential.base import SequentialBase


class GRU4Rec(SequentialBase):
    def __init__(self, num_items: int, dim: int = 64, num_layers: int = 1, dropout: float = 0.3) -> None:
        super().__init__(num_items, dim)
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(dim, dim, num_layers=num_layers, batch_first=True)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` right-aligned 1-based items → ``[B, D]`` hidden state after the last item."""
        out, _ = self.gru(self.dropout(self.item_embedding(items)))
        return out[:, -1]
