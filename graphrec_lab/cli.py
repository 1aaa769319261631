"""``graphrec-lab`` command line: ``run`` (Hydra, multirun included) and ``data``.

    graphrec-lab run [hydra overrides]           e.g. graphrec-lab run data=ml100k model=bprmf
    graphrec-lab run -m model=lightgcn,bprmf seed=0,1,2
    graphrec-lab data ml100k [overrides]         parse, split and cache a dataset; print its stats
"""

from __future__ import annotations

import logging
import sys

from omegaconf import DictConfig

from graphrec_lab.config import ConfigError, compose, config_dir

USAGE = __doc__ or ""


def _user_errors() -> tuple[type[BaseException], ...]:
    from graphrec_lab.data.graph import DataValidationError
    from graphrec_lab.data.sources import DataFormatError, DatasetNotFoundError

    return (ConfigError, DataFormatError, DatasetNotFoundError, DataValidationError)


USER_ERRORS = _user_errors()


def _hydra_run() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    @hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")
    def _main(cfg: DictConfig) -> float | None:
        from graphrec_lab.experiment import run_experiment

        overrides = list(HydraConfig.get().overrides.task)
        try:
            metrics = run_experiment(cfg, overrides=overrides)
        except USER_ERRORS as exc:  # a clear one-line message, not a traceback
            sys.exit(f"{type(exc).__name__}: {exc}")
        return metrics.get(str(cfg.optimized_metric))

    _main()


def _data(args: list[str]) -> None:
    if not args:
        raise SystemExit("usage: graphrec-lab data <data config, e.g. ml100k> [overrides]")
    from hydra.utils import instantiate

    cfg = compose([f"data={args[0]}", *args[1:]])
    dm = instantiate(cfg.data)
    graph = dm.load_graph()
    print(f"{graph.name}: {graph.stats()} split hash {graph.content_hash()}")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return
    command, rest = argv[0], argv[1:]
    try:
        if command == "run":
            sys.argv = [f"graphrec-lab {command}", *rest]
            _hydra_run()
        elif command == "data":
            _data(rest)
        else:
            raise SystemExit(f"unknown command {command!r}\n{USAGE}")
    except USER_ERRORS as exc:
        raise SystemExit(f"{type(exc).__name__}: {exc}") from None


if __name__ == "__main__":
    main()
