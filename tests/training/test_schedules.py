"""Learning-rate schedules, optimisers and parameter groups: the rate at given epochs as configured."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Callback
from torch import nn

from graphrec_lab.config import compose
from graphrec_lab.experiment import build
from graphrec_lab.training.optim import EpochSchedule, build_optimizer
from tests.conftest import tiny_overrides


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (EpochSchedule("none"), {0: 1.0, 7: 1.0}),
        (EpochSchedule("step", step_size=2, gamma=0.5), {0: 1.0, 1: 1.0, 2: 0.5, 3: 0.5, 4: 0.25}),
        (EpochSchedule("cosine", total_epochs=4, min_factor=0.0), {0: 1.0, 1: 0.8535534, 2: 0.5, 4: 0.0, 6: 0.0}),
        (EpochSchedule("cosine", total_epochs=4, min_factor=0.2), {2: 0.6, 4: 0.2}),
        (EpochSchedule("warmup", warmup_epochs=4, start_factor=0.2), {0: 0.2, 2: 0.6, 4: 1.0, 9: 1.0}),
        (EpochSchedule("warmup_cosine", total_epochs=6, warmup_epochs=2, start_factor=0.5), {0: 0.5, 1: 0.75, 2: 1.0, 4: 0.5, 6: 0.0}),
    ],
)
def test_epoch_schedule_factors(schedule: EpochSchedule, expected: dict[int, float]) -> None:
    for epoch, factor in expected.items():
        assert schedule(epoch) == pytest.approx(factor, abs=1e-6), (schedule.name, epoch)


@pytest.mark.parametrize(("name", "cls"), [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD), ("adagrad", torch.optim.Adagrad)])
def test_build_optimizer_names(name: str, cls: type) -> None:
    opt = build_optimizer(name, [{"params": [nn.Parameter(torch.zeros(3))]}], lr=0.1, weight_decay=0.01, momentum=0.9)
    assert type(opt) is cls and opt.param_groups[0]["lr"] == 0.1
    if name == "sgd":
        assert opt.param_groups[0]["momentum"] == 0.9
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        build_optimizer("rmsprop", [{"params": [nn.Parameter(torch.zeros(3))]}], lr=0.1)


def _fit(out_dir, *extra: str):
    exp = build(compose(tiny_overrides(out_dir, *extra)))
    exp.trainer.fit(exp.task, datamodule=exp.datamodule)
    return exp


def test_step_schedule_steps_once_per_epoch_in_a_run(out_dir) -> None:
    exp = _fit(out_dir, "trainer.max_epochs=3", "task.lr=0.01", "task.lr_schedule=step", "task.lr_step_size=1", "task.lr_gamma=0.5")
    # after 3 epochs the scheduler has stepped 3 times: 0.01 * 0.5^3
    assert exp.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.01 * 0.5**3)


def test_warmup_cosine_in_a_run(out_dir) -> None:
    exp = _fit(out_dir, "trainer.max_epochs=2", "task.lr=0.01", "task.lr_schedule=warmup_cosine", "task.warmup_epochs=1", "task.warmup_start_factor=0.5")
    # epoch 2 of a 1-epoch warmup + 1-epoch cosine: the cosine's end (lr_min_factor 0)
    assert exp.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert exp.task.lr_schedulers().get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)


class _Recorder(Callback):
    """The monitored metric at each validation check, in order."""

    def __init__(self, key: str) -> None:
        self.key, self.values = key, []

    def on_validation_end(self, trainer, pl_module) -> None:
        self.values.append(float(trainer.callback_metrics[self.key]))


def test_plateau_watches_the_optimized_metric_at_each_validation_check(out_dir) -> None:
    """mode=min with patience 0: every check whose value is not below the best so far cuts the rate
    by lr_gamma (torch's relative threshold 1e-4); the expected rate follows from the recorded values."""
    recorder = _Recorder("val/recall@10")
    overrides = tiny_overrides(
        out_dir, "trainer.max_epochs=6", "trainer.check_val_every_n_epoch=2", "task.lr=0.01", "task.lr_schedule=plateau",
        "task.plateau_patience=0", "task.lr_gamma=0.5", "task.monitor_mode=min", "optimized_metric=val/recall@10",
    )
    exp = build(compose(overrides), extra_callbacks=[recorder])
    exp.trainer.fit(exp.task, datamodule=exp.datamodule)
    config = exp.trainer.lr_scheduler_configs[0]
    assert config.monitor == "val/recall@10" and config.frequency == 2
    assert config.scheduler.mode == "min" and config.scheduler.last_epoch == 3  # stepped at epochs 2, 4, 6 only
    assert len(recorder.values) == 3
    best, lr = recorder.values[0], 0.01
    for value in recorder.values[1:]:
        if value < best * (1 - 1e-4):
            best = value
        else:
            lr *= 0.5
    assert exp.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(lr)


def test_separate_learning_rates_for_embeddings_and_dense_weights(out_dir) -> None:
    exp = build(compose(tiny_overrides(out_dir, "model=ngcf", "task.embedding_lr=0.01", "task.dense_lr=0.001")))
    groups = exp.task.configure_optimizers().param_groups
    assert [g["lr"] for g in groups] == [0.01, 0.001]
    tables = {id(m.weight) for m in exp.task.modules() if isinstance(m, nn.Embedding)}
    assert tables and {id(p) for p in groups[0]["params"]} == tables
    assert not tables & {id(p) for p in groups[1]["params"]} and groups[1]["params"]
    plain = build(compose(tiny_overrides(out_dir / "plain", "model=ngcf"))).task.configure_optimizers()
    assert len(plain.param_groups) == 1  # the default: one group at task.lr


def test_a_resumed_run_continues_the_schedule(out_dir) -> None:
    """The scheduler's state is in the checkpoint (loadable with weights_only, as run_experiment loads)."""
    knobs = ["task.lr=0.01", "task.lr_schedule=step", "task.lr_step_size=1", "task.lr_gamma=0.5"]
    first = _fit(out_dir / "a", "trainer.max_epochs=2", *knobs)
    ckpt = out_dir / "two_epochs.ckpt"
    first.trainer.save_checkpoint(ckpt)
    resumed = build(compose(tiny_overrides(out_dir / "b", "trainer.max_epochs=4", *knobs)))
    resumed.trainer.fit(resumed.task, datamodule=resumed.datamodule, ckpt_path=str(ckpt), weights_only=True)
    assert resumed.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.01 * 0.5**4)
