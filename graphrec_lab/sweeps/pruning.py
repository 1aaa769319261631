"""Optuna pruning from inside Lightning's fit loop.

After every validation during ``fit`` the optimised metric is reported to the trial at step =
epoch; when the pruner says so, ``optuna.TrialPruned`` is raised. Lightning's
``_call_and_handle_interrupt`` calls the callbacks' ``on_exception``, finalises the loggers and
re-raises any exception, so it reaches ``study.optimize``, which records the trial as PRUNED.
Validations outside fit (``run_experiment``'s re-validation of the selected checkpoint) are ignored,
so a finished trial is never pruned after the fact.
"""

from __future__ import annotations

import logging
import math
import time

import lightning.pytorch as pl
import optuna
from lightning.pytorch.trainer.states import TrainerFn

log = logging.getLogger(__name__)


class OptunaPruning(pl.Callback):
    """Report ``monitor`` to ``trial`` after each validation in fit; raise ``TrialPruned`` to stop.

    On pruning the trial's user attributes get ``pruned_epoch`` (epochs trained), ``max_epochs`` and
    ``epoch_s`` (wall seconds per epoch so far, validation included): the sweep summary estimates the
    time pruning saved from them.
    """

    def __init__(self, trial: optuna.Trial, monitor: str) -> None:
        self.trial = trial
        self.monitor = monitor
        self._fit_start = 0.0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_start = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            log.warning("pruning: %s was not logged at epoch %d; not reported", self.monitor, trainer.current_epoch)
            return
        score = float(value)
        epoch = trainer.current_epoch
        if math.isnan(score):
            return  # a NaN cannot be compared; the trial fails at the end instead
        self.trial.report(score, step=epoch)
        if self.trial.should_prune():
            epochs_done = epoch + 1
            self.trial.set_user_attr("pruned_epoch", epochs_done)
            self.trial.set_user_attr("max_epochs", int(trainer.max_epochs or epochs_done))
            self.trial.set_user_attr("epoch_s", (time.perf_counter() - self._fit_start) / epochs_done)
            raise optuna.TrialPruned(f"pruned after epoch {epoch}: {self.monitor}={score:.5f}")
