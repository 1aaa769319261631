"""The item cold-start protocol (``PreprocessConfig.cold_item_fraction``) on every split strategy.

Invariants: no cold item has a training edge; every interaction of a cold item is in validation or
test; every warm interaction keeps exactly the split it has without the protocol.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from graphrec_lab.data.datamodule import InteractionDataModule
from graphrec_lab.data.ecommerce import EcommerceDataModule
from graphrec_lab.data.graph import SPLIT_TEST, SPLIT_TRAIN, SPLIT_VAL, InteractionGraph, RawInteractions
from graphrec_lab.data.preprocess import PreprocessConfig, build_graph, cold_item_mask
from graphrec_lab.data.synthetic import generate_synthetic

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REPO = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("GRAPHREC_DATA_DIR", REPO.parent / "shared" / "datasets"))


def _labels(graph: InteractionGraph) -> dict[tuple[int, int], int]:
    out = {}
    for code, edges in ((SPLIT_TRAIN, graph.train), (SPLIT_VAL, graph.val), (SPLIT_TEST, graph.test)):
        for u, i in zip(edges.users.tolist(), edges.items.tolist()):
            out[(u, i)] = code
    return out


def check_cold_invariants(base: InteractionGraph, cold: InteractionGraph, holdout: str = "interactions") -> set[int]:
    """Assert the protocol's invariants of ``cold`` against ``base`` (same data, no protocol)."""
    items = set(cold.meta["cold_items"])
    assert items and len(items) == cold.meta["num_cold_items"]
    assert not items & set(cold.train.items.tolist()), "a cold item has a training edge"
    before, after = _labels(base), _labels(cold)
    assert before.keys() == after.keys()  # nothing lost, nothing added
    n_cold = 0
    for pair, label in after.items():
        if pair[1] in items:
            n_cold += 1
            assert label in (SPLIT_VAL, SPLIT_TEST)
            if holdout == "interactions" and before[pair] != SPLIT_TRAIN:
                assert label == before[pair]  # held-out cold interactions keep their split
        else:
            assert label == before[pair], f"warm interaction {pair} changed split"
    assert n_cold == cold.meta["cold_interactions"]
    assert cold.meta["cold_val_interactions"] + cold.meta["cold_test_interactions"] == n_cold
    assert cold_item_mask(cold).nonzero().flatten().tolist() == sorted(items)
    return items


def _raw(num_users: int = 150, num_items: int = 120, per_user: float = 12.0, seed: int = 0) -> RawInteractions:
    return generate_synthetic(num_users=num_users, num_items=num_items, interactions_per_user=per_user, seed=seed)


@pytest.mark.parametrize("split", ["ratio", "loo", "temporal"])
@pytest.mark.parametrize("holdout", ["interactions", "items"])
def test_invariants_on_every_split(split: str, holdout: str) -> None:
    raw = _raw()
    base = build_graph(raw, PreprocessConfig(split=split, seed=3), "t")
    cold = build_graph(raw, PreprocessConfig(split=split, seed=3, cold_item_fraction=0.2, cold_holdout=holdout), "t")
    items = check_cold_invariants(base, cold, holdout)
    n_candidates = int((torch.bincount(raw.item, minlength=raw.num_items) > 0).sum())
    assert len(items) == round(0.2 * n_candidates)
    assert cold.meta["cold_holdout"] == holdout


def test_items_holdout_keeps_validation_and_test_cold_items_apart() -> None:
    raw = _raw()
    cold = build_graph(raw, PreprocessConfig(seed=5, cold_item_fraction=0.3, cold_holdout="items"), "t")
    val_items, test_items = set(cold.meta["cold_val_items"]), set(cold.meta["cold_test_items"])
    assert val_items | test_items == set(cold.meta["cold_items"]) and not val_items & test_items
    assert abs(len(val_items) - len(test_items)) <= 1  # ratios 0.1:0.1
    val, test = set(cold.val.items.tolist()), set(cold.test.items.tolist())
    assert not test_items & val, "a test-cold item leaked into validation"
    assert not val_items & test
    assert test_items <= test and val_items <= val


def test_interactions_holdout_is_unbiased_for_single_cold_interactions() -> None:
    # Many users with exactly one cold training interaction: RecBole-style rounding would send
    # every one of them to the same side; the protocol's stochastic rounding splits them ~1:1.
    g = torch.Generator().manual_seed(0)
    num_users, num_items = 3000, 40
    users = torch.arange(num_users).repeat_interleave(3)
    items = torch.stack([torch.randperm(num_items, generator=g)[:3] for _ in range(num_users)]).flatten()
    raw = RawInteractions(user=users, item=items, num_users=num_users, num_items=num_items)
    cfg = PreprocessConfig(split="ratio", ratios=(1.0, 0.0001, 0.0001), seed=1, cold_item_fraction=0.1)
    cold = build_graph(raw, cfg, "t")
    items_cold = torch.tensor(cold.meta["cold_items"])
    n_val = int(torch.isin(cold.val.items, items_cold).sum())
    n_test = int(torch.isin(cold.test.items, items_cold).sum())
    assert n_val + n_test == cold.meta["cold_interactions"] > 600
    assert 0.45 < n_val / (n_val + n_test) < 0.55


@pytest.mark.parametrize(("ratios", "where"), [((0.8, 0.0, 0.2), SPLIT_TEST), ((0.8, 0.2, 0.0), SPLIT_VAL)])
def test_cold_interactions_follow_the_val_test_ratio(ratios, where) -> None:
    raw = _raw()
    cold = build_graph(raw, PreprocessConfig(ratios=ratios, seed=2, cold_item_fraction=0.25), "t")
    items = set(cold.meta["cold_items"])
    other = cold.val if where == SPLIT_TEST else cold.test
    assert not items & set(other.items.tolist())
    assert cold.meta["cold_val_interactions" if where == SPLIT_VAL else "cold_test_interactions"] == cold.meta["cold_interactions"]


def test_choice_is_seeded() -> None:
    raw = _raw()

    def cold_items(**kw) -> list[int]:
        return build_graph(raw, PreprocessConfig(cold_item_fraction=0.2, **kw), "t").meta["cold_items"]

    assert cold_items(seed=1) == cold_items(seed=1)
    assert cold_items(seed=1) != cold_items(seed=2)  # derived from the split seed
    assert cold_items(seed=1, cold_item_seed=7) == cold_items(seed=2, cold_item_seed=7)
    assert cold_items(seed=1, cold_item_seed=7) != cold_items(seed=1, cold_item_seed=8)
    # Items without any interaction are never drawn, and at least one item stays warm.
    raw2 = RawInteractions(user=torch.tensor([0, 0, 1]), item=torch.tensor([0, 1, 1]), num_users=2, num_items=5)
    g = build_graph(raw2, PreprocessConfig(split="ratio", dedup=False, cold_item_fraction=0.9, user_core=0), "t")
    assert len(g.meta["cold_items"]) == 1 and set(g.meta["cold_items"]) <= {0, 1}


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="data.cold_item_fraction=1.0"):
        PreprocessConfig(cold_item_fraction=1.0)
    with pytest.raises(ValueError, match="data.cold_holdout='users'"):
        PreprocessConfig(cold_holdout="users")
    with pytest.raises(ValueError, match="gives validation and test no share"):
        PreprocessConfig(cold_item_fraction=0.1, ratios=(1.0, 0.0, 0.0))


def test_on_given_split_of_the_amazon_fixture(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "amazon", tmp_path / "data" / "Mini")
    common = dict(dataset="unisrec:Mini", data_dir=str(tmp_path / "data"), split="given", cache_dir=str(tmp_path / "cache"))
    base = EcommerceDataModule(**common).load_graph()
    dm = EcommerceDataModule(**common, cold_item_fraction=0.3, split_seed=4)
    cold = dm.load_graph()
    items = check_cold_invariants(base, cold)
    assert len(items) == 2  # round(0.3 * 7)
    groups = dm.item_groups()
    assert set(groups) == {"cold", "warm"}
    assert groups["cold"].nonzero().flatten().tolist() == sorted(items)
    assert torch.equal(groups["warm"], ~groups["cold"])
    # The cache key covers the protocol, and the cached graph keeps the cold items.
    assert len(list((tmp_path / "cache").iterdir())) == 2
    again = EcommerceDataModule(**common, cold_item_fraction=0.3, split_seed=4).load_graph()
    assert again.meta["cold_items"] == cold.meta["cold_items"]
    assert EcommerceDataModule(**common).item_groups() == {}


def test_datamodule_passes_protocol_through() -> None:
    dm = InteractionDataModule(
        dataset="synthetic", cache_dir="none", synthetic={"num_users": 80, "num_items": 60, "interactions_per_user": 8},
        cold_item_fraction=0.2, cold_holdout="items", split_seed=9,
    )
    graph = dm.load_graph()
    assert dm.preprocess.cold_item_fraction == 0.2 and graph.meta["cold_holdout"] == "items"
    assert dm._cache_parts()["preprocess"]["cold_item_fraction"] == 0.2
    assert not set(graph.meta["cold_items"]) & set(graph.train.items.tolist())
    assert dm.item_groups()["cold"].sum() == len(graph.meta["cold_items"])


# ---------------------------------------------------------------- real data (slow)


@pytest.mark.slow
@pytest.mark.skipif(not (DATA_DIR / "ml-100k").is_dir(), reason=f"no ml-100k in {DATA_DIR}")
def test_real_ml100k_cold_start(tmp_path: Path) -> None:
    common = dict(dataset="ml-100k", data_dir=str(DATA_DIR), cache_dir=str(tmp_path), download=False, split="ratio")
    base = InteractionDataModule(**common).load_graph()
    cold = InteractionDataModule(**common, cold_item_fraction=0.2).load_graph()
    items = check_cold_invariants(base, cold)
    assert len(items) == round(0.2 * 1_682)
    assert cold.meta["cold_moved_from_train"] > 0


@pytest.mark.slow
@pytest.mark.skipif(not (DATA_DIR / "amazon-scientific").is_dir(), reason=f"no amazon-scientific in {DATA_DIR}")
def test_real_amazon_cold_start_on_given_split(tmp_path: Path) -> None:
    common = dict(dataset="amazon-scientific", data_dir=str(DATA_DIR), cache_dir=str(tmp_path), download=False)
    base = EcommerceDataModule(**common).load_graph()
    dm = EcommerceDataModule(**common, cold_item_fraction=0.2)
    cold = dm.load_graph()
    items = check_cold_invariants(base, cold)
    assert len(items) == round(0.2 * 4_385)
    assert len(dm.co_purchase_edges()) == 2  # [2, E]
    cold_mask = dm.item_groups()["cold"]
    assert not bool(cold_mask[dm.co_purchase_edges()].any())  # co-purchase edges come from training only
