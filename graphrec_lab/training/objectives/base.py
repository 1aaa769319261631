"""The interface of an auxiliary training objective and what one training step hands it.

An ``Objective`` is a small ``nn.Module`` that maps the step's ``StepContext`` (model, graph, batch and
the BPR pass's per-layer embeddings) to a weighted scalar; ``RecommendationTask(objectives=...)`` adds
each to BPR + L2 and logs it per epoch as ``train/<name>``. Randomness comes from the global torch RNG
(seeded by ``seed_everything``), so a seed fixes every view an objective draws.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from graphrec_lab.data.sampling import TrainBatch
from graphrec_lab.data.train_graph import TrainGraph
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
