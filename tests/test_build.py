"""``build(cfg)``: the pieces ``run_experiment`` wires together, built once from a config."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

import graphrec_lab
from graphrec_lab.config import ConfigError, compose
from graphrec_lab.data.protocols import DataModule, implements
from graphrec_lab.experiment import Experiment, build, run_experiment
from graphrec_lab.models import LightGCN
from graphrec_lab.training.callbacks import EpochTimer
from tests.conftest import tiny_overrides


def test_build_returns_the_wired_pieces(out_dir):
    built = build(compose(tiny_overrides(out_dir)), run_id="fixed-id")
    assert isinstance(built, Experiment)
    assert implements(built.datamodule, DataModule)
    assert isinstance(built.model, LightGCN) and built.task.model is built.model
    assert (built.model.num_users, built.model.num_items) == (built.graph.num_users, built.graph.num_items) == (120, 150)
    assert built.run_dir == out_dir / "runs" / built.name / "fixed-id" and built.run_dir.is_dir()
    assert built.name == "lightgcn-synthetic"
    assert isinstance(built.timer, EpochTimer) and built.timer in built.callbacks
    assert any(isinstance(c, ModelCheckpoint) for c in built.callbacks)
    assert [type(lg) for lg in built.loggers] == [CSVLogger]
    assert built.trainer.max_epochs == 4 and built.timer in built.trainer.callbacks


def test_build_is_seeded_and_fits_like_run_experiment(out_dir):
    overrides = tiny_overrides(out_dir)
    first, second = build(compose(overrides)), build(compose(overrides))
    assert torch.equal(first.model.input.embedding.weight, second.model.input.embedding.weight)
    other = build(compose([*overrides, "seed=7"]))
    assert not torch.equal(first.model.input.embedding.weight, other.model.input.embedding.weight)

    # The same config fitted by hand from build's pieces and by run_experiment: the same model.
    first.trainer.fit(first.task, datamodule=first.datamodule)
    by_hand = first.trainer.validate(first.task, datamodule=first.datamodule, ckpt_path="best", verbose=False)[0]
    metrics = run_experiment(compose(overrides), overrides)
    assert by_hand["val/ndcg@20"] == metrics["val/ndcg@20"] > 0.0


def test_build_rejects_a_test_metric_for_selection(out_dir):
    with pytest.raises(ConfigError, match="optimized_metric"):
        build(compose(tiny_overrides(out_dir, "optimized_metric=test/ndcg@20")))


def test_package_exports_build_and_run_experiment_lazily():
    assert graphrec_lab.build is build and graphrec_lab.run_experiment is run_experiment
    assert graphrec_lab.Experiment is Experiment
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        graphrec_lab.nope  # noqa: B018
