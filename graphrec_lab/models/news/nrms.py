"""NRMS-style news recommender (Wu et al., "Neural News Recommendation with Multi-Head
Self-Attention", EMNLP 2019), with the framework's text encoder as the news encoder.

    news encoder:  e_i = W_2 act(W_1 f_i)            f_i [H]: the article's text-encoder vector
                                                      (frozen MiniLM by default, cached; or LoRA)
    user encoder:  h_1..h_L = MHSA(e_{c_1}, ..., e_{c_L})     the L most recent history clicks
                   u = AdditiveAttention(h_1..h_L)
    click score:   s(u, i) = <u, e_i>

NRMS's own news encoder is word-level multi-head self-attention over GloVe vectors plus additive
attention; here a pretrained transformer already contextualises the words and pools them, so only a
projection is learned on top (``news_layers`` linear layers). Trained with the MIND recipe (a click
against K skipped articles of its impression, softmax cross-entropy; ``training.news_task``).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor, nn

from graphrec_lab.data.news import ImpressionBatch
from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.models.inputs import FEATURE_MODES
from graphrec_lab.models.news.base import AdditiveAttention, NewsRecommender, NewsTextInput

log = logging.getLogger(__name__)


class NewsEncoder(nn.Module):
    """Text vectors [N, H] -> news vectors [N, D]: dropout, then ``layers`` linear maps with a GELU
    between them."""

    def __init__(self, in_dim: int, dim: int, layers: int = 1, dropout: float = 0.2) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"model.news_layers={layers}: must be >= 1")
        mods: list[nn.Module] = [nn.Dropout(dropout)]
        width = in_dim
        for k in range(layers):
            mods.append(nn.Linear(width, dim))
            if k < layers - 1:
                mods.append(nn.GELU())
            width = dim
        self.net = nn.Sequential(*mods)

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features)


class UserEncoder(nn.Module):
    """History news vectors [B, L, D] + mask [B, L] -> user vectors [B, D]: multi-head self-attention
    over the clicked news, then additive attention. A user without history gets a learned vector."""

    def __init__(self, dim: int, heads: int, attention_hidden: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"model.embedding_dim={dim} must be divisible by model.heads={heads}")
        self.mhsa = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.pool = AdditiveAttention(dim, attention_hidden)
        self.empty = nn.Parameter(torch.zeros(dim))

    def forward(self, history: Tensor, mask: Tensor) -> Tensor:
        has = mask.any(1)
        # Rows without history attend to one dummy key (their output is replaced below): MHA's
        # softmax over an all-masked row would be NaN.
        safe_mask = mask.clone()
        safe_mask[~has, 0] = True
        h, _ = self.mhsa(history, history, history, key_padding_mask=~safe_mask, need_weights=False)
        user = self.pool(self.dropout(h), safe_mask)
        return torch.where(has.unsqueeze(1), user, self.empty.expand_as(user))


class NRMS(NewsRecommender):
    """Args:
        num_users, num_items: node counts (run_experiment passes them; NRMS has no ID embeddings).
        item_features: [I, H] text-encoder vectors of the articles (``text=frozen`` or ``text=lora``
            builds them from the data module's ``item_texts()``). Without them (no ``text=``) the
            articles are free ID embeddings instead, an ID-only ablation, with a warning: NRMS is
            meant to read text.
        embedding_dim: D (NRMS: 400 = 20 heads x 20).
        heads: self-attention heads of the user encoder.
        attention_hidden: width of the additive attention (NRMS: 200).
        news_layers: linear layers of the news projection.
        dropout: on the text vectors and the self-attention output (NRMS: 0.2).
        feature_mode: accepted because ``configs/text/*`` set ``model.feature_mode`` for every
            model; NRMS always reads the article text, so it has no effect here (GraphNRMS uses it
            for its graph view when ``gnn_feature_mode`` is unset).
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        item_features: Tensor | None = None,
        embedding_dim: int = 128,
        heads: int = 4,
        attention_hidden: int = 128,
        news_layers: int = 1,
        dropout: float = 0.2,
        feature_mode: str | None = None,
    ) -> None:
        super().__init__(num_users, num_items)
        if feature_mode is not None and feature_mode not in FEATURE_MODES:
            raise ValueError(f"model.feature_mode={feature_mode!r}: expected one of {FEATURE_MODES}")
        self.feature_mode = feature_mode
        self.id_only = item_features is None
        if item_features is None:
            log.warning(
                "%s got no article text vectors (run with text=frozen or text=lora): articles are free ID "
                "embeddings, an ID-only ablation", type(self).__name__,
            )
            item_features = torch.empty(num_items, embedding_dim).normal_(std=0.1)
        if item_features.size(0) != num_items:
            raise ValueError(f"item_features has {item_features.size(0)} rows for {num_items} articles")
        self.embedding_dim = embedding_dim
        self.input = NewsTextInput(item_features)
        if self.id_only:  # trainable: the "text vectors" are the ID embeddings themselves
            self.input.item_features = nn.Parameter(self.input.item_features)
        self.news_encoder = NewsEncoder(self.input.dim, embedding_dim, news_layers, dropout)
        self.user_encoder = UserEncoder(embedding_dim, heads, attention_hidden, dropout)

    # ------------------------------------------------------------------ encoders
    def encode_news(self, ids: Tensor) -> Tensor:
        """News vectors of article ids (any shape S) -> [*S, D], encoding each distinct id once."""
        flat = ids.reshape(-1)
        uniq, inverse = torch.unique(flat, return_inverse=True)
        vecs = self.news_encoder(self.input.features().index_select(0, uniq))
        return vecs[inverse].reshape(*ids.shape, -1)

    def encode_users(self, batch: ImpressionBatch, history_vectors: Tensor | None = None) -> Tensor:
        """User vectors of the batch's histories: [B, D]."""
        if history_vectors is None:
            history_vectors = self.encode_news(batch.history)
        return self.user_encoder(history_vectors, batch.history_mask)

    def score(self, batch: ImpressionBatch, graph: TrainGraph | None = None, state: Any = None) -> Tensor:
        both = self.encode_news(torch.cat([batch.history, batch.candidates], 1))  # one pass over both
        hist, cand = both.split([batch.history.size(1), batch.candidates.size(1)], 1)
        user = self.user_encoder(hist, batch.history_mask)  # [B, D]
        return torch.einsum("bd,bcd->bc", user, cand)
