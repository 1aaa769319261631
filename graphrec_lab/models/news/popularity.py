"""Popularity baseline for impressions: a candidate's score is its number of clicks in the click
graph (its degree: history entries and training clicks; at test time also the validation clicks).
No training; ties (e.g. articles published after the graph was built, all at 0) count as ties in
every metric."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from graphrec_lab.data.news import ImpressionBatch
from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.models.news.base import NewsRecommender


class NewsPopularity(NewsRecommender):
    """Args: ``num_users``, ``num_items``; ``item_features`` and ``feature_mode`` are accepted and
    ignored, so the model can share an experiment config that sets ``text=``."""

    uses_graph = True

    def __init__(self, num_users: int, num_items: int, item_features: Tensor | None = None, feature_mode: str | None = None) -> None:
        super().__init__(num_users, num_items)

    def score(self, batch: ImpressionBatch, graph: TrainGraph | None = None, state: Any = None) -> Tensor:
        if graph is None:
            raise ValueError("NewsPopularity needs the click graph (the task's attach_graph)")
        return graph.item_degree[batch.candidates].float()
