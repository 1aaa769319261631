"""``graphrec-lab reproduce``: run a paper's table under a named budget and diff it against the paper.

An experiment is a folder ``experiments/<name>/`` with a ``paper.yaml``::

    title: LightGCN (He et al., SIGIR 2020), Table 4
    source: {paper: ..., table: Table 4, url: https://arxiv.org/abs/2002.02126}
    protocol: |                       # how the paper measured (split, ranking, selection)
      ...
    metrics: {test/recall@20: Recall@20, test/ndcg@20: NDCG@20}   # our metric -> the paper's column
    seeds: [2020]
    overrides: [trainer.check_val_every_n_epoch=1]                # Hydra overrides of every row
    budgets:                          # how long to train; chosen with --budget
      quick: {description: "CPU: ...", overrides: [trainer.max_epochs=3, ...]}
      paper: {description: "the published 1000 epochs", overrides: [trainer.max_epochs=1000]}
    rows:
      - id: gowalla-lightgcn          # [A-Za-z0-9_.-]+, unique
        dataset: Gowalla
        method: LightGCN
        paper: {test/recall@20: 0.1830, test/ndcg@20: 0.1554}
        overrides: [data=gowalla, model=lightgcn]   # omitted: a reference-only row (no model here)
        budgets: {paper: [...]}       # optional per-row budget overrides
        note: ...                     # optional

Every runnable row runs once per seed through ``run_experiment`` (its overrides, then the budget's,
then the command line's, one per key, the last winning), writing its record to the result store
``<out>/results.jsonl`` under ``group=reproduce-<name>-<budget>`` and ``name=<name>-<row id>``. A row
whose data files are missing (and cannot be downloaded) is reported as not run, with the data
layer's download hint, instead of stopping the table. The table is always rebuilt from the store,
so ``report_only=True`` prints the same table without training.
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
import math
import os
import re
import statistics
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig

from graphrec_lab.config import ConfigError

log = logging.getLogger(__name__)

SPEC_FILE = "paper.yaml"
ROW_ID = re.compile(r"^[A-Za-z0-9_.\-]+$")
_TOP_KEYS = {"title", "source", "protocol", "metrics", "seeds", "overrides", "budgets", "rows", "default_budget", "notes"}
_ROW_KEYS = {"id", "dataset", "method", "paper", "overrides", "budgets", "note"}
_BUDGET_KEYS = {"description", "overrides"}
# Overrides reproduce sets itself; a row or budget setting them would break the record lookup.
_RESERVED = ("seed", "paths.root", "paths.results", "group", "name")


class ExperimentSpecError(ConfigError):
    """A ``paper.yaml`` that cannot be used; the message names the file and the key."""


# ------------------------------------------------------------------------------------ the spec
@dataclass(frozen=True)
class Budget:
    name: str
    description: str
    overrides: tuple[str, ...]


@dataclass(frozen=True)
class PaperRow:
    id: str
    dataset: str
    method: str
    paper: dict[str, float]  # our metric key -> the published value
    overrides: tuple[str, ...] | None  # None: reference only (nothing here reproduces it)
    budgets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    note: str = ""

    @property
    def runnable(self) -> bool:
        return self.overrides is not None


@dataclass(frozen=True)
class PaperExperiment:
    name: str
    path: Path  # the paper.yaml
    title: str
    source: dict[str, str]
    protocol: str
    metrics: dict[str, str]  # our metric key -> the paper's column label
    seeds: tuple[int, ...]
    overrides: tuple[str, ...]
    budgets: dict[str, Budget]
    rows: tuple[PaperRow, ...]
    default_budget: str

    def budget(self, name: str | None) -> Budget:
        name = name or self.default_budget
        if name not in self.budgets:
            raise ExperimentSpecError(
                f"{self.path}: budget {name!r} is not defined under 'budgets'; defined: {', '.join(self.budgets)}"
            )
        return self.budgets[name]

    def select(self, patterns: Sequence[str] | None) -> list[PaperRow]:
        """Rows whose id matches any pattern (``fnmatch``: ``gowalla-*``); all rows without patterns."""
        if not patterns:
            return list(self.rows)
        chosen = []
        for pattern in patterns:
            hits = [r for r in self.rows if fnmatch.fnmatchcase(r.id, pattern)]
            if not hits:
                close = difflib.get_close_matches(pattern, [r.id for r in self.rows], n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ExperimentSpecError(
                    f"--rows {pattern!r} matches no row of {self.path}.{hint} Rows: {', '.join(r.id for r in self.rows)}"
                )
            chosen.extend(r for r in hits if r not in chosen)
        return [r for r in self.rows if r in chosen]  # the file's order


def experiments_dir() -> Path:
    """``$GRAPHREC_EXPERIMENTS_DIR``, else the repository's ``experiments/``."""
    env = os.environ.get("GRAPHREC_EXPERIMENTS_DIR")
    return Path(env).resolve() if env else Path(__file__).resolve().parent.parent / "experiments"


def find_experiment(name_or_path: str | Path) -> Path:
    """The ``paper.yaml`` of an experiment name, an experiment folder or the file itself."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.is_dir():
        if (path / SPEC_FILE).is_file():
            return path / SPEC_FILE
        raise ExperimentSpecError(f"{path}: no {SPEC_FILE} in this folder")
    candidate = experiments_dir() / str(name_or_path) / SPEC_FILE
    if candidate.is_file():
        return candidate
    known = sorted(p.parent.name for p in experiments_dir().glob(f"*/{SPEC_FILE}"))
    close = difflib.get_close_matches(str(name_or_path), known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ExperimentSpecError(
        f"no experiment {str(name_or_path)!r}: {candidate} does not exist.{hint} "
        f"Experiments with a {SPEC_FILE}: {', '.join(known) or '(none)'}"
    )


def load_experiment(name_or_path: str | Path) -> PaperExperiment:
    """Read and validate a ``paper.yaml``; any problem raises ``ExperimentSpecError`` naming file and key."""
    path = find_experiment(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ExperimentSpecError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ExperimentSpecError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    _unknown_keys(raw, _TOP_KEYS, path, "")
    for key in ("title", "metrics", "budgets", "rows"):
        if key not in raw:
            raise ExperimentSpecError(f"{path}: missing required key '{key}'")

    metrics = _mapping(raw["metrics"], path, "metrics")
    if not metrics:
        raise ExperimentSpecError(f"{path}: key 'metrics': expected at least one '<our metric>: <paper label>'")
    for key, label in metrics.items():
        if not re.match(r"^(val|test)/\S+$", str(key)):
            raise ExperimentSpecError(f"{path}: key 'metrics.{key}': expected a val/ or test/ metric such as test/recall@20")
        if not isinstance(label, str):
            raise ExperimentSpecError(f"{path}: key 'metrics.{key}': expected the paper's column label (a string)")

    seeds = raw.get("seeds", [2020])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ExperimentSpecError(f"{path}: key 'seeds': expected a non-empty list of integers, got {seeds!r}")

    budgets: dict[str, Budget] = {}
    for name, node in _mapping(raw["budgets"], path, "budgets").items():
        where = f"budgets.{name}"
        node = _mapping(node, path, where)
        _unknown_keys(node, _BUDGET_KEYS, path, where)
        budgets[str(name)] = Budget(
            name=str(name),
            description=str(node.get("description", "")),
            overrides=_overrides(node.get("overrides", []), path, f"{where}.overrides"),
        )
    if not budgets:
        raise ExperimentSpecError(f"{path}: key 'budgets': define at least one budget (e.g. quick, paper)")
    default_budget = str(raw.get("default_budget") or ("quick" if "quick" in budgets else next(iter(budgets))))
    if default_budget not in budgets:
        raise ExperimentSpecError(f"{path}: key 'default_budget': {default_budget!r} is not under 'budgets'")

    if not isinstance(raw["rows"], list) or not raw["rows"]:
        raise ExperimentSpecError(f"{path}: key 'rows': expected a non-empty list of rows")
    rows: list[PaperRow] = []
    for i, node in enumerate(raw["rows"]):
        rows.append(_row(node, i, path, metrics, budgets))
    seen: set[str] = set()
    for i, row in enumerate(rows):
        if row.id in seen:
            raise ExperimentSpecError(f"{path}: key 'rows[{i}].id': duplicate row id {row.id!r}")
        seen.add(row.id)

    source = raw.get("source") or {}
    if isinstance(source, str):
        source = {"paper": source}
    return PaperExperiment(
        name=path.parent.name,
        path=path,
        title=str(raw["title"]),
        source={str(k): str(v) for k, v in _mapping(source, path, "source").items()},
        protocol=str(raw.get("protocol", "")).strip(),
        metrics={str(k): str(v) for k, v in metrics.items()},
        seeds=tuple(seeds),
        overrides=_overrides(raw.get("overrides", []), path, "overrides"),
        budgets=budgets,
        rows=tuple(rows),
        default_budget=default_budget,
    )


def _row(node: Any, i: int, path: Path, metrics: Mapping[str, Any], budgets: Mapping[str, Budget]) -> PaperRow:
    where = f"rows[{i}]"
    node = _mapping(node, path, where)
    _unknown_keys(node, _ROW_KEYS, path, where)
    rid = node.get("id")
    if not isinstance(rid, str) or not ROW_ID.match(rid):
        raise ExperimentSpecError(f"{path}: key '{where}.id': expected an id of letters, digits, '_', '.', '-', got {rid!r}")
    where = f"rows[{i}] ({rid})"
    paper = {}
    for key, value in _mapping(node.get("paper", {}), path, f"{where}.paper").items():
        if key not in metrics:
            raise ExperimentSpecError(f"{path}: key '{where}.paper.{key}': not one of the table's metrics ({', '.join(metrics)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ExperimentSpecError(f"{path}: key '{where}.paper.{key}': expected a number, got {value!r}")
        paper[str(key)] = float(value)
    overrides = node.get("overrides")
    row_budgets = {}
    for name, ovs in _mapping(node.get("budgets", {}), path, f"{where}.budgets").items():
        if name not in budgets:
            raise ExperimentSpecError(f"{path}: key '{where}.budgets.{name}': no such budget under 'budgets' ({', '.join(budgets)})")
        row_budgets[str(name)] = _overrides(ovs, path, f"{where}.budgets.{name}")
    return PaperRow(
        id=rid,
        dataset=str(node.get("dataset", "")),
        method=str(node.get("method", rid)),
        paper=paper,
        overrides=None if overrides is None else _overrides(overrides, path, f"{where}.overrides"),
        budgets=row_budgets,
        note=str(node.get("note", "")),
    )


def _mapping(value: Any, path: Path, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ExperimentSpecError(f"{path}: key '{where}': expected a mapping, got {type(value).__name__} {value!r}")
    return value


def _unknown_keys(node: Mapping[str, Any], allowed: set[str], path: Path, where: str) -> None:
    for key in node:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            dotted = f"{where}.{key}" if where else str(key)
            raise ExperimentSpecError(f"{path}: unknown key '{dotted}'.{hint} Allowed: {', '.join(sorted(allowed))}")


def _overrides(value: Any, path: Path, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ExperimentSpecError(f"{path}: key '{where}': expected a list of Hydra overrides (key=value), got {value!r}")
    out = []
    for j, ov in enumerate(value):
        if not isinstance(ov, str) or "=" not in ov:
            raise ExperimentSpecError(f"{path}: key '{where}[{j}]': expected a Hydra override key=value, got {ov!r}")
        key = ov.split("=", 1)[0].lstrip("+~")
        if key in _RESERVED:
            raise ExperimentSpecError(f"{path}: key '{where}[{j}]': {key} is set by reproduce itself (seeds: --seeds or 'seeds')")
        out.append(ov)
    return tuple(out)


# ------------------------------------------------------------------------------------- running
@dataclass
class RowResult:
    row: PaperRow
    status: str  # ok | partial | not run | failed | reference | no record
    reason: str = ""
    values: dict[str, dict[int, float]] = field(default_factory=dict)  # metric -> seed -> value
    epochs: list[float] = field(default_factory=list)
    fit_s: list[float] = field(default_factory=list)

    def mean(self, metric: str) -> float | None:
        vals = list(self.values.get(metric, {}).values())
        return statistics.mean(vals) if vals else None


@dataclass
class Reproduction:
    experiment: PaperExperiment
    budget: Budget
    seeds: tuple[int, ...]
    store: Path
    results: list[RowResult]
    command: str = ""

    @property
    def failed(self) -> list[RowResult]:
        """Rows with a failed run (all seeds, or some: ``partial``)."""
        return [r for r in self.results if r.status in ("failed", "partial")]


def group_name(exp: PaperExperiment, budget: Budget) -> str:
    return f"reproduce-{exp.name}-{budget.name}"


def run_name(exp: PaperExperiment, row: PaperRow) -> str:
    return f"{exp.name}-{row.id}"


def row_overrides(
    exp: PaperExperiment, row: PaperRow, budget: Budget, seed: int, out: Path, extra: Sequence[str] = ()
) -> list[str]:
    """The Hydra overrides of one row and seed: the experiment's, the row's, the budget's (shared,
    then this row's), the command line's; one per key, the last winning."""
    from graphrec_lab.sweeps.study import merge_overrides

    if row.overrides is None:
        raise ValueError(f"row {row.id} is reference-only")
    merged = merge_overrides([], [*exp.overrides, *row.overrides, *budget.overrides, *row.budgets.get(budget.name, ()), *extra])
    return merge_overrides(merged, [
        f"seed={seed}", f"paths.root={out}", f"group={group_name(exp, budget)}", f"name={run_name(exp, row)}",
        "print_table=false",
    ])  # fmt: skip


def missing_data(cfg: DictConfig, download: bool) -> str | None:
    """``None`` when the row's data files are present (downloaded when allowed), else why not.

    Uses the data layer's own check (``ensure_files``), so the message carries its download hint
    (the canonical URL and where to put the files). Synthetic and unregistered datasets pass; a
    run of those reports its own error.
    """
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
        log.info("%s", text)  # with why the download failed, when one was tried
        # The same sentence whether a download was tried or not (--report-only never downloads):
        # which files, where, and the data layer's hint (the canonical URL, where files go).
        missing = [n for n in source.files if not (folder / n).is_file()]
        cut = text.find(". Download")
        hint = text[cut + 2:] if cut >= 0 else text
        return f"files missing in {folder}: {', '.join(missing) or '(the dataset folder)'}. {hint}"
    return None


Runner = Callable[[DictConfig, list[str]], Mapping[str, float]]


def reproduce(
    experiment: str | Path | PaperExperiment,
    budget: str | None = None,
    seeds: Sequence[int] | None = None,
    rows: Sequence[str] | None = None,
    out: str | Path | None = None,
    report_only: bool = False,
    overrides: Sequence[str] = (),
    runner: Runner | None = None,
    echo: Callable[[str], None] = print,
) -> Reproduction:
    """Run (unless ``report_only``) every selected runnable row for every seed, then build the table
    from the result store. ``out`` defaults to ``experiments/<name>/outputs``.

    ``runner(cfg, overrides)`` is ``run_experiment``; a row raising in it is reported as failed and
    the table goes on. Returns the ``Reproduction``; ``render_markdown`` turns it into the table.
    """
    from graphrec_lab.config import compose
    from graphrec_lab.data.sources import DatasetNotFoundError

    exp = experiment if isinstance(experiment, PaperExperiment) else load_experiment(experiment)
    chosen_budget = exp.budget(budget)
    seed_list = tuple(int(s) for s in (seeds or exp.seeds))
    selected = exp.select(rows)
    out_dir = Path(out) if out is not None else exp.path.parent / "outputs"
    store = out_dir / "results.jsonl"
    if runner is None and not report_only:
        from graphrec_lab.experiment import run_experiment

        runner = run_experiment

    status: dict[str, tuple[str, str]] = {}
    expected: dict[tuple[str, int], list[str]] = {}
    t0 = time.perf_counter()
    for row in selected:
        if not row.runnable:
            status[row.id] = ("reference", row.note or "reference only: nothing in graphrec_lab reproduces this row")
            continue
        for seed in seed_list:
            ovs = row_overrides(exp, row, chosen_budget, seed, out_dir, overrides)
            expected[(row.id, seed)] = ovs
            cfg = compose(ovs)
            try:
                why = missing_data(cfg, download=not report_only)
            except Exception as exc:  # a corrupt file (checksum mismatch): this row fails, the table goes on
                status[row.id] = ("failed", f"{type(exc).__name__}: {exc}")
                echo(f"{row.id}: failed: {type(exc).__name__}: {exc}")
                break
            if why is not None:
                status[row.id] = ("not run", why)
                echo(f"{row.id}: not run: {why}")
                break
            if report_only:
                continue
            echo(f"[{time.perf_counter() - t0:7.0f} s] {row.id} seed {seed}: running")
            try:
                metrics = runner(cfg, ovs)  # type: ignore[misc]
            except DatasetNotFoundError as exc:
                status[row.id] = ("not run", f"files missing: {exc}")
                echo(f"{row.id}: not run: {exc}")
                break
            except Exception as exc:  # one failing row must not cost the table
                log.error("%s seed %d failed:\n%s", row.id, seed, traceback.format_exc())
                status[row.id] = ("failed", f"seed {seed}: {type(exc).__name__}: {exc}")
                echo(f"{row.id} seed {seed}: failed: {type(exc).__name__}: {exc}")
                continue
            summary = ", ".join(f"{m} {metrics[m]:.4f}" for m in exp.metrics if m in metrics)
            echo(f"[{time.perf_counter() - t0:7.0f} s] {row.id} seed {seed}: {summary}")

    results = _collect(exp, chosen_budget, selected, seed_list, store, out_dir, expected, status)
    return Reproduction(experiment=exp, budget=chosen_budget, seeds=seed_list, store=store, results=results)


def _collect(
    exp: PaperExperiment,
    budget: Budget,
    selected: Sequence[PaperRow],
    seeds: Sequence[int],
    store: Path,
    out_dir: Path,
    expected: Mapping[tuple[str, int], list[str]],
    status: Mapping[str, tuple[str, str]],
) -> list[RowResult]:
    """Each row's metrics from the result store: the last record per seed whose overrides are the
    ones this row and budget give now (a record of an edited row or another budget is not used)."""
    from graphrec_lab.reporting.report import load_records

    records = load_records([store]) if store.is_file() else []
    group = group_name(exp, budget)
    results = []
    for row in selected:
        result = RowResult(row=row, status="ok")
        by_seed: dict[int, Mapping[str, Any]] = {}
        for record in records:
            if record.get("group") != group or record.get("name") != run_name(exp, row):
                continue
            seed = int(record["seed"])
            want = expected.get((row.id, seed))
            if want is None:
                continue
            if _comparable(record.get("overrides") or []) != _comparable(want):
                log.warning("%s: record of %s seed %d ran with other overrides (paper.yaml or the command line "
                            "changed since); not used", record.get("_source"), row.id, seed)
                continue
            by_seed[seed] = record
        if row.id in status:
            result.status, result.reason = status[row.id]
            if result.status == "not run":
                by_seed = {}  # an older record of a row whose files are gone now is not this table's
            elif result.status == "failed" and by_seed:
                result.status = "partial"  # some seeds ran; the reason says which did not
        elif not by_seed:
            result.status, result.reason = "no record", f"no finished run in {store}"
        for seed in sorted(by_seed):
            metrics = by_seed[seed]["metrics"]
            for m in exp.metrics:
                if m in metrics:
                    result.values.setdefault(m, {})[seed] = float(metrics[m])
            result.epochs.append(epochs_trained(by_seed[seed]))
            result.fit_s.append(float(metrics.get("time/fit_s", math.nan)))
        missing_seeds = [s for s in seeds if s not in by_seed]
        if by_seed and missing_seeds and not result.reason:
            result.reason = f"seeds without a record: {' '.join(map(str, missing_seeds))}"
        results.append(result)
    return results


def epochs_trained(record: Mapping[str, Any]) -> float:
    """Training epochs a run did, fractional when a time cap (``trainer.max_time``) cut its last
    epoch short: optimizer steps (the CSV log's last step) over steps per epoch (one BPR batch per
    ``data.train_batch_size`` training interactions). The record's whole-epoch count when the run
    has no CSV log or the numbers do not fit together."""
    import csv

    from graphrec_lab.reporting.report import config_value

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


def _comparable(overrides: Sequence[str]) -> list[str]:
    """Overrides minus the output location (the store is already the one asked for)."""
    return sorted(o for o in overrides if not o.lstrip("+").startswith(("paths.root=", "paths.results=")))


# ------------------------------------------------------------------------------------- the table
def format_delta(ours: float | None, paper: float | None, digits: int = 4) -> tuple[str, str]:
    """``(ours - paper, (ours - paper) / paper)`` as ``("+0.0123", "+7.9%")``; ``"-"`` when undefined."""
    if ours is None or paper is None:
        return "-", "-"
    diff = ours - paper
    rel = f"{100.0 * diff / paper:+.1f}%" if paper != 0 else "-"
    return f"{diff:+.{digits}f}", rel


def render_markdown(repro: Reproduction, digits: int = 4) -> str:
    """Our numbers beside the paper's, per metric: ours (mean ± std over seeds), paper, Δ, Δ%."""
    from graphrec_lab.reporting.tables import mean_std

    exp = repro.experiment
    header = ["dataset", "method", "n"]
    for label in exp.metrics.values():
        header += [f"{label} ours", f"{label} paper", "Δ", "Δ %"]
    header += ["epochs", "fit min", "status"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for res in repro.results:
        row = res.row
        n = len({s for per_seed in res.values.values() for s in per_seed})
        cells = [row.dataset or "-", row.method, str(n) if n else "-"]
        for metric in exp.metrics:
            vals = [res.values[metric][s] for s in sorted(res.values.get(metric, {}))]
            paper = row.paper.get(metric)
            cells += [mean_std(vals, digits), f"{paper:.{digits}f}" if paper is not None else "-",
                      *format_delta(res.mean(metric), paper, digits)]  # fmt: skip
        cells += [_num(res.epochs, 2), _num([s / 60 for s in res.fit_s], 1), res.status]
        lines.append("| " + " | ".join(cells) + " |")
    # One note per distinct reason (a missing dataset is the same story for each of its rows).
    reasons: dict[tuple[str, str], list[str]] = {}
    for r in repro.results:
        if r.reason:
            reasons.setdefault((r.status, r.reason), []).append(r.row.id)
    notes = [f"- {', '.join(ids)}: {status + ': ' if status != 'ok' else ''}{reason}"
             for (status, reason), ids in reasons.items()]  # fmt: skip
    text = "\n".join(lines) + "\n\n"
    text += (f"ours: mean ± std over seeds {' '.join(map(str, repro.seeds))}; Δ = ours − paper, Δ % = Δ / paper; "
             f"epochs: training epochs run (fractional: a time cap stopped the last one early); "
             f"fit min: wall-clock minutes of training and its validations.\n")  # fmt: skip
    if notes:
        text += "\n" + "\n".join(notes) + "\n"
    return text


def render_report(repro: Reproduction, digits: int = 4) -> str:
    """The results file: what was reproduced, from where, under which budget, then the table."""
    exp = repro.experiment
    source = "; ".join(f"{k}: {v}" for k, v in exp.source.items())
    parts = [f"# {exp.title}: reproduction, budget `{repro.budget.name}`", ""]
    if source:
        parts += [f"Source: {source}", ""]
    if exp.protocol:
        parts += [f"Protocol: {' '.join(exp.protocol.split())}", ""]
    parts += [f"Budget `{repro.budget.name}`: {repro.budget.description or ' '.join(repro.budget.overrides)}", ""]
    if repro.command:
        parts += [f"Command: `{repro.command}`", ""]
    parts += [f"Result store: `{repro.store}` (group `{group_name(exp, repro.budget)}`)", "", render_markdown(repro, digits)]
    return "\n".join(parts)


def write_report(repro: Reproduction, path: str | Path | None = None, digits: int = 4) -> Path:
    """Write ``render_report`` atomically to ``path`` (default ``<store dir>/reproduce-<budget>.md``)."""
    from graphrec_lab.sweeps.export import atomic_write_text

    target = Path(path) if path is not None else repro.store.parent / f"reproduce-{repro.budget.name}.md"
    atomic_write_text(target, render_report(repro, digits))
    return target


def _num(values: Sequence[float], digits: int) -> str:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return "-"
    mean = statistics.mean(vals)
    return f"{mean:.{digits}f}"


__all__ = [
    "Budget", "ExperimentSpecError", "PaperExperiment", "PaperRow", "Reproduction", "RowResult", "experiments_dir",
    "find_experiment", "format_delta", "group_name", "load_experiment", "missing_data", "render_markdown",
    "render_report", "reproduce", "row_overrides", "run_name", "write_report",
]
