"""The in-memory types of the data layer.

``RawInteractions`` is what a reader returns: every interaction of a dataset with dense integer ids,
before filtering and splitting. ``InteractionGraph`` is what every model, DataModule and evaluator
consumes: the split user-item graph plus optional text, side features and user-user edges. Its
invariants (ids in range, no validation or test edge inside the training graph) are checked when it
is built, so a leaky split cannot reach a model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
from torch import Tensor

SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST = 0, 1, 2


class DataValidationError(ValueError):
    """An interaction graph or raw table violates an invariant (ids out of range, leakage...)."""


@dataclass
class RawInteractions:
    """All interactions of one dataset as read from its files, ids already dense.

    Shapes: every per-interaction tensor is ``[N]``. ``split`` holds ``SPLIT_TRAIN/VAL/TEST`` where
    the files carry their own split (Gowalla's train.txt/test.txt), else ``None``.
    """

    user: Tensor  # [N] int64 in [0, num_users)
    item: Tensor  # [N] int64 in [0, num_items)
    num_users: int
    num_items: int
    rating: Tensor | None = None  # [N] float32
    timestamp: Tensor | None = None  # [N] int64 (unix seconds or any monotone clock)
    split: Tensor | None = None  # [N] int8
    user_tokens: list[str] | None = None  # raw id of each dense user id
    item_tokens: list[str] | None = None  # raw id of each dense item id
    item_text: list[str | None] | None = None  # [num_items]
    user_text: list[str | None] | None = None  # [num_users]
    item_features: Tensor | None = None  # [num_items, F]
    user_features: Tensor | None = None  # [num_users, F]
    social_edges: Tensor | None = None  # [2, S] user-user
    source: str = "<memory>"

    def __post_init__(self) -> None:
        n = self.user.numel()
        for name in ("item", "rating", "timestamp", "split"):
            value = getattr(self, name)
            if value is not None and value.numel() != n:
                raise DataValidationError(
                    f"{self.source}: '{name}' has {value.numel()} entries, 'user' has {n}"
                )
        _check_range(self.user, self.num_users, "user id", self.source)
        _check_range(self.item, self.num_items, "item id", self.source)

    def __len__(self) -> int:
        return self.user.numel()

    def select(self, mask: Tensor) -> RawInteractions:
        """The same table restricted to the rows where ``mask`` ([N] bool) is true."""
        kwargs = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("user", "item", "rating", "timestamp", "split"):
            if kwargs[name] is not None:
                kwargs[name] = kwargs[name][mask]
        return RawInteractions(**kwargs)


@dataclass
class EdgeSet:
    """One split's user-item edges. ``users``/``items``: [E] int64; optional [E] side columns."""

    users: Tensor
    items: Tensor
    timestamps: Tensor | None = None
    ratings: Tensor | None = None

    def __len__(self) -> int:
        return self.users.numel()

    def keys(self, num_items: int) -> Tensor:
        """One int64 key per edge, ``user * num_items + item``: [E]."""
        return self.users * num_items + self.items


@dataclass
class InteractionGraph:
    """A split user-item interaction graph.

    ``train`` is the only part a model may see while fitting; ``val`` selects models; ``test`` is
    read once, with the selected checkpoint.
    """

    num_users: int
    num_items: int
    train: EdgeSet
    val: EdgeSet
    test: EdgeSet
    name: str = "graph"
    item_text: list[str | None] | None = None
    user_text: list[str | None] | None = None
    item_features: Tensor | None = None  # [num_items, F]
    user_features: Tensor | None = None  # [num_users, F]
    social_edges: Tensor | None = None  # [2, S]
    user_tokens: list[str] | None = None
    item_tokens: list[str] | None = None
    meta: dict = field(default_factory=dict)  # how it was made: reader, filters, split, counts

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check ids are in range and that no validation/test edge is in the training graph."""
        for split_name in ("train", "val", "test"):
            edges: EdgeSet = getattr(self, split_name)
            if edges.users.shape != edges.items.shape or edges.users.dim() != 1:
                raise DataValidationError(f"{self.name}: {split_name} users/items must be 1-D and equal length")
            _check_range(edges.users, self.num_users, f"{split_name} user id", self.name)
            _check_range(edges.items, self.num_items, f"{split_name} item id", self.name)
        train_keys = self.train.keys(self.num_items)
        for split_name in ("val", "test"):
            keys = getattr(self, split_name).keys(self.num_items)
            leaked = torch.isin(keys, train_keys)
            if bool(leaked.any()):
                k = int(keys[leaked][0])
                raise DataValidationError(
                    f"{self.name}: {int(leaked.sum())} {split_name} edges are also training edges "
                    f"(first: user {k // self.num_items}, item {k % self.num_items}); "
                    "a held-out interaction must not be in the training graph"
                )
        if self.social_edges is not None:
            if self.social_edges.dim() != 2 or self.social_edges.size(0) != 2:
                raise DataValidationError(f"{self.name}: social_edges must have shape [2, S]")
            _check_range(self.social_edges.reshape(-1), self.num_users, "social user id", self.name)
        for attr, n in (("item_text", self.num_items), ("user_text", self.num_users)):
            value = getattr(self, attr)
            if value is not None and len(value) != n:
                raise DataValidationError(f"{self.name}: {attr} has {len(value)} entries, expected {n}")

    def content_hash(self) -> str:
        """A short hash of the split itself, so two runs that claim the same split can prove it."""
        h = hashlib.sha256(f"{self.num_users},{self.num_items}".encode())
        for split_name in ("train", "val", "test"):
            edges: EdgeSet = getattr(self, split_name)
            h.update(split_name.encode())
            h.update(edges.users.numpy().tobytes())
            h.update(edges.items.numpy().tobytes())
        return h.hexdigest()[:16]

    def stats(self) -> dict[str, int | float]:
        n_train = len(self.train)
        return {
            "num_users": self.num_users,
            "num_items": self.num_items,
            "num_train": n_train,
            "num_val": len(self.val),
            "num_test": len(self.test),
            "density": (n_train + len(self.val) + len(self.test)) / max(1, self.num_users * self.num_items),
        }

    def save(self, path: str | Path) -> None:
        torch.save({f.name: getattr(self, f.name) for f in fields(self)} | {"_edge_sets": True}, path)

    @classmethod
    def load(cls, path: str | Path) -> InteractionGraph:
        state = torch.load(path, weights_only=False)
        state.pop("_edge_sets", None)
        return cls(**state)


def _check_range(ids: Tensor, upper: int, what: str, where: str) -> None:
    if ids.numel() == 0:
        return
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= upper:
        bad = lo if lo < 0 else hi
        raise DataValidationError(f"{where}: {what} {bad} is out of range [0, {upper})")
