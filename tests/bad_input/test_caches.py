"""Processed-data caches: every entry is checked against the sha256 stored in its meta.json;
a corrupt, truncated or empty entry is rebuilt with one warning naming it, and the run's split hash
is the verified one."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from graphrec_lab.config import compose
from graphrec_lab.data.datamodule import InteractionDataModule
from graphrec_lab.experiment import run_experiment
from tests.conftest import tiny_overrides

SYN = {"num_users": 30, "num_items": 40, "num_communities": 3, "interactions_per_user": 8.0, "seed": 0}


def load(cache: Path) -> str:
    """The split hash of the synthetic graph loaded through ``cache``."""
    return InteractionDataModule(dataset="synthetic", synthetic=SYN, cache_dir=str(cache)).load_graph().content_hash()


def entry_of(cache: Path) -> Path:
    (entry,) = [p for p in cache.iterdir() if not p.name.startswith(".")]
    return entry


def flip_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) * 2 // 3] ^= 0x01
    path.write_bytes(bytes(data))


DAMAGE = {
    "flipped bit": flip_bit,
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "empty": lambda p: p.write_bytes(b""),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_entry_is_rebuilt_with_one_warning_naming_it(tmp_path, caplog, damage):
    clean = load(tmp_path)
    entry = entry_of(tmp_path)
    DAMAGE[damage](entry / "graph.pt")
    with caplog.at_level(logging.WARNING, logger="graphrec_lab.data.cache"):
        assert load(tmp_path) == clean
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(entry) in warnings[0] and "rebuilding" in warnings[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="graphrec_lab.data.cache"):
        assert load(tmp_path) == clean  # the rebuilt entry verifies: no second warning
    assert not caplog.records


def test_entry_from_before_hashes_is_rebuilt_once(tmp_path, caplog):
    clean = load(tmp_path)
    meta = entry_of(tmp_path) / "meta.json"
    info = json.loads(meta.read_text())
    del info["files"]
    meta.write_text(json.dumps(info))
    with caplog.at_level(logging.WARNING, logger="graphrec_lab.data.cache"):
        assert load(tmp_path) == clean
        assert load(tmp_path) == clean
    assert len(caplog.records) == 1 and "without content hashes" in caplog.records[0].getMessage()
    assert "files" in json.loads(meta.read_text())


def test_unwritable_cache_directory_builds_in_memory_with_a_warning(tmp_path, caplog):
    (tmp_path / "file").write_text("a file where the cache folder should be")
    with caplog.at_level(logging.WARNING, logger="graphrec_lab.data.cache"):
        assert load(tmp_path / "file" / "cache") == load(tmp_path / "ok")
    assert "cannot be written" in caplog.text and str(tmp_path / "file" / "cache") in caplog.text


def test_run_records_the_verified_split_hash(tmp_path):
    cache = tmp_path / "cache"
    overrides = tiny_overrides(tmp_path / "out", "trainer.max_epochs=2", f"data.cache_dir={cache}")
    run_experiment(compose(overrides))
    flip_bit(entry_of(cache) / "graph.pt")
    run_experiment(compose(overrides))
    first, second = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert second["data"]["split_hash"] == first["data"]["split_hash"]
    assert second["metrics"]["test/ndcg@20"] == first["metrics"]["test/ndcg@20"]
