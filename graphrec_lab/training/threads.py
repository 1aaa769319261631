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
  While the job runs, a ``ThreadGovernor`` (the ``AdaptiveThreads`` callback of every run) measures
  every few seconds how many cores *other* processes kept busy and lowers the count to the cores left
  free, restoring it when they are free again. A parallel region waits for its slowest thread, and a
  thread that shares a core with another process is the slowest by a scheduler time slice: on 2 cores
  with one competing single-threaded process, LightGCN's training step on Gowalla took 4-6x longer
  with 2 threads than with 1 (``benchmarks/speed/under_load.py`` measures it).
* an integer >= 1: exactly that many threads, whatever the load (bit-for-bit reruns of a run on a
  loaded machine: dense kernels may split their work differently for another thread count).

Inter-op threads follow where torch still allows it (only before the first parallel region of the
process; later calls keep the current value).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Callable

import psutil
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


# (busy CPU seconds of the whole machine, CPU seconds of this process, wall seconds)
CpuSample = tuple[float, float, float]


def cpu_sample() -> CpuSample:
    """Busy CPU time of the machine (all cores, everything but idle and I/O wait), this process's own
    CPU time (all its threads) and a monotonic wall clock, in seconds."""
    t = psutil.cpu_times()
    busy = sum(t) - t.idle - getattr(t, "iowait", 0.0)
    own = psutil.Process().cpu_times()
    return busy, own.user + own.system, time.monotonic()


def cores_busy_elsewhere(before: CpuSample, after: CpuSample) -> float:
    """Cores that other processes kept busy, on average, between two ``cpu_sample`` calls."""
    wall = after[2] - before[2]
    if wall <= 0:
        return 0.0
    return max(0.0, ((after[0] - before[0]) - (after[1] - before[1])) / wall)


def threads_for_load(share: int, cores: int, busy_elsewhere: float) -> int:
    """Intra-op threads for a process whose share of the cores is ``share`` while other processes keep
    ``busy_elsewhere`` cores busy: the cores left free, rounded up from 0.75 (a quarter of a core
    taken by others already costs a thread a time slice per parallel region), at least 1."""
    free = cores - busy_elsewhere
    return max(1, min(share, int(free + 0.25)))


class ThreadGovernor:
    """Keeps torch's intra-op thread count at the cores left free by other processes.

    Call ``maybe_update()`` often (every training or evaluation batch): every ``period_s`` seconds it
    measures the cores other processes kept busy since the previous measurement
    (``cores_busy_elsewhere``) and sets ``threads_for_load(share, cores, busy)`` threads. ``share``
    is the static policy's count (``resolve_threads("auto")``), never exceeded. ``sample`` and
    ``set_threads`` are injectable for tests.
    """

    def __init__(
        self,
        share: int,
        cores: int | None = None,
        period_s: float = 5.0,
        sample: Callable[[], CpuSample] = cpu_sample,
        set_threads: Callable[[int], None] = torch.set_num_threads,
    ) -> None:
        self.share = max(1, int(share))
        self.cores = available_cores() if cores is None else cores
        self.period_s = period_s
        self._sample = sample
        self._set_threads = set_threads
        self._last = sample()
        self.threads = self.share
        self.changes = 0
        self.min_threads = self.share

    def maybe_update(self) -> int:
        """``update()`` when ``period_s`` has passed since the last measurement; the current count."""
        if time.monotonic() - self._last[2] >= self.period_s:
            return self.update()
        return self.threads

    def update(self) -> int:
        """Measure now and set the thread count for the load seen since the last measurement."""
        now = self._sample()
        busy = cores_busy_elsewhere(self._last, now)
        self._last = now
        n = threads_for_load(self.share, self.cores, busy)
        if n != self.threads:
            log.debug("torch threads: %d -> %d (other processes kept %.2f of %d cores busy)", self.threads, n, busy, self.cores)
            self._set_threads(n)
            self.threads = n
            self.changes += 1
            self.min_threads = min(self.min_threads, n)
        return n
