"""What the rest of the framework may ask of a DataModule, as typed Protocols.

``run_experiment`` and the tasks talk to every DataModule through ``DataModule``; the optional
capabilities are Protocols of their own, checked with ``implements(datamodule, Protocol)``. The
DataModules implement them structurally: ``InteractionDataModule`` (and its ecommerce and social
subclasses) and ``NewsDataModule``; ``tests/data/test_protocols.py`` pins which has which capability.

``implements`` rather than ``runtime_checkable``: Python 3.11's protocol ``isinstance`` runs
``hasattr`` on every member, which evaluates properties such as ``train_graph`` (``setup()``, graph
building); ``implements`` looks the members up without running them.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol, TypeGuard, TypeVar

from torch import Tensor

from graphrec_lab.data.graph import InteractionGraph
from graphrec_lab.data.train_graph import TrainGraph


class DataModule(Protocol):
    """Every DataModule: a Lightning DataModule with the graph the run trains and reports on."""

    def prepare_data(self) -> None: ...

    def setup(self, stage: str | None = None) -> None: ...

    def load_graph(self) -> InteractionGraph:
        """The processed dataset (ids, splits, metadata; its ``content_hash`` identifies the split)."""
        ...

    @property
    def train_graph(self) -> TrainGraph:
        """The graph models propagate over during training: U users, I items."""
        ...

    def skipped_users(self, split: str) -> int:
        """How many users (impressions for news) of ``split`` the metrics cannot score."""
        ...

    def train_dataloader(self) -> Any: ...

    def val_dataloader(self) -> Any: ...

    def test_dataloader(self) -> Any: ...


class ItemTextSource(Protocol):
    """A DataModule whose items have text (for text encoders)."""

    def item_texts(self) -> list[str]:
        """One text per dense item id, [I]."""
        ...


class ItemGroupSource(Protocol):
    """A DataModule that splits items into groups reported separately (cold / warm)."""

    def item_groups(self) -> dict[str, Tensor]:
        """Group name -> [I] bool mask; empty when the protocol defines no groups."""
        ...


class UserGroupSource(Protocol):
    """A DataModule that splits users into groups reported separately (cold-start users)."""

    def user_groups(self) -> dict[str, Tensor]:
        """Group name -> [U] bool mask; empty when the protocol defines no groups."""
        ...


class SideFeatureSource(Protocol):
    """A DataModule that builds user / item side features for the models' node input."""

    feature_report: dict[str, Any] | None  # output columns and unseen-category counts, once built

    def side_features(self) -> dict[str, Tensor]:
        """``{"user": [U, F_u], "item": [I, F_i]}`` for the configured sides; empty when none."""
        ...


class ImpressionSource(Protocol):
    """A DataModule of impressions (news): the graphs of the training folds and of the test period,
    and the count of referenced articles without text."""

    @property
    def test_graph(self) -> TrainGraph: ...

    def fold_graphs(self) -> list[TrainGraph]: ...

    def missing_news_report(self) -> dict[str, Any]: ...


_P = TypeVar("_P")
_PROTOCOL_INTERNALS = set(vars(Protocol)) | {"__abstractmethods__", "__annotations__", "__dict__", "__weakref__"}


def protocol_members(protocol: type) -> set[str]:
    """The names a class must have to implement ``protocol`` (its methods, properties, annotations)."""
    names: set[str] = set()
    for base in protocol.__mro__:
        if base in (object, Protocol) or not getattr(base, "_is_protocol", False):
            continue
        names |= {n for n in (*vars(base), *getattr(base, "__annotations__", {})) if n not in _PROTOCOL_INTERNALS and not n.startswith("_abc_")}
    return {n for n in names if not (n.startswith("__") and n.endswith("__"))}


def implements(obj: object, protocol: type[_P]) -> TypeGuard[_P]:
    """Whether ``obj`` has every member of ``protocol``, looked up without running properties."""
    missing = object()
    return all(inspect.getattr_static(obj, name, missing) is not missing for name in protocol_members(protocol))


__all__ = [
    "DataModule", "ImpressionSource", "ItemGroupSource", "ItemTextSource", "SideFeatureSource", "UserGroupSource",
    "implements", "protocol_members",
]
