"""Contrastive alignment of an item's graph embedding with its text features."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.models.base import Recommender
from graphrec_lab.training.objectives.base import Objective, StepContext
from graphrec_lab.training.objectives.contrastive import info_nce


class TextAlignment(Objective):
    """Contrastive alignment of the graph view and the text view of the same item (CLIP-style
    symmetric InfoNCE, in-batch negatives): the batch's distinct positive items' final graph embeddings
    [B, D] against a linear projection of their text features [B, H] -> [B, D].

    Works with every ``feature_mode`` of the model, ``"id"`` included (text then shapes the ID
    embeddings only through this loss). Needs the model built with item features (``text=...``).

    Args:
        weight: scale of the loss.
        temperature: InfoNCE temperature.
    """

    def __init__(self, weight: float = 0.1, temperature: float = 0.2) -> None:
        super().__init__()
        self.weight, self.temperature = weight, temperature
        self.projection: nn.Linear | None = None

    def bind(self, model: Recommender, graph: TrainGraph) -> None:
        features = getattr(getattr(model, "input", None), "item_features", None)
        if features is None:
            raise ValueError(
                "task.objectives: TextAlignment needs item text features; add a text encoder (text=frozen or text=lora)"
            )
        if self.projection is None:
            with torch.no_grad():
                out_dim = model(graph)[1].size(1)
            self.projection = nn.Linear(features.size(1), out_dim).to(features.device)

    def forward(self, ctx: StepContext) -> Tensor:
        assert self.projection is not None, "TextAlignment.bind was not called"
        features = ctx.model.input.features("item")  # type: ignore[union-attr]  (live rows under LoRA)
        items = torch.unique(ctx.batch.pos_items)
        graph_view = ctx.item_emb[items]
        text_view = self.projection(features[items])
        loss = 0.5 * (info_nce(graph_view, text_view, self.temperature) + info_nce(text_view, graph_view, self.temperature))
        return self.weight * loss
