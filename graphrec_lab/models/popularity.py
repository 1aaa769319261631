"""Most-popular baseline: every user gets the items with the most training interactions."""

from __future__ import annotations

import torch
from torch import Tensor

from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.models.base import Recommender


class Popularity(Recommender):
    """Scores item ``i`` by its training degree for every user (1-dimensional embeddings).

    Ties (equal degrees) are broken by the evaluator's rule: lower item id first.
    """

    def forward(self, graph: TrainGraph) -> tuple[Tensor, Tensor]:
        users = torch.ones(self.num_users, 1, device=graph.item_degree.device)
        return users, graph.item_degree.view(-1, 1)
