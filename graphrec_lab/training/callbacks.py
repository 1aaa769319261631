"""Small Lightning callbacks used by every run, and the progress bar setting."""

from __future__ import annotations

import importlib.util
import time

import lightning.pytorch as pl

from graphrec_lab.tracking.console import interactive


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


def progress_bar_enabled(setting: bool | None) -> bool:
    """``trainer.enable_progress_bar``: true or false as given; null (the default) means on when the
    console is interactive (``tracking.console.interactive``: a terminal, not CI)."""
    return interactive() if setting is None else bool(setting)


# Batches between two redraws of the bar: a redraw costs more than one batch of the synthetic
# quickstart (~3 ms); on real datasets (~0.1 s a batch) 10 batches still redraw about once a second.
PROGRESS_REFRESH_BATCHES = 10


def progress_bar_callbacks(setting: bool | None) -> list[pl.Callback]:
    """The progress bar when it is on: Lightning's rich bar if ``rich`` is installed, else its tqdm
    bar, both redrawn every ``PROGRESS_REFRESH_BATCHES`` batches; nothing when it is off."""
    if not progress_bar_enabled(setting):
        return []
    if importlib.util.find_spec("rich") is not None:
        from lightning.pytorch.callbacks import RichProgressBar

        return [RichProgressBar(refresh_rate=PROGRESS_REFRESH_BATCHES)]
    from lightning.pytorch.callbacks import TQDMProgressBar

    return [TQDMProgressBar(refresh_rate=PROGRESS_REFRESH_BATCHES)]
