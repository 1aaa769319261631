"""One tiny end-to-end run per training knob on the synthetic default, and clear errors for bad values."""

from __future__ import annotations

import math

import pytest
import torch

from graphrec_lab.config import ConfigError, compose
from graphrec_lab.experiment import build, run_experiment
from graphrec_lab.training.knobs import TrainingKnobs
from tests.conftest import tiny_overrides

KNOBS = [
    ["task.loss=bce", "task.num_negatives=4"],
    ["task.loss=softmax", "task.softmax_temperature=0.2", "task.num_negatives=8"],
    ["task.negative_sampler=popularity", "task.popularity_alpha=0.5", "task.num_negatives=2"],
    ["task.negative_sampler=in_batch", "task.loss=softmax", "task.num_negatives=4"],
    ["task.negative_sampler=hard", "task.hard_candidates=4", "task.num_negatives=2"],
    ["task.optimizer=adamw", "task.weight_decay=0.01"],
    ["task.optimizer=sgd", "task.lr=0.05", "task.momentum=0.9"],
    ["task.optimizer=adagrad", "task.lr=0.05"],
    ["task.lr_schedule=cosine", "trainer.gradient_clip_val=1.0"],
    ["model=ngcf", "task.embedding_lr=0.01", "task.dense_lr=0.001", "task.lr_schedule=warmup", "task.warmup_epochs=1"],
]


@pytest.mark.parametrize("knob", KNOBS, ids=lambda k: " ".join(k))
def test_each_knob_trains_end_to_end(out_dir, knob: list[str]) -> None:
    metrics = run_experiment(compose(tiny_overrides(out_dir, "trainer.max_epochs=2", "trainer.check_val_every_n_epoch=1", *knob)))
    assert 0.0 < metrics["val/ndcg@20"] <= 1.0 and math.isfinite(metrics["test/ndcg@20"])


def test_knobs_change_the_loss_that_is_trained(out_dir) -> None:
    """The logged training loss is the configured one (train/<loss>), and K negatives reach the loss."""
    exp = build(compose(tiny_overrides(out_dir, "trainer.max_epochs=1", "task.loss=softmax", "task.num_negatives=3")))
    exp.trainer.fit(exp.task, datamodule=exp.datamodule)
    assert "train/softmax" in exp.trainer.callback_metrics and "train/bpr" not in exp.trainer.callback_metrics
    batch = next(iter(exp.datamodule.train_dataloader()))
    drawn, candidates = exp.task._draw_negatives(batch)
    assert candidates is None and drawn.neg_items.shape == (3 * len(batch),)
    assert torch.equal(drawn.neg_items.view(-1, 3)[:, 0], batch.neg_items)  # uniform: the data module's draw first


def _cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("task.loss=hinge", "task.loss"),
        ("task.negative_sampler=random", "task.negative_sampler"),
        ("task.optimizer=rmsprop", "task.optimizer"),
        ("task.lr_schedule=cyclic", "task.lr_schedule"),
        ("task.num_negatives=0", "task.num_negatives"),
        ("task.popularity_alpha=-0.5", "task.popularity_alpha"),
        ("task.softmax_temperature=0", "task.softmax_temperature"),
        ("task.momentum=1.5", "task.momentum"),
        ("task.embedding_lr=-1", "task.embedding_lr"),
    ],
)
def test_bad_values_name_their_key(out_dir, override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build(compose(tiny_overrides(out_dir, override)))


def test_a_loss_the_task_does_not_train_is_refused(out_dir) -> None:
    # DP-SGD trains MF-BPR with its own per-example step: another loss would be silently ignored.
    with pytest.raises(Exception, match=r"task\.loss.*DPSGDTask trains with its own step") as info:
        build(compose(tiny_overrides(out_dir, "task=dp_bpr", "model=bprmf", "task.loss=softmax")))
    assert isinstance(_cause(info.value), ConfigError)  # Hydra's instantiate wraps the task's own error


def test_knobs_refused_with_row_sparse_adam(out_dir) -> None:
    base = ["model.num_layers=2", "task.sampling={fanouts: [5, 5], row_updates: lazy_adam}"]
    with pytest.raises(Exception, match=r"lazy_adam.*task\.optimizer=adam") as info:
        build(compose(tiny_overrides(out_dir, *base, "task.lr_schedule=cosine")))
    assert isinstance(_cause(info.value), ConfigError)
    with pytest.raises(Exception, match=r"task\.negative_sampler=hard") as info:
        build(compose(tiny_overrides(out_dir, *base, "task.negative_sampler=hard")))
    assert isinstance(_cause(info.value), ConfigError)
    exp = build(compose(tiny_overrides(out_dir, *base, "task.num_negatives=2", "task.embedding_lr=0.02")))
    assert exp.task._lazy is not None and exp.task._lazy.lr == 0.02  # row-sparse Adam at the embeddings' rate
    exp.trainer.fit(exp.task, datamodule=exp.datamodule)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"num_negatives": 0}, "task.num_negatives"),
        ({"popularity_alpha": -1.0}, "task.popularity_alpha"),
        ({"loss": "hinge"}, "task.loss"),
        ({"negative_sampler": "random"}, "task.negative_sampler"),
        ({"optimizer": "rmsprop"}, "task.optimizer"),
        ({"lr_schedule": "warmup", "warmup_epochs": 0}, "task.warmup_epochs"),
        ({"monitor": "test/ndcg@20"}, "task.monitor"),
    ],
)
def test_knobs_built_in_python_check_their_values(kwargs: dict, key: str) -> None:
    """The same checks hold without the config validator (a task built in a notebook)."""
    with pytest.raises(ConfigError, match=key.replace(".", r"\.") + "="):
        TrainingKnobs(**kwargs)
