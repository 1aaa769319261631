"""SASRec (Kang & McAuley, 2018): causal self-attention over the item sequence.

Trained with cross-entropy over all items (the full-softmax setting of RecBole and UniSRec).
"""

from __future__ import annotations

import torch
from torch import nn

from graphrec_lab.models.sequential.base import SequentialBase


class SASRec(SequentialBase):
    """``max_length``: the DataModule's (``${data.max_length}``); ``num_users`` is accepted for
    ``run_experiment``'s interface; ``item_features`` ... ``adaptor_dropout``: the text options of
    ``SequentialBase``. Positions count back from the last item (the last item of every history sits
    at ``max_length - 1``), so a history's state does not depend on how much it was padded."""

    def __init__(
        self, num_items: int, dim: int = 64, max_length: int = 50, num_layers: int = 2,
        num_heads: int = 2, dropout: float = 0.2, num_users: int | None = None, item_features: torch.Tensor | None = None, feature_mode: str = "id", experts: int = 8, adaptor_dropout: float = 0.2,
    ) -> None:
        super().__init__(num_items, dim, num_users=num_users, item_features=item_features, feature_mode=feature_mode, experts=experts, adaptor_dropout=adaptor_dropout)
        self.max_length = max_length
        self.num_heads = num_heads
        self.position = nn.Embedding(max_length, dim)
        layer = nn.TransformerEncoderLayer(
            dim, num_heads, dim_feedforward=dim * 4, dropout=dropout, activation="gelu",
            batch_first=True, norm_first=False,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self._init_weights()

    def _init_weights(self) -> None:
        """RecBole's and the SASRec authors' scheme: every weight N(0, 0.02), biases 0. torch's default
        N(0, 1) position table would be ~50x the item embeddings (N(0, 0.02)), drowning out which items
        the history holds after the input LayerNorm; the model then learns little beyond popularity."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
                if isinstance(module, nn.Linear) and module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.MultiheadAttention):
                nn.init.normal_(module.in_proj_weight, std=0.02)
                nn.init.zeros_(module.in_proj_bias)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()  # the padding row
        if self.gate is not None:  # the text gate starts half open (base.SequentialBase)
            nn.init.zeros_(self.gate.weight)
            nn.init.zeros_(self.gate.bias)

    def encode(self, embedded: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``[B, L, D]`` input embeddings of ``[B, L]`` items → ``[B, D]`` state at the last position."""
        length = items.shape[1]
        if length > self.max_length:
            raise ValueError(f"history of {length} items > max_length={self.max_length}")
        pos = self.position(torch.arange(self.max_length - length, self.max_length, device=items.device)).unsqueeze(0)
        h = self.dropout(self.norm(embedded + pos))
        causal = torch.triu(torch.ones(length, length, dtype=torch.bool, device=items.device), 1)
        blocked = causal.unsqueeze(0) | items.eq(0).unsqueeze(1)  # [B, L, L]: query q must not see key k
        # Every position may see itself: a padding query would otherwise have no key at all, its
        # softmax would be NaN, and in the next layer 0 * NaN reaches the real positions too.
        blocked &= ~torch.eye(length, dtype=torch.bool, device=items.device).unsqueeze(0)
        h = self.encoder(h, mask=blocked.repeat_interleave(self.num_heads, dim=0))
        return h[:, -1]

    def forward(self, items: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode(self.embed(items, table), items)
