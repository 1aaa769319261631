"""Faults during training: a non-finite loss stops the run naming the epoch and step (or skips the
batch on request); the run is recorded as failed, never as a result, and reports leave it out."""

from __future__ import annotations

import logging

import pytest
import torch

from graphrec_lab.config import compose
from graphrec_lab.experiment import run_experiment
from graphrec_lab.reporting import load_records
from graphrec_lab.tracking.results import ResultStore
from graphrec_lab.training.losses import RANKING_LOSSES
from graphrec_lab.training.task import NonFiniteLossError
from tests.conftest import tiny_overrides


def nan_at(monkeypatch, calls: set[int]) -> None:
    """Make the BPR loss NaN at the given (0-based) training steps of the whole run."""
    real = RANKING_LOSSES["bpr"]
    counter = {"n": -1}

    def bpr(pos, neg, temperature):
        counter["n"] += 1
        loss = real(pos, neg, temperature)
        return loss * float("nan") if counter["n"] in calls else loss

    monkeypatch.setitem(RANKING_LOSSES, "bpr", bpr)  # the table the task looks the loss up in


def test_nan_loss_stops_naming_epoch_and_step_and_is_recorded_as_failed(tmp_path, monkeypatch, caplog):
    nan_at(monkeypatch, {0})
    with pytest.raises(NonFiniteLossError, match=r"non-finite training loss \(nan\) at epoch 0, step 0 .*task\.nonfinite_loss=skip"):
        run_experiment(compose(tiny_overrides(tmp_path)))
    store = ResultStore(tmp_path / "results.jsonl")
    assert store.read() == []  # not a result
    (failed,) = store.read(include_failed=True)
    assert failed["status"] == "failed" and "NonFiniteLossError" in failed["error"] and "metrics" not in failed
    with caplog.at_level(logging.WARNING):
        assert load_records([tmp_path / "results.jsonl"]) == []
    assert "1 failed run(s) excluded" in caplog.text


def test_nan_loss_with_skip_drops_the_batch_and_finishes(tmp_path, monkeypatch):
    nan_at(monkeypatch, {3})
    with pytest.warns(UserWarning, match=r"non-finite training loss \(nan\) at epoch 1, step 1 .*batch skipped"):
        metrics = run_experiment(compose(tiny_overrides(tmp_path, "task.nonfinite_loss=skip")))
    assert torch.isfinite(torch.tensor(list(metrics.values()))).all()
    (record,) = ResultStore(tmp_path / "results.jsonl").read()
    assert record["metrics"]["test/ndcg@20"] == metrics["test/ndcg@20"]


def test_report_counts_failed_runs_beside_results(tmp_path, monkeypatch, caplog):
    run_experiment(compose(tiny_overrides(tmp_path, "trainer.max_epochs=2")))
    nan_at(monkeypatch, {0})
    with pytest.raises(NonFiniteLossError):
        run_experiment(compose(tiny_overrides(tmp_path, "trainer.max_epochs=2")))
    with caplog.at_level(logging.WARNING):
        records = load_records([tmp_path / "results.jsonl"])
    assert len(records) == 1 and "status" not in records[0]
    assert "1 failed run(s) excluded" in caplog.text
