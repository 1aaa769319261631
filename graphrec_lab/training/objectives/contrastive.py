"""Auxiliary training objectives the task adds to BPR + L2 (``RecommendationTask(objectives=...)``).

An ``Objective`` is a small ``nn.Module`` that maps the step's ``StepContext`` (model, graph, batch and
the BPR pass's per-layer embeddings) to a weighted scalar. Each value is logged per epoch as
``train/<name>``. Views are generated through the model interface: ``drop_edges``/``drop_nodes``
(SGL), ``forward(graph, perturb_eps=...)`` (SimGCL), ``propagate`` layers of the BPR pass (XSimGCL).
Randomness comes from the global torch RNG (seeded by ``seed_everything``), so a seed fixes the views.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphrec_lab.data.sampling import TrainBatch
from graphrec_lab.data.train_graph import TrainGraph

if TYPE_CHECKING:  # models import this module (MHCN's objective): a runtime import would be circular
    from graphrec_lab.models.base import Recommender


@dataclass
class StepContext:
    """What one training step computed before the objectives run.

    ``layers``: the BPR pass's ``[E^(0), ..., E^(K)]`` ([N, D_k] each) for graph models when an objective
    ``needs_layers``, else None;
    ``user_emb`` [U, D], ``item_emb`` [I, D]: that pass's final embeddings."""

    model: Recommender
    graph: TrainGraph
    batch: TrainBatch
    layers: list[Tensor] | None
    user_emb: Tensor
    item_emb: Tensor


def info_nce(view1: Tensor, view2: Tensor, temperature: float) -> Tensor:
    """InfoNCE with in-batch negatives: row b of ``view1`` [B, D] should match row b of ``view2`` [B, D]
    among all B rows (cosine similarity / temperature). Returns the mean over B, a scalar."""
    z1, z2 = F.normalize(view1, dim=-1), F.normalize(view2, dim=-1)
    logits = z1 @ z2.T / temperature  # [B, B]
    return F.cross_entropy(logits, torch.arange(z1.size(0), device=z1.device))


def _contrast(users1: Tensor, items1: Tensor, users2: Tensor, items2: Tensor, batch: TrainBatch, temperature: float) -> Tensor:
    """InfoNCE on the batch's distinct users plus on its distinct positive items (SGL/SimGCL/XSimGCL)."""
    u = torch.unique(batch.users)
    i = torch.unique(batch.pos_items)
    return info_nce(users1[u], users2[u], temperature) + info_nce(items1[i], items2[i], temperature)


class Objective(nn.Module):
    """Base class: ``forward(ctx) -> weighted scalar loss``.

    ``main_perturb_eps > 0`` asks the task to run the BPR pass itself with that noise (XSimGCL);
    ``needs_layers`` asks for the BPR pass's per-layer list in ``StepContext.layers`` (else it may be None)."""

    main_perturb_eps: float = 0.0
    needs_layers: bool = False

    def bind(self, model: Recommender, graph: TrainGraph) -> None:
        """Called once the model and training graph are known, before the optimizer is built: create
        parameters whose shapes depend on them (e.g. ``TextAlignment``'s projection)."""

    def on_train_epoch_start(self, model: Recommender, graph: TrainGraph) -> None:
        """Per-epoch state (e.g. SGL's graph views)."""

    def forward(self, ctx: StepContext) -> Tensor:
        raise NotImplementedError


class SGLContrast(Objective):
    """SGL (Wu et al., SIGIR 2021): InfoNCE between two views of the graph, resampled each epoch.

    Args:
        weight: lambda_1 (paper: 0.1).
        temperature: tau (paper: 0.2).
        drop_ratio: rho, share of edges (``edge``) or nodes (``node``) dropped per view (paper: 0.1).
        augmentation: ``edge`` (SGL-ED) or ``node`` (SGL-ND).
    """

    def __init__(self, weight: float = 0.1, temperature: float = 0.2, drop_ratio: float = 0.1, augmentation: str = "edge") -> None:
        super().__init__()
        if augmentation not in ("edge", "node"):
            raise ValueError(f"augmentation={augmentation!r}: expected 'edge' or 'node'")
        self.weight, self.temperature, self.drop_ratio, self.augmentation = weight, temperature, drop_ratio, augmentation
        self._views: tuple[TrainGraph, TrainGraph] | None = None

    def on_train_epoch_start(self, model: Recommender, graph: TrainGraph) -> None:
        drop = model.drop_edges if self.augmentation == "edge" else model.drop_nodes  # type: ignore[attr-defined]
        self._views = (drop(graph, self.drop_ratio), drop(graph, self.drop_ratio))

    def forward(self, ctx: StepContext) -> Tensor:
        if self._views is None or self._views[0].num_nodes != ctx.graph.num_nodes:
            self.on_train_epoch_start(ctx.model, ctx.graph)
        assert self._views is not None
        u1, i1 = ctx.model(self._views[0])
        u2, i2 = ctx.model(self._views[1])
        return self.weight * _contrast(u1, i1, u2, i2, ctx.batch, self.temperature)


class SimGCLContrast(Objective):
    """SimGCL (Yu et al., SIGIR 2022): InfoNCE between two noise-perturbed encodings.

    Args:
        weight: lambda (paper: 0.5 on Yelp2018).
        temperature: tau (paper: 0.2).
        eps: noise norm per layer (paper: 0.1).
    """

    def __init__(self, weight: float = 0.5, temperature: float = 0.2, eps: float = 0.1) -> None:
        super().__init__()
        self.weight, self.temperature, self.eps = weight, temperature, eps

    def forward(self, ctx: StepContext) -> Tensor:
        u1, i1 = ctx.model(ctx.graph, perturb_eps=self.eps)
        u2, i2 = ctx.model(ctx.graph, perturb_eps=self.eps)
        return self.weight * _contrast(u1, i1, u2, i2, ctx.batch, self.temperature)


class XSimGCLContrast(Objective):
    """XSimGCL (Yu et al., TKDE 2023): InfoNCE between the (perturbed) BPR pass's final embeddings and
    its own layer-``layer`` embeddings; no extra forward.

    Args:
        weight: lambda (paper: 0.2 on Yelp2018).
        temperature: tau (paper: 0.15).
        eps: noise norm per layer, applied to the BPR pass (paper: 0.2).
        layer: l*, the contrasted layer (paper: 1).
    """

    def __init__(self, weight: float = 0.2, temperature: float = 0.15, eps: float = 0.2, layer: int = 1) -> None:
        super().__init__()
        if layer < 1:
            raise ValueError(f"layer={layer}: the contrasted layer must be >= 1")
        self.weight, self.temperature, self.layer = weight, temperature, layer
        self.main_perturb_eps = eps
        self.needs_layers = True

    def forward(self, ctx: StepContext) -> Tensor:
        if ctx.layers is None or len(ctx.layers) <= self.layer:
            raise ValueError(f"XSimGCLContrast needs a graph model with at least {self.layer} layers")
        u2, i2 = torch.split(ctx.layers[self.layer], [ctx.user_emb.size(0), ctx.item_emb.size(0)])
        return self.weight * _contrast(ctx.user_emb, ctx.item_emb, u2, i2, ctx.batch, self.temperature)


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
