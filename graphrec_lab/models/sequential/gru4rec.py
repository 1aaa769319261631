"""GRU4Rec (Hidasi et al., 2016) in the RecBole form: embedding -> GRU -> last hidden state."""

from __future__ import annotations

import torch
from torch import nn

from graphrec_lab.models.sequential.base import SequentialBase


class GRU4Rec(SequentialBase):
    """``num_users`` is accepted for ``run_experiment``'s interface (sequence models have no user table);
    ``item_features`` ... ``adaptor_dropout``: the text options of ``SequentialBase``. Padding never
    enters the GRU (packed sequences), so a history's state does not depend on how much it was padded."""

    def __init__(self, num_items: int, dim: int = 64, num_layers: int = 1, dropout: float = 0.3,
                 num_users: int | None = None, item_features: torch.Tensor | None = None, feature_mode: str = "id", experts: int = 8, adaptor_dropout: float = 0.2) -> None:
        super().__init__(num_items, dim, num_users=num_users, item_features=item_features, feature_mode=feature_mode, experts=experts, adaptor_dropout=adaptor_dropout)
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(dim, dim, num_layers=num_layers, batch_first=True)

    def forward(self, items: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, L]`` right-aligned 1-based items -> ``[B, D]`` hidden state after the last item."""
        lengths = items.gt(0).sum(1).clamp(min=1)
        # Right-aligned rows -> left-aligned (roll each row by its padding), then pack by length.
        shift = (torch.arange(items.shape[1], device=items.device) + (items.shape[1] - lengths).unsqueeze(1)) % items.shape[1]
        left = items.gather(1, shift)
        packed = nn.utils.rnn.pack_padded_sequence(self.dropout(self.embed(left, table)), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h_n = self.gru(packed)
        return h_n[-1]
