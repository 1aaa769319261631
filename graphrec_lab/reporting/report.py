"""Ablation tables from the local result store (``graphrec-lab report``).

Records (one JSON line per run, ``graphrec_lab/tracking/results.py``) are grouped by their factor
combination: the command-line overrides other than ``seed`` and bookkeeping keys (output paths,
names, loggers), shown only where they vary; or, with ``by``, values read from each record's
resolved config (``model._target_``). Each row gives mean ± std over seeds per metric and, against
a named baseline row, paired tests over the seeds both rows ran.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphrec_lab.reporting.significance import WILCOXON_MIN_N, PairedTest, format_p, paired_test
from graphrec_lab.reporting.tables import mean_std

log = logging.getLogger(__name__)

# Override keys that never change what a run computes.
BOOKKEEPING = ("seed", "group", "name", "tags", "print_table", "logger", "data.cache_dir")
BOOKKEEPING_PREFIXES = ("paths.", "hydra.", "hydra/", "logger.")
_REQUIRED = {"metrics": dict, "seed": int}


class ReportError(ValueError):
    """Unreadable result records or a report request that does not match them."""


# ----------------------------------------------------------------------------------------- records
def load_records(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Read JSONL result stores; a malformed line raises ``ReportError`` naming file and line.

    A truncated line (a writer killed mid-line; ``ResultStore`` starts the next record on a fresh
    line) is skipped with a warning, as ``ResultStore.read`` does.
    """
    records: list[dict[str, Any]] = []
    failed = 0
    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.is_file():
            raise ReportError(f"{path}: no such result store")
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                text = line.strip()
                if not text:
                    continue
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as exc:
                    if _truncated(text, exc):
                        log.warning("%s:%d: truncated result record skipped (a run killed while writing)", path, lineno)
                        continue
                    raise ReportError(f"{path}:{lineno}: malformed result record: {exc.msg} at column {exc.colno}") from None
                if isinstance(record, dict) and record.get("status") == "failed":
                    failed += 1  # a run that did not finish (tracking.results.failure_record): no result
                    continue
                problem = _check_record(record)
                if problem:
                    raise ReportError(f"{path}:{lineno}: malformed result record: {problem}")
                record["_source"] = f"{path}:{lineno}"
                records.append(record)
    if failed:
        log.warning("%d failed run(s) excluded from the results (status: failed in %s)", failed, ", ".join(map(str, paths)))
    return records


def _truncated(text: str, exc: json.JSONDecodeError) -> bool:
    """JSON that stops early: the error is at the very end, or inside an unterminated string."""
    return text.startswith("{") and (exc.pos >= len(text) or exc.msg.startswith("Unterminated string"))


def _check_record(record: Any) -> str | None:
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    for key, kind in _REQUIRED.items():
        if not isinstance(record.get(key), kind):
            return f"'{key}' is missing or not a {kind.__name__}"
    if not isinstance(record.get("overrides", []), list):
        return "'overrides' is not a list"
    return None


def override_factors(overrides: Sequence[str]) -> dict[str, str]:
    """``["model=ngcf", "seed=1", "paths.root=x"]`` -> ``{"model": "ngcf"}`` (last override wins)."""
    out: dict[str, str] = {}
    for ov in overrides:
        if ov.startswith("~"):
            key, value = ov[1:].split("=", 1)[0], "<deleted>"
        else:
            key, _, value = ov.partition("=")
            key = key.lstrip("+")
        if key in BOOKKEEPING or key.startswith(BOOKKEEPING_PREFIXES):
            continue
        out[key] = value
    return out


def config_value(config: Mapping[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


# ------------------------------------------------------------------------------------------- table
@dataclass
class Row:
    factors: dict[str, str]  # factor -> displayed value
    values: dict[str, dict[int, float]] = field(default_factory=dict)  # metric -> seed -> value
    tests: dict[str, PairedTest] = field(default_factory=dict)  # metric -> test vs the baseline
    is_baseline: bool = False

    @property
    def seeds(self) -> list[int]:
        return sorted({s for per_seed in self.values.values() for s in per_seed})

    def stats(self, metric: str) -> tuple[float, float]:
        """(mean, sample std) over seeds; std is nan for a single seed."""
        vals = list(self.values.get(metric, {}).values())
        if not vals:
            return math.nan, math.nan
        return statistics.mean(vals), statistics.stdev(vals) if len(vals) > 1 else math.nan


@dataclass
class Table:
    factors: list[str]
    metrics: list[str]
    rows: list[Row]
    baseline: str | None = None

    @property
    def has_wilcoxon(self) -> bool:
        return any(t.p_wilcoxon is not None for r in self.rows for t in r.tests.values())


def build_table(
    records: Sequence[Mapping[str, Any]],
    metrics: Sequence[str] | None = None,
    by: Sequence[str] | None = None,
    group: str | None = None,
    baseline: str | None = None,
) -> Table:
    """Group records into rows; ``baseline`` (``"model=bprmf"`` or ``"model=bprmf,task.lr=0.01"``)
    names the row every other row is tested against, pairing seeds."""
    if group is not None:
        records = [r for r in records if r.get("group") == group]
        if not records:
            raise ReportError(f"no result record has group={group!r}")
    if not records:
        raise ReportError("no result records to report")
    metrics = list(metrics or _default_metrics(records))
    available = sorted({m for r in records for m in r["metrics"]})
    for m in metrics:
        if m not in available:
            raise ReportError(f"metric {m!r} is in no record; available: {', '.join(available)}")

    if by:
        per_record = [{k: _display(config_value(r.get("config") or {}, k)) for k in by} for r in records]
        for k in by:
            if all(f[k] == "-" for f in per_record):
                raise ReportError(f"--by {k!r}: no record's config has that key")
        factors = list(by)
    else:
        per_record = [override_factors(r.get("overrides") or []) for r in records]
        keys = list(dict.fromkeys(k for f in per_record for k in f))
        factors = [k for k in keys if len({_norm(f.get(k, "-")) for f in per_record}) > 1]

    rows: dict[tuple, Row] = {}
    for record, fac in zip(records, per_record):
        shown = {k: fac.get(k, "-") for k in factors}
        key = tuple(_norm(v) for v in shown.values())
        row = rows.setdefault(key, Row(factors=shown))
        seed = int(record["seed"])
        for m in metrics:
            if m in record["metrics"]:
                if seed in row.values.get(m, {}):
                    log.warning("%s: seed %d of %s reported twice; the later record is used",
                                record.get("_source", "record"), seed, _label(shown))
                row.values.setdefault(m, {})[seed] = float(record["metrics"][m])
    ordered = [rows[k] for k in sorted(rows, key=lambda k: tuple(_sort_key(v) for v in k))]
    table = Table(factors=factors, metrics=metrics, rows=ordered, baseline=baseline)
    if baseline is not None:
        _apply_baseline(table, baseline)
    return table


def _apply_baseline(table: Table, baseline: str) -> None:
    wanted = {}
    for part in baseline.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise ReportError(f"--baseline {baseline!r}: expected factor=value[,factor=value...]")
        if key.strip() not in table.factors:
            raise ReportError(f"--baseline {baseline!r}: {key.strip()!r} is not a varying factor ({table.factors})")
        wanted[key.strip()] = _norm(value.strip())
    matches = [r for r in table.rows if all(_norm(r.factors[k]) == v for k, v in wanted.items())]
    if len(matches) != 1:
        rows = "; ".join(_label(r.factors) for r in table.rows)
        raise ReportError(f"--baseline {baseline!r} matches {len(matches)} rows (expected 1); rows: {rows}")
    base = matches[0]
    base.is_baseline = True
    for row in table.rows:
        if row is not base:
            row.tests = {m: paired_test(row.values.get(m, {}), base.values.get(m, {})) for m in table.metrics}


def _default_metrics(records: Sequence[Mapping[str, Any]]) -> list[str]:
    opt = statistics.mode(str(r.get("optimized_metric", "val/ndcg@20")) for r in records)
    name = opt.split("/", 1)[-1]
    candidates = dict.fromkeys((f"test/recall@{name.split('@')[-1]}", f"test/{name}"))
    return [m for m in candidates if any(m in r["metrics"] for r in records)] or [opt]


def _display(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _norm(value: str) -> Any:
    """``0.01`` and ``1e-2`` are the same factor value."""
    try:
        return float(value)
    except ValueError:
        return value


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, float) else (1, str(value))


def _label(factors: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in factors.items()) or "(all runs)"


# ------------------------------------------------------------------------------------------ output
def _header(table: Table) -> list[str]:
    cols = [*(table.factors or ["runs"]), "n"]
    for m in table.metrics:
        cols.append(m)
        if table.baseline:
            cols.append("p (t-test)")
            if table.has_wilcoxon:
                cols.append("p (Wilcoxon)")
    return cols


def _cells(table: Table, row: Row, digits: int) -> list[str]:
    cells = [*(row.factors.values() if table.factors else ["all"]), str(len(row.seeds))]
    for m in table.metrics:
        cells.append(mean_std([row.values[m][s] for s in sorted(row.values.get(m, {}))], digits))
        if table.baseline:
            test = row.tests.get(m)
            cells.append("baseline" if row.is_baseline else format_p(test.p_ttest if test else None))
            if table.has_wilcoxon:
                cells.append("baseline" if row.is_baseline else format_p(test.p_wilcoxon if test else None))
    return cells


def _note(table: Table) -> str:
    note = "mean ± std over seeds"
    if table.baseline:
        note += f"; p: two-sided paired test against {table.baseline} over the seeds both rows ran"
        if table.has_wilcoxon:
            note += f" (Wilcoxon signed-rank where n >= {WILCOXON_MIN_N})"
    return note


def to_markdown(table: Table, digits: int = 4) -> str:
    header = _header(table)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cells(table, row, digits)) + " |" for row in table.rows]
    return "\n".join(lines) + "\n\n" + _note(table) + "\n"


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def to_latex(table: Table, digits: int = 4) -> str:
    """A booktabs ``tabular``; mean ± std in math mode."""
    header = _header(table)
    n_factor_cols = len(table.factors or ["runs"])
    spec = "l" * n_factor_cols + "r" + "c" * (len(header) - n_factor_cols - 1)
    body = []
    for row in table.rows:
        cells = []
        for i, cell in enumerate(_cells(table, row, digits)):
            if " ± " in cell:
                m, s = cell.split(" ± ")
                cells.append(f"${m} \\pm {s}$")
            elif i > n_factor_cols and cell[:1].isdigit():
                cells.append(f"${cell}$")
            else:
                cells.append(latex_escape(cell))
        body.append(" & ".join(cells) + r" \\")
    lines = [
        f"% {_note(table)}",
        f"\\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in header) + r" \\",
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}",
    ]
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    """Machine-readable: full-precision mean, std and p-values, and the seeds of each row."""
    header = [*(table.factors or ["runs"]), "n", "seeds"]
    for m in table.metrics:
        header += [f"{m} mean", f"{m} std"]
        if table.baseline:
            header += [f"{m} p_ttest", f"{m} p_wilcoxon"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in table.rows:
        out: list[Any] = [*(row.factors.values() if table.factors else ["all"]), len(row.seeds), " ".join(map(str, row.seeds))]
        for m in table.metrics:
            mean, std = row.stats(m)
            out += [_num(mean), _num(std)]
            if table.baseline:
                test = row.tests.get(m)
                out += ["baseline", "baseline"] if row.is_baseline else [_num(test.p_ttest if test else None), _num(test.p_wilcoxon if test else None)]
        writer.writerow(out)
    return buf.getvalue()


def _num(x: float | None) -> str:
    return "" if x is None or math.isnan(x) else repr(float(x))


def render(table: Table, fmt: str, digits: int = 4) -> str:
    if fmt == "md":
        return to_markdown(table, digits)
    if fmt == "latex":
        return to_latex(table, digits)
    if fmt == "csv":
        return to_csv(table)
    raise ReportError(f"--format {fmt!r}: expected md, latex or csv")
