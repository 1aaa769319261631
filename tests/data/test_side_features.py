"""Side features: fitted on training rows only (a leaking fit would fail here), unseen categories
encoded as zeros and counted, bad columns and kinds named, and an ml-100k run with user and item
features that records what it built."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from graphrec_lab.data.side_features import ColumnSpec, FeatureConfigError, build_features, side_features
from tests.conftest import real_data_dir

TABLE = pd.DataFrame({
    "age": [20, 30, 40, 50, 1000, 2000],            # rows 4, 5 are held out (cold) with extreme values
    "job": ["a", "b", "a", "b", "c", None],          # 'c' and a missing value only outside training
    "tags": ["x|y", "y", "x", "", "z|x", "y"],
})  # fmt: skip
TRAIN = np.array([0, 1, 2, 3])


def test_statistics_come_from_the_training_rows_only():
    out = build_features(TABLE, [ColumnSpec("age", "numeric")], TRAIN, "user")
    train = out.values[:4, 0].double()
    assert abs(float(train.mean())) < 1e-6 and abs(float(train.std(unbiased=False)) - 1) < 1e-5
    assert float(out.values[5, 0]) > 50  # the cold rows are far out, not pulled into the scaling


def test_unseen_categories_encode_as_zeros_and_are_counted():
    out = build_features(TABLE, [ColumnSpec("job", "onehot"), ColumnSpec("tags", "multihot")], TRAIN, "user")
    assert out.names == ["job=a", "job=b", "tags=x", "tags=y"]
    assert out.unseen == {"job": 2, "tags": 1}  # 'c' and <missing>; the tag 'z'
    assert out.values[4].tolist() == [0.0, 0.0, 1.0, 0.0]  # unknown job -> zeros; known tag x kept
    ordinal = build_features(TABLE, [ColumnSpec("job", "ordinal")], TRAIN, "user")
    assert ordinal.values[4, 0] == -1 and ordinal.unseen == {"job": 2}


def test_prefix_hashing_and_constant_columns():
    table = pd.DataFrame({"zip": ["12345", "12999", "98765", "98000"], "const": ["k"] * 4})
    out = build_features(table, [ColumnSpec("zip", "onehot", prefix=1), ColumnSpec("const", "onehot")], np.arange(4), "user")
    assert out.names == ["zip=1", "zip=9"]  # the constant one-hot column is dropped by VarianceThreshold
    hashed = build_features(table, [ColumnSpec("zip", "hashing", n_features=8)], np.arange(4), "user")
    assert hashed.values.shape[0] == 4 and 1 <= hashed.values.shape[1] <= 8  # empty buckets are constant: dropped
    assert all(n.startswith("zip#") for n in hashed.names) and float(hashed.values.sum()) == 4.0


def test_bad_configuration_is_named():
    with pytest.raises(FeatureConfigError, match="data.features.user.salary: unknown column"):
        side_features({"user": {"salary": "numeric"}}, {"user": TABLE}, {"user": ["0"]}, {"user": TRAIN})
    with pytest.raises(FeatureConfigError, match=r"data.features.user.age.kind='scaled'"):
        ColumnSpec.parse("user", "age", "scaled", ["age"])
    with pytest.raises(FeatureConfigError, match="unknown keys"):
        side_features({"users": {}}, {}, {}, {})


def test_ml100k_run_with_user_and_item_features(tmp_path):
    from graphrec_lab.config import compose
    from graphrec_lab.experiment import run_experiment

    data_dir = real_data_dir()
    cfg = compose([f"paths.root={tmp_path}", "data=ml100k", f"data.data_dir={data_dir}", "data.cache_dir=none",
                   "model=lightgcn", "model.feature_mode=sum", "trainer.max_epochs=1", "trainer.accelerator=cpu", "logger=csv",
                   "+data.features.user={age: numeric, gender: onehot, occupation: onehot}",
                   "+data.features.item={year: numeric, genres: multihot}"])  # fmt: skip
    run_experiment(cfg)
    record = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])
    assert "occupation=student" in record["side_features"]["user"]["columns"]
    assert "genres=Comedy" in record["side_features"]["item"]["columns"]


def test_cold_start_users_have_no_training_interactions_and_their_own_metrics(tmp_path):
    from graphrec_lab.config import compose
    from graphrec_lab.data.datamodule import InteractionDataModule
    from graphrec_lab.experiment import run_experiment
    from tests.conftest import tiny_overrides

    dm = InteractionDataModule(dataset="synthetic", cache_dir="none", cold_user_fraction=0.2,
                               synthetic={"num_users": 100, "num_items": 80, "interactions_per_user": 10})  # fmt: skip
    graph = dm.load_graph()
    cold = dm.user_groups()["cold_users"]
    assert int(cold.sum()) == 20 and not bool(cold[graph.train.users].any())
    held = torch.cat([graph.val.users, graph.test.users])
    assert set(torch.nonzero(cold).flatten().tolist()) <= set(held.tolist())  # every cold user is evaluated
    metrics = run_experiment(compose(tiny_overrides(tmp_path, "data.cold_user_fraction=0.2")))
    assert {"test/cold_users/recall@20", "test/warm_users/recall@20"} <= set(metrics)


def test_min_count_groups_rare_and_unseen_categories():
    table = pd.DataFrame({"brand": ["a", "a", "a", "b", "c", "z"]})  # b, c: one training row each; z: unseen
    out = build_features(table, [ColumnSpec("brand", "onehot", min_count=2)], np.arange(5), "item")
    assert out.names == ["brand=a", "brand=infrequent_sklearn"]
    assert out.values.tolist() == [[1, 0], [1, 0], [1, 0], [0, 1], [0, 1], [0, 1]]
    assert out.unseen == {"brand": 1}
    with pytest.raises(FeatureConfigError, match=r"data.features.item.brand.min_count: only kind=onehot"):
        ColumnSpec.parse("item", "brand", {"kind": "ordinal", "min_count": 2}, ["brand"])


def test_unisrec_release_item_fields_feed_item_features(tmp_path):
    """amazon-scientific-style release: brand and the category path become item columns; a user side
    is refused by name (the release has no user table)."""
    from graphrec_lab.data.sources import resolve_source
    from graphrec_lab.data.side_features import feature_tables

    folder = tmp_path / "Tiny"
    folder.mkdir()
    (folder / "Tiny.item2index").write_text("A1\t0\nA2\t1\nA3\t2\n")
    (folder / "Tiny.text").write_text(
        "item_id:token\ttext:token_seq\n"
        "A1\tDrill bit. Industrial & Scientific Tools Drills. Bosch. \n"
        "A2\tSaw. Industrial & Scientific Tools Saws. Makita. \n"
        "A3\tTape. Industrial & Scientific Tapes. 3M. \n"
    )  # fmt: skip
    tables = feature_tables(resolve_source("unisrec:Tiny"), folder)
    assert list(tables) == ["item"] and tables["item"].loc["A3", "brand"] == "3M"
    assert tables["item"].loc["A1", "categories"] == "Industrial & Scientific Tools Drills"
    built = side_features({"item": {"brand": "onehot", "categories": "onehot"}}, tables, {"item": ["A1", "A2", "A3"]},
                          {"item": np.array([0, 1])})  # fmt: skip
    assert built["item"].names == ["brand=Bosch", "brand=Makita", "categories=Industrial & Scientific Tools Drills",
                                   "categories=Industrial & Scientific Tools Saws"]  # fmt: skip
    assert built["item"].unseen == {"brand": 1, "categories": 1}  # A3 is not a training item
    with pytest.raises(FeatureConfigError, match="data.features.user: this dataset has no user table"):
        side_features({"user": {"age": "numeric"}}, tables, {"user": []}, {"user": np.array([0])})


def test_recbole_user_and_item_files_feed_side_features(tmp_path):
    """Any RecBole atomic folder: .user / .item fields become feature columns (token_seq as sets)."""
    from graphrec_lab.data.sources import resolve_source
    from graphrec_lab.data.side_features import feature_tables

    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "toy.inter").write_text("user_id:token\titem_id:token\n" + "".join(f"u{u}\ti{i}\n" for u in range(3) for i in range(3)))
    (folder / "toy.user").write_text("user_id:token\tage:float\tcity:token\nu0\t20\tA\nu1\t\tB\nu2\t40\tC\n")
    (folder / "toy.item").write_text("item_id:token\ttags:token_seq\ni0\trock pop\ni1\tfolk\ni2\tjazz\n")
    tables = feature_tables(resolve_source("recbole:toy"), folder)
    assert tables["item"].loc["i0", "tags"] == "rock|pop"
    built = side_features({"user": {"age": "numeric", "city": "onehot"}, "item": {"tags": "multihot"}}, tables,
                          {"user": ["u0", "u1", "u2"], "item": ["i0", "i1", "i2"]},
                          {"user": np.array([0, 2]), "item": np.array([0, 1])})  # fmt: skip
    assert built["user"].names == ["age", "city=A", "city=C"] and built["user"].unseen == {"city": 1}
    assert float(built["user"].values[1, 0]) == 0.0  # u1's missing age: the training median (30), standardised
    assert built["item"].names == ["tags=folk", "tags=pop", "tags=rock"] and built["item"].unseen == {"tags": 1}  # jazz


def test_mutual_info_keeps_the_columns_that_tell_degrees_apart():
    """Of two noise columns and one that sets the training degree, mutual_info_k=1 keeps the latter;
    the selection sees training rows only (held-out rows with the other pattern do not move it)."""
    rng = np.random.default_rng(0)
    n = 200
    signal = np.array(["hi", "lo"] * (n // 2))
    table = pd.DataFrame({"noise1": rng.choice(["a", "b"], n), "signal": signal, "noise2": rng.normal(size=n).astype(str)})
    degree = np.where(signal == "hi", 20, 1)
    train = np.arange(150)
    ends = np.repeat(train, degree[train])  # interaction endpoints: each training row its degree times
    spec = {"item": {"noise1": "onehot", "signal": "onehot", "noise2": "numeric"}, "mutual_info_k": 1}
    table.index = [str(i) for i in range(n)]
    built = side_features(spec, {"item": table}, {"item": list(table.index)}, {"item": ends})
    assert len(built["item"].names) == 1 and built["item"].names[0].startswith("signal=")
    with pytest.raises(FeatureConfigError, match="data.features.mutual_info_k=0"):
        side_features({**spec, "mutual_info_k": 0}, {"item": table}, {"item": list(table.index)}, {"item": ends})


def test_a_numeric_column_without_training_values_is_named():
    table = pd.DataFrame({"age": [None, None, "30"]})
    with pytest.raises(FeatureConfigError, match="data.features.user.age: no training row has a numeric value"):
        build_features(table, [ColumnSpec("age", "numeric")], np.array([0, 1]), "user")


def test_built_features_are_cached_beside_the_processed_graph(tmp_path, monkeypatch):
    """A second DataModule with the same data and spec loads the features without reading the
    tables; another spec builds its own entry; a corrupted entry is rebuilt, not trusted."""
    import graphrec_lab.data.datamodule as dm_module
    from graphrec_lab.data.datamodule import InteractionDataModule

    folder = tmp_path / "toy"
    folder.mkdir()
    rng = np.random.default_rng(0)
    pairs = [(u, i) for u in range(20) for i in range(15) if rng.random() < 0.4]
    (folder / "toy.inter").write_text("user_id:token\titem_id:token\n" + "".join(f"u{u}\ti{i}\n" for u, i in pairs))
    (folder / "toy.item").write_text("item_id:token\tgenre:token\n" + "".join(f"i{i}\tg{i % 3}\n" for i in range(15)))
    spec = {"item": {"genre": "onehot"}}

    def module(features):
        return InteractionDataModule(dataset="recbole:toy", data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"),
                                     features=features, split="ratio")  # fmt: skip

    first = module(spec).side_features()["item"]
    entries = sorted(p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith("features-"))
    assert len(entries) == 1
    reads = []
    real = dm_module.feature_tables
    monkeypatch.setattr(dm_module, "feature_tables", lambda *a: reads.append(a) or real(*a))
    again = module(spec)
    assert torch.equal(again.side_features()["item"], first) and not reads  # served from the cache
    assert again.feature_report["item"]["columns"] == ["genre=g0", "genre=g1", "genre=g2"]
    module({"item": {"genre": "ordinal"}}).side_features()
    assert len(reads) == 1 and len([p for p in (tmp_path / "cache").iterdir() if p.name.startswith("features-")]) == 2
    (tmp_path / "cache" / entries[0] / "features.pt").write_bytes(b"corrupt")
    assert torch.equal(module(spec).side_features()["item"], first) and len(reads) == 2  # rebuilt from the tables
