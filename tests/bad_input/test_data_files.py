"""Bad data files: each error names the file and line (and column where one byte is at fault), and
leaves the processed cache and the result store as they were."""

from __future__ import annotations

import dataclasses
import urllib.error
from pathlib import Path

import pytest

import graphrec_lab.data.sources.download as download_mod
from graphrec_lab.config import compose
from graphrec_lab.data.sources import SOURCES, DataFormatError, DatasetNotFoundError, ensure_files, read_recbole_atomic
from graphrec_lab.data.synthetic import generate_synthetic
from graphrec_lab.experiment import run_experiment
from tests.conftest import REPO

HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"
ROWS = ["u1\ti1\t4\t100", "u1\ti2\t5\t101", "u2\ti1\t3\t102", "u2\ti3\t2\t103"]


def write_inter(folder: Path, rows: list[str], prefix: bytes = b"", encoding_break: bytes | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{folder.name}.inter"
    data = prefix + "\n".join([HEADER, *rows]).encode() + b"\n"
    if encoding_break is not None:
        data += encoding_break
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("cell", ["nan", "NaN", "inf", "-inf"])
def test_non_finite_rating_is_rejected_with_file_and_line(tmp_path, cell):
    write_inter(tmp_path / "mini", [*ROWS, f"u3\ti2\t{cell}\t104"])
    with pytest.raises(DataFormatError, match=rf"mini\.inter:6: field 'rating': '{cell}' is not a finite number"):
        read_recbole_atomic(tmp_path / "mini")


def test_non_finite_timestamp_is_rejected_with_file_and_line(tmp_path):
    write_inter(tmp_path / "mini", [ROWS[0], "u1\ti2\t5\tinf", *ROWS[2:]])
    with pytest.raises(DataFormatError, match=r"mini\.inter:3: field 'timestamp'"):
        read_recbole_atomic(tmp_path / "mini")


def test_non_utf8_byte_names_file_line_and_column(tmp_path):
    write_inter(tmp_path / "mini", ROWS, encoding_break=b"u3\ti\xe9\t1\t105\n")
    with pytest.raises(DataFormatError, match=r"mini\.inter:6: byte\(s\) e9 at column 5 are not valid utf-8 .*save the file as UTF-8"):
        read_recbole_atomic(tmp_path / "mini")


def test_utf8_byte_order_mark_is_dropped(tmp_path):
    plain = read_recbole_atomic(write_inter(tmp_path / "plain", ROWS).parent)
    bom = read_recbole_atomic(write_inter(tmp_path / "bom", ROWS, prefix=b"\xef\xbb\xbf").parent)
    assert bom.user.tolist() == plain.user.tolist() and bom.item.tolist() == plain.item.tolist()
    assert bom.rating.tolist() == plain.rating.tolist()


def test_missing_test_txt_is_the_file_named(tmp_path, monkeypatch):
    source = dataclasses.replace(SOURCES["gowalla"], checksums={})
    folder = source.path(tmp_path)
    folder.mkdir(parents=True)
    for name in ("train.txt", "user_list.txt", "item_list.txt"):
        (folder / name).write_text("0 1 2\n")

    def offline(url: str, dest: Path) -> None:
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(download_mod, "_fetch", offline)
    with pytest.raises(DatasetNotFoundError) as info:
        ensure_files(source, tmp_path, download=True)
    message = str(info.value)
    assert message.startswith("missing test.txt in ")
    assert "test.txt failed" in message and "train.txt" not in message


# ------------------------------------------------- through run_experiment: cache and results untouched
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
