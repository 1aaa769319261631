"""What a run prints: the final table, progress only on a terminal, each line once, no known
third-party noise, Hydra's files under paths.root, and run folders with file-system-safe names."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import pytest

from graphrec_lab.config import compose
from graphrec_lab.experiment import format_metrics_table, run_experiment
from graphrec_lab.tracking import console
from graphrec_lab.tracking.paths import safe_dir_name
from graphrec_lab.training.callbacks import progress_bar_callbacks, progress_bar_enabled
from tests.conftest import tiny_overrides

GRAPHREC_LAB = str(Path(sys.executable).parent / "graphrec-lab")


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
    # One epoch, validation every two: nothing was selected, and the log says so.
    assert metrics["best_epoch"] == -1
    assert any("no validation ran in 1 epochs" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------ progress


def test_progress_follows_the_terminal_ci_and_the_override(monkeypatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv(console.PROGRESS_ENV, raising=False)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert not console.interactive()
    assert progress_bar_callbacks(None) == []
    monkeypatch.setattr(sys, "stdout", Tty())
    assert console.interactive() and progress_bar_enabled(None)
    assert len(progress_bar_callbacks(None)) == 1
    monkeypatch.setenv("CI", "true")
    assert not console.interactive()
    monkeypatch.setenv(console.PROGRESS_ENV, "1")
    assert console.interactive()
    monkeypatch.setenv(console.PROGRESS_ENV, "0")
    monkeypatch.delenv("CI")
    assert not console.interactive()
    # An explicit trainer.enable_progress_bar wins over the console.
    assert progress_bar_enabled(True) and not progress_bar_enabled(False)


def test_progress_passes_every_item_through(monkeypatch) -> None:
    monkeypatch.setenv(console.PROGRESS_ENV, "1")
    assert list(console.progress(range(5), desc="x")) == [0, 1, 2, 3, 4]
    monkeypatch.setenv(console.PROGRESS_ENV, "0")
    assert list(console.progress(iter("abc"), desc="x")) == ["a", "b", "c"]


# ------------------------------------------------------------------ warnings and log lines


def test_known_warnings_are_filtered_and_others_are_not() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        console.filter_known_warnings()
        console.filter_known_warnings()  # idempotent
        warnings.warn("Sparse CSR tensor support is in beta state. If you miss ...", UserWarning)
        warnings.warn("The number of training batches (15) is smaller than the logging interval", UserWarning)
        warnings.warn("Sparse CSR tensor support is in beta state", DeprecationWarning)  # other category
        warnings.warn("something new", UserWarning)
    assert [str(w.message) for w in caught] == ["Sparse CSR tensor support is in beta state", "something new"]


@pytest.fixture()
def root_stream():
    """A root handler writing to a string; the logging state is restored afterwards."""
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    lightning_loggers = [logging.getLogger(n) for n in ("lightning", "lightning.pytorch", "lightning.fabric")]
    saved_lightning = [(lg, list(lg.handlers), lg.propagate) for lg in lightning_loggers]
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    saved_filters = list(rank_zero.filters)
    stream = io.StringIO()
    root.handlers = [logging.StreamHandler(stream)]
    root.setLevel(logging.INFO)
    yield stream
    root.handlers, _ = saved
    root.setLevel(saved[1])
    for lg, handlers, propagate in saved_lightning:
        lg.handlers, lg.propagate = handlers, propagate
    rank_zero.filters = saved_filters


def test_lightning_lines_print_once_and_tips_not_at_all(root_stream) -> None:
    from lightning.pytorch.utilities.rank_zero import rank_zero_info

    # As when Lightning is imported before the root logger has a handler.
    own = logging.getLogger("lightning.pytorch")
    own.addHandler(logging.StreamHandler(io.StringIO()))
    own.propagate = False
    console.route_lightning_logs()
    console.route_lightning_logs()  # a second entry point adds nothing twice
    rank_zero_info("Restoring states from the checkpoint path at x.ckpt")
    rank_zero_info("Restoring states from the checkpoint path at x.ckpt")
    rank_zero_info("💡 Tip: try installing something")
    rank_zero_info("GPU available: False, used: False")
    assert root_stream.getvalue().splitlines() == [
        "Restoring states from the checkpoint path at x.ckpt",
        "GPU available: False, used: False",
    ]
    for name in ("lightning", "lightning.pytorch"):
        assert not [h for h in logging.getLogger(name).handlers if type(h) is logging.StreamHandler]


# ------------------------------------------------------------------ the command line, piped


def test_cli_run_piped_prints_each_line_once_no_warnings_and_the_table_last(tmp_path: Path) -> None:
    """The quickstart command (shrunk), piped: no bar, no W&B banner or summary, no third-party
    warning, no line twice, the table at the end, and nothing written outside paths.root."""
    out = tmp_path / "out"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_") and k not in ("CI", console.PROGRESS_ENV)}
    env["WANDB_MODE"] = "offline"
    cmd = [GRAPHREC_LAB, "run", f"paths.root={out}", "trainer.max_epochs=2", "trainer.check_val_every_n_epoch=1",
           "data.synthetic.num_users=120", "data.synthetic.num_items=150", "data.cache_dir=none"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    repeated = [line for line, n in Counter(lines).items() if n > 1]
    assert not repeated
    text = "\n".join(lines)
    for noise in ("Warning", "wandb:", "Tip:", "Epoch 0", "it/s"):
        assert noise not in text, noise
    # Lightning's lines go through the run's log format like every other line.
    assert any("[lightning.pytorch.utilities.rank_zero][INFO] - GPU available:" in line for line in lines)
    table = proc.stdout.splitlines()
    assert table[-1].startswith("skipped_users/test")
    assert _row(proc.stdout, "epochs") == ["2"] and _row(proc.stdout, "num_users") == ["120", "120"]
    assert float(_row(proc.stdout, "ndcg@20")[0]) >= 0
    # Hydra's files are under paths.root; the working directory stays empty; W&B still wrote its run.
    assert list(cwd.iterdir()) == []
    assert list((out / "hydra").glob("*/*/.hydra/config.yaml"))
    assert list((out / "runs").glob("*/*/wandb/offline-run-*/run-*.wandb"))
