"""The end of a sweep: counts, best trial, time spent and saved, best config, PNG plots."""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from graphrec_lab.sweeps.export import atomic_write_text, write_experiment_config
from graphrec_lab.sweeps.study import SweepRun, redact

log = logging.getLogger(__name__)


@dataclass
class SweepSummary:
    study_name: str
    storage: str
    out_dir: str
    metric: str
    direction: str
    n_trials: int
    n_complete: int
    n_pruned: int
    n_failed: int
    n_interrupted: int
    n_running: int
    best_number: int | None
    best_value: float | None
    best_params: dict[str, Any]
    trials_s: float  # summed wall time of finished trials (all workers, all runs of the command)
    elapsed_s: float  # wall time of this command
    saved_s_estimate: float  # pruned trials' remaining epochs x their seconds per epoch
    best_config: str | None = None
    rerun: str | None = None
    plots: list[str] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)

    def format(self) -> str:
        lines = [
            f"study {self.study_name} ({self.storage})",
            f"trials: {self.n_complete} complete, {self.n_pruned} pruned, {self.n_failed} failed"
            + (f", {self.n_interrupted} interrupted (not counted)" if self.n_interrupted else "")
            + (f", {self.n_running} still running" if self.n_running else "")
            + f" / n_trials {self.n_trials}",
        ]
        if self.best_number is not None:
            lines.append(f"best: trial {self.best_number} {self.metric}={self.best_value:.5f} ({self.direction}) params {self.best_params}")
        else:
            lines.append("best: no complete trial")
        lines.append(f"time: {_hms(self.elapsed_s)} this command, {_hms(self.trials_s)} in trials overall")
        lines.append(
            f"pruning saved about {_hms(self.saved_s_estimate)} (an estimate: the pruned trials' remaining "
            "epochs x their measured seconds per epoch; early stopping might have ended some sooner)"
        )
        for number, error in sorted(self.errors.items())[:5]:
            lines.append(f"failed trial {number}: {error.splitlines()[0][:200]}")
        if self.best_config:
            lines.append(f"best config: {self.best_config}")
            lines.append(f"rerun it: {self.rerun}")
        for plot in self.plots:
            lines.append(f"plot: {plot}")
        return "\n".join(lines)


def summarize(study: optuna.Study, run: SweepRun, elapsed_s: float) -> SweepSummary:
    trials = study.get_trials(deepcopy=False)
    by_state = {s: [t for t in trials if t.state == s] for s in TrialState}
    failed = [t for t in by_state[TrialState.FAIL] if "error" in t.user_attrs]
    complete = by_state[TrialState.COMPLETE]
    best = study.best_trial if complete else None
    saved = 0.0
    for t in by_state[TrialState.PRUNED]:
        a = t.user_attrs
        if {"pruned_epoch", "max_epochs", "epoch_s"} <= set(a):
            saved += max(int(a["max_epochs"]) - int(a["pruned_epoch"]), 0) * float(a["epoch_s"])
    return SweepSummary(
        study_name=run.study_name,
        storage=redact(run.storage),
        out_dir=run.out_dir,
        metric=run.metric,
        direction=run.direction,
        n_trials=run.n_trials,
        n_complete=len(complete),
        n_pruned=len(by_state[TrialState.PRUNED]),
        n_failed=len(failed),
        n_interrupted=len(by_state[TrialState.FAIL]) - len(failed),
        n_running=len(by_state[TrialState.RUNNING]),
        best_number=None if best is None else best.number,
        best_value=None if best is None else float(best.value),  # type: ignore[arg-type]
        best_params={} if best is None else dict(best.params),
        trials_s=sum(
            (t.datetime_complete - t.datetime_start).total_seconds()
            for t in trials
            if t.datetime_complete is not None and t.datetime_start is not None
        ),
        elapsed_s=elapsed_s,
        saved_s_estimate=saved,
        errors={t.number: str(t.user_attrs["error"]) for t in failed},
    )


def finish(study: optuna.Study, run: SweepRun, elapsed_s: float) -> SweepSummary:
    """Summarise; export the best trial's config; write plots and ``summary.json`` beside the study."""
    out = Path(run.out_dir)
    summary = summarize(study, run, elapsed_s)
    if summary.best_number is not None:
        best = study.best_trial
        name = f"{run.study_name}_best".replace(".", "_")
        config_dir = out / "configs"
        path = write_experiment_config(
            best.user_attrs["overrides"],
            config_dir,
            name,
            header=(
                f"Best trial {best.number} of study {run.study_name!r}: {run.metric}={best.value:.6f}\n"
                f"params: {best.params}\n"
                f"Rerun: graphrec-lab run --config-dir {config_dir} experiment={name}"
            ),
        )
        summary.best_config = str(path)
        summary.rerun = f"graphrec-lab run --config-dir {config_dir} experiment={name}"
    summary.plots = [str(p) for p in write_plots(study, out)]
    atomic_write_text(out / "summary.json", json.dumps(asdict(summary), indent=2, default=str) + "\n")
    return summary


def write_plots(study: optuna.Study, out_dir: Path) -> list[Path]:
    """Optimisation history and parameter importances as PNG; a plot that cannot be drawn is logged."""
    import matplotlib  # only the summary plots need it (seconds to import)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    plots = [("optimization_history.png", ovm.plot_optimization_history, 1)]
    plots.append(("param_importances.png", ovm.plot_param_importances, 2))
    written = []
    for filename, plot, needed in plots:
        path = out_dir / filename
        if len(complete) < needed:
            log.info("%s skipped: needs %d complete trials, the study has %d", filename, needed, len(complete))
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # optuna's matplotlib backend is marked experimental
                ax = plot(study)
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.set_size_inches(8, 5)
            fig.tight_layout()
            tmp = path.with_name(f".{filename}.tmp.png")
            fig.savefig(tmp, dpi=100)
            tmp.replace(path)
            plt.close(fig)
            written.append(path)
        except Exception as exc:  # e.g. importances when every complete trial has the same params
            log.warning("%s not written: %s: %s", filename, type(exc).__name__, exc)
            plt.close("all")
    return written


def _hms(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else str(timedelta(seconds=round(seconds)))
