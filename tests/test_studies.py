"""Study files: every shipped one validates, committed records rebuild their tables, grids expand,
per-cell budgets apply, a rerun resumes, and a tiny 2x2 grid runs end to end."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest
import yaml

from graphrec_lab.cli import main
from graphrec_lab.studies import StudySpecError, all_studies, cell_overrides, load_study, render_markdown, run_study
from graphrec_lab.tracking.results import ResultStore
from tests.conftest import REPO

STUDIES = all_studies(REPO / "experiments")
WITH_RECORDS = [p for p in STUDIES if (yaml.safe_load(p.read_text()) or {}).get("records")]  # parsed, not validated: a bad file fails its own test
TINY = ["data.synthetic.num_users=60", "data.synthetic.num_items=80", "data.synthetic.interactions_per_user=10",
        "data.cache_dir=none", "trainer.accelerator=cpu", "logger=csv"]  # fmt: skip


def _id(path: Path) -> str:
    return str(path.parent.relative_to(REPO / "experiments"))


def write(folder: Path, content: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "study.yaml").write_text(yaml.safe_dump(content, sort_keys=False))
    return folder / "study.yaml"


def grid_study(**extra) -> dict:
    return {
        "title": "tiny grid", "metrics": {"test/ndcg@20": "NDCG@20", "epochs": {"label": "epochs", "digits": 0}},
        "seeds": [0], "overrides": TINY,
        "budgets": {"one": {"description": "one epoch", "overrides": ["trainer.max_epochs=1"],
                            "cells": {"lightgcn-*": ["trainer.check_val_every_n_epoch=1"]}}},
        "grid": {"model": ["bprmf", "lightgcn"], "task.lr": {"lr1e-3": ["task.lr=0.001"], "lr1e-2": ["task.lr=0.01"]}},
        **extra,
    }  # fmt: skip


def test_experiments_hold_study_files():
    assert len(STUDIES) >= 6 and len(WITH_RECORDS) >= 4
    assert not list((REPO / "experiments").rglob("paper.yaml"))  # one format, one name


@pytest.mark.parametrize("path", STUDIES, ids=_id)
def test_shipped_study_validates_and_every_cell_composes(path):
    from graphrec_lab.config import compose, validate_config

    study = load_study(path)
    assert study.cells and study.metrics
    for budget in study.budgets.values():
        for cell in study.cells:
            if cell.runnable:
                validate_config(compose(cell_overrides(study, cell, budget, study.seeds[0], Path("/tmp/unused"))))


@pytest.mark.parametrize("path", WITH_RECORDS, ids=_id)
def test_report_only_table_comes_from_the_committed_records(path, tmp_path):
    """Every runnable cell finds records; its mean is the mean of the raw JSONL lines that ran with
    the cell's model and contrastive-weight overrides under the study's budget."""
    study = load_study(path)
    result = run_study(study, out=tmp_path, report_only=True, echo=lambda _: None)
    raw = [json.loads(line) for p in study.records for line in p.read_text().splitlines() if line.strip()]
    metric = next(m for m in study.metrics if m.key.startswith("test/"))
    if any(r.status == "not run" for r in result.results):  # a seed without a record needs the data to say so
        pytest.skip(f"the study's data is not in $GRAPHREC_DATA_DIR: {next(r.reason for r in result.results if r.status == 'not run')}")
    assert all(r.status == "ok" for r in result.results if r.cell.runnable)
    for res in result.results:
        want = set(cell_overrides(study, res.cell, result.budget, 0, tmp_path))
        lines = [r for r in raw if {o.lstrip("+") for o in r["overrides"] if not o.startswith(("seed=", "paths.", "group=",
                 "name=", "logger=", "print_table="))} == {o.lstrip("+") for o in want if not o.startswith(("seed=", "paths.", "group=",
                 "name=", "print_table=", "logger="))}]  # fmt: skip
        by_seed = {r["seed"]: r["metrics"][metric.key] for r in lines}  # the last line per seed wins
        assert lines and res.mean(metric) == pytest.approx(statistics.mean(by_seed.values()))
        assert sorted(res.records) == sorted(by_seed)


def test_grid_expands_factors_in_order_with_labels_and_per_cell_budgets(tmp_path):
    study = load_study(write(tmp_path / "g", grid_study(reference={"bprmf-lr1e-2": {"test/ndcg@20": 0.1}})))
    assert [c.id for c in study.cells] == ["bprmf-lr1e-3", "bprmf-lr1e-2", "lightgcn-lr1e-3", "lightgcn-lr1e-2"]
    assert study.cells[1].label == {"model": "bprmf", "task.lr": "lr1e-2"} and study.cells[1].reference == {"test/ndcg@20": 0.1}
    budget = study.budget(None)
    assert "trainer.check_val_every_n_epoch=1" in cell_overrides(study, study.cells[2], budget, 0, tmp_path)
    assert "trainer.check_val_every_n_epoch=1" not in cell_overrides(study, study.cells[0], budget, 0, tmp_path)


def test_grid_errors_are_collected(tmp_path):
    content = grid_study(reference={"nope": {"test/ndcg@20": 0.1}}, rows=[])
    content["grid"]["model"] = []
    content["metrics"]["best_epoch"] = {"label": "x", "digits": "two"}
    path = write(tmp_path / "bad", content)
    with pytest.raises(StudySpecError) as info:
        load_study(path)
    text = str(info.value)
    for part in ("exactly one of 'rows'", "'grid.model'", "'reference.nope'", "'metrics.best_epoch.digits'"):
        assert part in text
    assert text.startswith(f"{path}: 4 errors:")


def test_a_rerun_resumes_after_the_stored_cells(tmp_path):
    path = write(tmp_path / "g", grid_study())
    calls: list[list[str]] = []

    def runner(cfg, overrides):
        calls.append(overrides)
        if "model=lightgcn" in overrides and "task.lr=0.01" in overrides:
            raise RuntimeError("killed")
        record = {"seed": 0, "group": "g", "overrides": overrides, "metrics": {"test/ndcg@20": 0.5, "epochs": 1}}
        ResultStore(tmp_path / "out" / "results.jsonl").append(record)
        return record["metrics"]

    first = run_study(path, out=tmp_path / "out", runner=runner, echo=lambda _: None)
    assert len(calls) == 4 and [r.status for r in first.results] == ["ok", "ok", "ok", "failed"]
    calls.clear()
    again = run_study(path, out=tmp_path / "out", runner=runner, echo=lambda _: None)
    assert len(calls) == 1 and "model=lightgcn" in calls[0] and "task.lr=0.01" in calls[0]
    assert [r.status for r in again.results][:3] == ["ok", "ok", "ok"]


def test_tiny_grid_runs_end_to_end_and_report_only_prints_the_same_table(tmp_path, capsys):
    content = grid_study(curves=True)
    content["overrides"] = [*TINY, "task.test_curve=true", "trainer.check_val_every_n_epoch=1"]
    path = write(tmp_path / "tiny", content)
    out = tmp_path / "out"
    main(["study", str(path), "--out", str(out)])
    printed = capsys.readouterr().out
    records = ResultStore(out / "results.jsonl").read()
    assert len(records) == 4 and {r["group"] for r in records} == {"study-tiny-one"}
    for record in records:
        model = next(o.split("=")[1] for o in record["overrides"] if o.startswith("model="))
        lr = next(o.split("=")[1] for o in record["overrides"] if o.startswith("task.lr="))
        label = "lr1e-3" if lr == "0.001" else "lr1e-2"
        assert f"| {model} | {label} | 1 | {record['metrics']['test/ndcg@20']:.4f} | 1 | ok |" in printed
    with open(out / "curves_one.csv", newline="") as fh:  # the test curve of every cell, one check each
        curves = list(csv.DictReader(fh))
    assert sorted(r["cell"] for r in curves) == sorted(c.id for c in load_study(path).cells)
    assert all(float(r["curve/test/ndcg@20"]) >= 0 and r["epoch"] == "1" for r in curves)
    main(["study", str(path), "--out", str(out), "--report-only"])
    assert capsys.readouterr().out == printed
    main(["study", str(path), "--out", str(out)])  # every cell stored: nothing runs again
    assert capsys.readouterr().out == printed and len(ResultStore(out / "results.jsonl").read()) == 4


def test_a_row_names_the_source_of_its_reference_numbers(tmp_path):
    content = grid_study()
    content.pop("grid")
    content["rows"] = [{"id": "mf", "overrides": ["model=bprmf"], "reference": {"test/ndcg@20": 0.3}, "source": "Table 2 of X"},
                       {"id": "lgn", "overrides": ["model=lightgcn"]}]  # fmt: skip
    study = load_study(write(tmp_path / "s", content))
    assert study.cells[0].source == "Table 2 of X" and study.cells[1].source == ""
    text = render_markdown(run_study(study, out=tmp_path / "out", report_only=True, echo=lambda _: None))
    assert "- mf: reference from Table 2 of X" in text and "NDCG@20 ref" in text
