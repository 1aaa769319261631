"""The LightningModule of next-item prediction over sequences (``task=sequential``).

Training: cross-entropy of the next item over all items (the full-softmax setting of RecBole and
UniSRec), one sample per prefix of each training sequence (``data.sequence_datamodule``).
Evaluation: each user's history scores every item; the full-ranking evaluator of the top-K task
computes Recall/NDCG@K with one held-out item per user (so Recall@K is the hit rate). Validation
selects the checkpoint (``optimized_metric``); the test split is read once with it.

``run_experiment`` builds it like the other tasks (``cfg.task`` with ``model=``, ``text=``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from graphrec_lab.config import ConfigError
from graphrec_lab.data.sequence_datamodule import SequenceBatch
from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.evaluation.evaluator import FullRankingEvaluator
from graphrec_lab.models.sequential.base import SequentialBase
from graphrec_lab.training.adapters import TextAdapterCheckpoints
from graphrec_lab.training.epoch_loss import EpochMeanLoss
from graphrec_lab.training.checkpoint import CHECKPOINT_KEY
from graphrec_lab.training.optim import adam

if TYPE_CHECKING:
    from graphrec_lab.models.text.fusion import ItemTextFeatures


class SequentialTask(TextAdapterCheckpoints, EpochMeanLoss):
    """Args:
        model: a ``models.sequential`` model (GRU4Rec, SASRec, SRGNN; text through ``item_features``).
        lr, weight_decay: Adam's.
        ks, metrics: the evaluator's cut-offs and metric names (UniSRec reports Recall and NDCG @10, @50).
        text: accepted for ``run_experiment``'s interface; only a frozen encoder is supported (its
            features are a buffer of the model).
        item_groups: accepted for ``run_experiment``'s interface; unused.
    """

    def __init__(
        self,
        model: SequentialBase,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        ks: Sequence[int] = (10, 50),
        metrics: Sequence[str] = ("recall", "ndcg"),
        text: ItemTextFeatures | None = None,
        item_groups: Any = None,
    ) -> None:
        super().__init__()
        if text is not None and text.trainable:
            raise ConfigError("text=lora: the sequential task takes frozen text features only (text=frozen)")
        self.model = model
        self.text = None
        self.lr = lr
        self.weight_decay = weight_decay
        num_items = getattr(model, "num_items", 0)
        self.val_evaluator = FullRankingEvaluator(num_items, ks, metrics)
        self.test_evaluator = FullRankingEvaluator(num_items, ks, metrics)
        self.save_hyperparameters(ignore=["model", "text", "item_groups"])
        self.run_config: dict | None = None

    def attach_graph(self, graph: TrainGraph) -> None:
        """Checks the model (sequence models use no graph)."""
        if not isinstance(self.model, SequentialBase):
            raise ConfigError(
                "task=sequential needs a sequential model (graphrec_lab.models.sequential; model=gru4rec|sasrec|srgnn|"
                f"unisrec), got {type(self.model).__name__}"
            )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Also save the resolved run config and the model's class (``training.checkpoint.CHECKPOINT_KEY``)."""
        super().on_save_checkpoint(checkpoint)
        checkpoint[CHECKPOINT_KEY] = {
            "config": self.run_config,
            "model": f"{type(self.model).__module__}.{type(self.model).__qualname__}",
            "num_items": int(self.model.num_items),
        }

    # -------------------------------------------------------------- training

    def training_step(self, batch: SequenceBatch, batch_idx: int) -> Tensor:
        loss = F.cross_entropy(self.model.full_scores(batch.history), batch.target)
        self.add_train_loss(loss, len(batch))
        return loss


    def transfer_batch_to_device(self, batch, device, dataloader_idx):  # typed batches move themselves
        if isinstance(batch, SequenceBatch):
            return batch.to(device)
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def configure_optimizers(self):
        return adam([{"params": [p for p in self.model.parameters() if p.requires_grad]}], self.lr, self.weight_decay)

    # -------------------------------------------------------------- evaluation
    def _eval_step(self, evaluator: FullRankingEvaluator, batch: SequenceBatch) -> None:
        evaluator.update(self.model.full_scores(batch.history), batch.eval_batch())

    def _end_eval(self, evaluator: FullRankingEvaluator, split: str) -> None:
        values = evaluator.compute()
        logged = {f"{split}/{name}": v for name, v in values.items()}
        num_users = torch.tensor(float(evaluator.num_users), dtype=torch.float64, device=self.device)
        if self.trainer.world_size > 1:
            num_users = self.trainer.strategy.reduce(num_users, reduce_op="sum")
        logged[f"{split}/num_users"] = float(num_users)
        evaluator.reset()
        self.log_dict(logged, sync_dist=False)  # already reduced by the metric states

    def validation_step(self, batch: SequenceBatch, batch_idx: int) -> None:
        self._eval_step(self.val_evaluator, batch)

    def on_validation_epoch_end(self) -> None:
        self._end_eval(self.val_evaluator, "val")

    def test_step(self, batch: SequenceBatch, batch_idx: int) -> None:
        self._eval_step(self.test_evaluator, batch)

    def on_test_epoch_end(self) -> None:
        self._end_eval(self.test_evaluator, "test")
