"""The command line: ``data`` runs the same config check as ``run``; a multirun goes on past a
failing cell, records it as failed and ends with a non-zero exit and a summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import tiny_overrides


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "graphrec_lab", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)


def test_data_help_shows_help(tmp_path):
    proc = cli(tmp_path, "data", "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: graphrec-lab data")


def test_data_runs_the_run_config_check(tmp_path):
    proc = cli(tmp_path, "data", "synthetic", "data.train_batch_size=0", f"data.cache_dir={tmp_path / 'cache'}")
    assert proc.returncode != 0
    assert "ConfigError: config: data.train_batch_size=0: expected an integer >= 1" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "cache").exists()


def test_data_unknown_config_lists_the_data_configs(tmp_path):
    proc = cli(tmp_path, "data", "nosuch")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "Could not find 'data/nosuch'" in proc.stderr and "ml100k" in proc.stderr


def test_multirun_goes_on_past_a_failing_cell(tmp_path):
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    out = tmp_path / "out"
    overrides = tiny_overrides(out, "trainer.max_epochs=2", "print_table=false")
    # Four cells: two with rejected input (an empty checkpoint), one with a fault while training (an
    # infinite L2 weight makes the loss inf at the first step), one good.
    proc = cli(
        tmp_path, "run", "-m", f"ckpt_path={empty},null", "task.l2_reg=inf,0.0001", *overrides,
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
    )  # fmt: skip
    assert proc.returncode != 0
    assert "3 multirun cell(s) failed:" in proc.stderr
    assert f"  ckpt_path={empty} task.l2_reg=inf" in proc.stderr and "the file is empty (0 bytes)" in proc.stderr
    assert "  ckpt_path=null task.l2_reg=inf" in proc.stderr and "non-finite training loss (inf) at epoch 0, step 0" in proc.stderr
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    # Rejected input writes nothing; the training fault is recorded as failed; the last cell ran.
    assert [r.get("status") for r in records] == ["failed", None]
    assert "NonFiniteLossError" in records[0]["error"] and "test/ndcg@20" in records[1]["metrics"]


def test_cli_misspelt_key_exits_with_the_key(tmp_path):
    cmd = [sys.executable, "-m", "graphrec_lab", "run", "+model.embeding_dim=8", f"paths.root={tmp_path}", "logger=csv"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode != 0
    assert "model.embeding_dim" in proc.stderr + proc.stdout
    assert "embedding_dim" in proc.stderr + proc.stdout
    assert not (tmp_path / "results.jsonl").exists()
