"""The LightningModule of news recommendation on impressions (MIND protocol).

Training: each batch holds clicks, each with K skipped articles of its impression (column 0 is the
click); the loss is softmax cross-entropy over the 1+K scores (NRMS's recipe). Graph models score a
batch on the click graph without that batch's fold of clicks (``data.graph_folds``).

Evaluation: every impression is scored whole; AUC, MRR, nDCG@5/10 per impression, averaged
(``evaluation.impressions``). Validation selects the checkpoint (``optimized_metric``, e.g.
``val/auc``); the test split is evaluated once, with the selected checkpoint, on the test-time graph
(``NewsDataModule.test_graph``: the validation clicks added, as they are known by then).

``run_experiment`` builds it like the top-K task (``cfg.task`` with ``model=``, ``text=``): no
change to the runner is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from graphrec_lab.data.news import ImpressionBatch
from graphrec_lab.data.protocols import DataModule, ImpressionSource, implements
from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.evaluation.impressions import DEFAULT_KS, ImpressionEvaluator
from graphrec_lab.models.news.base import NewsRecommender
from graphrec_lab.training.adapters import TextAdapterCheckpoints
from graphrec_lab.training.epoch_loss import EpochMeanLoss
from graphrec_lab.training.optim import adam

if TYPE_CHECKING:
    from graphrec_lab.models.text.fusion import ItemTextFeatures


class NewsTask(TextAdapterCheckpoints, EpochMeanLoss):
    """Args:
        model: a ``models.news.NewsRecommender`` (NRMS, GraphNRMS, NewsPopularity).
        lr: Adam learning rate (NRMS: 1e-4 with a trainable word-level encoder; a projection of
            frozen transformer vectors takes a larger one).
        weight_decay: Adam's L2 on the model's parameters.
        ks: nDCG cut-offs (MIND: 5, 10).
        single_class: impressions the metrics cannot score (``evaluation.impressions``): ``skip``
            or ``partial``.
        text: LoRA mode only: the ``ItemTextFeatures`` whose adapters train with the model
            (run_experiment passes it; a frozen text encoder is a plain buffer of the model).
        item_groups: accepted for run_experiment's interface; unused (no per-group metrics here).
    """

    def __init__(
        self,
        model: NewsRecommender,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        ks: Sequence[int] = DEFAULT_KS,
        single_class: str = "skip",
        text: ItemTextFeatures | None = None,
        item_groups: Any = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.text = text if text is not None and text.trainable else None
        self.lr = lr
        self.weight_decay = weight_decay
        self.val_evaluator = ImpressionEvaluator(ks, single_class)
        self.test_evaluator = ImpressionEvaluator(ks, single_class)
        self.save_hyperparameters(ignore=["model", "text", "item_groups"])
        self._graph: TrainGraph | None = None
        self._fold_graphs: list[TrainGraph] = []
        self._eval_graph: TrainGraph | None = None
        self._eval_state: Any = None

    # -------------------------------------------------------------- graphs
    def _check_model(self) -> None:
        # Checked when the run starts, not in __init__: configs are instantiated with stand-in models.
        if not isinstance(self.model, NewsRecommender):
            raise TypeError(
                "task=news needs a news model (graphrec_lab.models.news: NRMS, GraphNRMS, NewsPopularity; "
                f"model=nrms|graph_nrms|news_pop), got {type(self.model).__name__}"
            )

    def attach_graph(self, graph: TrainGraph) -> None:
        """The click graph of training and validation (kept out of the checkpoint: it is data)."""
        self._check_model()
        self._graph = graph

    def setup(self, stage: str) -> None:
        self._check_model()

    def _on_device(self, graph: TrainGraph | None) -> TrainGraph | None:
        return None if graph is None else graph.to(self.device)

    @property
    def graph(self) -> TrainGraph | None:
        """The attached graph on the module's device (None when none was attached: text-only models
        do not need one; graph models raise when they get None)."""
        self._graph = self._on_device(self._graph)
        return self._graph

    def _datamodule(self) -> DataModule | None:
        trainer = getattr(self, "_trainer", None)  # None outside a Trainer (a task driven by hand)
        return getattr(trainer, "datamodule", None) if trainer is not None else None

    def _train_graph_for(self, batch: ImpressionBatch) -> TrainGraph | None:
        if batch.fold >= 0 and batch.fold < len(self._fold_graphs):
            self._fold_graphs[batch.fold] = self._on_device(self._fold_graphs[batch.fold])
            return self._fold_graphs[batch.fold]
        return self.graph

    # -------------------------------------------------------------- training
    def on_train_start(self) -> None:
        dm = self._datamodule()
        uses_graph = getattr(self.model, "uses_graph", True)
        self._fold_graphs = list(dm.fold_graphs()) if uses_graph and implements(dm, ImpressionSource) else []
        self._refresh_text()

    def _refresh_text(self) -> None:
        if self.text is not None:
            self.text.refresh(self.model.input)  # type: ignore[arg-type]
            self.model.input.sync_followers()  # type: ignore[union-attr]


    def training_step(self, batch: ImpressionBatch, batch_idx: int) -> Tensor:
        if self.text is None:
            return self._training_step(batch)
        node_input = self.model.input  # type: ignore[union-attr]
        node_input.set_live_features("item", self.text.live_features(node_input, batch.articles()))  # type: ignore[arg-type]
        try:
            return self._training_step(batch)
        finally:
            node_input.set_live_features("item", None)

    def _training_step(self, batch: ImpressionBatch) -> Tensor:
        scores = self.model.score(batch, self._train_graph_for(batch))  # [B, 1+K], click in column 0
        target = torch.zeros(scores.size(0), dtype=torch.long, device=scores.device)
        loss = F.cross_entropy(scores, target)
        self.add_train_loss(loss, len(batch))
        return loss


    def transfer_batch_to_device(self, batch, device, dataloader_idx):  # typed batches move themselves
        if isinstance(batch, ImpressionBatch):
            return batch.to(device)
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def configure_optimizers(self):
        groups: list[dict[str, Any]] = [g for g in self.model.param_groups(self.lr) if g["params"]]
        groups += self.adapter_param_group(self.lr)
        return adam(groups, self.lr, self.weight_decay)

    # -------------------------------------------------------------- evaluation
    def _start_eval(self, graph: TrainGraph | None) -> None:
        self._refresh_text()
        self._eval_graph = self._on_device(graph)
        with torch.no_grad():
            self._eval_state = self.model.precompute(self._eval_graph)

    def _eval_step(self, evaluator: ImpressionEvaluator, batch: ImpressionBatch) -> None:
        scores = self.model.score(batch, self._eval_graph, self._eval_state)
        evaluator.update(scores, batch.labels, batch.candidate_mask)

    def _end_eval(self, evaluator: ImpressionEvaluator, split: str) -> dict[str, float]:
        values = evaluator.compute()
        logged = {f"{split}/{name}": float(v) for name, v in values.items()}
        logged[f"{split}/num_impressions"] = float(evaluator.num_impressions)
        logged[f"{split}/skipped_impressions"] = float(evaluator.skipped)
        evaluator.reset()
        self._eval_state = None
        self._eval_graph = None
        if split == "test":
            # The data's article counts (referenced articles without text, what the policy dropped)
            # ride along with the test metrics, so they reach the run record.
            dm = self._datamodule()
            report = dm.missing_news_report() if implements(dm, ImpressionSource) else {}
            logged.update({f"data/{k}": float(v) for k, v in report.items() if isinstance(v, (int, float))})
        self.log_dict(logged, sync_dist=False)  # already reduced by the metric states
        return logged

    def on_validation_epoch_start(self) -> None:
        self._start_eval(self.graph)

    def validation_step(self, batch: ImpressionBatch, batch_idx: int) -> None:
        self._eval_step(self.val_evaluator, batch)

    def on_validation_epoch_end(self) -> None:
        self._end_eval(self.val_evaluator, "val")

    def on_test_epoch_start(self) -> None:
        dm = self._datamodule()
        self._start_eval(dm.test_graph if implements(dm, ImpressionSource) else self.graph)

    def test_step(self, batch: ImpressionBatch, batch_idx: int) -> None:
        self._eval_step(self.test_evaluator, batch)

    def on_test_epoch_end(self) -> None:
        self._end_eval(self.test_evaluator, "test")
