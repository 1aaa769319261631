"""experiments/model_zoo/run.py --report-only: which stored runs make a table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from graphrec_lab.tracking.results import ResultStore

RUN_PY = Path(__file__).resolve().parents[1] / "experiments" / "model_zoo" / "run.py"


def _load_run_py():
    spec = importlib.util.spec_from_file_location("model_zoo_run", RUN_PY)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _record(model: str, seed: int, ndcg: float, *extra: str) -> dict:
    overrides = ["experiment=ml100k_recbole", "trainer.max_epochs=300", f"model={model}", f"seed={seed}",
                 "paths.root=/x", "logger=csv", "group=model_zoo-ml100k", "print_table=false", *extra]  # fmt: skip
    return {"group": "model_zoo-ml100k", "overrides": overrides, "seed": seed, "metrics": {"test/ndcg@20": ndcg}}


def test_report_only_keeps_runs_at_another_weight_out_of_the_table(tmp_path: Path) -> None:
    run = _load_run_py()
    store = ResultStore(tmp_path / "results.jsonl")
    store.append(_record("simgcl", 2020, 0.10))  # the paper's weight
    store.append(_record("simgcl", 2020, 0.33, "task.objectives.simgcl.weight=0.01"))
    store.append(_record("simgcl", 2021, 0.34, "task.objectives.simgcl.weight=0.01"))
    store.append(_record("simgcl", 2021, 0.30, "task.objectives.simgcl.weight=0.001"))
    store.append(_record("lightgcn", 2020, 0.32, "+trainer.max_time='00:00:01:00'", "trainer.accelerator=gpu"))

    def table(models: list[str], extra: list[str]) -> dict[str, list[float]]:
        rows = run.from_store(tmp_path, "model_zoo-ml100k", models, [2020, 2021], extra)
        return {m: [r["test/ndcg@20"] for r in runs] for m, runs, _ in rows}

    assert table(["simgcl"], []) == {"simgcl": [0.10]}
    assert table(["simgcl"], ["task.objectives.simgcl.weight=0.01"]) == {"simgcl": [0.33, 0.34]}
    assert table(["simgcl"], ["task.objectives.simgcl.weight=0.001"]) == {"simgcl": [0.30]}
    # Budget and device are the table's own settings, not a different configuration.
    assert table(["lightgcn", "simgcl"], []) == {"lightgcn": [0.32], "simgcl": [0.10]}


def test_epoch_table_reads_per_epoch_validation_and_drops_the_test_stage_row(tmp_path: Path, capsys, monkeypatch) -> None:
    spec = importlib.util.spec_from_file_location("epoch_table", RUN_PY.parent / "epoch_table.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    # Lightning's CSV logger: validation and training rows per epoch, then the test stage validates the
    # restored checkpoint again one epoch past the last (epoch 2 here), which is not a training epoch.
    header = "epoch,step,train/bpr,val/ndcg@20\n"
    rows = ["0,10,,0.05\n", "0,10,0.60,\n", "1,20,,0.07\n", "1,20,0.40,\n", "2,20,,0.07\n"]
    (tmp_path / "lightgcn-1.csv").write_text(header + "".join(rows))
    (tmp_path / "lightgcn-2.csv").write_text(header + "0,10,,0.03\n0,10,0.80,\n1,20,,0.09\n1,20,0.20,\n")
    val, bpr = module.read_log(tmp_path / "lightgcn-1.csv")
    assert val == {1: 0.05, 2: 0.07} and bpr == {1: 0.60, 2: 0.40}
    monkeypatch.setattr("sys.argv", ["epoch_table.py", str(tmp_path)])
    module.main()
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("| lightgcn")][0]
    assert line == "| lightgcn | 2 | 0.0400 | 0.0800 | 0.7000 | 0.3000 |"
