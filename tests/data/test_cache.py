"""The processed-data cache (load_or_build) and the DataModule's use of it."""

from __future__ import annotations

import json

import pytest
import torch

import graphrec_lab.data.datamodule as datamodule_mod
from graphrec_lab.data.cache import cache_key, load_or_build
from graphrec_lab.data.datamodule import InteractionDataModule
from graphrec_lab.data.graph import EdgeSet, InteractionGraph

SYN = {"num_users": 30, "num_items": 40, "num_communities": 3, "interactions_per_user": 8.0, "seed": 0}


def _graph(shift: int = 0) -> InteractionGraph:
    return InteractionGraph(
        3,
        4,
        EdgeSet(torch.tensor([0, 1, 2]), torch.tensor([0, (1 + shift) % 4, 2])),
        EdgeSet(torch.tensor([0]), torch.tensor([3])),
        EdgeSet(torch.tensor([2]), torch.tensor([3])),
        name="toy",
        item_text=["a", "b", "c", "d"],
    )


class _Builder:
    def __init__(self, shift: int = 0, fail: bool = False):
        self.calls = 0
        self.shift = shift
        self.fail = fail

    def __call__(self) -> InteractionGraph:
        self.calls += 1
        if self.fail:
            raise RuntimeError("bad input")
        return _graph(self.shift)


def _entries(cache_dir):
    return sorted(p.name for p in cache_dir.iterdir()) if cache_dir.exists() else []


def test_builds_once_then_loads_equal_graph(tmp_path):
    build = _Builder()
    parts = {"dataset": "toy", "p": 1}
    g1 = load_or_build(tmp_path, "toy", parts, build)
    assert build.calls == 1
    entries = _entries(tmp_path)
    assert entries == [f"toy-{cache_key(parts)}"]
    entry = tmp_path / entries[0]
    assert (entry / "graph.pt").is_file()
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["split_hash"] == g1.content_hash() and meta["parts"] == parts

    g2 = load_or_build(tmp_path, "toy", parts, build)
    assert build.calls == 1  # loaded, not rebuilt
    assert g2 is not g1
    assert g2.content_hash() == g1.content_hash()
    assert g2.item_text == g1.item_text
    assert _entries(tmp_path) == entries


def test_cache_hit_really_reads_disk(tmp_path):
    """A second call returns what is on disk, not a rebuilt graph."""
    parts = {"x": 1}
    load_or_build(tmp_path, "toy", parts, _Builder(shift=0))
    other = _Builder(shift=1)  # would give a different graph if it were called
    g = load_or_build(tmp_path, "toy", parts, other)
    assert other.calls == 0
    assert g.content_hash() == _graph(0).content_hash() != _graph(1).content_hash()


def test_different_parts_give_new_entry(tmp_path):
    b1, b2 = _Builder(0), _Builder(1)
    g1 = load_or_build(tmp_path, "toy", {"seed": 1}, b1)
    g2 = load_or_build(tmp_path, "toy", {"seed": 2}, b2)
    assert b1.calls == 1 and b2.calls == 1
    assert len(_entries(tmp_path)) == 2
    assert g1.content_hash() != g2.content_hash()
    assert cache_key({"seed": 1}) != cache_key({"seed": 2})
    assert cache_key({"a": 1, "b": 2}) == cache_key({"b": 2, "a": 1})


def test_failed_build_leaves_nothing_and_keeps_other_entries(tmp_path):
    good = _Builder()
    g = load_or_build(tmp_path, "toy", {"seed": 1}, good)
    before = _entries(tmp_path)
    graph_file = tmp_path / before[0] / "graph.pt"
    blob = graph_file.read_bytes()

    bad = _Builder(fail=True)
    with pytest.raises(RuntimeError, match="bad input"):
        load_or_build(tmp_path, "toy", {"seed": 2}, bad)
    assert bad.calls == 1
    assert _entries(tmp_path) == before  # no new entry, no temporary folder (".toy-...")
    assert graph_file.read_bytes() == blob

    # The existing entry still loads without a build.
    again = load_or_build(tmp_path, "toy", {"seed": 1}, _Builder(fail=True))
    assert again.content_hash() == g.content_hash()


def test_failed_save_leaves_no_temporary_folder(tmp_path, monkeypatch):
    def boom(self, path):
        raise OSError("disk full")

    monkeypatch.setattr(InteractionGraph, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        load_or_build(tmp_path, "toy", {"seed": 3}, _Builder())
    assert _entries(tmp_path) == []


def test_cache_dir_none_always_builds():
    build = _Builder()
    g1 = load_or_build(None, "toy", {"a": 1}, build)
    g2 = load_or_build(None, "toy", {"a": 1}, build)
    assert build.calls == 2
    assert g1.content_hash() == g2.content_hash()


def _counting_generator(monkeypatch):
    calls = []
    real = datamodule_mod.generate_synthetic

    def counted(**kw):
        calls.append(kw)
        return real(**kw)

    monkeypatch.setattr(datamodule_mod, "generate_synthetic", counted)
    return calls


def test_datamodule_builds_once_then_hits_cache(tmp_path, monkeypatch):
    calls = _counting_generator(monkeypatch)
    dm1 = InteractionDataModule(dataset="synthetic", synthetic=SYN, cache_dir=str(tmp_path))
    g1 = dm1.load_graph()
    assert len(calls) == 1 and calls[0] == SYN
    dm2 = InteractionDataModule(dataset="synthetic", synthetic=SYN, cache_dir=str(tmp_path))
    g2 = dm2.load_graph()
    assert len(calls) == 1  # cache hit
    assert g2.content_hash() == g1.content_hash()
    assert len([p for p in tmp_path.iterdir()]) == 1

    # Other split parameters: a new build and a different split.
    dm3 = InteractionDataModule(dataset="synthetic", synthetic=SYN, cache_dir=str(tmp_path), split_seed=7)
    g3 = dm3.load_graph()
    assert len(calls) == 2
    assert g3.content_hash() != g1.content_hash()
    dm4 = InteractionDataModule(dataset="synthetic", synthetic=SYN, cache_dir=str(tmp_path), ratios=[0.6, 0.2, 0.2])
    g4 = dm4.load_graph()
    assert len(calls) == 3
    assert g4.content_hash() not in {g1.content_hash(), g3.content_hash()}
    assert len(g4.val) > len(g1.val)
    # Other synthetic parameters: a new build too.
    InteractionDataModule(dataset="synthetic", synthetic={**SYN, "seed": 1}, cache_dir=str(tmp_path)).load_graph()
    assert len(calls) == 4
    assert len(list(tmp_path.iterdir())) == 4


def test_datamodule_cache_none_builds_every_time(tmp_path, monkeypatch):
    calls = _counting_generator(monkeypatch)
    for _ in range(2):
        InteractionDataModule(dataset="synthetic", synthetic=SYN, cache_dir="none").load_graph()
    assert len(calls) == 2


def test_datamodule_loaders_from_cached_graph(tmp_path):
    dm = InteractionDataModule(dataset="synthetic", synthetic=SYN, cache_dir=str(tmp_path), train_batch_size=64, eval_batch_size=8)
    dm.prepare_data()
    dm.setup()
    g = dm.graph
    batches = list(dm.train_dataloader())
    assert sum(len(b) for b in batches) == len(g.train)
    val_users = [int(u) for b in dm.val_dataloader() for u in b.users]
    assert val_users == sorted(set(g.val.users.tolist()))
    # At test time training and validation items are both excluded.
    for b in dm.test_dataloader():
        for r, u in enumerate(b.users.tolist()):
            exc = set(b.exclude[1, b.exclude[0] == r].tolist())
            expected = set(g.train.items[g.train.users == u].tolist()) | set(g.val.items[g.val.users == u].tolist())
            assert exc == expected
        break
    with pytest.raises(ValueError, match="unknown evaluation split"):
        dm.eval_users("train")
