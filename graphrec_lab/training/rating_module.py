"""The LightningModule of rating prediction (``task=rating``): explicit ratings, RMSE and MAE.

Two kinds of model:
- GC-MC (``model=gcmc``): its own rating-level encoder and bilinear decoder over the per-level
  adjacencies of the training ratings; ``loss=ce`` (the paper's cross-entropy over levels) or
  ``mse`` (squared error of the expected rating).
- any zoo model (``model=lightgcn``, ``gcn``, ``bprmf``, ...): its user and item representations on
  the training graph give r(u, i) = mean + b_u + b_i + e_u . e_i (the task owns the biases and the
  training mean), ``loss=mse``. These are the rating variants of the zoo models.

Selection is on ``val/rmse`` or ``val/mae`` (lower is better: the checkpoint and early-stopping
callbacks must say ``mode: min``, as ``experiment=rating_ml100k`` does; anything else is refused).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphrec_lab.config import ConfigError
from graphrec_lab.data.rating_datamodule import RatingBatch
from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.evaluation.rating import RatingEvaluator
from graphrec_lab.models.gcmc import GCMC, rating_adjacencies
from graphrec_lab.training.checkpoint import CHECKPOINT_KEY
from graphrec_lab.training.epoch_loss import EpochMeanLoss
from graphrec_lab.training.optim import adam

RATING_LOSSES = ("mse", "ce")


class RatingTask(EpochMeanLoss):
    """Args:
        model: ``GCMC`` or a zoo model whose ``forward(graph)`` gives (users [U, D], items [I, D]).
        loss: ``mse`` | ``ce`` (GC-MC only).
        lr, weight_decay: Adam's.
        text, item_groups: accepted for ``run_experiment``'s interface; unused.
    """

    def __init__(self, model: nn.Module, loss: str = "mse", lr: float = 0.01, weight_decay: float = 0.0,
                 text: Any = None, item_groups: Any = None) -> None:  # fmt: skip
        super().__init__()
        if loss not in RATING_LOSSES:
            raise ConfigError(f"task.loss={loss!r} is not a rating loss; task=rating takes {list(RATING_LOSSES)}")
        if loss == "ce" and not isinstance(model, GCMC):
            raise ConfigError(f"task.loss='ce' (over rating levels) needs model=gcmc; {type(model).__name__} predicts with loss=mse")
        if text is not None:
            raise ConfigError("task=rating takes no item text (drop text=)")
        self.model = model
        self.loss, self.lr, self.weight_decay = loss, lr, weight_decay
        self.gcmc = isinstance(model, GCMC)
        if not self.gcmc:
            self.user_bias = nn.Embedding(model.num_users, 1)
            self.item_bias = nn.Embedding(model.num_items, 1)
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.item_bias.weight)
        self.register_buffer("mean_rating", torch.zeros(()))
        self.val_evaluator = RatingEvaluator()
        self.test_evaluator = RatingEvaluator()
        self.save_hyperparameters(ignore=["model", "text", "item_groups"])
        self.run_config: dict | None = None
        self._graph: TrainGraph | None = None
        self._adjs: list[Tensor] | None = None

    # -------------------------------------------------------------- data
    def attach_graph(self, graph: TrainGraph) -> None:
        """The training graph (zoo models propagate over it; kept out of the checkpoint)."""
        self._graph = graph

    def _datamodule(self):
        trainer = getattr(self, "_trainer", None)
        return getattr(trainer, "datamodule", None) if trainer is not None else None

    def setup(self, stage: str) -> None:
        dm = self._datamodule()
        ratings = getattr(dm, "ratings", None)
        if ratings is None:
            raise ConfigError(f"task=rating needs a rating DataModule (data=ml100k_ratings), got {type(dm).__name__}")
        self.mean_rating.fill_(float(ratings.train.rating.mean()))
        if self.gcmc:
            t = ratings.train
            self._adjs = rating_adjacencies(t.user, t.item, t.rating, ratings.num_users, ratings.num_items,
                                            [float(v) for v in self.model.levels])  # fmt: skip
        for cb in self.trainer.callbacks if self._trainer is not None else []:
            monitor, mode = getattr(cb, "monitor", None), getattr(cb, "mode", None)
            if monitor and any(m in monitor for m in ("rmse", "mae")) and mode != "min":
                raise ConfigError(f"{type(cb).__name__} monitors {monitor} with mode={mode!r}: lower is better, set mode=min "
                                  "(callbacks.model_checkpoint.mode / callbacks.early_stopping.mode; experiment=rating_ml100k does)")

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        if isinstance(batch, RatingBatch):
            return batch.to(device)
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    # -------------------------------------------------------------- prediction
    def _embeddings(self) -> tuple[Tensor, Tensor]:
        assert self._graph is not None, "attach_graph was not called"
        self._graph = self._graph.to(self.device)
        return self.model(self._graph)

    def _adjacencies(self) -> list[Tensor]:
        assert self._adjs is not None
        self._adjs = [a.to(self.device) for a in self._adjs]
        return self._adjs

    def predict_ratings(self, user: Tensor, item: Tensor) -> Tensor:
        """[B] predicted ratings of the pairs (``user`` [B], ``item`` [B])."""
        if self.gcmc:
            return self.model(self._adjacencies(), user, item)
        users, items = self._embeddings()
        dot = (users[user] * items[item]).sum(-1)
        return self.mean_rating + self.user_bias(user).squeeze(-1) + self.item_bias(item).squeeze(-1) + dot

    def training_step(self, batch: RatingBatch, batch_idx: int) -> Tensor:
        if self.loss == "ce":
            target = torch.bucketize(batch.rating, self.model.levels)
            loss = F.cross_entropy(self.model.logits(self._adjacencies(), batch.user, batch.item), target)
        else:
            loss = F.mse_loss(self.predict_ratings(batch.user, batch.item), batch.rating)
        self.add_train_loss(loss, len(batch))
        return loss

    def configure_optimizers(self):
        return adam([{"params": [p for p in self.parameters() if p.requires_grad]}], self.lr, self.weight_decay)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = {
            "config": self.run_config,
            "model": f"{type(self.model).__module__}.{type(self.model).__qualname__}",
            "num_users": int(self.model.num_users), "num_items": int(self.model.num_items),
        }  # fmt: skip

    # -------------------------------------------------------------- evaluation
    def _eval_step(self, evaluator: RatingEvaluator, batch: RatingBatch) -> None:
        evaluator.update(self.predict_ratings(batch.user, batch.item), batch.rating)

    def _end_eval(self, evaluator: RatingEvaluator, split: str) -> None:
        self.log_dict({f"{split}/{k}": v for k, v in evaluator.compute().items()}, sync_dist=False)
        evaluator.reset()

    def validation_step(self, batch: RatingBatch, batch_idx: int) -> None:
        self._eval_step(self.val_evaluator, batch)

    def on_validation_epoch_end(self) -> None:
        self._end_eval(self.val_evaluator, "val")

    def test_step(self, batch: RatingBatch, batch_idx: int) -> None:
        self._eval_step(self.test_evaluator, batch)

    def on_test_epoch_end(self) -> None:
        self._end_eval(self.test_evaluator, "test")
