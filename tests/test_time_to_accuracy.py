"""``TargetMetricStop``: the time-to-accuracy bookkeeping (benchmarks/time_to_accuracy/tta.py).

The selected model at each validation check is the best so far on the validation metric; its test
curve value is recorded and compared with the target; the test curve never changes the selection.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from graphrec_lab.config import compose
from graphrec_lab.experiment import build
from graphrec_lab.training.callbacks import TargetMetricStop
from tests.conftest import tiny_overrides

ROOT = Path(__file__).resolve().parents[1]


def _check(stop: TargetMetricStop, trainer: SimpleNamespace, epoch: int, val: float, curve: float) -> None:
    trainer.current_epoch, trainer.global_step = epoch, 10 * (epoch + 1)
    trainer.callback_metrics = {"val/ndcg@20": torch.tensor(val), "curve/test/recall@20": torch.tensor(curve)}
    stop.on_validation_end(trainer, None)


def _trainer() -> SimpleNamespace:
    return SimpleNamespace(sanity_checking=False, state=SimpleNamespace(fn="fit"), should_stop=False)


def test_stops_at_the_first_check_whose_selected_model_reaches_the_target():
    stop, trainer = TargetMetricStop(0.5), _trainer()
    stop.on_fit_start(trainer, None)
    # (val, test curve): check 2 has the highest test value but a worse val, so it is not selected;
    # check 3 improves val and its test value reaches the target.
    checks = [(0.10, 0.30), (0.08, 0.90), (0.12, 0.55), (0.20, 0.70)]
    for epoch, (val, curve) in enumerate(checks[:2]):
        _check(stop, trainer, epoch, val, curve)
        assert not trainer.should_stop
    assert stop.points[1]["selected_epoch"] == 1 and stop.points[1]["selected_curve"] == pytest.approx(0.30)
    assert stop.points[1]["curve"] == pytest.approx(0.90)  # recorded, not selected
    _check(stop, trainer, 2, *checks[2])
    assert trainer.should_stop and stop.stopped_by == "target"
    assert stop.reached_epoch == 3 and stop.reached_seconds == pytest.approx(stop.points[-1]["seconds"])
    assert stop.points[-1]["selected_curve"] == pytest.approx(0.55)
    assert [p["selected_val"] for p in stop.points] == pytest.approx([0.10, 0.10, 0.12])


def test_min_mode_selects_the_lowest_validation_value():
    stop, trainer = TargetMetricStop(0.5, monitor="val/loss", mode="min"), _trainer()
    stop.on_fit_start(trainer, None)
    for epoch, (val, curve) in enumerate([(1.0, 0.2), (2.0, 0.9), (0.5, 0.4)]):
        trainer.current_epoch, trainer.global_step = epoch, epoch
        trainer.callback_metrics = {"val/loss": torch.tensor(val), "curve/test/recall@20": torch.tensor(curve)}
        stop.on_validation_end(trainer, None)
    assert [p["selected_epoch"] for p in stop.points] == [1, 1, 3] and not trainer.should_stop


def test_rejects_selection_on_a_non_validation_metric_and_a_missing_curve():
    with pytest.raises(ValueError, match="val/"):
        TargetMetricStop(0.1, monitor="curve/test/recall@20")
    stop, trainer = TargetMetricStop(0.1), _trainer()
    trainer.current_epoch, trainer.global_step = 0, 1
    trainer.callback_metrics = {"val/ndcg@20": torch.tensor(0.1)}
    with pytest.raises(KeyError, match="test_curve"):
        stop.on_validation_end(trainer, None)


def _fit(out_dir: Path, stop: TargetMetricStop, epochs: int = 6):
    overrides = tiny_overrides(
        out_dir, "task.test_curve=true", "trainer.check_val_every_n_epoch=1", f"trainer.max_epochs={epochs}",
        "callbacks=none", "print_table=false",
    )  # fmt: skip
    built = build(compose(overrides), extra_callbacks=[stop])
    built.trainer.fit(built.task, datamodule=built.datamodule)
    return built


def test_on_synthetic_data_stops_where_the_recorded_curve_first_meets_the_target(out_dir):
    free = TargetMetricStop(float("inf"))
    _fit(out_dir / "free", free)
    assert len(free.points) == 6 and free.reached_seconds is None
    vals = [p["val"] for p in free.points]
    for i, p in enumerate(free.points):  # selection = running argmax of val, its curve value carried along
        best = max(range(i + 1), key=lambda j: (vals[j], -j))
        assert p["selected_epoch"] == best + 1 and p["selected_curve"] == free.points[best]["curve"]
    # A target the selected model meets at some check: the same seeded run stops at the first such check.
    target = max(p["selected_curve"] for p in free.points)
    first = next(i for i, p in enumerate(free.points) if p["selected_curve"] >= target)
    stop = TargetMetricStop(target)
    built = _fit(out_dir / "target", stop)
    assert stop.stopped_by == "target" and stop.reached_epoch == first + 1
    assert len(stop.points) == first + 1 and len(built.timer.epoch_seconds) == first + 1
    assert [p["val"] for p in stop.points] == pytest.approx(vals[: first + 1])


def test_budget_stops_after_the_first_batch(out_dir):
    stop = TargetMetricStop(float("inf"), max_seconds=0.0)
    built = _fit(out_dir, stop)
    assert stop.stopped_by == "budget" and built.trainer.global_step == 1
    assert built.trainer.num_training_batches > 1 and stop.stopped_mid_epoch  # the epoch's time is partial


def test_tta_script_writes_its_result(tmp_path):
    out = tmp_path / "tta.json"
    cmd = [
        sys.executable, str(ROOT / "benchmarks/time_to_accuracy/tta.py"), "--model", "lightgcn", "--data", "synthetic",
        "--max-seconds", "3", "--target", "0.0", "--out-root", str(tmp_path / "runs"), "--json", str(out), "--",
        "data.synthetic.num_users=120", "data.synthetic.num_items=150", "data.cache_dir=none",
    ]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, text=True, timeout=300)
    result = json.loads(out.read_text())
    # target 0: met at the first check by whatever the selected model scores.
    assert result["reached"] and result["epochs_to_target"] == 1 and len(result["curve"]) == 1
    assert result["seconds_to_target_total"] >= result["seconds_to_target_fit"] > 0
    assert result["complete_epochs"] == result["epochs"] == 1 and result["mean_epoch_s"] == result["epoch_seconds"][0] > 0
    assert result["peak_memory_kind"] == "ru_maxrss" and result["peak_memory_bytes"] > 0
    assert "model=lightgcn" in result["config_overrides"] and result["precision"] == "32-true"


def test_summary_divides_the_recorded_cpu_epoch_by_the_run_epoch(tmp_path):
    spec = importlib.util.spec_from_file_location("tta_summarize", ROOT / "benchmarks/time_to_accuracy/summarize.py")
    summarize = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(summarize)
    records = tmp_path / "records.jsonl"
    rows = [("graphrec_lab.models.XSimGCL", 100.0), ("graphrec_lab.models.XSimGCL", 140.0), ("graphrec_lab.models.LightGCN", 80.0)]
    records.write_text("".join(json.dumps({"config": {"model": {"_target_": t}}, "metrics": {"time/epoch_s": s}}) + "\n" for t, s in rows))
    assert summarize.cpu_epoch_seconds(records) == {"xsimgcl": 120.0, "lightgcn": 80.0}
    result = {
        "model": "xsimgcl", "precision": "bf16-mixed", "config_overrides": ["data=gowalla", "model=xsimgcl"], "target": 0.183,
        "reached": True, "seconds_to_target_fit": 50.0, "seconds_to_target_total": 60.0, "fit_s": 55.0, "epochs": 10,
        "final_selected_curve": 0.19, "mean_epoch_s": 3.0, "peak_memory_bytes": 2**30, "peak_memory_kind": "cuda",
        "device": "GPU", "accelerator": "gpu",
    }  # fmt: skip
    text = summarize.summarize([result], records)
    assert "CPU 120.00 s/epoch / gpu 3.000 s/epoch = 40.0x" in text and "50.0" in text
