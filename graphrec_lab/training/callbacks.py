"""Small Lightning callbacks used by every run."""

from __future__ import annotations

import time

import lightning.pytorch as pl


class EpochTimer(pl.Callback):
    """Wall seconds of each training epoch, from its start to its last optimisation step.

    Validation that runs at the end of an epoch is excluded (Lightning calls
    ``on_train_epoch_end`` after it), so the figure is the cost of training alone.
    """

    def __init__(self) -> None:
        self.epoch_seconds: list[float] = []
        self._start = 0.0
        self._last = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = self._last = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:
        self._last = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seconds = self._last - self._start
        self.epoch_seconds.append(seconds)
        pl_module.log("time/epoch_s", seconds, on_step=False, on_epoch=True)

    @property
    def mean_epoch_seconds(self) -> float:
        return sum(self.epoch_seconds) / len(self.epoch_seconds) if self.epoch_seconds else 0.0
