"""Results are never lost: an unwritable store stops the run before training; a store that fails
after training leaves the metrics printed and in a fallback file, the error naming both paths."""

from __future__ import annotations

import json

import pytest

from graphrec_lab.config import compose
from graphrec_lab.experiment import run_experiment
from graphrec_lab.tracking.results import ResultStore, ResultStoreError
from tests.conftest import tiny_overrides


def test_unwritable_result_store_stops_before_training(tmp_path):
    store = tmp_path / "results.jsonl"
    store.mkdir()  # a folder where the file should be: not writable (also as root, unlike chmod)
    with pytest.raises(ResultStoreError, match=rf"paths\.results='{store}': the result store cannot be written"):
        run_experiment(compose(tiny_overrides(tmp_path / "out", f"paths.results={store}")))
    assert not (tmp_path / "out" / "runs").exists()  # nothing trained, nothing written


def test_unwritable_output_directory_names_paths_root(tmp_path):
    (tmp_path / "blocker").write_text("a file where the output folder should be")
    root = tmp_path / "blocker" / "out"
    with pytest.raises(ResultStoreError, match=r"cannot be written|cannot create the run directory"):
        run_experiment(compose(tiny_overrides(root, f"paths.results={tmp_path / 'results.jsonl'}")))


def test_store_failing_after_training_keeps_metrics_in_run_dir_and_prints_them(tmp_path, monkeypatch, capsys):
    def full_disk(self, record):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ResultStore, "append", full_disk)
    with pytest.raises(ResultStoreError) as info:
        run_experiment(compose(tiny_overrides(tmp_path, "print_table=false")))
    message = str(info.value)
    fallback = next(tmp_path.glob("runs/*/*/result.json"))
    assert str(tmp_path / "results.jsonl") in message and str(fallback) in message
    record = json.loads(fallback.read_text())
    assert 0.0 <= record["metrics"]["test/ndcg@20"] <= 1.0
    printed = capsys.readouterr().out
    assert f"{record['metrics']['test/ndcg@20']:8.4f}" in printed  # the table is printed even with print_table=false
