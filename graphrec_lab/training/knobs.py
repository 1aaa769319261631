"""The training knobs of ``RecommendationTask``: loss, negatives, optimiser, parameter groups and
learning-rate schedule (docs/training.md). The task's ``task.*`` keys fill one ``TrainingKnobs``;
every check here raises a ``ConfigError`` naming the key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from graphrec_lab.config import ConfigError
from graphrec_lab.data.sampling import NegativeSampler, TrainBatch, hardest_negatives, popularity_weights
from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.models.scorers import DotScorer
from graphrec_lab.training.losses import RANKING_LOSSES
from graphrec_lab.training.optim import EpochSchedule, build_optimizer

NEGATIVE_SAMPLERS = ("uniform", "popularity", "in_batch", "hard")
OPTIMIZERS = ("adam", "adamw", "sgd", "adagrad")
LR_SCHEDULES = ("none", "step", "cosine", "warmup", "warmup_cosine", "plateau")


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class TrainingKnobs:
    """The ``task.*`` training keys (meanings: ``RecommendationTask``'s docstring), checked on creation."""

    loss: str = "bpr"
    num_negatives: int = 1
    negative_sampler: str = "uniform"
    popularity_alpha: float = 0.75
    hard_candidates: int = 8
    softmax_temperature: float = 1.0
    optimizer: str = "adam"
    momentum: float = 0.9
    embedding_lr: float | None = None
    dense_lr: float | None = None
    lr_schedule: str = "none"
    lr_step_size: int = 10
    lr_gamma: float = 0.5
    warmup_epochs: int = 5
    warmup_start_factor: float = 0.1
    lr_min_factor: float = 0.0
    plateau_patience: int = 2
    monitor: str = "val/ndcg@20"
    monitor_mode: str = "max"

    def __post_init__(self) -> None:
        def expect(ok: bool, key: str, expected: str) -> None:
            if not ok:
                raise ConfigError(f"task.{key}={getattr(self, key)!r}: expected {expected}")

        expect(self.loss in RANKING_LOSSES, "loss", "one of " + ", ".join(RANKING_LOSSES))
        expect(self.negative_sampler in NEGATIVE_SAMPLERS, "negative_sampler", "one of " + ", ".join(NEGATIVE_SAMPLERS))
        expect(self.optimizer in OPTIMIZERS, "optimizer", "one of " + ", ".join(OPTIMIZERS))
        expect(self.lr_schedule in LR_SCHEDULES, "lr_schedule", "one of " + ", ".join(LR_SCHEDULES))
        expect(self.monitor_mode in ("max", "min"), "monitor_mode", "max or min")
        expect(_int(self.num_negatives) and self.num_negatives >= 1, "num_negatives", "an integer >= 1")
        expect(_int(self.hard_candidates) and self.hard_candidates >= 1, "hard_candidates", "an integer >= 1")
        expect(_int(self.lr_step_size) and self.lr_step_size >= 1, "lr_step_size", "an integer >= 1")
        warmup_min = 1 if self.lr_schedule.startswith("warmup") else 0
        expect(_int(self.warmup_epochs) and self.warmup_epochs >= warmup_min, "warmup_epochs", f"an integer >= {warmup_min}")
        expect(_int(self.plateau_patience) and self.plateau_patience >= 0, "plateau_patience", "an integer >= 0")
        expect(self.popularity_alpha >= 0, "popularity_alpha", "a number >= 0 (0: uniform, 1: proportional to popularity)")
        expect(self.softmax_temperature > 0, "softmax_temperature", "a number > 0")
        expect(0 <= self.momentum < 1, "momentum", "a number in [0, 1)")
        expect(0 < self.lr_gamma <= 1, "lr_gamma", "a number in (0, 1]")
        expect(0 < self.warmup_start_factor <= 1, "warmup_start_factor", "a number in (0, 1]")
        expect(0 <= self.lr_min_factor <= 1, "lr_min_factor", "a number in [0, 1]")
        expect(self.embedding_lr is None or self.embedding_lr > 0, "embedding_lr", "a number > 0 or null (task.lr)")
        expect(self.dense_lr is None or self.dense_lr > 0, "dense_lr", "a number > 0 or null (task.lr)")
        expect(self.monitor.startswith("val/"), "monitor", "a val/ metric")

    # -------------------------------------------------------------- negatives
    @property
    def default_step(self) -> bool:
        """BPR on the data module's one uniform negative: the plain BPR step."""
        return self.loss == "bpr" and not self.draws_negatives

    @property
    def draws_negatives(self) -> bool:
        """Whether the task draws negatives itself (else the data module's one uniform negative is the draw)."""
        return self.negative_sampler != "uniform" or self.num_negatives > 1

    def build_sampler(self, graph: TrainGraph) -> NegativeSampler:
        """The sampler of the configured negatives over the graph's user->item (training) edges."""
        src, dst = graph.edge_index.cpu()
        ui = (src < graph.num_users) & (dst >= graph.num_users)  # user->item edges; not item->user or social ties
        users, items = src[ui], dst[ui] - graph.num_users
        weights = popularity_weights(items, graph.num_items, self.popularity_alpha) if self.negative_sampler == "popularity" else None
        try:
            return NegativeSampler(users, items, graph.num_users, graph.num_items, weights=weights)
        except ValueError as exc:
            raise ConfigError(f"task.negative_sampler={self.negative_sampler!r}: {exc}") from exc

    def draw(self, sampler: NegativeSampler, batch: TrainBatch, generator: torch.Generator) -> tuple[TrainBatch, Tensor | None]:
        """The batch with its configured negatives: ``neg_items`` [B K] (row b's K negatives at b K ..
        b K + K - 1), or for ``hard`` the candidates [B, K, M] (picked by ``pick_hard`` after the
        forward pass; ``neg_items`` is then empty). Drawn on the CPU."""
        k, device = self.num_negatives, batch.users.device
        users = batch.users.cpu()
        candidates = None
        if self.negative_sampler == "uniform":  # the data module's negative first, then K - 1 more
            neg = torch.cat([batch.neg_items.cpu().unsqueeze(1), sampler.sample_k(users, k - 1, generator)], dim=1)
        elif self.negative_sampler == "popularity":
            neg = sampler.sample_k(users, k, generator)
        elif self.negative_sampler == "in_batch":
            neg = sampler.sample_in_batch(users, batch.pos_items.cpu(), k, generator)
        else:
            candidates = sampler.sample_k(users, k * self.hard_candidates, generator).view(-1, k, self.hard_candidates).to(device)
            neg = users.new_empty((0,))
        return TrainBatch(batch.users, batch.pos_items, neg.reshape(-1).to(device)), candidates

    # -------------------------------------------------------------- optimisation
    def param_groups(self, params: list[nn.Parameter], modules: list[nn.Module], lr: float) -> list[dict[str, Any]]:
        """One group of ``params`` at ``lr`` or, with ``embedding_lr`` / ``dense_lr``, the embedding
        tables among ``modules`` and the other weights apart (empty groups dropped, one kept)."""
        if self.embedding_lr is None and self.dense_lr is None:
            return [{"params": params}]
        tables = {id(m.weight) for m in modules if isinstance(m, (nn.Embedding, nn.EmbeddingBag))}
        split = [
            {"params": [p for p in params if id(p) in tables], "lr": self.embedding_lr or lr},
            {"params": [p for p in params if id(p) not in tables], "lr": self.dense_lr or lr},
        ]
        return [g for g in split if g["params"]] or [{"params": params}]

    def optimizers(self, groups: list[dict[str, Any]], lr: float, weight_decay: float, max_epochs: int | None, check_every: int) -> Any:
        """What ``configure_optimizers`` returns: the optimiser, with its scheduler config when scheduled.
        Epoch schedules step every epoch; ``plateau`` at each validation check (every ``check_every``)."""
        optimizer = build_optimizer(self.optimizer, groups, lr, weight_decay, self.momentum)
        if self.lr_schedule == "none":
            return optimizer
        if self.lr_schedule == "plateau":
            plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode=self.monitor_mode, factor=self.lr_gamma, patience=self.plateau_patience,
                min_lr=[g["lr"] * self.lr_min_factor for g in optimizer.param_groups],
            )  # fmt: skip
            config = {"scheduler": plateau, "interval": "epoch", "frequency": check_every, "monitor": self.monitor}
            return {"optimizer": optimizer, "lr_scheduler": config}
        total = int(max_epochs or -1)
        if self.lr_schedule in ("cosine", "warmup_cosine") and total < 1:
            raise ConfigError(f"task.lr_schedule={self.lr_schedule}: the cosine needs a finite trainer.max_epochs (got {total})")
        if self.lr_schedule == "warmup_cosine" and total <= self.warmup_epochs:
            raise ConfigError(f"task.warmup_epochs={self.warmup_epochs}: leaves no cosine epochs of trainer.max_epochs={total}")
        schedule = EpochSchedule(
            self.lr_schedule, total_epochs=max(total, 1), step_size=self.lr_step_size, gamma=self.lr_gamma,
            warmup_epochs=self.warmup_epochs, start_factor=self.warmup_start_factor, min_factor=self.lr_min_factor,
        )  # fmt: skip
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, schedule), "interval": "epoch"}}


@torch.no_grad()
def pick_hard(batch: TrainBatch, candidates: Tensor, user_emb: Tensor, item_emb: Tensor, scorer: nn.Module | None = None) -> TrainBatch:
    """Dynamic negative sampling: per slot, the candidate of [B, K, M] the embeddings (users [U, D],
    items [I, D]) score highest (by ``scorer.score``; None: the dot product); the batch's
    ``neg_items`` become those [B K]."""
    users = user_emb.index_select(0, batch.users)
    if scorer is None or isinstance(scorer, DotScorer):
        scores = torch.einsum("bd,bkmd->bkm", users, item_emb[candidates])
    else:
        scores = scorer.score(users[:, None, None, :], item_emb[candidates])
    return TrainBatch(batch.users, batch.pos_items, hardest_negatives(candidates, scores).reshape(-1))
