"""A UniSRec-style transferable model (Hou et al., 2022): frozen item text features pass through a
mixture-of-experts whitening adaptor into SASRec, with or without learned item-ID embeddings added."""

from __future__ import annotations

import torch
from torch import nn

from graphrec_lab.models.sequential.sasrec import SASRec


class MoEAdaptor(nn.Module):
    """Parametric whitening experts ``(x - b_k) W_k`` mixed by a softmax gate: ``[..., T] → [..., D]``."""

    def __init__(self, text_dim: int, dim: int, experts: int = 8, dropout: float = 0.2) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(experts, text_dim))
        self.proj = nn.Parameter(torch.randn(experts, text_dim, dim) * 0.02)
        self.gate = nn.Linear(text_dim, experts, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(x)
        experts = torch.einsum("...kt,ktd->...kd", x.unsqueeze(-2) - self.bias, self.proj)  # [..., K, D]
        weights = torch.softmax(self.gate(x), dim=-1).unsqueeze(-1)  # [..., K, 1]
        return (weights * experts).sum(dim=-2)


class TextSASRec(SASRec):
    """SASRec over adapted text features ``[num_items, T]`` (frozen buffer); ``use_ids`` adds ID embeddings."""

    def __init__(self, text_features: torch.Tensor, dim: int = 64, max_length: int = 50,
                 use_ids: bool = False, experts: int = 8, **kwargs) -> None:
        super().__init__(text_features.shape[0], dim=dim, max_length=max_length, **kwargs)
        padded = torch.cat([torch.zeros(1, text_features.shape[1]), text_features.float()])
        self.register_buffer("text_features", padded)
        self.adaptor = MoEAdaptor(text_features.shape[1], dim, experts)
        self.use_ids = use_ids

    def item_table(self) -> torch.Tensor:
        """``[num_items + 1, D]`` item representations (row 0 = padding)."""
        table = self.adaptor(self.text_features)
        return table + self.item_embedding.weight if self.use_ids else table

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        return self.encode(self.item_table()[items], items)

    def full_scores(self, items: torch.Tensor) -> torch.Tensor:
        return self(items) @ self.item_table()[1:].T
