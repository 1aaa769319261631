"""Graph contrastive objectives: SGL, SimGCL and XSimGCL, and the InfoNCE they share.

Views are generated through the model interface: ``drop_edges``/``drop_nodes`` (SGL),
``forward(graph, perturb_eps=...)`` (SimGCL), ``propagate`` layers of the BPR pass (XSimGCL).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from graphrec_lab.data.sampling import TrainBatch
from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.models.base import Recommender
from graphrec_lab.training.objectives.base import Objective, StepContext


def info_nce(view1: Tensor, view2: Tensor, temperature: float, groups: Tensor | None = None) -> Tensor:
    """InfoNCE with in-batch negatives: row b of ``view1`` [B, D] should match row b of ``view2`` [B, D]
    among all B rows (cosine similarity / temperature). ``groups`` [B]: rows sharing row b's label
    are not its negatives (left out of its softmax). Returns the mean over B, a scalar."""
    z1, z2 = F.normalize(view1, dim=-1), F.normalize(view2, dim=-1)
    logits = z1 @ z2.T / temperature  # [B, B]
    if groups is not None:
        same = groups.unsqueeze(1) == groups.unsqueeze(0)
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, float("-inf"))
    return F.cross_entropy(logits, torch.arange(z1.size(0), device=z1.device))


def batch_contrast(users1: Tensor, items1: Tensor, users2: Tensor, items2: Tensor, batch: TrainBatch, temperature: float) -> Tensor:
    """InfoNCE on the batch's distinct users plus on its distinct positive items (SGL/SimGCL/XSimGCL)."""
    u = torch.unique(batch.users)
    i = torch.unique(batch.pos_items)
    return info_nce(users1[u], users2[u], temperature) + info_nce(items1[i], items2[i], temperature)


class ContrastiveObjective(Objective):
    """Base of the contrastive objectives: ``contrast`` is their InfoNCE formulation, ``batch_contrast``
    by default; an instance may be given another function with its signature
    (benchmarks/model_zoo/ssl_diagnosis.py compares formulations)."""

    contrast = staticmethod(batch_contrast)


class SGLContrast(ContrastiveObjective):
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
        return self.weight * self.contrast(u1, i1, u2, i2, ctx.batch, self.temperature)


class SimGCLContrast(ContrastiveObjective):
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
        return self.weight * self.contrast(u1, i1, u2, i2, ctx.batch, self.temperature)


class XSimGCLContrast(ContrastiveObjective):
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
        return self.weight * self.contrast(ctx.user_emb, ctx.item_emb, u2, i2, ctx.batch, self.temperature)
