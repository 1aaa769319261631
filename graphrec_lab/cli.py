"""``graphrec-lab`` command line: ``run`` (Hydra, multirun included), ``sweep``, ``report``, ``study``, ``data``.

    graphrec-lab run [hydra overrides]           e.g. graphrec-lab run data=ml100k model=bprmf
    graphrec-lab run -m model=lightgcn,bprmf seed=0,1,2 group=ablation1
    graphrec-lab sweep <configs/sweep name> [--study-name N] [--storage URL] [--n-trials N]
                       [--workers N] [hydra overrides]
    graphrec-lab report [--results PATH ...] [--group G] [--by key,...] [--metrics m,...]
                        [--baseline factor=value] [--format md|latex|csv] [--plot factor --out DIR]
                        [--wandb]        also the table and plots as a W&B run of the group
    graphrec-lab study <study> [--budget B] [--seeds S ...] [--rows ID ...]
                       [--out DIR] [--report-only] [hydra overrides]
                                                 a study's table (experiments/<name>/study.yaml),
                                                 resumed after stored cells; ``reproduce`` is an alias
    graphrec-lab data ml100k [overrides]         parse, split and cache a dataset; print its stats
    graphrec-lab audit <run dir> [--nonmembers test|random] [--shadow N] [--max-pairs N] [--json]
                                                 membership-inference audit of a finished run
    graphrec-lab recommend <run dir> --user U [-k 20] | --users-file F --out F.csv | --history I ...
    graphrec-lab export <run dir> [--out DIR] [--index hnsw|flat|none]
    graphrec-lab explain <run dir> --user U --item I [--method ...] [--png F] | --evaluate
    graphrec-lab ensemble <run dir> <run dir> ... [--method zscore|minmax|rrf|borda] [--weights W ...]
                                                 (graphrec_lab/inference/cli.py has every option)

Configs ship inside the package (graphrec_lab/configs/); $GRAPHREC_CONFIG_DIR names a folder of your
own, searched first (same layout: model/mine.yaml, experiment/x.yaml). A progress bar shows on a
terminal and never when piped or under CI ($GRAPHREC_PROGRESS=1/0 forces it).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from omegaconf import DictConfig

from graphrec_lab.config import ConfigError, compose, config_dir, config_names, register_user_configs
from graphrec_lab.tracking.console import PROGRESS_ENV

USAGE = __doc__ or ""


def _user_errors() -> tuple[type[BaseException], ...]:
    from graphrec_lab.data.graph import DataValidationError
    from graphrec_lab.data.sources import DataFormatError, DatasetNotFoundError
    from graphrec_lab.reporting.report import ReportError
    from graphrec_lab.tracking.results import ResultStoreError
    from graphrec_lab.training.checkpoint import CheckpointError
    from graphrec_lab.training.task import NonFiniteLossError

    return (
        ConfigError, DataFormatError, DatasetNotFoundError, DataValidationError, ReportError,
        ResultStoreError, CheckpointError, NonFiniteLossError,
    )  # fmt: skip


USER_ERRORS = _user_errors()


def _hydra_run() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    swept = _swept_keys(sys.argv[1:])
    register_user_configs()  # $GRAPHREC_CONFIG_DIR first, then the shipped configs

    @hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")
    def _main(cfg: DictConfig) -> float | None:
        from hydra.types import RunMode

        from graphrec_lab.experiment import run_experiment
        from graphrec_lab.tracking.console import setup_console
        from graphrec_lab.tracking.wandb import label_run

        setup_console()  # again: Hydra has just configured logging for the job
        hc = HydraConfig.get()
        overrides = list(hc.overrides.task)
        if hc.mode == RunMode.MULTIRUN:
            # One W&B run per cell: grouped by the ablation (group=..., else the sweep directory),
            # named and tagged by the factors this multirun varies.
            factors = _cell_factors(overrides, swept)
            label_run(cfg, factors, group="multirun-" + "-".join(Path(hc.sweep.dir).parts[-2:]))
        try:
            metrics = run_experiment(cfg, overrides=overrides)
        except Exception as exc:
            if hc.mode != RunMode.MULTIRUN:
                if isinstance(exc, USER_ERRORS):  # a clear one-line message, not a traceback
                    sys.exit(f"{type(exc).__name__}: {exc}")
                raise
            # A multirun goes on past a failing cell (run_experiment recorded it as failed once it
            # had started); the failures are summarised, with a non-zero exit, at the end.
            cell = " ".join(overrides)
            failed_cells.append((cell, f"{type(exc).__name__}: {exc}"))
            logging.getLogger("graphrec_lab.cli").error(
                "multirun cell failed (%s): %s: %s", cell, type(exc).__name__, exc,
                exc_info=not isinstance(exc, USER_ERRORS),
            )
            return None
        return metrics.get(str(cfg.optimized_metric))

    failed_cells: list[tuple[str, str]] = []
    _main()
    if failed_cells:
        lines = [f"  {cell}: {error.splitlines()[0]}" for cell, error in failed_cells]
        sys.exit(f"{len(failed_cells)} multirun cell(s) failed:\n" + "\n".join(lines))


def _swept_keys(args: list[str]) -> list[str]:
    """Keys of the sweep overrides (``seed=0,1,2``, ``model=choice(a,b)``) on a ``run -m`` line."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = get_args_parser().parse_known_args(args)[0]
        overrides = OverridesParser.create().parse_overrides(parsed.overrides)
    except Exception:  # Hydra reports a bad command line itself, with its own message
        return []
    return [o.key_or_group for o in overrides if o.is_sweep_override() and not o.key_or_group.startswith("hydra")]


def _cell_factors(overrides: list[str], swept: list[str]) -> dict[str, str]:
    """This cell's value of every swept key, from its task overrides."""
    values = {}
    for ov in overrides:
        key, _, value = ov.partition("=")
        values[key.lstrip("+")] = value
    return {k: values[k] for k in swept if k in values}


def _sweep(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="graphrec-lab sweep", description="Optuna sweep over run_experiment")
    parser.add_argument("sweep", help="a configs/sweep/ name or a YAML path")
    parser.add_argument("--study-name", help="default: the sweep config's study_name, else its name")
    parser.add_argument("--storage", help="Optuna storage URL; default sqlite:///<paths.root>/sweeps/<study>/study.db")
    parser.add_argument("--n-trials", type=int, help="total trials of the study (finished ones count)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes on this machine")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every trial")
    ns = parser.parse_intermixed_args(args)
    if ns.workers > 1:  # several processes drawing bars on one terminal garble each other
        os.environ.setdefault(PROGRESS_ENV, "0")
    from graphrec_lab.sweeps import run_sweep
    from graphrec_lab.sweeps.study import quiet_lightning

    quiet_lightning()
    try:
        summary = run_sweep(
            ns.sweep, study_name=ns.study_name, storage=ns.storage, n_trials=ns.n_trials,
            workers=ns.workers, overrides=ns.overrides,
        )
    except KeyboardInterrupt:
        raise SystemExit("sweep interrupted: finished trials are kept; rerun the same command to resume") from None
    print(summary.format())


def _report(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="graphrec-lab report", description="ablation tables from result records")
    parser.add_argument("--results", nargs="+", help="JSONL result stores; default: paths.results of the run config")
    parser.add_argument("--group", help="only records of this group (a study or ablation name)")
    parser.add_argument("--by", help="comma-separated config keys to group by (e.g. model._target_); "
                        "default: the overrides that vary, seed excluded")
    parser.add_argument("--metrics", help="comma-separated metrics (default: test/recall@K and test/<optimized metric>)")
    parser.add_argument("--baseline", help="the row to test against, e.g. model=bprmf")
    parser.add_argument("--format", default="md", choices=["md", "latex", "csv"])
    parser.add_argument("--digits", type=int, default=4)
    parser.add_argument("--plot", help="a factor to plot each metric against (PNG)")
    parser.add_argument("--out", help="directory for --plot (default: the current directory)")
    parser.add_argument("--wandb", action="store_true", help="also log the table and plots as a W&B run "
                        "(job_type report) of the group, in --out, else <results dir>/reports")
    ns = parser.parse_args(args)
    from graphrec_lab.reporting import build_table, load_records, render
    from graphrec_lab.reporting.plots import plot_filename, plot_metric_vs_factor

    results = ns.results or [str(compose([]).paths.results)]
    if ns.wandb:  # the group the report run joins, settled before any work
        from graphrec_lab.reporting.wandb_push import push_report, report_group

        ns.group = report_group(load_records(results), ns.group)
    table = build_table(
        load_records(results),
        metrics=_split(ns.metrics),
        by=_split(ns.by),
        group=ns.group,
        baseline=ns.baseline,
    )
    print(render(table, ns.format, ns.digits), end="")
    if ns.plot:
        out = Path(ns.out or ".")
        for metric in table.metrics:
            path = plot_metric_vs_factor(table, ns.plot, metric, out / plot_filename(metric, ns.plot))
            print(f"plot: {path}", file=sys.stderr)
    if ns.wandb:
        plots = [Path(ns.out or ".") / plot_filename(m, ns.plot) for m in table.metrics] if ns.plot else []
        run_dir = push_report(table, load_records(results), ns.group, Path(ns.out or Path(results[0]).parent / "reports"),
                              plots, ns.digits, config={"command": " ".join(["graphrec-lab report", *args])})
        upload = f" (upload: wandb sync {run_dir})" if run_dir.name.startswith("offline-run") else ""
        print(f"wandb: report run of group {ns.group}: {run_dir}{upload}", file=sys.stderr)


def _study(args: list[str], verb: str = "study") -> None:
    parser = argparse.ArgumentParser(
        prog=f"graphrec-lab {verb}",
        description="run a study's table (experiments/<name>/study.yaml), resuming after stored cells, and print it",
    )
    parser.add_argument("experiment", help="a study folder under experiments/ (lightgcn-sigir20, model_zoo/ml100k), a folder or a study.yaml")
    parser.add_argument("--budget", help="a budget of the study file (default: its default_budget, quick, else its first)")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: the study file's seeds")
    parser.add_argument("--rows", nargs="+", help="cell ids or patterns (gowalla-*); default: every cell")
    parser.add_argument("--out", help="result store and runs directory (default: <study folder>/outputs)")
    parser.add_argument("--report-only", action="store_true", help="rebuild the table from the stored records, no training")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run (after the cell's and the budget's)")
    ns = parser.parse_intermixed_args(args)
    from graphrec_lab.studies import render_markdown, run_study, write_report
    from graphrec_lab.sweeps.study import quiet_lightning

    quiet_lightning()
    echo = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731  progress; the table goes to stdout
    result = run_study(
        ns.experiment, budget=ns.budget, seeds=ns.seeds, rows=ns.rows, out=ns.out,
        report_only=ns.report_only, overrides=ns.overrides, echo=echo,
    )  # fmt: skip
    result.command = " ".join([f"graphrec-lab {verb}", *args])
    print(render_markdown(result), end="")
    path = write_report(result)
    echo(f"table written to {path}")
    if result.failed:
        raise SystemExit(f"{len(result.failed)} row(s) failed: {', '.join(r.cell.id for r in result.failed)}")


def _split(text: str | None) -> list[str] | None:
    return [p.strip() for p in text.split(",") if p.strip()] if text else None


DATA_USAGE = "usage: graphrec-lab data <data config, e.g. ml100k> [overrides]   parse, split and cache a dataset; print its stats"


def _data(args: list[str]) -> None:
    if not args or args[0].startswith("-"):
        if args and args[0] in ("-h", "--help"):
            print(DATA_USAGE)
            return
        raise SystemExit(DATA_USAGE)
    from hydra.utils import instantiate

    from graphrec_lab.config import validate_config

    from hydra.errors import HydraException

    try:
        cfg = compose([f"data={args[0]}", *args[1:]])
    except HydraException as exc:  # no such data config, a malformed override
        options = config_names("data")
        raise ConfigError(f"data {' '.join(args)}: {str(exc).splitlines()[0]} (data configs: {', '.join(options)})") from None
    validate_config(cfg)  # the same check as `run`: a bad key or value stops before any parsing
    dm = instantiate(cfg.data, _convert_="all")
    graph = dm.load_graph()
    print(f"{graph.name}: {graph.stats()} split hash {graph.content_hash()}")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return
    command, rest = argv[0], argv[1:]
    if command in ("run", "sweep", "study", "reproduce"):  # the commands that train
        from graphrec_lab.tracking.console import setup_console
        from graphrec_lab.tracking.wandb import quiet_wandb_console

        setup_console()
        quiet_wandb_console()
    try:
        if command == "run":
            sys.argv = [f"graphrec-lab {command}", *rest]
            _hydra_run()
        elif command == "data":
            _data(rest)
        elif command == "sweep":
            _sweep(rest)
        elif command == "report":
            _report(rest)
        elif command in ("study", "reproduce"):
            _study(rest, command)
        elif command == "audit":
            from graphrec_lab.privacy.audit import cli_main

            cli_main(rest)
        elif command in ("recommend", "export", "explain", "ensemble"):
            from graphrec_lab.inference.cli import main as inference_main

            inference_main(command, rest)
        else:
            raise SystemExit(f"unknown command {command!r}\n{USAGE}")
    except USER_ERRORS as exc:
        raise SystemExit(f"{type(exc).__name__}: {exc}") from None


if __name__ == "__main__":
    main()
