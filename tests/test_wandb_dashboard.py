"""W&B as the dashboard, read back from offline runs: a run's final metrics Table, curves and
artifacts; `report --wandb`'s table and plots in the ablation's group.

Offline runs are read from what they leave on disk: the ``run-*.wandb`` transaction log (records in
LevelDB log framing, each a ``wandb.proto`` ``Record``; what ``wandb sync`` uploads) and the media
files it points at (``files/media/table/*.table.json``, ``files/media/images/*.png``).
"""

from __future__ import annotations

import json
import os
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from scipy import stats

from graphrec_lab.cli import main
from graphrec_lab.config import compose
from graphrec_lab.experiment import run_experiment
from graphrec_lab.reporting import ReportError
from graphrec_lab.tracking.results import ResultStore
from tests.conftest import tiny_overrides

_BLOCK = 32768  # LevelDB log block size used by the .wandb format
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def read_run_file(path: Path, timeout_s: float = 60.0) -> list[Any]:
    """The ``Record`` messages of an offline run's ``.wandb`` file, once its ``exit`` record is in.

    wandb's writer (a separate process) may still be flushing right after ``finish()`` returns.
    """
    from wandb.proto import wandb_internal_pb2

    deadline = time.monotonic() + timeout_s
    while True:
        records = []
        data = path.read_bytes()
        ident, _magic, _version = struct.unpack("<4sHB", data[:7])
        assert ident == b":W&B", f"{path}: not a .wandb file"
        pos, chunks = 7, b""
        while pos + 7 <= len(data):
            left = _BLOCK - pos % _BLOCK
            if left < 7:  # a block's tail too short for a header is padding
                pos += left
                continue
            _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
            if kind == 0 and length == 0:
                pos += left
                continue
            chunks += data[pos + 7 : pos + 7 + length]
            pos += 7 + length
            if kind in (_FULL, _LAST):
                record = wandb_internal_pb2.Record()
                record.ParseFromString(chunks)
                records.append(record)
                chunks = b""
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.5)


def of_type(records: list[Any], kind: str) -> list[Any]:
    return [getattr(r, kind) for r in records if r.WhichOneof("record_type") == kind]


def history_items(records: list[Any]) -> dict[str, Any]:
    """Every logged history key (top-level or nested, joined by '.') -> its last JSON value."""
    out: dict[str, Any] = {}
    for history in of_type(records, "history"):
        for item in history.item:
            key = item.key or ".".join(item.nested_key)
            out[key] = json.loads(item.value_json)
    return out


def media_table(run_dir: Path, items: dict[str, Any], key: str) -> dict[str, Any]:
    """The table logged under ``key``: its ``.table.json`` file, found through the history's path."""
    assert items.get(f"{key}._type") == "table-file", sorted(items)
    return json.loads((run_dir / "files" / items[f"{key}.path"]).read_text())


def offline_run(root: Path) -> tuple[Path, list[Any]]:
    runs = sorted(root.rglob("offline-run-*"))
    assert len(runs) == 1, runs
    return runs[0], read_run_file(next(runs[0].glob("run-*.wandb")))


@pytest.fixture()
def offline_env(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


# ------------------------------------------------------------------------------------ one run
def test_run_logs_metrics_table_curves_and_artifacts(out_dir, offline_env):
    overrides = tiny_overrides(out_dir, "logger=default", "trainer.max_epochs=3", "trainer.check_val_every_n_epoch=1")
    run_experiment(compose(overrides), overrides)
    record = ResultStore(out_dir / "results.jsonl").read()[0]
    metrics = record["metrics"]
    run_dir, records = offline_run(out_dir / "runs")
    items = history_items(records)

    # Final metrics: one row, a column per metric, values exactly the record's.
    table = media_table(run_dir, items, "final/metrics")
    assert table["columns"] == ["run_id", "name", "group", "seed", *sorted(metrics)]
    assert len(table["data"]) == 1
    row = dict(zip(table["columns"], table["data"][0]))
    assert row["run_id"] == record["run_id"] and row["seed"] == record["seed"]
    assert {m: row[m] for m in metrics} == metrics
    assert row["val/ndcg@20"] == metrics["val/ndcg@20"] and row["test/ndcg@20"] == metrics["test/ndcg@20"]

    # Curves: one row per validated epoch of the fit, not the selected checkpoint's re-validation.
    curves = media_table(run_dir, items, "curves/val")
    epochs = [r[0] for r in curves["data"]]
    assert curves["columns"][0] == "epoch" and epochs == list(range(int(metrics["epochs"])))
    best = curves["data"][epochs.index(int(metrics["best_epoch"]))]
    assert best[curves["columns"].index("val/ndcg@20")] == pytest.approx(metrics["val/ndcg@20"], rel=1e-6)
    train = media_table(run_dir, items, "curves/train")
    assert "train/loss" in train["columns"] and len(train["data"]) == int(metrics["epochs"])
    charts = {}
    for config in of_type(records, "config"):
        for item in config.update:
            if list(item.nested_key[:2]) == ["_wandb", "visualize"]:
                charts[item.nested_key[2]] = json.loads(item.value_json)["panel_config"]["fieldSettings"]
    assert charts["charts/val/ndcg@20"] == {"x": "epoch", "y": "val/ndcg@20", "stroke": None}
    assert charts["charts/train/loss"]["y"] == "train/loss"
    defined = {m.glob_name: m.step_metric for m in of_type(records, "metric") if m.glob_name}
    assert defined["val/*"] == "epoch" and defined["train/*"] == "epoch"

    # Artifacts: the result record and the selected checkpoint, referenced in place (not copied).
    artifacts = {a.type: a for a in of_type(records, "artifact") if a.type in ("result", "model")}
    assert set(artifacts) == {"result", "model"}
    (result_file,) = artifacts["result"].manifest.contents
    logged = json.loads(Path(result_file.local_path).read_text())
    assert logged["run_id"] == record["run_id"] and logged["metrics"] == metrics
    (ckpt,) = artifacts["model"].manifest.contents
    assert ckpt.local_path == record["paths"]["checkpoint"] and ckpt.size == os.path.getsize(ckpt.local_path)
    assert "best" in artifacts["model"].aliases
    assert json.loads(artifacts["model"].metadata)["score"] == metrics["val/ndcg@20"]


def test_log_artifacts_false_logs_no_artifact(out_dir, offline_env):
    overrides = tiny_overrides(out_dir, "logger=default", "logger.wandb.log_artifacts=false", "trainer.max_epochs=1",
                               "trainer.check_val_every_n_epoch=1")
    run_experiment(compose(overrides), overrides)
    run_dir, records = offline_run(out_dir / "runs")
    assert not [a.name for a in of_type(records, "artifact") if a.type in ("result", "model")]
    assert "final/metrics._type" in history_items(records)  # the Table is still logged


def test_disabled_mode_runs_and_writes_no_wandb_files(out_dir, offline_env):
    overrides = tiny_overrides(out_dir, "logger=default", "logger.wandb.mode=disabled", "trainer.max_epochs=2",
                               "trainer.check_val_every_n_epoch=1")
    metrics = run_experiment(compose(overrides), overrides)
    assert metrics["test/ndcg@20"] >= 0.0
    assert not list(out_dir.rglob("offline-run-*")) and not list(out_dir.rglob("*.wandb"))


def test_auto_mode_follows_wandb_mode_even_with_an_api_key(monkeypatch):
    from graphrec_lab.tracking.wandb import resolve_mode

    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_mode("auto") == "offline"  # an explicit mode="online" would override the variable
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode("auto") == "disabled"
    monkeypatch.delenv("WANDB_MODE")
    assert resolve_mode("auto") == "online" and resolve_mode("offline") == "offline"
    with pytest.raises(ValueError, match="logger.wandb.mode"):
        resolve_mode("cloud")


# ----------------------------------------------------------------------------------- report
VALUES = {"bprmf": [0.10, 0.12, 0.11], "lightgcn": [0.15, 0.16, 0.14]}


def _record(model: str, seed: int, value: float, group: str) -> dict:
    return {
        "run_id": f"{model}-{seed}", "group": group, "seed": seed, "optimized_metric": "val/ndcg@20",
        "overrides": [f"model={model}", f"seed={seed}", f"group={group}"],
        "config": {"model": {"_target_": model}, "logger": {"wandb": {"project": "proj-x"}}},
        "metrics": {"test/ndcg@20": value},
    }


def _report_run(out: Path) -> tuple[Path, list[Any]]:
    runs = sorted(out.glob("wandb/offline-run-*"))
    assert len(runs) == 1, runs
    return runs[0], read_run_file(next(runs[0].glob("run-*.wandb")))


def test_report_wandb_pushes_table_and_plot_into_the_group(tmp_path, offline_env):
    store = ResultStore(tmp_path / "results.jsonl")
    for model, values in VALUES.items():
        for seed, value in enumerate(values):
            store.append(_record(model, seed, value, "abl-1"))
    out = tmp_path / "report"
    main(["report", "--results", str(store.path), "--metrics", "test/ndcg@20", "--baseline", "model=bprmf",
          "--plot", "model", "--out", str(out), "--wandb"])

    run_dir, records = _report_run(out)
    (run,) = of_type(records, "run")
    assert (run.run_group, run.job_type, run.project) == ("abl-1", "report", "proj-x")
    items = history_items(records)
    table = media_table(run_dir, items, "report/table")
    rows = {r[0]: dict(zip(table["columns"], r)) for r in table["data"]}
    assert set(rows) == {"bprmf", "lightgcn"}
    for model, values in VALUES.items():
        assert rows[model]["n"] == 3 and rows[model]["seeds"] == "0 1 2"
        assert rows[model]["test/ndcg@20 mean"] == pytest.approx(statistics.mean(values), rel=1e-12)
        assert rows[model]["test/ndcg@20 std"] == pytest.approx(statistics.stdev(values), rel=1e-12)
    assert rows["lightgcn"]["test/ndcg@20"] == "0.1500 ± 0.0100"
    p = stats.ttest_rel(VALUES["lightgcn"], VALUES["bprmf"]).pvalue
    assert rows["lightgcn"]["test/ndcg@20 p_ttest"] == pytest.approx(p, rel=1e-12)
    assert rows["bprmf"]["baseline"] is True and rows["bprmf"]["test/ndcg@20 p_ttest"] is None
    # The plot: the same PNG that --plot wrote, as an image of the run.
    assert items["report/plot/test_ndcg_20_vs_model._type"] == "image-file"
    logged = run_dir / "files" / items["report/plot/test_ndcg_20_vs_model.path"]
    assert logged.read_bytes() == (out / "test_ndcg_20_vs_model.png").read_bytes()


def test_report_wandb_needs_one_group(tmp_path, offline_env):
    store = ResultStore(tmp_path / "results.jsonl")
    store.append(_record("bprmf", 0, 0.1, "g1"))
    store.append(_record("bprmf", 1, 0.1, "g2"))
    with pytest.raises(SystemExit, match="--group"):
        main(["report", "--results", str(store.path), "--wandb", "--out", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists()  # refused before any W&B run started
    from graphrec_lab.reporting.wandb_push import report_group

    with pytest.raises(ReportError):
        report_group([_record("bprmf", 0, 0.1, None)], None)  # type: ignore[arg-type]
    assert report_group(store.read(), "g2") == "g2"


@pytest.mark.slow
def test_multirun_two_models_three_seeds_report_wandb_into_the_group(tmp_path, offline_env):
    """`run -m model=bprmf,lightgcn seed=0,1,2 group=G` then `report --wandb`: a report run in G."""
    out = tmp_path / "outputs"
    env = {**os.environ, "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}
    cmd = [
        str(Path(sys.executable).parent / "graphrec-lab"), "run", "-m", "model=bprmf,lightgcn", "seed=0,1,2",
        "group=abl-2x3", *tiny_overrides(out, "logger=default", "trainer.max_epochs=2", "print_table=false"),
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cell_runs = [read_run_file(f) for f in sorted(out.glob("runs/*/*/wandb/offline-run-*/run-*.wandb"))]
    assert len(cell_runs) == 6
    assert {of_type(r, "run")[0].run_group for r in cell_runs} == {"abl-2x3"}

    report = tmp_path / "report"
    main(["report", "--results", str(out / "results.jsonl"), "--metrics", "test/ndcg@20",
          "--baseline", "model=bprmf", "--plot", "model", "--out", str(report), "--wandb"])
    run_dir, records = _report_run(report)
    (run,) = of_type(records, "run")
    assert (run.run_group, run.job_type) == ("abl-2x3", "report")
    assert run.project == of_type(cell_runs[0], "run")[0].project
    items = history_items(records)
    table = media_table(run_dir, items, "report/table")
    rows = {r[0]: dict(zip(table["columns"], r)) for r in table["data"]}
    results = ResultStore(out / "results.jsonl").read()
    by = {m: {r["seed"]: r["metrics"]["test/ndcg@20"] for r in results if f"model={m}" in r["overrides"]}
          for m in ("bprmf", "lightgcn")}
    for model, per_seed in by.items():
        assert rows[model]["n"] == 3
        assert rows[model]["test/ndcg@20 mean"] == pytest.approx(statistics.mean(per_seed.values()), rel=1e-12)
    p = stats.ttest_rel([by["lightgcn"][s] for s in range(3)], [by["bprmf"][s] for s in range(3)]).pvalue
    assert rows["lightgcn"]["test/ndcg@20 p_ttest"] == pytest.approx(p, rel=1e-12)
    logged = run_dir / "files" / items["report/plot/test_ndcg_20_vs_model.path"]
    assert logged.read_bytes() == (report / "test_ndcg_20_vs_model.png").read_bytes()
