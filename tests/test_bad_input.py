"""Bad input stops with a message naming the file and line (or the key) and corrupts nothing."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from graphrec_lab.config import compose
from graphrec_lab.data.sources import SOURCES, DataFormatError, DatasetNotFoundError
from graphrec_lab.data.synthetic import generate_synthetic
from graphrec_lab.experiment import run_experiment
from tests.conftest import REPO


def write_recbole_dataset(folder: Path, name: str = "mini") -> Path:
    raw = generate_synthetic(num_users=80, num_items=100, interactions_per_user=12, seed=1)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    lines += [f"u{u}\ti{i}\t{t}" for u, i, t in zip(raw.user.tolist(), raw.item.tolist(), raw.timestamp.tolist())]
    path = folder / f"{name}.inter"
    path.write_text("\n".join(lines) + "\n")
    return path


def overrides(tmp_path: Path, *extra: str, data: tuple[str, ...] = ("data=recbole", "data.dataset=recbole:mini")) -> list[str]:
    return [
        *data,
        f"data.data_dir={tmp_path / 'data'}",
        f"data.cache_dir={tmp_path / 'cache'}",
        f"paths.root={tmp_path / 'out'}",
        "trainer.max_epochs=2",
        "trainer.check_val_every_n_epoch=1",
        "trainer.accelerator=cpu",
        "logger=csv",
        *extra,
    ]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_malformed_line_names_file_and_line_and_keeps_cache_and_results(tmp_path):
    inter = write_recbole_dataset(tmp_path / "data" / "mini")
    run_experiment(compose(overrides(tmp_path)))
    cache_before = snapshot(tmp_path / "cache")
    results_before = (tmp_path / "out" / "results.jsonl").read_bytes()
    assert cache_before and results_before

    n_lines = len(inter.read_text().splitlines())
    with open(inter, "a") as fh:
        fh.write("u1\ti2\tnot-a-number\n")
    with pytest.raises(DataFormatError, match=rf"mini\.inter:{n_lines + 1}:"):
        run_experiment(compose(overrides(tmp_path)))
    assert snapshot(tmp_path / "cache") == cache_before  # no half-written entry, old one intact
    assert (tmp_path / "out" / "results.jsonl").read_bytes() == results_before


def test_id_out_of_range_names_file_and_line(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "ml-100k"
    folder.mkdir(parents=True)
    for f in (REPO / "tests" / "fixtures" / "ml100k").iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    with open(folder / "u.data", "a") as fh:
        fh.write("2\t99\t4\t881250950\n")  # u.info declares 4 items
    # The fixture is not the real file, so skip the canonical checksum check.
    monkeypatch.setitem(SOURCES, "ml-100k", dataclasses.replace(SOURCES["ml-100k"], checksums={}))
    with pytest.raises(DataFormatError, match=r"u\.data:5:.*99"):
        run_experiment(compose(overrides(tmp_path, data=("data=ml100k", "data.download=false"))))


def test_missing_files_name_files_directory_and_url(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        run_experiment(compose(overrides(tmp_path, data=("data=gowalla", "data.download=false"))))
    message = str(info.value)
    assert "train.txt" in message and str(tmp_path / "data" / "gowalla") in message
    assert "LightGCN-PyTorch" in message


def test_cli_misspelt_key_exits_with_the_key(tmp_path):
    cmd = [sys.executable, "-m", "graphrec_lab", "run", "+model.embeding_dim=8", f"paths.root={tmp_path}", "logger=csv"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode != 0
    assert "model.embeding_dim" in proc.stderr + proc.stdout
    assert "embedding_dim" in proc.stderr + proc.stdout
    assert not (tmp_path / "results.jsonl").exists()
