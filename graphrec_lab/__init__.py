"""graphrec_lab: graph-neural-network recommenders with fused transformer text encoders.

``build(cfg)`` builds one run's pieces (``Experiment``: DataModule, model, task, callbacks, loggers,
trainer); ``run_experiment(cfg)`` builds and runs it; ``load_run(run_dir)`` loads a finished run
(model, id maps, item text, config) for recommending, exporting and explaining. All load on first use, so that
``import graphrec_lab`` (the CLI's start, a config check) stays free of torch and Lightning.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> module that defines it, imported on first access (PEP 562).
_LAZY = {
    "build": "graphrec_lab.experiment",
    "run_experiment": "graphrec_lab.experiment",
    "Experiment": "graphrec_lab.experiment",
    "load_run": "graphrec_lab.inference.run",
    "LoadedRun": "graphrec_lab.inference.run",
}

if TYPE_CHECKING:
    from graphrec_lab.experiment import Experiment, build, run_experiment
    from graphrec_lab.inference.run import LoadedRun, load_run


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'graphrec_lab' has no attribute {name!r}")


__all__ = ["Experiment", "LoadedRun", "__version__", "build", "load_run", "run_experiment"]
