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
from graphrec_lab.training.objectives.contrastive import info_nce
from graphrec_lab.training.sequence_losses import item_drop

if TYPE_CHECKING:
    from graphrec_lab.models.text.fusion import ItemTextFeatures


LOSSES = ("ce", "unisrec")


def freeze_except(model: torch.nn.Module, prefixes: list[str]) -> None:
    """Freeze every parameter of ``model`` whose name starts with none of ``prefixes``."""
    names = [n for n, _ in model.named_parameters()]
    unknown = [p for p in prefixes if not any(n == p or n.startswith(p + ".") for n in names)]
    if unknown or not prefixes:
        roots = sorted({n.split(".")[0] for n in names})
        raise ConfigError(f"task.train_only={prefixes}: {'no parameter under ' + str(unknown) if unknown else 'empty'}; "
                          f"the model's parameters are under {roots}")  # fmt: skip
    for name, param in model.named_parameters():
        param.requires_grad_(any(name == p or name.startswith(p + ".") for p in prefixes))


class SequentialTask(TextAdapterCheckpoints, EpochMeanLoss):
    """Args:
        model: a ``models.sequential`` model (GRU4Rec, SASRec, SRGNN; text through ``item_features``).
        lr, weight_decay: Adam's.
        ks, metrics: the evaluator's cut-offs and metric names (UniSRec reports Recall and NDCG @10, @50).
        text: LoRA mode only: the ``models.text.fusion.ItemTextFeatures`` whose adapters train with the
            model (frozen text features are a plain buffer of the model). As in the top-K task, the
            model's text buffer is a bank re-encoded without gradients at the start of training and of
            every evaluation; each step re-encodes at most ``text.max_live_texts`` of the batch's items
            (history and targets) with gradients. The full softmax scores every item, so the other
            rows enter the loss from the bank.
        item_groups: accepted for ``run_experiment``'s interface; unused.
        loss: ``ce`` (cross-entropy of the next item over all items) or ``unisrec`` (UniSRec's
            contrastive pre-training: sequence-item + ``seq_seq_weight`` x sequence-sequence, in-batch
            negatives at ``temperature``, item-drop augmentation with ``item_drop``;
            ``training.sequence_losses``). Evaluation ranks by the model's scores either way.
        train_only: model parameter-name prefixes that train (e.g. ``[adaptor, item_embedding]``:
            UniSRec's parameter-efficient fine-tuning, the transformer frozen); None: every parameter.
            A prefix matching no parameter is an error naming it.
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
        loss: str = "ce",
        temperature: float = 0.07,
        seq_seq_weight: float = 1e-3,
        item_drop: float = 0.2,
        train_only: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ConfigError(f"task.loss={loss!r}: task=sequential takes one of {', '.join(LOSSES)}")
        if temperature <= 0 or not 0.0 <= item_drop < 1.0:
            raise ConfigError(f"task.temperature={temperature} must be > 0 and task.item_drop={item_drop} in [0, 1)")
        self.loss = loss
        self.temperature, self.seq_seq_weight, self.item_drop = temperature, seq_seq_weight, item_drop
        self.model = model
        if train_only is not None:
            freeze_except(model, list(train_only))
        self.text = text if text is not None and text.trainable else None
        if self.text is not None and getattr(model, "adaptor", None) is None:
            raise ConfigError("text=lora: the model takes no text features (model.feature_mode='id'); use features, sum or gated")
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
        if self.text is not None:  # LoRA: this step's items re-encoded with gradients, the rest from the bank
            items = torch.cat([batch.history[batch.history > 0] - 1, batch.target])
            self.model.live_text = self.text.live_bank(self.model.text_bank(), items)
        try:
            loss = self._loss(batch)
        finally:
            self.model.live_text = None
        self.add_train_loss(loss, len(batch))
        return loss

    def _loss(self, batch: SequenceBatch) -> Tensor:
        if self.loss == "ce":
            return F.cross_entropy(self.model.full_scores(batch.history), batch.target)
        table = self.model.item_table()  # [I + 1, D]
        states = self.model(batch.history, table)
        # sequence-item, then sequence-sequence (training.sequence_losses)
        loss = info_nce(states, table[batch.target + 1], self.temperature, batch.target)
        if self.seq_seq_weight:
            augmented = self.model(item_drop(batch.history, self.item_drop), table)
            loss = loss + self.seq_seq_weight * info_nce(states, augmented, self.temperature, batch.target)
        return loss

    def _refresh_text(self) -> None:
        if self.text is not None:
            self.text.refresh_bank(self.model.text_bank())

    def on_train_start(self) -> None:
        self._refresh_text()

    def on_validation_epoch_start(self) -> None:
        self._refresh_text()

    def on_test_epoch_start(self) -> None:
        self._refresh_text()

    def transfer_batch_to_device(self, batch, device, dataloader_idx):  # typed batches move themselves
        if isinstance(batch, SequenceBatch):
            return batch.to(device)
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def configure_optimizers(self):
        groups = [{"params": [p for p in self.model.parameters() if p.requires_grad]}, *self.adapter_param_group(self.lr)]
        return adam(groups, self.lr, self.weight_decay)

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
