"""Shared item table and full-ranking scores of the sequential models.

The item table has row 0 for padding (sequences hold 1-based items). With item text features
``[num_items, T]`` (frozen encoder vectors, ``text=frozen``), a UniSRec-style mixture-of-experts
whitening adaptor maps them to the model width, and ``feature_mode`` says how they enter:
``id`` (learned ID embeddings only), ``features`` (adapted text only: UniSRec's inductive setting,
items need no trained ID row), ``sum`` (ID + adapted text: UniSRec's transductive "t+ID") or
``gated`` (ID + ``sigmoid(W_g [id; text]) * text``, the zoo's gate: per item and dimension, how much
text to let in; it starts half open).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

FEATURE_MODES = ("id", "features", "sum", "gated")


class MoEAdaptor(nn.Module):
    """Parametric whitening experts ``(x - b_k) W_k`` mixed by a softmax gate: ``[..., T] -> [..., D]``."""

    def __init__(self, text_dim: int, dim: int, experts: int = 8, dropout: float = 0.2) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(experts, text_dim))
        self.proj = nn.Parameter(torch.randn(experts, text_dim, dim) * 0.02)
        self.gate = nn.Linear(text_dim, experts, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.dropout(x)
        k, t, d = self.proj.shape
        # (x - b_k) W_k = x W_k - b_k W_k: one [.., T] x [T, K*D] product instead of materialising
        # x - b_k for every expert ([..., K, T]).
        experts = (x @ self.proj.permute(1, 0, 2).reshape(t, k * d)).unflatten(-1, (k, d))
        experts = experts - torch.einsum("kt,ktd->kd", self.bias, self.proj)  # [..., K, D]
        weights = torch.softmax(self.gate(x), dim=-1).unsqueeze(-1)  # [..., K, 1]
        return (weights * experts).sum(dim=-2)


class SequentialBase(nn.Module):
    """Item representations (ID, adapted text, or both) and scores state · item over all items.

    Args:
        num_items: catalogue size I (0-based dataset ids; the table has I + 1 rows).
        dim: model width D.
        item_features: optional ``[I, T]`` text features (kept as a frozen buffer).
        feature_mode: ``id`` | ``features`` | ``sum`` | ``gated`` (module docstring).
        experts, adaptor_dropout: the text adaptor's experts and input dropout.
        num_users: recorded only (``run_experiment`` passes it; sequence models have no user table).
    """

    def __init__(
        self, num_items: int, dim: int, item_features: Tensor | None = None, feature_mode: str = "id",
        experts: int = 8, adaptor_dropout: float = 0.2, num_users: int | None = None,
    ) -> None:
        super().__init__()
        self.trainable = True  # run_experiment fits trainable models (the zoo's popularity baseline is not)
        if feature_mode not in FEATURE_MODES:
            raise ValueError(f"model.feature_mode={feature_mode!r}: expected one of {FEATURE_MODES}")
        if feature_mode != "id" and item_features is None:
            raise ValueError(f"model.feature_mode={feature_mode!r} needs item text features (text=frozen)")
        if feature_mode == "id" and item_features is not None:
            raise ValueError("item text features given with model.feature_mode='id': use features, sum or gated")
        if item_features is not None and item_features.shape[0] != num_items:
            raise ValueError(f"item_features has {item_features.shape[0]} rows for {num_items} items")
        self.num_items = num_items
        self.num_users = num_users or 0
        self.feature_mode = feature_mode
        self.item_embedding = nn.Embedding(num_items + 1, dim, padding_idx=0)
        nn.init.normal_(self.item_embedding.weight, std=0.02)
        self.adaptor: MoEAdaptor | None = None
        if item_features is not None:
            padded = torch.cat([torch.zeros(1, item_features.shape[1]), item_features.float()])
            self.register_buffer("text_features", padded)
            self.adaptor = MoEAdaptor(item_features.shape[1], dim, experts, adaptor_dropout)
        self.gate: nn.Linear | None = None
        if feature_mode == "gated":
            self.gate = nn.Linear(2 * dim, dim)
            nn.init.zeros_(self.gate.weight)
            nn.init.zeros_(self.gate.bias)
        self.live_text: Tensor | None = None  # [I, T] set for one LoRA training step (SequentialTask)

    def text_bank(self) -> Tensor:
        """The ``[I, T]`` text features without the padding row: a view of the buffer, so writing to it
        (a LoRA refresh) updates the model."""
        if self.adaptor is None:
            raise ValueError("this model has no item text features (model.feature_mode='id')")
        return self.text_features[1:]

    def item_table(self) -> Tensor:
        """``[I + 1, D]`` item representations (row 0: padding)."""
        if self.adaptor is None:
            return self.item_embedding.weight
        features = self.text_features
        if self.live_text is not None:  # LoRA step: some rows re-encoded with gradients
            features = torch.cat([features[:1], self.live_text.to(features.dtype)])
        text = self.adaptor(features)
        text = text * (torch.arange(text.shape[0], device=text.device) > 0).unsqueeze(1)  # padding row stays 0
        if self.feature_mode == "features":
            return text
        ids = self.item_embedding.weight
        if self.gate is not None:
            text = torch.sigmoid(self.gate(torch.cat([ids, text], dim=-1))) * text
        return ids + text

    def embed(self, items: Tensor, table: Tensor | None = None) -> Tensor:
        """``[B, L]`` 1-based items -> ``[B, L, D]`` (padding rows are zero); ``table``: an
        ``item_table()`` already computed for this call."""
        if self.adaptor is None:
            return self.item_embedding(items)
        return (self.item_table() if table is None else table)[items]

    def forward(self, items: Tensor, table: Tensor | None = None) -> Tensor:  # pragma: no cover - abstract
        """``[B, L]`` 1-based items -> ``[B, D]`` states; ``table`` as for ``embed``."""
        raise NotImplementedError

    def full_scores(self, items: Tensor) -> Tensor:
        """``[B, L]`` 1-based padded items -> ``[B, I]`` scores of every 0-based item. The item table
        is computed once for the inputs and the scores (with text it runs the adaptor over all items)."""
        table = self.item_table()
        state = self(items, table)
        return state @ table[1:].T
