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
