"""The LightningModule every recommendation run goes through.

It composes a ``Recommender`` (any model of the zoo), a ranking loss over sampled negatives (BPR by
default) with the paper's L2 term, the configured optimiser and learning-rate schedule, and
full-ranking evaluation on validation (model selection) and test (reported once, with the selected
checkpoint). Models stay plain ``nn.Module``s; nothing here is model-specific.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import torch
from hydra.utils import instantiate
from torch import Tensor, nn

from graphrec_lab.config import ConfigError
from graphrec_lab.data.neighbor_sampling import NeighborSampler
from graphrec_lab.data.sampling import EvalBatch, NegativeSampler, TrainBatch
from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.ops.sparse import operator_cache
from graphrec_lab.evaluation.evaluator import METRICS, FullRankingEvaluator
from graphrec_lab.evaluation.groups import GroupSpec
from graphrec_lab.models.base import Recommender
from graphrec_lab.models.gnn.base import GraphRecommender
from graphrec_lab.models.scorers import DotScorer, build_scorer, scorer_kind
from graphrec_lab.training.adapters import TextAdapterCheckpoints
from graphrec_lab.training.checkpoint import CHECKPOINT_KEY
from graphrec_lab.training.knobs import TrainingKnobs, pick_hard
from graphrec_lab.training.optim import OptimizerName, ScheduleName
from graphrec_lab.training.losses import RANKING_LOSSES, LossName, l2_batch_loss
from graphrec_lab.training.objectives import Objective, StepContext
from graphrec_lab.training.task_checks import check_knobs, check_sampling

# Evaluation metrics are logged per epoch with sync_dist=False on purpose: the metric states were
# already summed across ranks in compute(), so every rank logs the same exact value.
warnings.filterwarnings("ignore", message=r".*sync_dist=True.*when logging on epoch level in distributed")

NONFINITE_LOSS = ("error", "skip")


class NonFiniteLossError(ArithmeticError):
    """The training loss became NaN or infinite (``task.nonfinite_loss=error``)."""


if TYPE_CHECKING:  # the text package imports transformers; only LoRA runs need it at run time
    from graphrec_lab.models.text.fusion import ItemTextFeatures
    from graphrec_lab.training.lazy_adam import LazyRowAdam


class RecommendationTask(TextAdapterCheckpoints):
    """Ranking-loss training and full-ranking evaluation of a ``Recommender`` (docs/training.md).

    Args:
        model: the recommender (instantiated with the dataset's user and item counts).
        lr: the optimiser's learning rate (the base rate a schedule scales).
        weight_decay: the optimiser's L2 (AdamW: decoupled decay) on all parameters (0 by default: the LightGCN paper regularises only
            the batch's layer-0 embeddings, which is ``l2_reg``).
        l2_reg: weight of ``l2_batch_loss`` on the batch's layer-0 embeddings.
        ks, metrics: evaluation cut-offs and metric names (see ``evaluation.evaluator``).
        objectives: extra losses added to BPR + L2, by name (``training.objectives``; e.g. SGL's,
            SimGCL's, XSimGCL's contrastive terms). Values may be ``Objective``s or config nodes with a
            ``_target_`` (run_experiment instantiates the task non-recursively). Each is logged per
            epoch as ``train/<name>``.
        text: LoRA mode only: the ``models.text.fusion.ItemTextFeatures`` whose adapters train with the
            model (run_experiment passes it; frozen text features are a plain buffer of the model).
        item_groups: named [I] bool item masks (e.g. the cold-start protocol's ``cold``/``warm``):
            every metric is also reported as ``<group>/<metric>@k`` with targets restricted to the group.
        group_metrics: generalisation groups from the training graph (``evaluation.groups``): e.g.
            ``[popularity, activity]`` adds ``head/``, ``mid/``, ``tail/`` and ``active_*/`` metrics.
        scorer: how a (user, item) pair of representations is scored (``models.scorers``):
            ``{kind: dot}`` (default) or ``{kind: mlp, hidden: [64, 32], dropout, gmf}`` (NeuMF-style),
            in training, hard-negative picking and full-ranking evaluation alike.
        sampling: ``{"fanouts": [k_1, ..., k_K]}`` trains each batch on a neighbour-sampled
            computation graph (``data.neighbor_sampling``; one fanout per model layer) instead of the
            full graph, for graphs whose full propagation does not fit. Evaluation stays full-graph.
            BPR + L2 only (objectives, LoRA text and social models need the full graph).
            ``row_updates: lazy_adam`` also updates only the step's rows of the ID table
            (``training.lazy_adam``: per-step memory independent of the graph; one process only);
            ``dense`` (default) keeps plain Adam over the whole table.
        test_curve: also evaluate the test split at every validation check during fitting and log it
            as ``curve/test/<metric>@k``, for learning curves only (how far a budget is from
            convergence). Nothing monitors these keys: selection, early stopping and the reported
            ``test/`` metrics still come from validation and the selected checkpoint.
        nonfinite_loss: what a NaN or infinite training loss does: ``error`` (default) stops training
            with ``NonFiniteLossError`` naming the epoch and step; ``skip`` drops that batch (no
            optimiser step) with a warning. Checked every step (one device-to-host read of the loss).
            ``skip`` is for one process only: under DDP the other ranks would wait for the step.
        loss: the ranking loss over each positive and its negatives (``training.losses``): ``bpr``
            (pairwise, the default), ``bce`` (pointwise binary cross-entropy) or ``softmax`` (sampled
            softmax / InfoNCE over the positive and its negatives, logits / ``softmax_temperature``).
        num_negatives: K, negatives per positive (>= 1).
        negative_sampler: ``uniform`` (the data module's draw, plus K-1 more), ``popularity``
            (proportional to training popularity ** ``popularity_alpha``), ``in_batch`` (the positives
            of other rows of the batch) or ``hard`` (dynamic negative sampling: ``hard_candidates``
            uniform candidates per negative, the one the current model scores highest is kept). None
            is ever a training positive of the row's user.
        optimizer: ``adam``, ``adamw``, ``sgd`` (with ``momentum``) or ``adagrad``.
        embedding_lr, dense_lr: learning rates of the model's embedding tables and of its other
            (GNN / dense) weights; None: ``lr``. The LoRA adapters keep ``text.lr``.
        lr_schedule: ``none``, ``step`` (x ``lr_gamma`` every ``lr_step_size`` epochs), ``cosine`` (down
            to ``lr_min_factor`` x the base rate at ``trainer.max_epochs``), ``warmup`` (linear from
            ``warmup_start_factor`` x over ``warmup_epochs``), ``warmup_cosine`` (both) or ``plateau``
            (x ``lr_gamma`` when ``monitor`` has not improved for ``plateau_patience`` validation
            checks). Stepped once per epoch (``plateau``: per validation check).
        monitor, monitor_mode: the validation metric ``plateau`` watches (the config passes
            ``optimized_metric``) and whether higher (``max``) or lower is better.
    """

    run_config: dict[str, Any] | None = None  # the resolved run config, saved in every checkpoint

    def __init__(
        self,
        model: Recommender,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        l2_reg: float = 1e-4,
        ks: Sequence[int] = (10, 20),
        metrics: Sequence[str] = METRICS,
        objectives: Mapping[str, Objective | Mapping[str, Any]] | None = None,
        text: ItemTextFeatures | None = None,
        item_groups: Mapping[str, Tensor] | None = None,
        sampling: Mapping[str, Any] | None = None,
        test_curve: bool = False,
        nonfinite_loss: Literal["error", "skip"] = "error",
        loss: LossName = "bpr",
        num_negatives: int = 1,
        negative_sampler: Literal["uniform", "popularity", "in_batch", "hard"] = "uniform",
        popularity_alpha: float = 0.75,
        hard_candidates: int = 8,
        softmax_temperature: float = 1.0,
        optimizer: OptimizerName = "adam",
        momentum: float = 0.9,
        embedding_lr: float | None = None,
        dense_lr: float | None = None,
        lr_schedule: ScheduleName = "none",
        lr_step_size: int = 10,
        lr_gamma: float = 0.5,
        warmup_epochs: int = 5,
        warmup_start_factor: float = 0.1,
        lr_min_factor: float = 0.0,
        plateau_patience: int = 2,
        monitor: str = "val/ndcg@20",
        monitor_mode: Literal["max", "min"] = "max",
        group_metrics: Sequence[str] | Mapping[str, Any] | None = None,
        scorer: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if nonfinite_loss not in NONFINITE_LOSS:
            raise ConfigError(f"task.nonfinite_loss={nonfinite_loss!r}: expected one of {', '.join(NONFINITE_LOSS)}")
        self.nonfinite_loss = nonfinite_loss
        self.knobs = TrainingKnobs(
            loss, num_negatives, negative_sampler, popularity_alpha, hard_candidates, softmax_temperature, optimizer, momentum,
            embedding_lr, dense_lr, lr_schedule, lr_step_size, lr_gamma, warmup_epochs, warmup_start_factor, lr_min_factor,
            plateau_patience, monitor, monitor_mode,
        )  # fmt: skip
        self.model = model
        self.text = text if text is not None and text.trainable else None
        self.objectives = nn.ModuleDict(
            {name: obj if isinstance(obj, Objective) else instantiate(obj) for name, obj in (objectives or {}).items()}
        )
        self.lr = lr
        self.weight_decay = weight_decay
        self.l2_reg = l2_reg
        groups = dict(item_groups or {})
        self.val_evaluator = FullRankingEvaluator(model.num_items, ks, metrics, item_groups=groups)
        self.test_evaluator = FullRankingEvaluator(model.num_items, ks, metrics, item_groups=groups)
        self.group_spec = GroupSpec.parse(group_metrics, key="task.group_metrics")  # ConfigError naming the key
        self.save_hyperparameters(ignore=["model", "objectives", "text", "item_groups"])  # objectives: in the run record's config
        self._graph: TrainGraph | None = None
        self._eval_embeddings: tuple[Tensor, Tensor] | None = None
        self.sampling = dict(sampling) if sampling else None
        self.test_curve = test_curve
        self._lazy: LazyRowAdam | None = None  # row-sparse Adam of the ID table (sampling.row_updates)
        self._lazy_rows: tuple[Tensor, Tensor] | None = None
        self._sampler: NeighborSampler | None = None
        self._sample_generator: torch.Generator | None = None
        self.scorer_spec = dict(scorer or {})
        try:
            self.scorer_kind = scorer_kind(self.scorer_spec)
        except ValueError as err:  # it names the task.scorer key
            raise ConfigError(str(err)) from None
        self.scorer: nn.Module = DotScorer()  # an MLP scorer is built by attach_graph, once its input width is known
        check_knobs(self, type(self).training_step is RecommendationTask.training_step)
        if self.sampling is not None:
            self._lazy = check_sampling(self)
        self._negatives: NegativeSampler | None = None  # built by attach_graph unless the default draw suffices
        self._negative_generator: torch.Generator | None = None

    # -------------------------------------------------------------- graph plumbing
    def attach_graph(self, graph: TrainGraph) -> None:
        """The training graph models propagate over (kept out of the checkpoint: it is data). Objectives
        that own parameters shaped by the model's outputs create them here (``Objective.bind``)."""
        self._graph = graph
        if self.scorer_kind != "dot" and isinstance(self.scorer, DotScorer):
            with torch.no_grad():  # the representations' width (NGCF's concatenated readout is wider than D)
                width = self.model(graph)[0].shape[-1]
            self.scorer = build_scorer(self.scorer_spec, width)
        if self.group_spec.enabled:  # groups come from training degrees, known only with the graph
            for evaluator in (self.val_evaluator, self.test_evaluator):
                evaluator.add_graph_groups(self.group_spec, graph.item_degree, graph.user_degree)
        for objective in self.objectives.values():
            objective.bind(self.model, graph)
        if self.sampling is not None:
            if type(graph) is not TrainGraph:
                raise ConfigError(f"task.sampling: the data's {type(graph).__name__} carries more than user-item edges; sample plain interaction graphs only")
            self._sampler = NeighborSampler(graph, self.sampling["fanouts"])
        if self.knobs.draws_negatives:
            self._negatives = self.knobs.build_sampler(graph)

    def _draw_negatives(self, batch: TrainBatch) -> tuple[TrainBatch, Tensor | None]:
        """``TrainingKnobs.draw`` from the task's own generator (seeded by the run's seed, per rank)."""
        assert self._negatives is not None
        if self._negative_generator is None:
            self._negative_generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))) + self.global_rank)
        return self.knobs.draw(self._negatives, batch, self._negative_generator)

    @property
    def graph(self) -> TrainGraph:
        if self._graph is None:
            raise RuntimeError("RecommendationTask.attach_graph(datamodule.train_graph) was not called")
        if self._graph.edge_index.device != self.device:
            self._graph = self._graph.to(self.device)
        return self._graph

    # -------------------------------------------------------------- training
    def _bpr_pass(self, graph: TrainGraph) -> tuple[Tensor, Tensor, list[Tensor] | None]:
        """The pass BPR scores: users [U, D], items [I, D] and, when an objective needs it, the per-layer list."""
        # XSimGCL's objective perturbs the BPR pass itself (and contrasts its layers).
        eps = max((o.main_perturb_eps for o in self.objectives.values()), default=0.0)
        if not isinstance(self.model, GraphRecommender) or (eps == 0 and not any(o.needs_layers for o in self.objectives.values())):
            user_emb, item_emb = self.model(graph)  # graph models: GraphRecommender.embed, fused where the model has it
            return user_emb, item_emb, None
        layers = self.model.propagate(graph, perturb_eps=eps)
        user_emb, item_emb = self.model.split(self.model.readout(layers))
        return user_emb, item_emb, layers

    def _batch_rows_pass(self, graph: TrainGraph, batch: TrainBatch) -> tuple[Tensor, Tensor] | None:
        """Users [B, D] and positive + negative items [2B, D] from just the batch's rows of the readout,
        when the model computes those for less (``GraphRecommender.embed_rows``; LightGCN on large
        graphs) and no objective needs the whole graph's outputs; None otherwise."""
        if len(self.objectives) or not isinstance(self.model, GraphRecommender) or type(self.model).embed_rows is GraphRecommender.embed_rows:
            return None
        # A graph whose first batch does not qualify (a small graph: the batch covers most of it) is
        # not tried again, so it skips the per-step unique; the answer is kept with its operators.
        decisions = operator_cache(graph).setdefault("rows_pass_pays", {})
        if decisions.get(id(self.model)) is False:
            return None
        n_u = self.model.num_users
        ids = torch.cat([batch.users, batch.pos_items + n_u, batch.neg_items + n_u])
        rows, inverse = torch.unique(ids, return_inverse=True)
        out = self.model.embed_rows(graph, rows)
        decisions.setdefault(id(self.model), out is not None)
        if out is None:
            return None
        return out.index_select(0, inverse[: len(batch)]), out.index_select(0, inverse[len(batch) :])

    def training_step(self, batch: TrainBatch, batch_idx: int) -> Tensor | None:
        candidates = None
        if self._negatives is not None:
            batch, candidates = self._draw_negatives(batch)
        if self.text is None:
            return self._training_step(batch, batch_idx, candidates)
        # LoRA: this step's items are re-encoded with gradients; the rest come from the bank.
        node_input = self.model.input  # type: ignore[attr-defined]
        node_input.set_live_features("item", self.text.live_features(node_input, torch.cat([batch.pos_items, batch.neg_items])))
        try:
            return self._training_step(batch, batch_idx, candidates)
        finally:
            node_input.set_live_features("item", None)

    def _checked(self, loss: Tensor, batch_idx: int) -> Tensor | None:
        """``loss``, unless it is NaN/inf: then stop (``nonfinite_loss=error``) or skip the batch
        (``None``: Lightning runs no backward and no optimiser step for it). A NaN loss left alone
        turns every weight into NaN at the next Adam step and the run "finishes" with garbage."""
        if bool(torch.isfinite(loss)):
            return loss
        where = f"epoch {self.current_epoch}, step {batch_idx} of the epoch (global step {self.global_step})"
        if self.nonfinite_loss == "skip":
            warnings.warn(f"non-finite training loss ({float(loss.detach())}) at {where}: batch skipped (task.nonfinite_loss=skip)")
            return None
        raise NonFiniteLossError(
            f"non-finite training loss ({float(loss.detach())}) at {where}; check task.lr and the data, or set "
            "task.nonfinite_loss=skip to skip such batches"
        )

    def _sampled_pass(self, batch: TrainBatch) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Sampled training: the batch's users [B, D] and positive + negative items [2B, D], propagated
        over the batch's computation graph only, and the batch's layer-0 rows (three [B, D], for L2)."""
        assert self._sampler is not None and isinstance(self.model, GraphRecommender)
        if self._sample_generator is None:  # seeded by the run's seed (seed_everything), per rank
            self._sample_generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))) + self.global_rank)
        cpu = [t.cpu() for t in (batch.users, batch.pos_items, batch.neg_items)]
        sub = self._sampler.sample(*cpu, generator=self._sample_generator).to(self.device)
        if self._lazy is not None:  # the step's rows as a leaf; on_after_backward updates just them
            ids = torch.cat([sub.user_ids, sub.item_ids + self.model.num_users])
            x0 = self._lazy.gather(ids)
            self._lazy_rows = (ids, x0)
        else:
            x0 = self.model.input_rows(sub.user_ids, sub.item_ids)
        n_u = sub.graph.num_users
        ego = [x0[sub.users], x0[n_u + sub.pos_items], x0[n_u + sub.neg_items]]  # the rows ego_embeddings would gather
        out = self.model.readout(self.model.propagate(sub.graph, x0=x0))
        user_emb, item_emb = torch.split(out, [n_u, sub.graph.num_items])
        return user_emb.index_select(0, sub.users), item_emb.index_select(0, torch.cat([sub.pos_items, sub.neg_items])), ego

    def on_after_backward(self) -> None:
        if self._lazy_rows is not None:
            ids, rows = self._lazy_rows
            self._lazy_rows = None
            if rows.grad is not None:
                self._lazy.step(ids, rows.grad)  # type: ignore[union-attr]

    def on_fit_start(self) -> None:
        if self._lazy is not None and self.trainer.world_size > 1:
            raise ConfigError("task.sampling.row_updates=lazy_adam updates rows outside DDP's gradient sync; use dense under DDP")

    def _training_step(self, batch: TrainBatch, batch_idx: int = 0, candidates: Tensor | None = None) -> Tensor | None:
        """One step. ``batch.neg_items``: [B K] negatives (K = ``num_negatives``), or, with
        ``candidates`` [B, K, M] (hard negatives), picked here from the current embeddings."""
        ego: list[Tensor] | None = None
        if self._sampler is not None:  # objectives are refused with sampling: no graph-level outputs needed
            graph, layers, user_emb, item_emb = None, None, None, None
            u, items, ego = self._sampled_pass(batch)
        else:
            graph = self.graph
            rows_out = self._batch_rows_pass(graph, batch) if candidates is None else None
            if rows_out is not None:
                layers, user_emb, item_emb = None, None, None
                u, items = rows_out
            else:
                user_emb, item_emb, layers = self._bpr_pass(graph)
                if candidates is not None:
                    batch = pick_hard(batch, candidates, user_emb, item_emb, self.scorer)
                # index_select (backward: index_add) is ~2x cheaper on CPU than advanced indexing's index_put.
                u = user_emb.index_select(0, batch.users)
                items = item_emb.index_select(0, torch.cat([batch.pos_items, batch.neg_items]))
        pos = self.scorer.score(u, items[: len(batch)])  # [B]
        if batch.neg_items.numel() == len(batch):
            neg = self.scorer.score(u, items[len(batch) :])  # [B]
        else:
            neg = self.scorer.score(u.unsqueeze(1), items[len(batch) :].view(len(batch), -1, u.size(-1)))  # [B, K]
        bpr = RANKING_LOSSES[self.knobs.loss](pos, neg, self.knobs.softmax_temperature)
        reg = bpr.new_zeros(())
        if self.l2_reg > 0:
            if ego is None:
                ego = self.model.ego_embeddings(batch.users, batch.pos_items, batch.neg_items)
            reg = self.l2_reg * l2_batch_loss(ego)
        terms = [bpr, reg]
        if len(self.objectives):
            ctx = StepContext(self.model, graph, batch, layers, user_emb, item_emb)
            terms += [objective(ctx) for objective in self.objectives.values()]
        loss = terms[0]
        for t in terms[1:]:
            loss = loss + t
        if self._checked(loss, batch_idx) is None:
            return None  # skipped: kept out of the epoch means too
        # Epoch means are accumulated here and logged once per epoch: a self.log call per step costs
        # about as much as a LightGCN step on ml-100k.
        n = len(batch)
        self._train_sums += torch.stack([*(t.detach() * n for t in terms), bpr.new_tensor(float(n))])
        return loss

    def on_train_start(self) -> None:
        # A resumed fit may start inside an epoch (last.ckpt is saved at validation), where
        # on_train_epoch_start does not run for that epoch.
        self._train_sums = torch.zeros(3 + len(self.objectives), device=self.device)
        self._refresh_text()

    def _refresh_text(self) -> None:
        if self.text is not None:
            self.text.refresh(self.model.input)  # type: ignore[attr-defined]

    def on_train_epoch_start(self) -> None:
        self._train_sums = torch.zeros(3 + len(self.objectives), device=self.device)
        for objective in self.objectives.values():
            objective.on_train_epoch_start(self.model, self.graph)

    def on_train_epoch_end(self) -> None:
        sums = self._train_sums
        if self.trainer.world_size > 1:
            sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        means = (sums[:-1] / sums[-1].clamp(min=1)).tolist()
        names = [self.knobs.loss, "l2", *self.objectives.keys()]
        logged = {f"train/{name}": value for name, value in zip(names, means)}
        logged["train/loss"] = sum(means)
        self.log_dict(logged, sync_dist=False)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Also save what the weights belong to (``training.checkpoint.CHECKPOINT_KEY``): the resolved
        run config and the model's class and sizes, so loading can say what differs before a raw
        state-dict mismatch would. Plain containers only: loadable with ``weights_only=True``."""
        super().on_save_checkpoint(checkpoint)
        checkpoint[CHECKPOINT_KEY] = {
            "config": self.run_config,
            "model": f"{type(self.model).__module__}.{type(self.model).__qualname__}",
            "num_users": int(self.model.num_users),
            "num_items": int(self.model.num_items),
        }

    def transfer_batch_to_device(self, batch, device, dataloader_idx):  # typed batches move themselves
        if isinstance(batch, (TrainBatch, EvalBatch)):
            return batch.to(device)
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def configure_optimizers(self):
        # Objectives may own parameters (the text-alignment projection); frozen weights are left out.
        lazy = {id(self._lazy.weight)} if self._lazy is not None else set()  # updated row-wise instead
        params = [p for name, p in self.named_parameters() if p.requires_grad and not name.startswith("text.") and id(p) not in lazy]
        groups = [*self.knobs.param_groups(params, list(self.modules()), self.lr), *self.adapter_param_group(self.lr)]
        trainer = self._trainer
        max_epochs = trainer.max_epochs if trainer is not None else None
        check_every = int(trainer.check_val_every_n_epoch or 1) if trainer is not None else 1
        return self.knobs.optimizers(groups, self.lr, self.weight_decay, max_epochs, check_every)

    # -------------------------------------------------------------- evaluation
    def _start_eval(self) -> None:
        self._refresh_text()
        with torch.no_grad():
            self._eval_embeddings = self.model(self.graph)

    def _eval_step(self, evaluator: FullRankingEvaluator, batch: EvalBatch) -> None:
        assert self._eval_embeddings is not None
        user_emb, item_emb = self._eval_embeddings
        scores = self.scorer.all_items(user_emb[batch.users], item_emb)  # [B, I]
        evaluator.update(scores, batch)

    def _end_eval(self, evaluator: FullRankingEvaluator, split: str) -> dict[str, float]:
        values = evaluator.compute()
        counts = {"num_users": float(evaluator.num_users)}
        counts.update({f"{group}/num_users": float(n) for group, n in evaluator.group_num_users.items()})
        users = torch.tensor(list(counts.values()), dtype=torch.float64, device=self.device)
        if self.trainer.world_size > 1:
            users = self.trainer.strategy.reduce(users, reduce_op="sum")
        evaluator.reset()
        self._eval_embeddings = None
        logged = {f"{split}/{name}": value for name, value in values.items()}
        self.log_dict(logged, sync_dist=False)  # already reduced by the metrics
        for name, value in zip(counts, users):
            self.log(f"{split}/{name}", value.float(), sync_dist=False)
        return logged

    def on_validation_epoch_start(self) -> None:
        self._start_eval()

    def validation_step(self, batch: EvalBatch, batch_idx: int) -> None:
        self._eval_step(self.val_evaluator, batch)

    def on_validation_epoch_end(self) -> None:
        fitting = self.trainer.state.fn == "fit" and not self.trainer.sanity_checking
        if self.test_curve and fitting:
            self._log_test_curve()
        self._end_eval(self.val_evaluator, "val")

    def _log_test_curve(self) -> None:
        """Test metrics of the current weights (the validation pass's embeddings), as ``curve/test/*``.
        The test loader shards users over ranks like Lightning's, and the metrics sum across ranks."""
        for batch in self.trainer.datamodule.test_dataloader():  # type: ignore[attr-defined]
            self._eval_step(self.test_evaluator, self.transfer_batch_to_device(batch, self.device, 0))
        self._end_eval(self.test_evaluator, "curve/test")  # the same compute, reset and logging as val/test

    def on_test_epoch_start(self) -> None:
        self._start_eval()

    def test_step(self, batch: EvalBatch, batch_idx: int) -> None:
        self._eval_step(self.test_evaluator, batch)

    def on_test_epoch_end(self) -> None:
        self._end_eval(self.test_evaluator, "test")
