"""graphrec_lab: graph-neural-network recommenders with fused transformer text encoders."""

__version__ = "0.1.0"


def run_experiment(cfg, overrides=None):  # noqa: ANN001 - lazy import keeps `import graphrec_lab` light
    """See ``graphrec_lab.experiment.run_experiment``."""
    from graphrec_lab.experiment import run_experiment as _run

    return _run(cfg, overrides)


def load_run(path, device="cpu"):  # noqa: ANN001 - lazy import keeps `import graphrec_lab` light
    """See ``graphrec_lab.inference.run.load_run``."""
    from graphrec_lab.inference.run import load_run as _load

    return _load(path, device)
