"""DP-SGD for MF-BPR with the training interaction as the privacy unit, accounted by Opacus.

Each step draws a Poisson sample of the training interactions (each independently with
probability ``q = 1 / steps_per_epoch``, the sampling Opacus's accountants analyse), pairs every
sampled interaction (u, i) with a negative item drawn uniformly from all items (so a triple depends
on no other interaction), computes each triple's gradient in closed form, clips it to L2 norm
``max_grad_norm``, sums, adds Gaussian noise of std ``noise_multiplier * max_grad_norm`` to every
coordinate of both embedding tables and divides by the expected sample size (Abadi et al., CCS
2016; Opacus's ``DPOptimizer`` does the same with dense per-sample gradients, which for embedding
tables would cost [B, rows, D] memory). The optimiser (the task's Adam) only post-processes the
noisy gradient. Opacus's ``RDPAccountant`` tracks (noise multiplier, sample rate) per step; its
epsilon at ``delta`` is logged per epoch as ``privacy/epsilon`` and, for the selected checkpoint,
lands in the run's metrics and record.

Per triple (u, i, j), with ``x = e_u . (e_i - e_j)`` and the loss ``softplus(-x)`` plus the task's
L2 term ``l2_reg / 2 (|e_u|^2 + |e_i|^2 + |e_j|^2)``:
``g_u = -sigmoid(-x) (e_i - e_j) + l2 e_u``, ``g_i = -sigmoid(-x) e_u + l2 e_i``,
``g_j = sigmoid(-x) e_u + l2 e_j`` (``g_i + g_j`` on one row when ``i == j``).

Only ``MatrixFactorization`` with ``feature_mode=id`` is supported: its parameters are exactly the
two tables, so every parameter's gradient is clipped and noised. Graph models couple examples
through propagation (one interaction changes many nodes' embeddings), so per-example clipping does
not bound an interaction's influence there; the edge-DP release (``data.privacy.edge_dp``) is the
mechanism for them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from graphrec_lab.config import ConfigError
from graphrec_lab.data.sampling import TrainBatch
from graphrec_lab.models.mf import MatrixFactorization
from graphrec_lab.training.task import RecommendationTask

CONFIG_KEY = "task.dp"
_KNOWN = ("noise_multiplier", "max_grad_norm", "delta", "target_epsilon", "accountant")


class DPConfigError(ConfigError):
    """A bad ``task.dp`` setting, or a run DP-SGD does not support (the message names the key)."""


@dataclass(frozen=True)
class DPSGDConfig:
    """``task.dp``: ``noise_multiplier`` (sigma) or ``target_epsilon`` (sigma solved by Opacus for
    the run's ``trainer.max_epochs``), ``max_grad_norm`` (C), ``delta``, ``accountant`` (``rdp`` |
    ``prv`` | ``gdp``: Opacus's accountants)."""

    noise_multiplier: float | None = None
    max_grad_norm: float = 1.0
    delta: float = 1e-5
    target_epsilon: float | None = None
    accountant: str = "rdp"

    def __post_init__(self) -> None:
        if (self.noise_multiplier is None) == (self.target_epsilon is None):
            raise DPConfigError(f"{CONFIG_KEY}: set exactly one of noise_multiplier and target_epsilon")
        if self.noise_multiplier is not None and not self.noise_multiplier > 0:
            raise DPConfigError(f"{CONFIG_KEY}.noise_multiplier={self.noise_multiplier}: must be > 0")
        if self.target_epsilon is not None and not self.target_epsilon > 0:
            raise DPConfigError(f"{CONFIG_KEY}.target_epsilon={self.target_epsilon}: must be > 0")
        if not self.max_grad_norm > 0:
            raise DPConfigError(f"{CONFIG_KEY}.max_grad_norm={self.max_grad_norm}: must be > 0")
        if not 0 < self.delta < 1:
            raise DPConfigError(f"{CONFIG_KEY}.delta={self.delta}: must be in (0, 1)")
        if self.accountant not in ("rdp", "prv", "gdp"):
            raise DPConfigError(f"{CONFIG_KEY}.accountant={self.accountant!r}: expected rdp, prv or gdp")

    @classmethod
    def from_mapping(cls, value: Mapping[str, Any] | DPSGDConfig) -> DPSGDConfig:
        if isinstance(value, DPSGDConfig):
            return value
        if not isinstance(value, Mapping):
            raise DPConfigError(f"{CONFIG_KEY}={value!r}: expected a mapping {{noise_multiplier, max_grad_norm, delta}}")
        unknown = sorted(set(value) - set(_KNOWN))
        if unknown:
            raise DPConfigError(f"{CONFIG_KEY}.{unknown[0]}: unknown key (known: {list(_KNOWN)})")
        return cls(**{k: v for k, v in value.items() if v is not None})


def make_accountant(name: str):
    """A fresh Opacus accountant (``rdp``, ``prv`` or ``gdp``)."""
    from opacus.accountants import create_accountant

    return create_accountant(mechanism=name)


def per_example_clipped_grads(
    user_w: Tensor, item_w: Tensor, users: Tensor, pos: Tensor, neg: Tensor, l2_reg: float, max_grad_norm: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Summed clipped per-triple gradients of MF-BPR: (user grad [U, D], item grad [I, D], per-triple
    loss [B], per-triple unclipped norm [B])."""
    eu, ei, ej = user_w[users], item_w[pos], item_w[neg]
    x = (eu * (ei - ej)).sum(-1)
    w = torch.sigmoid(-x)[:, None]  # -d softplus(-x) / dx
    g_u = -w * (ei - ej) + l2_reg * eu
    g_i = -w * eu + l2_reg * ei
    g_j = w * eu + l2_reg * ej
    # i == j puts g_i + g_j on one row; its norm is computed directly (expanding the square cancels
    # to a tiny, possibly negative, number).
    items_sq = torch.where(pos == neg, (g_i + g_j).pow(2).sum(-1), g_i.pow(2).sum(-1) + g_j.pow(2).sum(-1))
    norm = (g_u.pow(2).sum(-1) + items_sq).sqrt()
    factor = (max_grad_norm / (norm + 1e-6)).clamp(max=1.0)[:, None]  # Opacus's clipping factor
    grad_u = torch.zeros_like(user_w).index_add_(0, users, factor * g_u)
    grad_i = torch.zeros_like(item_w).index_add_(0, pos, factor * g_i).index_add_(0, neg, factor * g_j)
    loss = torch.nn.functional.softplus(-x) + 0.5 * l2_reg * (eu.pow(2).sum(-1) + ei.pow(2).sum(-1) + ej.pow(2).sum(-1))
    return grad_u, grad_i, loss, norm


class DPSGDTask(RecommendationTask):
    """``RecommendationTask`` trained by DP-SGD (see the module docstring); evaluation unchanged.

    Args (besides those of ``RecommendationTask``):
        dp: ``DPSGDConfig`` fields as a mapping (``noise_multiplier`` or ``target_epsilon``,
            ``max_grad_norm``, ``delta``, ``accountant``).
    """

    def __init__(self, dp: Mapping[str, Any] | DPSGDConfig | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if dp is None:
            raise DPConfigError(f"{CONFIG_KEY}: missing (e.g. {{noise_multiplier: 1.0, max_grad_norm: 1.0, delta: 1e-5}})")
        self.dp = DPSGDConfig.from_mapping(dp)
        self._check_supported()
        self.automatic_optimization = False
        self.accountant = make_accountant(self.dp.accountant)
        self.noise_multiplier: float | None = self.dp.noise_multiplier
        self.sample_rate: float | None = None
        self._edges: tuple[Tensor, Tensor] | None = None
        self._generator = torch.Generator()

    def _check_supported(self) -> None:
        model = self.model
        if type(model) is not MatrixFactorization or model.user_embedding is None or model.item_embedding is None:
            raise DPConfigError(
                f"{CONFIG_KEY}: DP-SGD supports model=bprmf (MatrixFactorization with feature_mode=id); got "
                f"{type(model).__name__}{'' if type(model) is not MatrixFactorization else ' with item/user features'}"
            )
        tables = {id(model.user_embedding.weight), id(model.item_embedding.weight)}
        if {id(p) for p in model.parameters() if p.requires_grad} != tables:
            raise DPConfigError(f"{CONFIG_KEY}: the model has parameters besides its two embedding tables")
        if self.sampling is not None:
            raise DPConfigError(f"{CONFIG_KEY}: task.sampling must be null under DP-SGD")
        if len(self.objectives) or self.text is not None:
            raise DPConfigError(f"{CONFIG_KEY}: task.objectives and text are not supported under DP-SGD")

    # -------------------------------------------------------------- sampling and accounting
    def _training_edges(self) -> tuple[Tensor, Tensor]:
        """The interactions DP-SGD samples from: users/items [E] of the attached training graph."""
        if self._edges is None:
            graph = self.graph
            half = graph.edge_index.shape[1] // 2  # from_edges: user->item first, then the reverse
            src, dst = graph.edge_index[:, :half]
            self._edges = (src, dst - graph.num_users)
        return self._edges

    def on_train_start(self) -> None:
        super().on_train_start()
        if self.trainer.world_size > 1:
            raise DPConfigError(f"{CONFIG_KEY}: DP-SGD runs on one process (trainer.devices=1, no DDP)")
        steps = int(self.trainer.num_training_batches)
        if not math.isfinite(steps) or steps < 1:
            raise DPConfigError(f"{CONFIG_KEY}: the training loader has no length; cannot set the sample rate")
        self.sample_rate = 1.0 / steps
        # Seeded by the run's seed (seed_everything), like the task's other samplers.
        self._generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
        if self.dp.target_epsilon is not None and self.noise_multiplier is None:
            from opacus.accountants.utils import get_noise_multiplier

            epochs = int(self.trainer.max_epochs)
            if epochs < 1:
                raise DPConfigError(f"{CONFIG_KEY}.target_epsilon needs a finite trainer.max_epochs")
            self.noise_multiplier = float(
                get_noise_multiplier(
                    target_epsilon=self.dp.target_epsilon, target_delta=self.dp.delta, sample_rate=self.sample_rate,
                    steps=steps * epochs, accountant=self.dp.accountant,
                )
            )  # fmt: skip

    def epsilon(self) -> float:
        """The accountant's epsilon at ``delta`` for the steps taken so far (0 before any step)."""
        if not self.accountant.history:
            return 0.0
        return float(self.accountant.get_epsilon(delta=self.dp.delta))

    def training_step(self, batch: TrainBatch, batch_idx: int) -> Tensor:
        assert self.sample_rate is not None and self.noise_multiplier is not None
        users_all, items_all = self._training_edges()
        n_edges = users_all.numel()
        gen = self._generator
        take = (torch.rand(n_edges, generator=gen) < self.sample_rate).nonzero().flatten().to(users_all.device)
        users, pos = users_all[take], items_all[take]
        neg = torch.randint(0, self.model.num_items, (take.numel(),), generator=gen).to(users_all.device)
        user_w, item_w = self.model.user_embedding.weight, self.model.item_embedding.weight
        c, sigma = self.dp.max_grad_norm, self.noise_multiplier
        with torch.no_grad():
            grad_u, grad_i, loss, _ = per_example_clipped_grads(user_w, item_w, users, pos, neg, self.l2_reg, c)
            expected = self.sample_rate * n_edges  # Opacus divides by the expected batch size too
            grad_u += torch.randn(grad_u.shape, generator=gen).to(grad_u.device) * (sigma * c)
            grad_i += torch.randn(grad_i.shape, generator=gen).to(grad_i.device) * (sigma * c)
            user_w.grad, item_w.grad = grad_u / expected, grad_i / expected
        opt = self.optimizers()
        opt.step()
        opt.zero_grad(set_to_none=True)
        self.accountant.step(noise_multiplier=sigma, sample_rate=self.sample_rate)
        n = take.numel()
        if n:
            bpr = torch.nn.functional.softplus(-((user_w[users] * (item_w[pos] - item_w[neg])).sum(-1))).mean().detach()
            self._train_sums += torch.stack([bpr * n, (loss.mean().detach() - bpr) * n, bpr.new_tensor(float(n))])
        return loss.mean().detach() if n else user_w.new_zeros(())

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        self.log("privacy/epsilon", torch.tensor(self.epsilon(), dtype=torch.float64), sync_dist=False)

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        # Logged with validation so that trainer.validate on the selected checkpoint reports it.
        self.log_dict(self.privacy_metrics(), sync_dist=False)

    def privacy_metrics(self) -> dict[str, Tensor]:
        """The privacy spent so far and its settings (float64: the epsilon is reported unrounded)."""
        values = {
            "privacy/epsilon": self.epsilon(),
            "privacy/delta": float(self.dp.delta),
            "privacy/noise_multiplier": float(self.noise_multiplier or 0.0),
            "privacy/max_grad_norm": float(self.dp.max_grad_norm),
            "privacy/sample_rate": float(self.sample_rate or 0.0),
            "privacy/steps": float(sum(n for _, _, n in self.accountant.history) if self.accountant.history else 0),
        }
        return {k: torch.tensor(v, dtype=torch.float64) for k, v in values.items()}

    # -------------------------------------------------------------- checkpoints carry the accountant
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["dp_sgd"] = {
            "history": list(self.accountant.history), "noise_multiplier": self.noise_multiplier, "sample_rate": self.sample_rate,
        }  # fmt: skip

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("dp_sgd")
        if state is not None:
            self.accountant.history = [tuple(h) for h in state["history"]]
            self.noise_multiplier = state["noise_multiplier"]
            self.sample_rate = state["sample_rate"]
