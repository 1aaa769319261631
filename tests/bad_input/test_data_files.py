"""Bad data files: each error names the file and line (and column where one byte is at fault)."""

from __future__ import annotations

import dataclasses
import urllib.error
from pathlib import Path

import pytest

import graphrec_lab.data.sources.download as download_mod
from graphrec_lab.data.sources import SOURCES, DataFormatError, DatasetNotFoundError, ensure_files, read_recbole_atomic

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
    with pytest.raises(DataFormatError, match=r"mini\.inter:6: column 5: byte 0xe9 is not valid UTF-8"):
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
