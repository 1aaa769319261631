"""What one run leaves in W&B besides Lightning's scalars: its final metrics as a Table, its
validation and training curves against the epoch as charts, and its selected checkpoint and result
record as Artifacts.

``DashboardWandbLogger`` collects the per-epoch scalars Lightning logs while fitting;
``finish_wandb_run`` is called once, where the result record is written, and closes the run.

The final metrics Table has one row and one column per metric, as in the result record (plus
``run_id``, ``name``, ``group``, ``seed``): W&B concatenates a table key across the runs shown in a
panel, so the runs of an ablation become the rows of one table, sortable by any metric and ready
for a scatter or bar chart of two columns. One row per metric would need a pivot in the UI first.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

METRICS_KEY = "final/metrics"  # the one-row Table of the result record's metrics
CURVE_KEYS = {"val": "curves/val", "train": "curves/train"}  # per-epoch Tables (fit only)
RECORD_FILE = "result.json"  # the result record, in the W&B run's files folder
# Scalars that are a count, not a quality: no curve for them.
_NOT_CURVES = ("val/num_users",)


class DashboardWandbLogger(WandbLogger):
    """``WandbLogger`` that also keeps the epoch-level scalars of the fit for ``finish_wandb_run``.

    ``log_artifacts``: log the selected checkpoint and the result record as W&B Artifacts.
    """

    def __init__(self, *args: Any, log_artifacts: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.log_artifacts = log_artifacts
        # split ("val"/"train") -> epoch -> {metric: value}; a later log for the same epoch wins.
        self.epoch_scalars: dict[str, dict[int, dict[str, float]]] = {"val": {}, "train": {}}

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        super().log_metrics(metrics, step)
        if "epoch" not in metrics:  # Lightning adds the epoch to every row it logs
            return
        epoch = int(metrics["epoch"])
        for key, value in metrics.items():
            split = key.split("/", 1)[0]
            if split in self.epoch_scalars and key not in _NOT_CURVES and _is_number(value):
                self.epoch_scalars[split].setdefault(epoch, {})[key] = float(value)


def metrics_table_columns(record: Mapping[str, Any]) -> list[str]:
    """``run_id, name, group, seed`` then the record's metrics, sorted (``test/...``, ``val/...``, ...)."""
    return ["run_id", "name", "group", "seed", *sorted(record["metrics"])]


def metrics_table(record: Mapping[str, Any]) -> Any:
    """A one-row ``wandb.Table`` of the record's metrics (val and test of the selected checkpoint)."""
    import wandb

    columns = metrics_table_columns(record)
    ids = [record.get("run_id"), record.get("name"), record.get("group"), record.get("seed")]
    row = ids + [_cell(record["metrics"][m]) for m in columns[4:]]
    return wandb.Table(columns=columns, data=[row])


def curve_tables(logger: DashboardWandbLogger, trained_epochs: int) -> dict[str, Any]:
    """``{"val": Table(epoch, val/...), "train": Table(epoch, train/...)}`` of the fit's epochs.

    Only epochs ``< trained_epochs``: the validation of the selected checkpoint after ``fit`` is
    logged by Lightning at ``epoch == trained_epochs`` and is no point of the training curve.
    """
    import wandb

    tables = {}
    for split, per_epoch in logger.epoch_scalars.items():
        epochs = sorted(e for e in per_epoch if e < trained_epochs)
        names = sorted({k for e in epochs for k in per_epoch[e]})
        if epochs and names:
            data = [[e, *(_cell(per_epoch[e].get(k)) for k in names)] for e in epochs]
            tables[split] = wandb.Table(columns=["epoch", *names], data=data)
    return tables


def finish_wandb_run(logger: WandbLogger, record: Mapping[str, Any]) -> None:
    """Log the record's metrics (summary and Table), the curves and the artifacts; finish the run.

    A plain ``WandbLogger`` (a user's own logger config) gets the summary, the Table and the
    artifacts; the curves need a ``DashboardWandbLogger``.
    """
    run = logger.experiment
    metrics = record["metrics"]
    if getattr(run, "disabled", False):  # logger.wandb.mode=disabled: a no-op run without a directory
        run.finish()
        return
    payload: dict[str, Any] = {METRICS_KEY: metrics_table(record)}
    if isinstance(logger, DashboardWandbLogger):
        import wandb

        optimized = str(record.get("optimized_metric", ""))
        tables = curve_tables(logger, int(metrics.get("epochs", 0)))
        for split, table in tables.items():
            payload[CURVE_KEYS[split]] = table
        if "val" in tables and optimized in tables["val"].columns:
            payload[f"charts/{optimized}"] = wandb.plot.line(
                tables["val"], "epoch", optimized, title=f"{optimized} by epoch (validation while fitting)"
            )
        if "train" in tables and "train/loss" in tables["train"].columns:
            payload["charts/train/loss"] = wandb.plot.line(tables["train"], "epoch", "train/loss", title="train/loss by epoch")
    run.log(payload)
    run.summary.update(dict(metrics))
    if getattr(logger, "log_artifacts", True):
        log_run_artifacts(run, record)
    run.finish()


def log_run_artifacts(run: Any, record: Mapping[str, Any]) -> None:
    """The result record (``result-<run id>``) and the checkpoint this run selected (``model-<run id>``).

    The checkpoint is added by reference to its file in the run directory (``policy="immutable"``):
    nothing is copied into W&B's staging folder; an offline run's manifest points at the file and
    ``wandb sync`` uploads it from there. A checkpoint this run did not write (``fit=false`` with
    ``ckpt_path``) is not logged again.
    """
    import wandb

    record_path = Path(run.dir) / RECORD_FILE
    record_path.write_text(json.dumps(record, sort_keys=True, default=str, indent=1) + "\n", encoding="utf-8")
    result = wandb.Artifact(f"result-{run.id}", type="result", description="graphrec_lab result record",
                            metadata={"metrics": dict(record["metrics"]), "seed": record.get("seed")})
    result.add_file(str(record_path), name=RECORD_FILE, policy="immutable")
    run.log_artifact(result)

    paths = record.get("paths") or {}
    ckpt, run_dir = paths.get("checkpoint"), paths.get("run_dir")
    if not ckpt or not run_dir or not Path(ckpt).is_file():
        return
    if not Path(ckpt).resolve().is_relative_to(Path(run_dir).resolve()):
        return
    optimized = str(record.get("optimized_metric", ""))
    model = wandb.Artifact(
        f"model-{run.id}", type="model", description="checkpoint selected on the validation split",
        metadata={
            "optimized_metric": optimized,
            "score": record["metrics"].get(optimized),
            "best_epoch": record["metrics"].get("best_epoch"),
            "model": ((record.get("config") or {}).get("model") or {}).get("_target_"),
        },
    )
    model.add_file(str(ckpt), name=Path(ckpt).name, policy="immutable")
    run.log_artifact(model, aliases=["best"])


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _cell(value: Any) -> Any:
    """Table cells: floats as they are, NaN as None (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value
