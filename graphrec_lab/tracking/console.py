"""What a run prints: progress on a terminal only, each log line once, known third-party noise off.

``interactive()`` decides every progress display (Lightning's bar, ``progress`` loops): on when
stdout is a terminal and ``$CI`` is unset, off otherwise, so logs and CI output stay line-based.
``$GRAPHREC_PROGRESS=1``/``0`` forces it either way. ``setup_console()`` is what the command line
calls first: it filters the third-party warnings listed in ``KNOWN_WARNINGS`` (each by message and
category, so a new warning still shows) and routes Lightning's log through the root handler once.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

PROGRESS_ENV = "GRAPHREC_PROGRESS"

# (message regex, category): warnings every run triggers that say nothing about the user's run.
KNOWN_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    # torch, when the propagation operator is built as a sparse CSR tensor (supported and tested here).
    (r"Sparse invariant checks are implicitly disabled", UserWarning),
    (r"Sparse CSR tensor support is in beta state", UserWarning),
    # torch >= 2.14, when a dependency scripts a function at import (torch 2.13, the pinned one, is silent).
    (r"`torch.jit.script` is deprecated", FutureWarning),
    # Lightning's own use of a deprecated torch pytree API.
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
    # The training sampler is an IterableDataset with an exact __len__ and is sharded per rank itself.
    (r"Your `IterableDataset` has `__len__` defined", UserWarning),
    # Batches are built in memory; worker processes would only copy the graph.
    (r".*does not have many workers", UserWarning),
    # Metrics are logged per epoch, never per step.
    (r"The number of training batches \(\d+\) is smaller than the logging interval", UserWarning),
    # The task moves its typed batches itself, by design (training/task.py).
    (r"You have overridden `transfer_batch_to_device` in `LightningModule`", UserWarning),
)

# Lightning INFO lines that advertise products rather than describe the run.
_LIGHTNING_TIPS = ("💡 Tip:",)


def interactive() -> bool:
    """Whether to draw progress: ``$GRAPHREC_PROGRESS`` if set, else stdout is a TTY and ``$CI`` unset."""
    forced = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if forced in ("1", "true", "yes", "on"):
        return True
    if forced in ("0", "false", "no", "off"):
        return False
    if os.environ.get("CI"):
        return False
    stream = sys.stdout
    return bool(getattr(stream, "isatty", None) and stream.isatty())


def progress(iterable: Iterable[T], *, desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """``iterable`` with a tqdm bar on stderr when ``interactive()``; the bar appears only after 2 s
    (short loops print nothing) and is cleared when the loop ends."""
    if not interactive():
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, desc=desc, total=total, unit=unit, delay=2.0, leave=False, dynamic_ncols=True)


def filter_known_warnings() -> None:
    """Ignore each of ``KNOWN_WARNINGS`` by message and category; every other warning still shows."""
    present = {(f[0], f[1].pattern if f[1] else None, f[2]) for f in warnings.filters}
    for message, category in KNOWN_WARNINGS:
        if ("ignore", message, category) not in present:  # idempotent: entry points may call it twice
            warnings.filterwarnings("ignore", message=message, category=category)


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_LIGHTNING_TIPS)


class _Once(logging.Filter):
    """Pass each distinct message once per process (Lightning repeats its checkpoint lines for the
    validation and the test of the same checkpoint)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


def route_lightning_logs() -> None:
    """Print each Lightning log line once, through the root logger's handlers.

    ``import lightning`` gives the ``lightning`` logger a console handler of its own while letting
    records propagate to the root logger too: with a configured root (Hydra's, ``basicConfig``)
    every INFO line prints twice. Imported before the root is configured, ``lightning.pytorch`` and
    ``lightning.fabric`` keep handlers of their own and stop propagating, so their lines bypass the
    run's format and log file. Those handlers go and propagation is restored; Lightning's tips are
    dropped; a line repeated verbatim (the same checkpoint restored for validation and for test)
    prints once.
    """
    import lightning.pytorch  # noqa: F401  (its import adds the handlers removed here)

    if not logging.getLogger().handlers:
        return  # no root handler: Lightning's own are the only output, keep them
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
        logger.propagate = True
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    for flt in (_DropTips(), _Once()):
        if not any(type(f) is type(flt) for f in rank_zero.filters):
            rank_zero.addFilter(flt)


def setup_console() -> None:
    """Both of the above, for a command-line entry point (after logging is configured); W&B's
    console is kept quiet by ``tracking.wandb.quiet_wandb_console``."""
    filter_known_warnings()
    route_lightning_logs()
