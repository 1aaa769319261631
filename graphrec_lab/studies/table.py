"""A study's table, built from result records only (so ``--report-only`` prints what a run printed).

Records come from the study's committed ``records`` files and its output store (read last, so a
newer run of the same cell wins). A cell's record for a seed is the last one whose overrides, less
where it was written (``paths.*``, ``group``, ``name``, ``logger``, ``print_table``), are the ones
the study gives that cell now: a record of an edited cell or of another budget is not used.
"""

from __future__ import annotations

import csv
import logging
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphrec_lab.reporting.report import config_value, load_records
from graphrec_lab.reporting.significance import format_p, paired_test
from graphrec_lab.reporting.tables import mean_std
from graphrec_lab.studies.spec import Budget, Cell, Metric, Study
from graphrec_lab.sweeps.export import atomic_write_text

log = logging.getLogger(__name__)

# Overrides that say where and under which name a run was stored, not what it computed.
_LOCATION_KEYS = ("paths.root", "paths.results", "group", "name", "logger", "print_table", "seed")


@dataclass
class CellResult:
    cell: Cell
    status: str  # ok | partial | not run | failed | reference | no record
    reason: str = ""
    records: dict[int, Mapping[str, Any]] = field(default_factory=dict)  # seed -> record

    def values(self, metric: Metric) -> dict[int, float]:
        """Seed -> the metric's value (``add`` then ``scale`` applied); ``epochs`` counts fractional
        epochs of a time-capped run (see ``epochs_trained``)."""
        out = {}
        for seed, record in sorted(self.records.items()):
            metrics = record["metrics"]
            if metric.trained and float(metrics.get("epochs", 0)) <= 0:
                continue
            value = epochs_trained(record) if metric.key == "epochs" else metrics.get(metric.key)
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                out[seed] = (float(value) + metric.add) * metric.scale
        return out

    def mean(self, metric: Metric) -> float | None:
        vals = list(self.values(metric).values())
        return statistics.mean(vals) if vals else None


@dataclass
class StudyResult:
    study: Study
    budget: Budget
    seeds: tuple[int, ...]
    store: Path
    results: list[CellResult]
    command: str = ""

    @property
    def failed(self) -> list[CellResult]:
        """Cells with a failed run (all seeds, or some: ``partial``)."""
        return [r for r in self.results if r.status in ("failed", "partial")]


def comparable(overrides: Sequence[str]) -> list[str]:
    """Overrides minus where the run was stored, ``+`` prefixes dropped, sorted."""
    out = [o.lstrip("+") for o in overrides]
    return sorted(o for o in out if o.split("=", 1)[0] not in _LOCATION_KEYS)


def read_records(study: Study, store: Path) -> list[dict[str, Any]]:
    """The committed records, then the output store's."""

    return load_records([*study.records, *([store] if store.is_file() else [])])


def find_record(records: Sequence[Mapping[str, Any]], seed: int, overrides: Sequence[str]) -> Mapping[str, Any] | None:
    """The last record of ``seed`` that ran with ``overrides`` (up to where it was stored)."""
    want = comparable(overrides)
    hits = [r for r in records if int(r.get("seed", -1)) == seed and comparable(r.get("overrides") or []) == want]
    return hits[-1] if hits else None


def collect(
    study: Study,
    budget: Budget,
    selected: Sequence[Cell],
    seeds: Sequence[int],
    store: Path,
    expected: Mapping[tuple[str, int], list[str]],
    status: Mapping[str, tuple[str, str]],
) -> StudyResult:
    """Each selected cell's records, one per seed, with its status."""
    records = read_records(study, store)
    results = []
    for cell in selected:
        result = CellResult(cell=cell, status="ok")
        for seed in seeds:
            want = expected.get((cell.id, seed))
            record = find_record(records, seed, want) if want is not None else None
            if record is not None:
                result.records[seed] = record
        if cell.id in status:
            result.status, result.reason = status[cell.id]
            if result.status == "failed" and result.records:
                result.status = "partial"  # some seeds ran; the reason says which did not
        elif not result.records:
            where = ", ".join(str(p) for p in [*study.records, store])
            result.status, result.reason = "no record", f"no finished run in {where}"
        missing = [s for s in seeds if s not in result.records]
        if result.records and missing and not result.reason:
            result.reason = f"seeds without a record: {' '.join(map(str, missing))}"
        results.append(result)
    return StudyResult(study=study, budget=budget, seeds=tuple(seeds), store=store, results=results)


def epochs_trained(record: Mapping[str, Any]) -> float:
    """Training epochs a run did, fractional when a time cap (``trainer.max_time``) cut its last
    epoch short: optimizer steps (the CSV log's last step) over steps per epoch (one batch per
    ``data.train_batch_size`` training interactions). The record's whole-epoch count when the run
    has no CSV log here or the numbers do not fit together."""

    epochs = float(record["metrics"].get("epochs", math.nan))
    csv_dir = (record.get("paths") or {}).get("csvlogger_dir")
    n_train = (record.get("data") or {}).get("num_train")
    batch = config_value(record.get("config") or {}, "data.train_batch_size")
    if not csv_dir or not isinstance(n_train, int) or not isinstance(batch, int) or batch <= 0:
        return epochs
    try:
        with open(Path(csv_dir) / "metrics.csv", encoding="utf-8") as fh:
            steps = max((int(float(r["step"])) for r in csv.DictReader(fh) if r.get("step")), default=0)
    except (OSError, KeyError, ValueError):
        return epochs
    fraction = steps / math.ceil(n_train / batch)
    # A truncated epoch still counts as one in Lightning's epoch counter: never report more than it.
    return fraction if 0 <= fraction <= epochs + 1e-9 else epochs


def curve_points(record: Mapping[str, Any]) -> list[dict[str, float]]:
    """The ``task.test_curve`` points of one run from its CSV log: epoch, val and test metrics."""
    log_dir = (record.get("paths") or {}).get("csvlogger_dir")
    if not log_dir or not (Path(log_dir) / "metrics.csv").is_file():
        return []
    points = []
    with open(Path(log_dir) / "metrics.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            curve = {k: float(v) for k, v in row.items() if k.startswith(("curve/", "val/")) and v}
            if any(k.startswith("curve/") for k in curve):
                points.append({"epoch": int(row["epoch"]) + 1, **curve})
    return points


def write_curves(result: StudyResult, path: Path) -> Path:
    """``cell, seed, epoch`` and every logged val/curve metric, one line per validation check."""
    rows = [{"cell": r.cell.id, "seed": seed, **p} for r in result.results for seed, rec in r.records.items()
            for p in curve_points(rec)]  # fmt: skip
    keys = list(dict.fromkeys(k for row in rows for k in row))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys or ["cell", "seed", "epoch"])
        writer.writeheader()
        writer.writerows(rows)
    return path


# ------------------------------------------------------------------------------------ rendering
def format_delta(ours: float | None, ref: float | None, digits: int = 4) -> tuple[str, str]:
    """``(ours - ref, (ours - ref) / ref)`` as ``("+0.0123", "+7.9%")``; ``"-"`` when undefined."""
    if ours is None or ref is None:
        return "-", "-"
    diff = ours - ref
    rel = f"{100.0 * diff / ref:+.1f}%" if ref != 0 else "-"
    return f"{diff:+.{digits}f}", rel


def render_markdown(result: StudyResult) -> str:
    """The table: label columns, n, per metric ours (mean ± std over seeds) and, where the study has
    reference numbers, the reference, Δ and Δ %; a paired t-test column against the significance
    baseline; the status. Then one note per distinct reason."""

    study = result.study
    columns = study.columns or ["cell"]
    with_ref = {m.key for m in study.metrics if any(m.key in r.cell.reference for r in result.results)}
    header = [*columns, "n"]
    for m in study.metrics:
        header += [f"{m.label} ours", f"{m.label} ref", "Δ", "Δ %"] if m.key in with_ref else [m.label]
    sig = study.significance
    sig_metric = next((m for m in study.metrics if m.key == sig.get("metric")), None)
    base = next((r for r in result.results if r.cell.id == sig.get("baseline")), None)
    if sig_metric is not None:
        header.append(f"p vs {sig['baseline']}")
    header.append("status")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for res in result.results:
        cells = [res.cell.label.get(c, "-") if c != "cell" or study.columns else res.cell.id for c in columns]
        cells.append(str(len(res.records)) if res.records else "-")
        for m in study.metrics:
            cells.append(mean_std(list(res.values(m).values()), m.digits))
            if m.key in with_ref:
                ref = res.cell.reference.get(m.key)
                cells += [f"{ref:.{m.digits}f}" if ref is not None else "-", *format_delta(res.mean(m), ref, m.digits)]
        if sig_metric is not None:
            test = paired_test(res.values(sig_metric), base.values(sig_metric)) if base is not None and res is not base else None
            cells.append(format_p(test.p_ttest) if test is not None else "-")
        cells.append(res.status)
        lines.append("| " + " | ".join(cells) + " |")
    reasons: dict[tuple[str, str], list[str]] = {}
    for r in result.results:
        if r.reason:
            reasons.setdefault((r.status, r.reason), []).append(r.cell.id)
    notes = [f"- {', '.join(ids)}: {status + ': ' if status != 'ok' else ''}{reason}" for (status, reason), ids in reasons.items()]
    text = "\n".join(lines) + "\n\n"
    text += f"ours: mean ± std over seeds {' '.join(map(str, result.seeds))}"
    text += "; Δ = ours − ref, Δ % = Δ / ref.\n" if with_ref else ".\n"
    sources = [f"- {r.cell.id}: reference from {r.cell.source}" for r in result.results if r.cell.source and r.cell.reference]
    if notes or sources:
        text += "\n" + "\n".join([*notes, *sources]) + "\n"
    return text


def render_report(result: StudyResult) -> str:
    """The results file: title, source, protocol, budget, command, store, the table and the notes."""
    study = result.study
    source = "; ".join(f"{k}: {v}" for k, v in study.source.items())
    parts = [f"# {study.title}: budget `{result.budget.name}`", ""]
    if source:
        parts += [f"Source: {source}", ""]
    if study.protocol:
        parts += [f"Protocol: {' '.join(study.protocol.split())}", ""]
    parts += [f"Budget `{result.budget.name}`: {result.budget.description or ' '.join(result.budget.overrides)}", ""]
    if result.command:
        parts += [f"Command: `{result.command}`", ""]
    stores = ", ".join(f"`{p}`" for p in [*study.records, result.store])
    parts += [f"Result records: {stores}", "", render_markdown(result)]
    if study.notes:
        parts += [study.notes, ""]
    return "\n".join(parts)


def write_report(result: StudyResult, path: str | Path | None = None) -> Path:
    """Write ``render_report`` atomically to ``path`` (default ``<store dir>/study-<budget>.md``)."""

    target = Path(path) if path is not None else result.store.parent / f"study-{result.budget.name}.md"
    atomic_write_text(target, render_report(result))
    return target
