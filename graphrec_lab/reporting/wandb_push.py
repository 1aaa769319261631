"""``graphrec-lab report --wandb``: the ablation table and its plots as one W&B run of the group.

The run has ``job_type="report"`` and the group of the records (the study's or ablation's), so the
W&B group page shows the table beside the runs it summarises. Offline without an API key, like the
runs themselves (``<save_dir>/wandb/offline-run-*``, uploaded later with ``wandb sync``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from graphrec_lab.reporting.report import ReportError, Table, config_value
from graphrec_lab.reporting.significance import PairedTest
from graphrec_lab.reporting.tables import mean_std
from graphrec_lab.tracking.wandb import resolve_mode

TABLE_KEY = "report/table"
PLOT_KEY_PREFIX = "report/plot/"


def report_group(records: Sequence[Mapping[str, Any]], group: str | None) -> str:
    """The W&B group to push into: ``group`` if given, else the one group every record shares."""
    if group is not None:
        return group
    groups = sorted({str(r.get("group")) for r in records})
    if len(groups) != 1 or groups[0] == "None":
        raise ReportError(f"--wandb: the records are in groups {groups}; name the one to report with --group")
    return groups[0]


def table_columns(table: Table) -> list[str]:
    """Factors, ``n``, ``seeds``; per metric: ``<m>`` (``"mean ± std"`` text), ``<m> mean``, ``<m> std``,
    and with a baseline ``<m> p_ttest``, ``<m> p_wilcoxon``; with a baseline, ``baseline`` last."""
    cols = [*(table.factors or ["runs"]), "n", "seeds"]
    for m in table.metrics:
        cols += [m, f"{m} mean", f"{m} std"]
        if table.baseline:
            cols += [f"{m} p_ttest", f"{m} p_wilcoxon"]
    if table.baseline:
        cols.append("baseline")
    return cols


def table_rows(table: Table, digits: int = 4) -> list[list[Any]]:
    """The rows of ``table_columns``: numbers at full precision, None where undefined (one seed's
    std, the baseline's own p-values)."""
    rows = []
    for row in table.rows:
        out: list[Any] = [*(row.factors.values() if table.factors else ["all"]), len(row.seeds),
                          " ".join(map(str, row.seeds))]
        for m in table.metrics:
            mean, std = row.stats(m)
            out += [mean_std([row.values[m][s] for s in sorted(row.values.get(m, {}))], digits), _num(mean), _num(std)]
            if table.baseline:
                test: PairedTest | None = row.tests.get(m)
                out += [None, None] if row.is_baseline or test is None else [_num(test.p_ttest), _num(test.p_wilcoxon)]
        if table.baseline:
            out.append(row.is_baseline)
        rows.append(out)
    return rows


def push_report(
    table: Table,
    records: Sequence[Mapping[str, Any]],
    group: str,
    save_dir: str | Path,
    plots: Sequence[Path] = (),
    digits: int = 4,
    config: Mapping[str, Any] | None = None,
) -> Path:
    """Log ``table`` (``report/table``) and ``plots`` (``report/plot/<file stem>``) as a ``report``
    run of ``group``; returns the run's local directory. ``records``: those the table was built from
    (the ones of ``group`` are kept).

    Project and entity come from the records' ``logger.wandb`` config (the runs' own), the mode from
    the API key (``auto``): a report lands next to the runs it summarises.
    """
    import wandb


    records = [r for r in records if r.get("group") == group] or records
    project = _common(records, "config.logger.wandb.project") or "graphrec_lab"
    entity = _common(records, "config.logger.wandb.entity")
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=project, entity=entity, group=group, job_type="report", name=f"report-{group}"[:128],
        dir=str(save_dir), mode=resolve_mode("auto"), config=dict(config or {}), reinit="create_new",
        settings=wandb.Settings(silent=True),  # the CLI prints where the run went
    )
    try:
        payload: dict[str, Any] = {TABLE_KEY: wandb.Table(columns=table_columns(table), data=table_rows(table, digits))}
        for path in plots:
            payload[PLOT_KEY_PREFIX + Path(path).stem] = wandb.Image(str(path))
        run.log(payload)
        run.summary["report/n_runs"] = len(records)
        local_dir = Path(run.dir).parent
    finally:
        run.finish()
    return local_dir


def _common(records: Sequence[Mapping[str, Any]], dotted: str) -> str | None:
    """The most frequent non-null value of ``dotted`` in the records (``config.logger.wandb.project``)."""
    values = [config_value(r, dotted) for r in records]
    present = [str(v) for v in values if v is not None]
    return statistics.mode(present) if present else None


def _num(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else float(x)
