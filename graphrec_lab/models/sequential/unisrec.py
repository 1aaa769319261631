"""A UniSRec-style transferable model (Hou et al., 2022) without its pre-training: frozen item text
features pass through the mixture-of-experts whitening adaptor into SASRec, with or without learned
item-ID embeddings added (``SASRec(item_features=..., feature_mode="features" | "sum")``)."""

from __future__ import annotations

import torch

from graphrec_lab.models.sequential.base import MoEAdaptor
from graphrec_lab.models.sequential.sasrec import SASRec

__all__ = ["MoEAdaptor", "TextSASRec"]


class TextSASRec(SASRec):
    """SASRec over adapted text features ``[num_items, T]``; ``use_ids`` adds ID embeddings (``sum``)."""

    def __init__(self, text_features: torch.Tensor, dim: int = 64, max_length: int = 50,
                 use_ids: bool = False, experts: int = 8, **kwargs) -> None:  # kwargs: SASRec's
        super().__init__(text_features.shape[0], dim=dim, max_length=max_length, item_features=text_features,
                         feature_mode="sum" if use_ids else "features", experts=experts, **kwargs)
        self.use_ids = use_ids
