"""CPU thread policy of a run: how many torch (OpenMP/MKL) threads each training process uses.

torch starts as many intra-op threads as the machine has physical cores. When several CPU-bound
processes share those cores (``sweep --workers N``, a notebook beside a run, a shared server), each
process's OpenMP threads wait on cores that another process holds, and a parallel sparse product
stalls on its slowest thread. The policy gives each of the job's processes its share of the cores.

``threads`` (run config, ``graphrec_lab/configs/train.yaml``):

* ``auto`` (default): the cores this process may run on (``os.sched_getaffinity``) divided by the
  number of concurrent processes of this job: the sweep workers (``GRAPHREC_CONCURRENT_WORKERS``, set
  by ``run_workers`` for its worker processes; 1 otherwise) times the run's DDP ranks on this machine
  (``trainer.devices``), at least 1, and never more than torch's own default at
  start-up (physical cores, or ``OMP_NUM_THREADS`` when set). A single run therefore keeps torch's
  default, and its results are unchanged.
* an integer >= 1: exactly that many threads.

Inter-op threads follow where torch still allows it (only before the first parallel region of the
process; later calls keep the current value).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from graphrec_lab.config import ConfigError

log = logging.getLogger(__name__)

WORKERS_ENV = "GRAPHREC_CONCURRENT_WORKERS"
# torch's default before any run changed it: physical cores, or OMP_NUM_THREADS when set.
_DEFAULT_THREADS = torch.get_num_threads()
_logged: tuple[int, str] | None = None


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity mask; ``os.cpu_count()`` where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def concurrent_workers() -> int:
    """How many processes of this job train at once (``$GRAPHREC_CONCURRENT_WORKERS``, default 1)."""
    raw = os.environ.get(WORKERS_ENV, "").strip()
    if not raw:
        return 1
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"${WORKERS_ENV}={raw!r}: expected an integer >= 1")
    return int(raw)


@contextmanager
def concurrent_workers_env(workers: int) -> Iterator[None]:
    """``$GRAPHREC_CONCURRENT_WORKERS=workers`` while child processes are started (they inherit it),
    restored afterwards."""
    before = os.environ.get(WORKERS_ENV)
    os.environ[WORKERS_ENV] = str(int(workers))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(WORKERS_ENV, None)
        else:
            os.environ[WORKERS_ENV] = before


def resolve_threads(
    setting: int | str, cores: int | None = None, workers: int | None = None, default: int | None = None
) -> int:
    """The intra-op thread count for ``setting`` (``"auto"`` or an integer >= 1).

    ``auto`` = max(1, min(cores // workers, default)); ``cores``, ``workers`` and ``default`` default
    to this process's affinity, ``concurrent_workers()`` and torch's start-up thread count.
    """
    if isinstance(setting, str) and setting.strip().lower() == "auto":
        cores = available_cores() if cores is None else cores
        workers = concurrent_workers() if workers is None else workers
        default = _DEFAULT_THREADS if default is None else default
        return max(1, min(cores // max(1, workers), default))
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ConfigError(f"threads={setting!r}: expected 'auto' or an integer >= 1")
    return setting


def local_ranks(devices: object) -> int:
    """Training processes one run starts on this machine for ``trainer.devices`` (an int, a list of
    device ids, or ``auto``/a string: 1)."""
    if isinstance(devices, bool):
        return 1
    if isinstance(devices, int):
        return max(1, devices)
    if isinstance(devices, (list, tuple)):
        return max(1, len(devices))
    return 1


def apply_thread_policy(setting: int | str, ranks: int = 1) -> int:
    """Set torch's intra-op (and, while still allowed, inter-op) threads for ``setting``; ``ranks``: the
    run's own processes on this machine (DDP), which share the cores like sweep workers. Logs the
    choice once per process (again only when it changes): at INFO when it differs from torch's
    start-up default, else at DEBUG. Returns the thread count."""
    global _logged
    workers = concurrent_workers() * max(1, ranks)
    n = resolve_threads(setting, workers=workers)
    changed = torch.get_num_threads() != n or n != _DEFAULT_THREADS
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    if torch.get_num_interop_threads() != n:
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:  # torch allows it once, before any inter-op work: keep what is set
            pass
    why = (
        f"auto: {available_cores()} cores / {workers} process(es), torch default {_DEFAULT_THREADS}"
        if isinstance(setting, str)
        else "threads setting"
    )
    if _logged != (n, why):
        # INFO when the policy departs from torch's default (sweep workers, DDP ranks, a set value);
        # a plain run keeps the default and its console output stays as it was (DEBUG).
        level = logging.INFO if changed else logging.DEBUG
        log.log(level, "torch threads: %d intra-op, %d inter-op (%s)", n, torch.get_num_interop_threads(), why)
        _logged = (n, why)
    return n
