"""Which DataModule implements which protocol of ``data.protocols``, and that checking one runs nothing."""

from __future__ import annotations

import pytest

from graphrec_lab.data.datamodule import InteractionDataModule
from graphrec_lab.data.ecommerce import EcommerceDataModule, ItemTextDataModule
from graphrec_lab.data.news import NewsDataModule
from graphrec_lab.data.protocols import (
    DataModule, ImpressionSource, ItemGroupSource, ItemTextSource, SideFeatureSource, UserGroupSource, implements, protocol_members,
)
from graphrec_lab.data.social import SocialDataModule

PROTOCOLS = (DataModule, ItemTextSource, ItemGroupSource, ImpressionSource, UserGroupSource, SideFeatureSource)


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (InteractionDataModule, {DataModule, ItemGroupSource, UserGroupSource, SideFeatureSource}),
        (ItemTextDataModule, {DataModule, ItemTextSource, ItemGroupSource, UserGroupSource, SideFeatureSource}),
        (EcommerceDataModule, {DataModule, ItemTextSource, ItemGroupSource, UserGroupSource, SideFeatureSource}),
        (SocialDataModule, {DataModule, ItemTextSource, ItemGroupSource, UserGroupSource, SideFeatureSource}),
        (NewsDataModule, {DataModule, ItemTextSource, ImpressionSource}),
    ],
)
def test_datamodule_capabilities(cls: type, expected: set[type]) -> None:
    assert {p for p in PROTOCOLS if implements(cls, p)} == expected


def test_protocol_members_are_the_declared_ones() -> None:
    assert protocol_members(ImpressionSource) == {"test_graph", "fold_graphs", "missing_news_report"}
    assert {"train_graph", "load_graph", "skipped_users", "setup"} <= protocol_members(DataModule)


def test_implements_does_not_run_properties() -> None:
    class Lazy:
        def fold_graphs(self) -> list:
            return []

        def missing_news_report(self) -> dict:
            return {}

        @property
        def test_graph(self):
            raise AssertionError("a protocol check must not build the graph")

    assert implements(Lazy(), ImpressionSource)
    assert not implements(Lazy(), ItemTextSource)
