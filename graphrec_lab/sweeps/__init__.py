"""Optuna sweeps over ``run_experiment`` (``graphrec-lab sweep``).

    from graphrec_lab.sweeps import run_sweep
    summary = run_sweep("lightgcn", n_trials=20, workers=2, overrides=["data=ml100k"])
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from graphrec_lab.sweeps.config import SweepConfig, load_sweep_config
from graphrec_lab.sweeps.space import ParamSpec, SearchSpace
from graphrec_lab.sweeps.study import SweepRun, open_study, prepare, run_workers
from graphrec_lab.sweeps.summary import SweepSummary, finish


def run_sweep(
    sweep: str | SweepConfig,
    study_name: str | None = None,
    storage: str | None = None,
    n_trials: int | None = None,
    workers: int = 1,
    overrides: Sequence[str] = (),
) -> SweepSummary:
    """Run (or resume) a sweep until its study holds ``n_trials`` trials; summarise it.

    ``sweep``: a name under ``configs/sweep/``, a YAML path, or a loaded ``SweepConfig``.
    ``overrides``: Hydra overrides for every trial, after the sweep config's own ``overrides``.
    """
    t0 = time.perf_counter()
    config = load_sweep_config(sweep) if isinstance(sweep, str) else sweep
    run = prepare(config, study_name=study_name, storage=storage, n_trials=n_trials, overrides=overrides)
    run_workers(run, workers)
    return finish(open_study(run), run, time.perf_counter() - t0)


__all__ = [
    "ParamSpec", "SearchSpace", "SweepConfig", "SweepRun", "SweepSummary",
    "load_sweep_config", "prepare", "run_sweep",
]
