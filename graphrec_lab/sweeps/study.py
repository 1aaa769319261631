"""Optuna studies over ``run_experiment``: storage, workers, resume, the objective.

Every trial composes ``base overrides + trial params`` and calls ``run_experiment`` with a pruning
callback. The study lives in an RDB storage (SQLite under the sweep's directory by default, any
SQLAlchemy URL otherwise, PostgreSQL included), created with ``load_if_exists``, so:

* rerunning the command resumes: ``n_trials`` is the study's total, and only the missing trials run;
* ``--workers N`` spawns N processes, each optimising the same study; the same command on other
  machines joins the same study through a shared storage URL;
* a trial raising an exception is FAIL with ``user_attrs["error"]`` and the study goes on;
* a trial whose process died (kill, OOM, reboot) is failed on the next start: at once when it ran on
  this machine and its process is gone, through Optuna's heartbeat (``grace_period``) otherwise,
  and after ``UNSTAMPED_GRACE_S`` when the worker died before stamping itself on the trial.
  Such interrupted trials do not count towards ``n_trials``: the budget counts COMPLETE, PRUNED,
  FAIL with an error, and trials RUNNING in live workers.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
import random
import re
import socket
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import sqlalchemy
from optuna.trial import FrozenTrial, TrialState

from graphrec_lab.config import ConfigError, compose, validate_config
from graphrec_lab.experiment import run_experiment
from graphrec_lab.sweeps.config import SweepConfig
from graphrec_lab.sweeps.pruning import OptunaPruning
from graphrec_lab.sweeps.space import SearchSpace
from graphrec_lab.tracking.wandb import finish_active_run, label_run
from graphrec_lab.training.threads import concurrent_workers_env

log = logging.getLogger(__name__)
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass(frozen=True)
class SweepRun:
    """Everything a worker process needs (picklable for ``spawn``)."""

    sweep: SweepConfig
    study_name: str
    storage: str
    n_trials: int
    metric: str
    direction: str
    base_overrides: tuple[str, ...]
    out_dir: str


def prepare(
    sweep: SweepConfig,
    study_name: str | None = None,
    storage: str | None = None,
    n_trials: int | None = None,
    overrides: Sequence[str] = (),
) -> SweepRun:
    """Resolve names, metric, direction and storage; compose the base config once to fail early."""
    study_name = study_name or sweep.study_name or sweep.name
    if not _NAME.match(study_name):
        raise ConfigError(f"study name {study_name!r}: use letters, digits, '_', '-', '.' only")
    base = [*sweep.overrides, *overrides]
    if sweep.metric is not None:
        base.append(f"optimized_metric={sweep.metric}")
    base = merge_overrides(base, [])
    cfg = compose(base)
    validate_config(cfg)
    metric = str(cfg.optimized_metric)
    out_dir = Path(str(cfg.paths.root)).resolve() / "sweeps" / study_name
    storage = storage or sweep.storage or f"sqlite:///{out_dir / 'study.db'}"
    return SweepRun(
        sweep=sweep,
        study_name=study_name,
        storage=storage,
        n_trials=int(n_trials or sweep.n_trials),
        metric=metric,
        direction=sweep.resolve_direction(metric),
        base_overrides=tuple(base),
        out_dir=str(out_dir),
    )


def merge_overrides(base: Sequence[str], extra: Sequence[str]) -> list[str]:
    """``base + extra`` with one override per key, the last one winning, in first-seen order."""
    out: dict[str, str] = {}
    for ov in [*base, *extra]:
        key = ov.split("=", 1)[0].lstrip("+")
        out.pop(key, None)
        out[key] = ov
    return list(out.values())


def make_storage(run: SweepRun) -> optuna.storages.RDBStorage:
    engine_kwargs: dict[str, Any] = {}
    if run.storage.startswith("sqlite:///"):
        Path(run.storage[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        # Workers share one file: wait for the write lock instead of failing at once.
        engine_kwargs["connect_args"] = {"timeout": 60}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            run.storage,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=run.sweep.heartbeat_interval,
            grace_period=run.sweep.grace_period,
        )


def open_study(run: SweepRun, attempts: int = 5) -> optuna.Study:
    """Create or load the study; refuse to mix trials from a different command into it.

    Commands started at the same moment on several machines may race to create the tables (a
    PostgreSQL ``CREATE TABLE`` race raises IntegrityError/ProgrammingError): retry a few times.
    """
    for attempt in range(attempts):
        try:
            study = optuna.create_study(
                study_name=run.study_name,
                storage=make_storage(run),
                direction=run.direction,
                sampler=run.sweep.make_sampler(run.sweep.seed),
                pruner=run.sweep.make_pruner(),
                load_if_exists=True,
            )
            break
        except sqlalchemy.exc.SQLAlchemyError as exc:
            if attempt == attempts - 1:
                raise
            log.info("opening study %s failed (%s); retrying", run.study_name, type(exc).__name__)
            time.sleep(0.5 + random.random() * (attempt + 1))
    expected = {"base_overrides": list(run.base_overrides), "metric": run.metric}
    attrs = study.user_attrs
    if "base_overrides" not in attrs:
        for key, value in expected.items():
            study.set_user_attr(key, value)
        study.set_user_attr("sweep_config", run.sweep.source)
    elif {k: attrs.get(k) for k in expected} != expected:
        raise ConfigError(
            f"study {run.study_name!r} in {redact(run.storage)} was created by another command "
            f"(metric {attrs.get('metric')}, overrides {attrs.get('base_overrides')}); this one has "
            f"metric {run.metric}, overrides {list(run.base_overrides)}. Use another --study-name."
        )
    if study.direction.name.lower() != run.direction:
        raise ConfigError(f"study {run.study_name!r} maximises/minimises differently ({study.direction.name})")
    return study


def redact(url: str) -> str:
    """A storage URL with its password hidden, for logs and summaries."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy URL: nothing to hide
        return url


def counts_towards_budget(trial: FrozenTrial) -> bool:
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING):
        return True
    return trial.state == TrialState.FAIL and "error" in trial.user_attrs


def budget_used(study: optuna.Study) -> int:
    return sum(counts_towards_budget(t) for t in study.get_trials(deepcopy=False))


# A worker stamps its identity on a trial within milliseconds of Optuna creating it (the sampler's
# ``before_trial``); a RUNNING trial still without one after this long lost its worker in between.
UNSTAMPED_GRACE_S = 2.0


def fail_dead_local_trials(study: optuna.Study) -> int:
    """FAIL the RUNNING trials whose worker process on this machine no longer exists, and those whose
    worker died before stamping them (older than ``UNSTAMPED_GRACE_S`` without a ``worker`` attribute)."""
    n = 0
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker")
        if not worker:
            age = (datetime.now() - t.datetime_start).total_seconds() if t.datetime_start else 0.0
            if age < UNSTAMPED_GRACE_S:
                continue
            reason = "its worker died before recording itself on the trial"
        elif worker.get("host") != host or _process_alive(int(worker.get("pid", -1)), worker.get("start")):
            continue
        else:
            reason = f"worker process {worker.get('pid')} died"
        try:
            study._storage.set_trial_user_attr(t._trial_id, "interrupted", reason)
            study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
            n += 1
            log.info("trial %d was interrupted (%s): marked FAIL", t.number, reason)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError, RuntimeError):
            pass  # another worker got there first
    return n


def run_worker(run: SweepRun, worker: int = 0) -> None:
    """Optimise until the study holds ``run.n_trials`` counted trials (see module docstring)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(run)
    space = run.sweep.space
    attempts = 0

    def between_trials(study: optuna.Study, trial: FrozenTrial) -> None:
        nonlocal attempts
        attempts += 1
        _log_trial(trial)
        fail_dead_local_trials(study)
        if budget_used(study) >= run.n_trials:
            study.stop()
        elif attempts >= 2 * run.n_trials + 10:  # only uncounted (interrupted) trials keep coming
            log.warning("worker %d stops after %d trials without filling the budget", worker, attempts)
            study.stop()

    fail_dead_local_trials(study)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    if budget_used(study) >= run.n_trials:
        log.info("study %s already has %d/%d trials: nothing to run", run.study_name, budget_used(study), run.n_trials)
        return
    study.sampler = _trial_seeded_sampler(run)
    study.optimize(
        lambda trial: objective(trial, run, space),
        catch=(Exception,),
        callbacks=[between_trials],
        gc_after_trial=True,
    )


def _trial_seeded_sampler(run: SweepRun) -> optuna.samplers.BaseSampler:
    """A sampler whose randomness is seeded by (sweep seed, trial number): a fresh single-worker sweep
    is reproducible, a resumed one does not replay the random start-up trials it already ran, and
    workers that start at the same moment (two ``graphrec-lab sweep`` commands on two machines, both
    "worker 0") still draw different parameters, because the storage gives each trial its own number."""
    return TrialSeededSampler(run.sweep.make_sampler, run.sweep.seed)


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """Delegates to a sampler made afresh for every trial, seeded by ``SeedSequence([seed, 0, trial.number])``."""

    def __init__(self, make: Callable[[int | None], optuna.samplers.BaseSampler], seed: int) -> None:
        self._make, self._seed = make, seed
        self._inner = make(seed)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        # [seed, 0, number]: for one worker the same stream as the earlier (seed, worker 0, trials so far)
        # seeding, so single-worker sweeps draw what they always drew.
        # Stamp the worker first: a kill after this point is recognised by the process check above.
        study._storage.set_trial_user_attr(trial._trial_id, "worker", _worker_identity())
        self._inner = self._make(int(np.random.SeedSequence([self._seed, 0, trial.number]).generate_state(1)[0]))
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]) -> dict[str, Any]:
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: Any) -> Any:
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: Any, values: Any) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()


def objective(trial: optuna.Trial, run: SweepRun, space: SearchSpace) -> float:
    """One trial: sample, compose, ``run_experiment`` with pruning; FAIL keeps the error message."""
    try:  # the worker identity is already on the trial (TrialSeededSampler.before_trial)
        params = space.suggest(trial)
        overrides = merge_overrides(run.base_overrides, SearchSpace.to_overrides(params))
        trial.set_user_attr("overrides", overrides)
        cfg = compose(overrides)
        label_run(cfg, params, group=run.study_name, prefix=f"{run.study_name}-t{trial.number}")
        metrics = run_experiment(cfg, overrides, extra_callbacks=[OptunaPruning(trial, run.metric)])
        value = metrics.get(run.metric)
        if value is None or not math.isfinite(value):
            raise ValueError(f"{run.metric}={value} is not a finite number")
    except optuna.TrialPruned:
        finish_active_run("pruned")
        raise
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C (Lightning turns it into sys.exit(1))
        trial.set_user_attr("interrupted", "stopped by the user")
        finish_active_run("interrupted")
        raise KeyboardInterrupt from None  # Optuna marks the trial FAIL (not counted) and stops
    except Exception as exc:
        trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:4000])  # first: this makes it count
        finish_active_run("failed")
        log.warning("trial %d failed: %s: %s", trial.number, type(exc).__name__, exc)
        raise
    trial.set_user_attr("metrics", {k: v for k, v in metrics.items() if k.startswith(("val/", "test/", "time/"))})
    trial.set_user_attr("epochs", metrics.get("epochs"))
    return float(value)


def _log_trial(trial: FrozenTrial) -> None:
    if trial.state == TrialState.COMPLETE:
        log.info("trial %d COMPLETE value=%.5f params=%s", trial.number, trial.value, trial.params)
    elif trial.state == TrialState.PRUNED:
        log.info("trial %d PRUNED after %s epochs params=%s", trial.number, trial.user_attrs.get("pruned_epoch"), trial.params)
    else:
        log.info("trial %d %s %s", trial.number, trial.state.name, trial.user_attrs.get("error", ""))


def _worker_identity() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _process_start(os.getpid())}


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux); guards against PID reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _process_alive(pid: int, start: str | None) -> bool:
    if pid <= 0:
        return True  # unknown: leave it to the heartbeat
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return start is None or _process_start(pid) in (None, start)


def quiet_lightning() -> None:
    """Keep a sweep's log to the trials: Lightning's per-run INFO lines (devices, tips) repeat per trial."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _worker_main(run: SweepRun, worker: int) -> None:
    """Entry point of a spawned worker process."""
    logging.basicConfig(level=logging.INFO, format=f"%(levelname)s w{worker} %(name)s: %(message)s")
    quiet_lightning()
    run_worker(run, worker)


def run_workers(run: SweepRun, workers: int) -> None:
    """Run ``workers`` processes on the study (in this process when 1); raise if any failed."""
    if workers < 1:
        raise ConfigError(f"--workers={workers}: expected at least 1")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own per-trial lines replace Optuna's
    open_study(run)  # create it (and its tables) once, before the workers race for it
    if workers == 1:
        run_worker(run, 0)
        return
    ctx = mp.get_context("spawn")  # no forked CUDA/thread state; each worker imports afresh
    procs = [ctx.Process(target=_worker_main, args=(run, i), name=f"sweep-worker-{i}") for i in range(workers)]
    with concurrent_workers_env(workers):  # threads: auto gives each worker its share of the cores
        for p in procs:
            p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        raise
    bad = [f"{p.name} (exit code {p.exitcode})" for p in procs if p.exitcode != 0]
    if bad:
        raise RuntimeError(f"sweep workers failed: {', '.join(bad)}; the study keeps every finished trial")

