"""Configuration checks of ``RecommendationTask`` that span several of its options: what the
training knobs and neighbour-sampled training need of the task's model, text encoder and objectives.
Each failure is a ``ConfigError`` naming the key."""

from __future__ import annotations

from typing import Any

from graphrec_lab.config import ConfigError
from graphrec_lab.models.gnn.base import GraphRecommender
from graphrec_lab.training.lazy_adam import LazyRowAdam

# ``task`` below is a RecommendationTask (not imported: task.py imports this module).


def check_knobs(task: Any, default_step: bool) -> None:
    """What the knobs (checked by ``TrainingKnobs``) need of the task and its text encoder.
    ``default_step``: the task trains with ``RecommendationTask``'s own step."""
    if not default_step and not task.knobs.default_step:
        raise ConfigError(
            f"task.loss / task.negative_sampler / task.num_negatives: {type(task).__name__} trains with its own step "
            "(BPR, one uniform negative); keep loss=bpr, negative_sampler=uniform, num_negatives=1"
        )
    if task.knobs.negative_sampler == "hard" and task.text is not None:
        raise ConfigError("task.negative_sampler=hard: LoRA text encodes the step's items before the model scores candidates; use another sampler")
    if task.scorer_kind != "dot" and not default_step:
        raise ConfigError(f"task.scorer.kind={task.scorer_kind}: {type(task).__name__} trains with its own dot-product step; use kind=dot")


def check_sampling(task: Any) -> LazyRowAdam | None:
    """Validate ``task.sampling``; the row-sparse Adam of the ID table when ``row_updates=lazy_adam``."""
    assert task.sampling is not None
    fanouts = list(task.sampling.get("fanouts") or [])
    unknown = sorted(set(task.sampling) - {"fanouts", "row_updates"})
    if unknown:
        raise ConfigError(f"task.sampling: unknown keys {unknown}; accepted: fanouts, row_updates")
    row_updates = task.sampling.get("row_updates", "dense")
    if row_updates not in ("dense", "lazy_adam"):
        raise ConfigError(f"task.sampling.row_updates={row_updates!r}: expected dense or lazy_adam")
    model = task.model
    if not isinstance(model, GraphRecommender):
        raise ConfigError(f"task.sampling: {type(model).__name__} does not propagate over a sampled user-item graph")
    if len(fanouts) != model.num_layers or min(fanouts, default=0) < 1:
        raise ConfigError(
            f"task.sampling.fanouts={fanouts}: need one positive fanout per layer ({model.num_layers} for "
            f"{type(model).__name__}, model.num_layers)"
        )
    if len(task.objectives) or task.text is not None:
        raise ConfigError("task.sampling: objectives and LoRA text need full-graph training; drop one of them")
    if task.knobs.negative_sampler == "hard":
        raise ConfigError("task.negative_sampler=hard scores candidates with full-graph embeddings; not with task.sampling")
    if row_updates != "lazy_adam":
        return None
    if task.knobs.optimizer != "adam" or task.knobs.lr_schedule != "none":
        raise ConfigError(
            f"task.sampling.row_updates=lazy_adam is Adam at a fixed rate on the ID rows: it needs task.optimizer=adam "
            f"and task.lr_schedule=none (got {task.knobs.optimizer!r}, {task.knobs.lr_schedule!r})"
        )
    node_input = model.input
    if node_input.embedding is None or not node_input.ids_only:
        raise ConfigError("task.sampling.row_updates=lazy_adam needs ID embeddings in one shared table (feature_mode=id)")
    return LazyRowAdam(node_input.embedding.weight, task.knobs.embedding_lr or task.lr, weight_decay=task.weight_decay)
