"""End-to-end runs of run_experiment on the embedded synthetic default."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from graphrec_lab.config import ConfigError, compose
from graphrec_lab.experiment import run_experiment
from graphrec_lab.tracking.results import ResultStore
from tests.conftest import tiny_overrides


def test_run_experiment_end_to_end_writes_one_record(out_dir):
    overrides = tiny_overrides(out_dir)
    metrics = run_experiment(compose(overrides), overrides)
    for split in ("val", "test"):
        for name in ("recall", "ndcg", "precision", "hit", "mrr", "map", "itemcoverage"):
            for k in (10, 20):
                value = metrics[f"{split}/{name}@{k}"]
                assert 0.0 <= value <= 1.0
    assert metrics["test/ndcg@20"] > 0.0
    assert metrics["epochs"] == 4
    records = ResultStore(out_dir / "results.jsonl").read()
    assert len(records) == 1
    record = records[0]
    assert record["metrics"]["test/ndcg@20"] == metrics["test/ndcg@20"]
    assert record["overrides"] == overrides
    assert record["config"]["model"]["_target_"] == "graphrec_lab.models.LightGCN"
    assert record["seed"] == 2020 and record["data"]["split_hash"]
    assert record["device"] == "cpu"
    # git_dirty: whether tracked files differ from git_commit (None outside a git checkout).
    import subprocess

    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                            cwd=Path(__file__).parent)  # fmt: skip
    expected = None if status.returncode else bool(status.stdout.strip())
    assert record["git_dirty"] is expected
    assert (record["git_commit"] is None) == (expected is None)
    assert Path(record["paths"]["checkpoint"]).is_file()
    # The tested checkpoint is the one selected on validation: its val metric is the best logged.
    assert record["metrics"]["val/ndcg@20"] >= 0.0


def test_same_seed_same_metrics_and_other_seed_differs(out_dir):
    a = run_experiment(compose(tiny_overrides(out_dir / "a")))
    b = run_experiment(compose(tiny_overrides(out_dir / "b")))
    c = run_experiment(compose(tiny_overrides(out_dir / "c", "seed=7")))
    keys = [k for k in a if k.startswith(("val/", "test/"))]
    assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
    assert any(a[k] != c[k] for k in keys)


def test_lightgcn_beats_popularity_on_synthetic(out_dir):
    base = tiny_overrides(out_dir, "trainer.max_epochs=20", "trainer.check_val_every_n_epoch=5")
    pop = run_experiment(compose(base + ["model=pop"]))
    lgn = run_experiment(compose(base + ["model=lightgcn", "task.lr=0.01"]))
    assert pop["epochs"] == 0
    assert lgn["val/ndcg@20"] > pop["val/ndcg@20"]


def test_selection_metric_must_be_a_validation_metric(out_dir):
    with pytest.raises(ConfigError, match="val/"):
        run_experiment(compose(tiny_overrides(out_dir, "optimized_metric=test/ndcg@20")))
    with pytest.raises(ConfigError, match="not computed"):
        run_experiment(compose(tiny_overrides(out_dir, "optimized_metric=val/ndcg@50")))
    assert not (out_dir / "results.jsonl").exists()


def test_wandb_offline_one_run_with_config(out_dir, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(out_dir / "no-netrc"))
    overrides = tiny_overrides(out_dir, "logger=default", "trainer.max_epochs=2")
    metrics = run_experiment(compose(overrides), overrides)
    runs = list((out_dir / "runs").rglob("offline-run-*"))
    assert len(runs) == 1, runs
    # The offline run file (what `wandb sync` uploads) holds the resolved config and the metrics.
    run_file = next(runs[0].glob("run-*.wandb"))
    deadline = time.monotonic() + 60  # wandb's writer process may still be flushing after finish()
    while b"test/ndcg@20" not in run_file.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.5)
    blob = run_file.read_bytes()
    for needle in (b"graphrec_lab.models.LightGCN", b"optimized_metric", b"test/ndcg@20", b"val/ndcg@20"):
        assert needle in blob, needle
    record = ResultStore(out_dir / "results.jsonl").read()[0]
    assert record["paths"]["wandb_dir"].startswith(str(runs[0]))
    assert metrics["test/ndcg@20"] >= 0.0


def test_result_store_keeps_old_records_and_skips_torn_line(tmp_path):
    store = ResultStore(tmp_path / "r.jsonl")
    store.append({"a": 1})
    with open(store.path, "a") as fh:
        fh.write('{"torn": ')  # a crash mid-write elsewhere
    store.append({"b": 2})
    lines = store.path.read_text().splitlines()
    assert json.loads(lines[0]) == {"a": 1}
    assert store.read() == [{"a": 1}, {"b": 2}]  # the torn line is skipped, nothing else is lost


def test_test_curve_logs_test_metrics_per_check_without_changing_selection(out_dir):
    """task.test_curve logs curve/test/* at each validation check of the fit (not at the final
    validate/test); the selected checkpoint and every reported metric are those of a run without it."""
    import csv

    base = tiny_overrides(out_dir / "plain", "trainer.check_val_every_n_epoch=1")
    plain = run_experiment(compose(base), base)
    over = tiny_overrides(out_dir / "curve", "trainer.check_val_every_n_epoch=1", "task.test_curve=true")
    curved = run_experiment(compose(over), over)
    untimed = lambda m: {k: v for k, v in m.items() if not k.startswith("time/")}  # noqa: E731
    assert untimed(curved) == pytest.approx(untimed(plain))
    record = ResultStore(out_dir / "curve" / "results.jsonl").read()[0]
    rows = list(csv.DictReader(open(Path(record["paths"]["csvlogger_dir"]) / "metrics.csv")))
    points = [(int(r["epoch"]), float(r["curve/test/ndcg@20"])) for r in rows if r.get("curve/test/ndcg@20")]
    assert [e for e, _ in points] == [0, 1, 2, 3]  # one per validation check of the fit
    # The point at the selected epoch is that checkpoint's test metric (same weights, same evaluator).
    best = int(curved["best_epoch"])
    assert dict(points)[best] == pytest.approx(curved["test/ndcg@20"], abs=1e-6)
    assert not any(r.get("curve/test/ndcg@20") for r in csv.DictReader(
        open(Path(ResultStore(out_dir / "plain" / "results.jsonl").read()[0]["paths"]["csvlogger_dir"]) / "metrics.csv")))
