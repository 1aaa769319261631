"""Run a study's cells through ``run_experiment``, skipping cells whose record is already stored.

Every runnable cell runs once per seed with the study's overrides, the cell's, the budget's (shared,
per-cell pattern, the row's own), then the command line's, one per key, the last winning. Records go
to ``<out>/results.jsonl`` under ``group=study-<name>-<budget>``, ``name=<name>-<cell id>``. A cell
whose record (same seed, same overrides) is in that store or in the study's committed ``records`` is
not run again, so an interrupted study resumes where it stopped. A cell whose data files are missing
is reported as not run, with the data layer's download hint, instead of stopping the table.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from omegaconf import DictConfig

from graphrec_lab.studies.spec import Budget, Cell, Study, load_study
from graphrec_lab.studies.table import StudyResult, collect, find_record, read_records, write_curves

log = logging.getLogger(__name__)

Runner = Callable[[DictConfig, list[str]], Mapping[str, float]]


def group_name(study: Study, budget: Budget) -> str:
    return f"study-{study.name}-{budget.name}"


def run_name(study: Study, cell: Cell) -> str:
    return f"{study.name}-{cell.id}"


def cell_overrides(study: Study, cell: Cell, budget: Budget, seed: int, out: Path, extra: Sequence[str] = ()) -> list[str]:
    """The Hydra overrides of one cell and seed, one per key, the last winning."""
    from graphrec_lab.sweeps.study import merge_overrides

    if cell.overrides is None:
        raise ValueError(f"cell {cell.id} is reference-only")
    merged = merge_overrides([], [*study.overrides, *cell.overrides, *budget.for_cell(cell.id),
                                  *cell.budgets.get(budget.name, ()), *extra])  # fmt: skip
    return merge_overrides(merged, [
        f"seed={seed}", f"paths.root={out}", f"group={group_name(study, budget)}", f"name={run_name(study, cell)}",
        "print_table=false",
    ])  # fmt: skip


def missing_data(cfg: DictConfig, download: bool) -> str | None:
    """``None`` when the cell's data files are present (downloaded when allowed), else why not, with
    the data layer's own hint (canonical URL, where the files go). Synthetic data always passes."""
    from graphrec_lab.data.datamodule import resolve_data_dir
    from graphrec_lab.data.sources import DatasetNotFoundError, ensure_files, resolve_source

    dataset = cfg.data.get("dataset")
    if not dataset or str(dataset).startswith("synthetic"):
        return None
    try:
        source = resolve_source(str(dataset))
    except KeyError:
        return None
    data_dir = resolve_data_dir(cfg.data.get("data_dir"))
    folder = source.path(data_dir)
    try:
        ensure_files(source, data_dir, download=download and bool(cfg.data.get("download", True)))
    except DatasetNotFoundError as exc:
        text = str(exc)
        log.info("%s", text)
        missing = [n for n in source.files if not (folder / n).is_file()]
        cut = text.find(". Download")
        hint = text[cut + 2:] if cut >= 0 else text
        return f"files missing in {folder}: {', '.join(missing) or '(the dataset folder)'}. {hint}"
    return None


def run_study(
    study: str | Path | Study,
    budget: str | None = None,
    seeds: Sequence[int] | None = None,
    rows: Sequence[str] | None = None,
    out: str | Path | None = None,
    report_only: bool = False,
    overrides: Sequence[str] = (),
    runner: Runner | None = None,
    echo: Callable[[str], None] = print,
) -> StudyResult:
    """Run (unless ``report_only``) every selected runnable cell for every seed that has no record
    yet, then build the table from the stores. ``out`` defaults to the study folder's ``outputs/``.
    A cell raising in ``runner`` (``run_experiment``) is reported as failed and the table goes on."""
    from graphrec_lab.config import compose
    from graphrec_lab.data.sources import DatasetNotFoundError

    study = study if isinstance(study, Study) else load_study(study)
    chosen = study.budget(budget)
    seed_list = tuple(int(s) for s in (seeds or study.seeds))
    selected = study.select(rows)
    out_dir = Path(out) if out is not None else study.path.parent / "outputs"
    store = out_dir / "results.jsonl"
    if runner is None and not report_only:
        from graphrec_lab.experiment import run_experiment

        runner = run_experiment

    status: dict[str, tuple[str, str]] = {}
    expected: dict[tuple[str, int], list[str]] = {}
    t0 = time.perf_counter()
    for cell in selected:
        if not cell.runnable:
            status[cell.id] = ("reference", cell.note or "reference only: nothing in graphrec_lab runs this row")
            continue
        for seed in seed_list:
            ovs = cell_overrides(study, cell, chosen, seed, out_dir, overrides)
            expected[(cell.id, seed)] = ovs
            if find_record(read_records(study, store), seed, ovs) is not None:
                continue  # the table reads it: a rerun resumes after the last stored cell
            cfg = compose(ovs)
            try:
                why = missing_data(cfg, download=not report_only)
            except Exception as exc:  # a corrupt file (checksum mismatch): this cell fails, the table goes on
                status[cell.id] = ("failed", f"{type(exc).__name__}: {exc}")
                echo(f"{cell.id}: failed: {type(exc).__name__}: {exc}")
                break
            if why is not None:
                status[cell.id] = ("not run", why)
                echo(f"{cell.id}: not run: {why}")
                break
            if report_only:
                continue
            echo(f"[{time.perf_counter() - t0:7.0f} s] {cell.id} seed {seed}: running")
            try:
                metrics = runner(cfg, ovs)  # type: ignore[misc]
            except DatasetNotFoundError as exc:
                status[cell.id] = ("not run", f"files missing: {exc}")
                echo(f"{cell.id}: not run: {exc}")
                break
            except Exception as exc:  # one failing cell must not cost the table
                log.error("%s seed %d failed:\n%s", cell.id, seed, traceback.format_exc())
                status[cell.id] = ("failed", f"seed {seed}: {type(exc).__name__}: {exc}")
                echo(f"{cell.id} seed {seed}: failed: {type(exc).__name__}: {exc}")
                continue
            summary = ", ".join(f"{m.key} {metrics[m.key]:.4f}" for m in study.metrics if m.key in metrics)
            echo(f"[{time.perf_counter() - t0:7.0f} s] {cell.id} seed {seed}: {summary}")

    result = collect(study, chosen, selected, seed_list, store, expected, status)
    if study.curves and not report_only:
        write_curves(result, out_dir / f"curves_{chosen.name}.csv")
    return result
