"""Study files (``study.yaml``): parse and validate, reporting every error at once.

A study is a table: a set of cells (explicit ``rows``, or a ``grid`` of factors x values), each run
once per seed through ``run_experiment`` under a named budget, and tabulated from the result store::

    title: LightGCN (He et al., SIGIR 2020), Table 4
    source: {paper: ..., table: Table 4, url: ...}    # where the reference numbers come from
    protocol: |                      # how they were measured (split, ranking, selection)
    notes: ...                       # optional, printed under the table
    metrics:                         # record metric -> label (or {label, digits, add, scale, trained})
      test/recall@20: Recall@20
      best_epoch: {label: epochs to best val, digits: 0, add: 1, trained: true}
    significance: {baseline: <cell id>, metric: test/ndcg@20}   # optional paired t-test column
    seeds: [2020, 2021, 2022]
    overrides: [trainer.check_val_every_n_epoch=1]              # every cell
    records: [records.jsonl]         # committed result records (relative to this file), read-only
    curves: false                    # true: write curves_<budget>.csv from the runs' test curves
    budgets:                         # chosen with --budget; default: default_budget, quick, first
      quick:
        description: "CPU: 3 epochs"
        overrides: [trainer.max_epochs=3]
        cells: {"lightgcn*": ["+trainer.max_time='00:00:01:50'"]}   # per-cell (fnmatch on the id)
    rows:                            # either rows ...
      - id: gowalla-lightgcn         # [A-Za-z0-9_.-]+, unique
        label: {dataset: Gowalla, method: LightGCN}                 # the table's leading columns
        overrides: [data=gowalla, model=lightgcn]                   # omitted: reference-only row
        reference: {test/recall@20: 0.1830}                         # the source's numbers
        source: "Table 4"            # optional: where this row's reference comes from, if not 'source'
        budgets: {paper: [...]}      # optional per-row budget overrides
        note: ...
    grid:                            # ... or a grid: one cell per combination, ids joined by '-'
      model: [pop, bprmf, lightgcn]                  # value v -> override model=v
      data: {ml100k: [experiment=ml100k_recbole], gowalla: [data=gowalla]}   # label -> overrides
    reference: {lightgcn-gowalla: {test/recall@20: 0.1830}}         # grid: reference per cell id
"""

from __future__ import annotations

import difflib
import fnmatch
import itertools
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from graphrec_lab.config import ConfigError

SPEC_FILES = ("study.yaml",)
CELL_ID = re.compile(r"^[A-Za-z0-9_.\-]+$")
_TOP_KEYS = {"title", "source", "protocol", "notes", "metrics", "significance", "seeds", "overrides", "records",
             "curves", "budgets", "default_budget", "rows", "grid", "reference"}  # fmt: skip
_ROW_KEYS = {"id", "label", "overrides", "reference", "source", "budgets", "note"}
_BUDGET_KEYS = {"description", "overrides", "cells"}
_METRIC_KEYS = {"label", "digits", "add", "scale", "trained"}
# Overrides the runner sets itself; a study setting them would break the record lookup.
RESERVED = ("seed", "paths.root", "paths.results", "group", "name")


class StudySpecError(ConfigError):
    """A study file that cannot be used; the message names the file and every bad key."""


@dataclass(frozen=True)
class Metric:
    key: str  # the record's metric, e.g. test/ndcg@20 or time/epoch_s
    label: str
    digits: int = 4
    add: float = 0.0  # added to every value (best_epoch + 1: epochs to the best validation)
    scale: float = 1.0  # then multiplied (time/fit_s x 1/60: minutes)
    trained: bool = False  # only runs that trained (epochs > 0): popularity has no epoch figures


@dataclass(frozen=True)
class Budget:
    name: str
    description: str
    overrides: tuple[str, ...]
    cells: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (id pattern, overrides), in file order

    def for_cell(self, cell_id: str) -> tuple[str, ...]:
        """This budget's overrides of one cell: the shared ones, then each matching pattern's."""
        extra = [ov for pattern, ovs in self.cells if fnmatch.fnmatchcase(cell_id, pattern) for ov in ovs]
        return (*self.overrides, *extra)


@dataclass(frozen=True)
class Cell:
    id: str
    label: dict[str, str]  # leading table columns (dataset/method, or the grid's factors)
    overrides: tuple[str, ...] | None  # None: reference only (nothing here runs it)
    reference: dict[str, float] = field(default_factory=dict)
    budgets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    note: str = ""
    source: str = ""  # where this cell's reference numbers come from, when not the study's source

    @property
    def runnable(self) -> bool:
        return self.overrides is not None


@dataclass(frozen=True)
class Study:
    name: str
    path: Path
    title: str
    source: dict[str, str]
    protocol: str
    notes: str
    metrics: tuple[Metric, ...]
    seeds: tuple[int, ...]
    overrides: tuple[str, ...]
    budgets: dict[str, Budget]
    cells: tuple[Cell, ...]
    default_budget: str
    records: tuple[Path, ...] = ()
    curves: bool = False
    significance: dict[str, str] = field(default_factory=dict)  # {baseline: cell id, metric: key}

    @property
    def columns(self) -> list[str]:
        """The label columns, in first-seen order."""
        return list(dict.fromkeys(k for c in self.cells for k in c.label))

    def budget(self, name: str | None) -> Budget:
        name = name or self.default_budget
        if name not in self.budgets:
            raise StudySpecError(f"{self.path}: budget {name!r} is not defined under 'budgets'; defined: {', '.join(self.budgets)}")
        return self.budgets[name]

    def select(self, patterns: Sequence[str] | None) -> list[Cell]:
        """Cells whose id matches any pattern (``fnmatch``: ``gowalla-*``); every cell without patterns."""
        if not patterns:
            return list(self.cells)
        chosen: list[Cell] = []
        for pattern in patterns:
            hits = [c for c in self.cells if fnmatch.fnmatchcase(c.id, pattern)]
            if not hits:
                close = difflib.get_close_matches(pattern, [c.id for c in self.cells], n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise StudySpecError(f"--rows {pattern!r} matches no row of {self.path}.{hint} Rows: {', '.join(c.id for c in self.cells)}")
            chosen.extend(c for c in hits if c not in chosen)
        return [c for c in self.cells if c in chosen]  # the file's order


# ----------------------------------------------------------------------------------- finding files
def experiments_dir() -> Path:
    """``$GRAPHREC_EXPERIMENTS_DIR``, else the repository's ``experiments/``."""
    env = os.environ.get("GRAPHREC_EXPERIMENTS_DIR")
    return Path(env).resolve() if env else Path(__file__).resolve().parents[2] / "experiments"


def all_studies(root: Path | None = None) -> list[Path]:
    """Every study file under ``root`` (default ``experiments_dir()``), sorted."""
    root = root or experiments_dir()
    return sorted(p for name in SPEC_FILES for p in root.rglob(name) if "outputs" not in p.parts)


def find_study(name_or_path: str | Path) -> Path:
    """The study file of a name (``model_zoo/ml100k``: a folder under experiments/), a folder or the file."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    for folder in (path, experiments_dir() / str(name_or_path)):
        if folder.is_dir():
            for name in SPEC_FILES:
                if (folder / name).is_file():
                    return folder / name
            if folder == path:
                raise StudySpecError(f"{path}: no {' or '.join(SPEC_FILES)} in this folder")
    root = experiments_dir()
    known = sorted(str(p.parent.relative_to(root)) for p in all_studies(root))
    close = difflib.get_close_matches(str(name_or_path), known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise StudySpecError(f"no experiment {str(name_or_path)!r} under {root}.{hint} Studies: {', '.join(known) or '(none)'}")


# ------------------------------------------------------------------------------------- validation
class _Errors:
    """Collects ``key 'a.b': message`` lines; ``raise_if_any`` raises them as one error."""

    def __init__(self, path: Path) -> None:
        self.path, self.lines = path, []

    def add(self, where: str, message: str) -> None:
        self.lines.append(f"key '{where}': {message}" if where else message)

    def raise_if_any(self) -> None:
        if len(self.lines) == 1:
            raise StudySpecError(f"{self.path}: {self.lines[0]}")
        if self.lines:
            raise StudySpecError(f"{self.path}: {len(self.lines)} errors:\n" + "\n".join(f"  - {x}" for x in self.lines))

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(where, f"expected a mapping, got {type(value).__name__} {value!r}")
            return {}
        return value

    def known(self, node: Mapping[str, Any], allowed: set[str], where: str) -> None:
        for key in node:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                dotted = f"{where}.{key}" if where else str(key)
                self.lines.append(f"unknown key '{dotted}'.{hint} Allowed: {', '.join(sorted(allowed))}")

    def overrides(self, value: Any, where: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.add(where, f"expected a list of Hydra overrides (key=value), got {value!r}")
            return ()
        out = []
        for j, ov in enumerate(value):
            if not isinstance(ov, str) or "=" not in ov:
                self.add(f"{where}[{j}]", f"expected a Hydra override key=value, got {ov!r}")
                continue
            if ov.split("=", 1)[0].lstrip("+~") in RESERVED:
                self.add(f"{where}[{j}]", f"{ov.split('=', 1)[0].lstrip('+~')} is set by the study runner itself (seeds: --seeds or 'seeds')")
                continue
            out.append(ov)
        return tuple(out)

    def numbers(self, value: Any, where: str, metrics: Sequence[str]) -> dict[str, float]:
        out = {}
        for key, number in self.mapping(value, where).items():
            if key not in metrics:
                self.add(f"{where}.{key}", f"not one of the table's metrics ({', '.join(metrics)})")
            elif isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
                self.add(f"{where}.{key}", f"expected a number, got {number!r}")
            else:
                out[str(key)] = float(number)
        return out


def load_study(name_or_path: str | Path) -> Study:
    """Read and validate a study file; every problem is listed in one ``StudySpecError``."""
    path = find_study(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise StudySpecError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise StudySpecError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    err = _Errors(path)
    err.known(raw, _TOP_KEYS, "")
    for key in ("title", "metrics", "budgets"):
        if key not in raw:
            err.add("", f"missing required key '{key}'")
    if ("rows" in raw) == ("grid" in raw):
        err.add("", "expected exactly one of 'rows' (a list of cells) and 'grid' (factors x values)")

    metrics = _metrics(raw.get("metrics"), err)
    keys = [m.key for m in metrics]
    seeds = raw.get("seeds", [2020])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        err.add("seeds", f"expected a non-empty list of integers, got {seeds!r}")
        seeds = [0]
    budgets = _budgets(raw.get("budgets"), err)
    default_budget = str(raw.get("default_budget") or ("quick" if "quick" in budgets else next(iter(budgets), "")))
    if budgets and default_budget not in budgets:
        err.add("default_budget", f"{default_budget!r} is not under 'budgets'")

    if "grid" in raw:
        cells = _grid(raw["grid"], raw.get("reference"), err, keys)
    else:
        if "reference" in raw:
            err.add("reference", "top-level reference numbers are for a grid; a row has its own 'reference'")
        cells = _rows(raw.get("rows"), err, keys, budgets)
    seen: set[str] = set()
    for i, cell in enumerate(cells):
        if cell.id in seen:
            err.add(f"rows[{i}].id", f"duplicate row id {cell.id!r}")
        seen.add(cell.id)

    records = []
    for j, rel in enumerate(raw.get("records") or []):
        if not isinstance(rel, str) or not (path.parent / rel).is_file():
            err.add(f"records[{j}]", f"expected a result-records file next to the study file, {path.parent / str(rel)} does not exist")
        else:
            records.append(path.parent / rel)
    significance = {str(k): str(v) for k, v in err.mapping(raw.get("significance"), "significance").items()}
    if significance:
        err.known(significance, {"baseline", "metric"}, "significance")
        if significance.get("baseline") not in seen:
            err.add("significance.baseline", f"expected a cell id, got {significance.get('baseline')!r}")
        if significance.get("metric") not in keys:
            err.add("significance.metric", f"expected one of the table's metrics ({', '.join(keys)})")
    source = raw.get("source") or {}
    if isinstance(source, str):
        source = {"source": source}
    source = err.mapping(source, "source")
    err.raise_if_any()
    return Study(
        name=path.parent.name, path=path, title=str(raw["title"]),
        source={str(k): str(v) for k, v in source.items()},
        protocol=str(raw.get("protocol") or "").strip(), notes=str(raw.get("notes") or "").strip(),
        metrics=tuple(metrics), seeds=tuple(seeds), overrides=err.overrides(raw.get("overrides", []), "overrides"),
        budgets=budgets, cells=tuple(cells), default_budget=default_budget, records=tuple(records),
        curves=bool(raw.get("curves", False)), significance=significance,
    )  # fmt: skip


def _metrics(value: Any, err: _Errors) -> list[Metric]:
    if isinstance(value, list):
        value = {str(k): str(k) for k in value}
    metrics = []
    for key, spec in err.mapping(value, "metrics").items():
        where = f"metrics.{key}"
        if isinstance(spec, str):
            metrics.append(Metric(str(key), spec))
            continue
        node = err.mapping(spec, where)
        err.known(node, _METRIC_KEYS, where)
        digits, add, scale = node.get("digits", 4), node.get("add", 0), node.get("scale", 1)
        if not isinstance(digits, int) or isinstance(digits, bool) or not 0 <= digits <= 8:
            err.add(f"{where}.digits", f"expected an integer 0-8, got {digits!r}")
            digits = 4
        if isinstance(add, bool) or not isinstance(add, (int, float)):
            err.add(f"{where}.add", f"expected a number, got {add!r}")
            add = 0
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            err.add(f"{where}.scale", f"expected a number, got {scale!r}")
            scale = 1
        metrics.append(Metric(str(key), str(node.get("label", key)), digits, float(add), float(scale),
                              bool(node.get("trained", False))))
    if value is not None and not metrics:
        err.add("metrics", "expected at least one '<record metric>: <column label>'")
    return metrics


def _budgets(value: Any, err: _Errors) -> dict[str, Budget]:
    budgets: dict[str, Budget] = {}
    for name, node in err.mapping(value, "budgets").items():
        where = f"budgets.{name}"
        node = err.mapping(node, where)
        err.known(node, _BUDGET_KEYS, where)
        cells = tuple((str(p), err.overrides(ovs, f"{where}.cells.{p}"))
                      for p, ovs in err.mapping(node.get("cells"), f"{where}.cells").items())  # fmt: skip
        budgets[str(name)] = Budget(str(name), str(node.get("description", "")),
                                    err.overrides(node.get("overrides", []), f"{where}.overrides"), cells)  # fmt: skip
    if value is not None and not budgets:
        err.add("budgets", "define at least one budget (e.g. quick, paper)")
    return budgets


def _rows(value: Any, err: _Errors, metrics: Sequence[str], budgets: Mapping[str, Budget]) -> list[Cell]:
    if not isinstance(value, list) or not value:
        err.add("rows", "expected a non-empty list of rows")
        return []
    cells = []
    for i, node in enumerate(value):
        where = f"rows[{i}]"
        node = err.mapping(node, where)
        err.known(node, _ROW_KEYS, where)
        rid = node.get("id")
        if not isinstance(rid, str) or not CELL_ID.match(rid):
            err.add(f"{where}.id", f"expected an id of letters, digits, '_', '.', '-', got {rid!r}")
            rid = f"row{i}"
        else:
            where = f"rows[{i}] ({rid})"
        label = {str(k): str(v) for k, v in err.mapping(node.get("label"), f"{where}.label").items()}
        reference = err.numbers(node.get("reference"), f"{where}.reference", metrics)
        row_budgets = {}
        for name, ovs in err.mapping(node.get("budgets"), f"{where}.budgets").items():
            if name not in budgets:
                err.add(f"{where}.budgets.{name}", f"no such budget under 'budgets' ({', '.join(budgets)})")
            row_budgets[str(name)] = err.overrides(ovs, f"{where}.budgets.{name}")
        overrides = node.get("overrides")
        cells.append(Cell(
            id=rid, label=label, reference=reference, budgets=row_budgets, note=str(node.get("note", "")),
            source=str(node.get("source", "")),
            overrides=None if overrides is None else err.overrides(overrides, f"{where}.overrides"),
        ))  # fmt: skip
    return cells


def _grid(value: Any, reference: Any, err: _Errors, metrics: Sequence[str]) -> list[Cell]:
    """One cell per combination of the factors' values, the first factor varying slowest."""
    factors: list[tuple[str, list[tuple[str, tuple[str, ...]]]]] = []
    for factor, values in err.mapping(value, "grid").items():
        where = f"grid.{factor}"
        if isinstance(values, list) and values and all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
            factors.append((str(factor), [(str(v), (f"{factor}={v}",)) for v in values]))
        elif isinstance(values, dict) and values:
            factors.append((str(factor), [(str(k), err.overrides(ovs, f"{where}.{k}")) for k, ovs in values.items()]))
        else:
            err.add(where, "expected a non-empty list of values (factor=value) or a mapping label -> overrides")
    if value is not None and not factors:
        err.add("grid", "expected at least one factor")
    cells = []
    for combo in itertools.product(*(vals for _, vals in factors)):
        cid = "-".join(label for label, _ in combo)
        if not CELL_ID.match(cid):
            err.add("grid", f"cell id {cid!r}: value labels must be letters, digits, '_', '.', '-'")
        label = {f: lab for (f, _), (lab, _) in zip(factors, combo)}
        cells.append(Cell(id=cid, label=label, overrides=tuple(ov for _, ovs in combo for ov in ovs)))
    ids = {c.id for c in cells}
    refs = err.mapping(reference, "reference")
    for cid in refs:
        if cid not in ids:
            err.add(f"reference.{cid}", f"no such grid cell ({', '.join(sorted(ids))})")
    return [Cell(c.id, c.label, c.overrides, err.numbers(refs.get(c.id), f"reference.{c.id}", metrics)) if c.id in refs else c
            for c in cells]  # fmt: skip
