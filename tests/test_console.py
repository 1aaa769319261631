"""What a run prints: the final table; and run folders with file-system-safe names."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from graphrec_lab.config import compose
from graphrec_lab.experiment import format_metrics_table, run_experiment
from graphrec_lab.tracking.paths import safe_dir_name
from tests.conftest import tiny_overrides


# ------------------------------------------------------------------ the final table


def _row(table: str, key: str) -> list[str]:
    return next(line.split()[1:] for line in table.splitlines() if line.split() and line.split()[0] == key)


def test_table_prints_counts_as_integers_and_metrics_with_four_digits() -> None:
    metrics = {
        "val/ndcg@20": 0.25351, "test/ndcg@20": 0.28843, "val/num_users": 600.0, "test/num_users": 598.0,
        "epochs": 100.0, "best_epoch": -1.0, "time/fit_s": 5.0951, "skipped_users/test": 2.0,
    }  # fmt: skip
    table = format_metrics_table(metrics, title="t")
    assert _row(table, "ndcg@20") == ["0.2535", "0.2884"]
    assert _row(table, "num_users") == ["600", "598"]
    assert _row(table, "epochs") == ["100"]
    assert _row(table, "best_epoch") == ["-1"]
    assert _row(table, "skipped_users/test") == ["2"]
    assert _row(table, "time/fit_s") == ["5.095"]
    # Every value column ends at the same place, the longest key included.
    ends = {len(line) for line in table.splitlines()[3:] if line.split()[0] in ("epochs", "skipped_users/test", "time/fit_s")}
    assert len(ends) == 1


def test_a_fractional_count_keeps_its_decimals() -> None:
    table = format_metrics_table({"val/num_users": 599.5, "test/num_users": 600.0}, title="t")
    assert _row(table, "num_users") == ["599.5000", "600"]


# ------------------------------------------------------------------ run folder names


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("lightgcn-recbole:ml-100k", "lightgcn-recbole_ml-100k"),
        ("a/b", "a_b"),
        ("..", "run"),
        ("x y\\z", "x_y_z"),
        ("ok.name-1_2", "ok.name-1_2"),
    ],
)
def test_safe_dir_name(name: str, expected: str) -> None:
    assert safe_dir_name(name) == expected


def test_run_folder_name_is_safe_and_the_record_keeps_the_name(out_dir: Path, caplog) -> None:
    cfg = compose(tiny_overrides(out_dir, "name=lightgcn-recbole:ml-100k", "trainer.max_epochs=1",
                                 "trainer.check_val_every_n_epoch=2", "print_table=false"))
    with caplog.at_level(logging.WARNING, logger="graphrec_lab.experiment"):
        metrics = run_experiment(cfg)
    record = json.loads((out_dir / "results.jsonl").read_text().splitlines()[-1])
    assert record["name"] == "lightgcn-recbole:ml-100k"
    run_dir = Path(record["paths"]["run_dir"])
    assert run_dir.parent.name == "lightgcn-recbole_ml-100k" and run_dir.is_dir()
    assert not any(":" in p.name for p in (out_dir / "runs").iterdir())
    assert metrics["best_epoch"] == -1  # one epoch, validation every two: nothing was selected
