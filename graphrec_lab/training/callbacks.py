"""Small Lightning callbacks used by every run, and the progress bar setting."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl

from graphrec_lab.tracking.console import interactive
from graphrec_lab.training.threads import ThreadGovernor


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


class AdaptiveThreads(pl.Callback):
    """``threads: auto`` while a run trains and evaluates: before each batch, the ``ThreadGovernor``
    re-measures the load every ``period_s`` seconds and keeps torch's intra-op threads at the cores
    other processes leave free (graphrec_lab/training/threads.py)."""

    def __init__(self, governor: ThreadGovernor) -> None:
        self.governor = governor

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        self.governor.maybe_update()

    def on_validation_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.governor.maybe_update()

    def on_test_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.governor.maybe_update()


class TargetMetricStop(pl.Callback):
    """Time-to-accuracy bookkeeping: stop fitting once the validation-selected model reaches a target.

    At every validation check during fit the *selected* model is the best so far on ``monitor`` (a
    validation metric, ``mode`` max or min); its score on ``curve`` (a ``curve/test/*`` key logged by
    ``task.test_curve``) is the value recorded for that check. ``curve`` is read, never compared across
    checks: a check whose ``monitor`` does not improve keeps the previous selection whatever its own
    ``curve`` value is. Fitting stops at the first check where the selected model's ``curve`` value
    reaches ``target`` (``>=``), or once ``max_seconds`` of fit have passed (checked after every
    training batch, so a budget stops mid-epoch).

    ``points``: one dict per check: ``check``, ``epoch`` (1-based epochs trained), ``step``, ``seconds``
    (since ``on_fit_start``), ``val`` (this check's ``monitor``), ``curve`` (this check's ``curve``,
    recorded only), ``selected_epoch``, ``selected_val``, ``selected_curve``. ``reached_seconds`` /
    ``reached_epoch``: at the first check meeting the target, None if none did. ``fit_start``: the
    ``time.perf_counter()`` value at ``on_fit_start``; ``stopped_by``: ``"target"``, ``"budget"`` or None;
    ``stopped_mid_epoch``: the budget ended fit before the epoch's last batch.
    ``on_point``: called with each new point (progress printing).
    """

    def __init__(
        self, target: float, monitor: str = "val/ndcg@20", curve: str = "curve/test/recall@20", mode: str = "max",
        max_seconds: float | None = None, on_point: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode={mode!r}: expected 'max' or 'min'")
        if not monitor.startswith("val/"):
            raise ValueError(f"monitor={monitor!r}: the model is selected on a val/ metric")
        self.target, self.monitor, self.curve, self.mode = float(target), monitor, curve, mode
        self.max_seconds = max_seconds
        self.on_point = on_point
        self.points: list[dict[str, Any]] = []
        self.reached_seconds: float | None = None
        self.reached_epoch: int | None = None
        self.stopped_by: str | None = None
        self.stopped_mid_epoch = False  # the budget ended fit inside an epoch: its time is partial
        self.fit_start = 0.0
        self._best: tuple[float, int, float] | None = None  # (monitor value, epoch, curve value) of the selected model

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.fit_start = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:
        if self.max_seconds is not None and time.perf_counter() - self.fit_start >= self.max_seconds:
            self.stopped_by = self.stopped_by or "budget"
            self.stopped_mid_epoch = batch_idx + 1 < trainer.num_training_batches
            trainer.should_stop = True

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        seconds = time.perf_counter() - self.fit_start
        metrics = trainer.callback_metrics
        for key in (self.monitor, self.curve):
            if key not in metrics:
                raise KeyError(f"TargetMetricStop: {key!r} was not logged at this validation check "
                               f"(logged: {sorted(metrics)}); {self.curve!r} needs task.test_curve=true")
        val, curve = float(metrics[self.monitor]), float(metrics[self.curve])
        epoch = int(trainer.current_epoch) + 1
        if self._best is None or (val > self._best[0] if self.mode == "max" else val < self._best[0]):
            self._best = (val, epoch, curve)
        best_val, best_epoch, best_curve = self._best
        self.points.append({
            "check": len(self.points) + 1, "epoch": epoch, "step": int(trainer.global_step), "seconds": seconds,
            "val": val, "curve": curve, "selected_epoch": best_epoch, "selected_val": best_val, "selected_curve": best_curve,
        })  # fmt: skip
        if self.on_point is not None:
            self.on_point(self.points[-1])
        if self.reached_seconds is None and best_curve >= self.target:
            self.reached_seconds, self.reached_epoch = seconds, epoch
            self.stopped_by = "target"
            trainer.should_stop = True
        elif self.max_seconds is not None and seconds >= self.max_seconds:
            self.stopped_by = self.stopped_by or "budget"
            trainer.should_stop = True


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
