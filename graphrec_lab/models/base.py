"""The one interface between graph models and the training task.

A ``Recommender`` maps the training graph to one embedding per user and per item; a score is their
dot product. Models know nothing about datasets, configs or losses: the task composes those.
"""

from __future__ import annotations

from torch import Tensor, nn

EMBEDDING_INITS = ("normal", "xavier_normal", "xavier_uniform")


def init_embedding(weight: Tensor, init: str, std: float) -> None:
    """Initialise an embedding table: ``normal`` (std ``std``; LightGCN-PyTorch), ``xavier_normal``
    (RecBole) or ``xavier_uniform`` (the LightGCN paper's TensorFlow code)."""
    if init == "normal":
        nn.init.normal_(weight, std=std)
    elif init == "xavier_normal":
        nn.init.xavier_normal_(weight)
    elif init == "xavier_uniform":
        nn.init.xavier_uniform_(weight)
    else:
        raise ValueError(f"init={init!r}: expected one of {EMBEDDING_INITS}")

from graphrec_lab.data.train_graph import TrainGraph


class Recommender(nn.Module):
    """Base class. Subclasses implement ``forward`` and, when trainable, ``ego_embeddings``."""

    def __init__(self, num_users: int, num_items: int) -> None:
        super().__init__()
        self.num_users = num_users
        self.num_items = num_items

    def forward(self, graph: TrainGraph) -> tuple[Tensor, Tensor]:
        """Final embeddings: users [U, D] and items [I, D].

        Trainable models also accept ``perturb_eps: float = 0.0`` and ``generator`` (SimGCL-style noise
        views); graph models (``gnn.base.GraphRecommender``) add ``propagate`` (per-layer outputs),
        ``readout`` and ``drop_edges``/``drop_nodes`` (graph views)."""
        raise NotImplementedError

    def ego_embeddings(self, users: Tensor, pos_items: Tensor, neg_items: Tensor) -> list[Tensor]:
        """The layer-0 (free) embeddings of a batch, [B, D] each, that L2 regularisation acts on."""
        raise NotImplementedError

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.parameters())
