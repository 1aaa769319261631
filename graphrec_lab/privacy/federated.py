"""Federated training (FedAvg) simulated in one process: user embeddings never leave their client.

Users are split into ``clients`` seeded groups; a client holds its users' training interactions (the
edge-DP release where one is configured) and their embedding rows. One Lightning epoch is one
communication round:

1. the server samples ``max(1, round(fraction_fit * clients))`` clients (seeded);
2. each sampled client starts from the server's shared parameters (item embeddings and every other
   parameter that is not a user row), trains ``local_epochs`` passes over its own BPR triples with a
   fresh optimiser of the task's kind and learning rate, and keeps its users' rows;
3. it sends the update of the shared parameters, optionally clipped to L2 norm ``update_clip`` and
   with Gaussian noise of std ``update_noise * update_clip`` added to every coordinate (local DP on
   the update, Gaussian mechanism);
4. the server averages the clients' shared parameters weighted by their number of training
   interactions with Flower's FedAvg aggregation (``flwr.server.strategy.aggregate.aggregate``).

Clients run one after another in this process (Flower's simulation engine needs Ray; the strategy's
aggregation is Flower's own). Evaluation is the task's: the full-ranking evaluator over the server's
model on the whole training graph.

**LightGCN's neighbourhood.** A client propagates over the graph of its own users' interactions only
(its users, the items they touched, the server's item embeddings as those items' layer-0 input); it
never sees other clients' edges. This is an approximation: an item's propagated embedding on a client
aggregates only that client's users (FedPerGNN expands the local graph with neighbours' pseudo-
interactions; not done here). With one client the client graph is the whole training graph.

**Relationship to centralised training.** A client's optimiser is created afresh each round, so one
client with full participation and ``local_epochs=1`` runs exactly the centralised epoch's batches
and steps, with the optimiser state reset at every round: for one round it equals centralised
training of one epoch, to float tolerance (tests/test_privacy_federated.py checks both).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from graphrec_lab.config import ConfigError
from graphrec_lab.data.sampling import BPRTrainBatches, TrainBatch
from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.models.gnn import LightGCN
from graphrec_lab.models.mf import MatrixFactorization
from graphrec_lab.training.task import RecommendationTask

CONFIG_KEY = "task.federated"
_KNOWN = ("clients", "fraction_fit", "local_epochs", "update_clip", "update_noise", "seed")


class FederatedConfigError(ConfigError):
    """A bad ``task.federated`` setting, or a run federated training does not support (names the key)."""


@dataclass(frozen=True)
class FederatedConfig:
    """``task.federated``: ``clients`` (user groups), ``fraction_fit`` (share of clients per round),
    ``local_epochs`` (passes over a client's data per round), ``update_clip`` / ``update_noise``
    (local Gaussian DP on the shared-parameter update; null: off), ``seed`` (partition and sampling;
    null: the run's seed)."""

    clients: int = 10
    fraction_fit: float = 1.0
    local_epochs: int = 1
    update_clip: float | None = None
    update_noise: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        def bad(key: str, msg: str) -> FederatedConfigError:
            return FederatedConfigError(f"{CONFIG_KEY}.{key}={getattr(self, key)!r}: {msg}")

        if not isinstance(self.clients, int) or self.clients < 1:
            raise bad("clients", "expected an integer >= 1")
        if not (isinstance(self.fraction_fit, (int, float)) and 0 < self.fraction_fit <= 1):
            raise bad("fraction_fit", "expected a number in (0, 1]")
        if not isinstance(self.local_epochs, int) or self.local_epochs < 1:
            raise bad("local_epochs", "expected an integer >= 1")
        if self.update_clip is not None and not self.update_clip > 0:
            raise bad("update_clip", "expected a number > 0 (or null: no clipping)")
        if not self.update_noise >= 0:
            raise bad("update_noise", "expected a number >= 0")
        if self.update_noise > 0 and self.update_clip is None:
            raise bad("update_noise", f"noise needs {CONFIG_KEY}.update_clip (the noise std is update_noise * update_clip)")

    @classmethod
    def from_mapping(cls, value: Mapping[str, Any] | FederatedConfig | None) -> FederatedConfig:
        if isinstance(value, FederatedConfig):
            return value
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise FederatedConfigError(f"{CONFIG_KEY}={value!r}: expected a mapping of {list(_KNOWN)}")
        unknown = sorted(set(value) - set(_KNOWN))
        if unknown:
            raise FederatedConfigError(f"{CONFIG_KEY}.{unknown[0]}: unknown key (known: {list(_KNOWN)})")
        return cls(**{k: v for k, v in value.items() if v is not None})


def partition_users(num_users: int, clients: int, seed: int) -> Tensor:
    """Client of every user [U] (int64): a seeded permutation cut into ``clients`` near-equal groups."""
    perm = torch.randperm(num_users, generator=torch.Generator().manual_seed(seed))
    owner = torch.empty(num_users, dtype=torch.long)
    owner[perm] = torch.arange(num_users) * clients // num_users
    return owner


def fedavg(results: list[tuple[list[np.ndarray], int]]) -> list[np.ndarray]:
    """Flower's FedAvg aggregation: the example-weighted mean of the clients' parameter lists."""
    try:
        from flwr.server.strategy.aggregate import aggregate
    except ImportError as err:  # pragma: no cover - the extra is part of the test install
        raise FederatedConfigError(f"{CONFIG_KEY}: needs Flower: pip install 'graphrec-lab[federated]'") from err
    return aggregate(results)


class SharedParameters:
    """What the server may see of a model: every parameter except user rows.

    MF: the item table (its user table is private). LightGCN: the item rows ``[U:]`` of its shared
    ``[U + I, D]`` table. ``get`` returns NumPy arrays (Flower's ``NDArrays``); ``set`` writes them back.
    """

    def __init__(self, model: torch.nn.Module, num_users: int) -> None:
        self.views: list[tuple[str, Tensor, slice | None]] = []
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            if name.endswith("user_embedding.weight"):
                continue  # private: stays on the client
            if name.endswith("input.embedding.weight"):
                self.views.append((name, p, slice(num_users, None)))  # item rows of the shared table
            else:
                self.views.append((name, p, None))

    def get(self) -> list[np.ndarray]:
        return [(p.detach()[s] if s is not None else p.detach()).cpu().numpy().copy() for _, p, s in self.views]

    def set(self, arrays: list[np.ndarray]) -> None:
        with torch.no_grad():
            for (_, p, s), a in zip(self.views, arrays):
                t = torch.as_tensor(a, dtype=p.dtype, device=p.device)
                (p[s] if s is not None else p).copy_(t)


def private_update(update: list[np.ndarray], clip: float | None, noise: float, gen: np.random.Generator) -> list[np.ndarray]:
    """The client's shared-parameter update (client minus server), clipped to L2 norm ``clip`` over
    all arrays and with N(0, (noise * clip)^2) added to every coordinate."""
    if clip is None:
        return update
    norm = math.sqrt(sum(float((u.astype(np.float64) ** 2).sum()) for u in update))
    scale = min(1.0, clip / (norm + 1e-12))
    return [(u * scale + (gen.normal(0.0, noise * clip, u.shape) if noise > 0 else 0.0)).astype(u.dtype) for u in update]


class FederatedTask(RecommendationTask):
    """``RecommendationTask`` trained by simulated FedAvg rounds (module docstring); evaluation unchanged.

    Args (besides those of ``RecommendationTask``):
        federated: ``FederatedConfig`` fields as a mapping.
    """

    SUPPORTED = (MatrixFactorization, LightGCN)

    def __init__(self, federated: Mapping[str, Any] | FederatedConfig | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.federated = FederatedConfig.from_mapping(federated)
        model = self.model
        if type(model) not in self.SUPPORTED or not getattr(model.input, "ids_only", True):
            raise FederatedConfigError(
                f"{CONFIG_KEY}: federated training supports model=bprmf and model=lightgcn with feature_mode=id; got "
                f"{type(model).__name__}"
            )
        if self.sampling is not None or len(self.objectives) or self.text is not None or self._uses_task_loop_knobs():
            raise FederatedConfigError(
                f"{CONFIG_KEY}: task.sampling, task.objectives, text, task.lr_schedule and a non-uniform task.negative_sampler or task.num_negatives > 1 are not supported"
            )
        if self.federated.clients > model.num_users:
            raise FederatedConfigError(
                f"{CONFIG_KEY}.clients={self.federated.clients}: more clients than users ({model.num_users})"
            )
        self.automatic_optimization = False
        self._clients: list[tuple[BPRTrainBatches, TrainGraph | None, Tensor, int]] = []
        self._round_gen = torch.Generator()
        self._noise_gen = np.random.default_rng(0)
        self._uploaded = 0  # floats sent to the server so far
        self._clients_per_round = 0

    def _uses_task_loop_knobs(self) -> bool:
        # Non-uniform samplers and LR schedules live in the task's own loop, which the rounds replace.
        return self.knobs.negative_sampler != "uniform" or self.knobs.num_negatives != 1 or self.knobs.lr_schedule != "none"

    # -------------------------------------------------------------- clients
    def on_train_start(self) -> None:
        super().on_train_start()
        if self.trainer.world_size > 1:
            raise FederatedConfigError(f"{CONFIG_KEY}: the simulation runs on one process (trainer.devices=1, no DDP)")
        graph = self.graph
        dm = self.trainer.datamodule
        batch_size = int(getattr(dm, "train_batch_size", 2048))
        sampler_seed = int(getattr(dm, "sampler_seed", 0))
        seed = self.federated.seed if self.federated.seed is not None else int(torch.randint(0, 2**62, (1,)))
        self._round_gen.manual_seed(seed)
        self._noise_gen = np.random.default_rng(seed)
        half = graph.edge_index.shape[1] // 2  # TrainGraph.from_edges: user->item edges first, in input order
        users, items = graph.edge_index[0, :half].cpu(), (graph.edge_index[1, :half] - graph.num_users).cpu()
        owner = partition_users(graph.num_users, self.federated.clients, seed)
        loops = bool(getattr(dm, "isolated_self_loops", False))
        self._clients = []
        for c in range(self.federated.clients):
            mask = owner[users] == c
            cu, ci = users[mask], items[mask]
            batches = BPRTrainBatches(cu, ci, graph.num_users, graph.num_items, batch_size, sampler_seed + 7919 * c)
            if self.federated.clients == 1:
                sub = graph  # the whole training graph: exactly the centralised propagation
            elif isinstance(self.model, LightGCN):
                sub = TrainGraph.from_edges(cu, ci, graph.num_users, graph.num_items, loops).to(self.device)
            else:
                sub = None  # MF does not propagate
            self._clients.append((batches, sub, torch.nonzero(owner == c).flatten().to(self.device), int(mask.sum())))

    def _local_optimizer(self) -> torch.optim.Optimizer:
        built = self.configure_optimizers()
        if isinstance(built, Mapping):
            return built["optimizer"]
        if isinstance(built, (list, tuple)):
            first = built[0]
            return first[0] if isinstance(first, (list, tuple)) else first
        return built

    def _train_client(self, c: int) -> None:
        batches, sub, _, _ = self._clients[c]
        opt = self._local_optimizer()
        full = self._graph
        self._graph = sub if sub is not None else full
        try:
            for _ in range(self.federated.local_epochs):
                for step, batch in enumerate(batches):
                    loss = self._training_step(batch.to(self.device), step)
                    if loss is None:
                        continue
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
        finally:
            self._graph = full

    # -------------------------------------------------------------- one round per epoch
    def training_step(self, batch: TrainBatch, batch_idx: int) -> Tensor | None:
        if batch_idx > 0:
            return None  # the round ran at the epoch's first batch; the loader's batches are not used
        shared = SharedParameters(self.model, self.model.num_users)
        server = shared.get()
        user_rows = self._user_rows()
        start_users = user_rows.detach().clone()
        n = self.federated.clients
        k = max(1, round(self.federated.fraction_fit * n))
        chosen = torch.randperm(n, generator=self._round_gen)[:k].sort().values.tolist()
        results: list[tuple[list[np.ndarray], int]] = []
        kept = start_users.clone()
        for c in chosen:
            shared.set(server)
            with torch.no_grad():
                user_rows.copy_(start_users)
            self._train_client(c)
            _, _, own, examples = self._clients[c]
            kept[own] = user_rows.detach()[own]  # the client's users keep their rows; nothing else of it survives
            update = [a - b for a, b in zip(shared.get(), server)]
            update = private_update(update, self.federated.update_clip, self.federated.update_noise, self._noise_gen)
            results.append(([b + u for b, u in zip(server, update)], max(examples, 1)))
            self._uploaded += sum(int(u.size) for u in update)
        shared.set(fedavg(results))
        with torch.no_grad():
            user_rows.copy_(kept)
        self._clients_per_round = k
        # One step of the task's own optimiser with no gradients: it changes no weight but counts the
        # round in trainer.global_step, without which checkpointing skips every validation.
        for p in self.parameters():
            p.grad = None
        self.optimizers().step()
        return None

    def federated_metrics(self) -> dict[str, Tensor]:
        """Clients per round and the floats clients have uploaded up to this model (float64)."""
        values = {"federated/clients_per_round": float(self._clients_per_round), "federated/uploaded_floats": float(self._uploaded)}
        return {k: torch.tensor(v, dtype=torch.float64) for k, v in values.items()}

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        # Logged with validation so that trainer.validate on the selected checkpoint reports it.
        self.log_dict(self.federated_metrics(), sync_dist=False)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["federated"] = {"uploaded": self._uploaded, "clients_per_round": self._clients_per_round}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("federated")
        if state is not None:
            self._uploaded, self._clients_per_round = int(state["uploaded"]), int(state["clients_per_round"])

    def _user_rows(self) -> Tensor:
        """The model's user embedding rows [U, D] (a view into its parameter)."""
        inp = self.model.input
        if getattr(inp, "user_embedding", None) is not None:
            return inp.user_embedding.weight
        return inp.embedding.weight[: self.model.num_users]
