"""ensure_files: offline errors, atomic placement, zip extraction and checksum verification."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from graphrec_lab.data.sources import (
    DataFormatError,
    DatasetNotFoundError,
    DatasetSource,
    ensure_files,
    file_sha256,
    get_source,
)
from graphrec_lab.data.sources import download as download_module

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ML_FILES = ("u.data", "u.item", "u.user", "u.genre", "u.info")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fixture_zip(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A zip shaped like GroupLens' ml-100k.zip (members under ``ml-100k/``) built from fixtures."""
    archive = tmp_path / "ml-100k.zip"
    checksums = {}
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-100k/", "")
        for name in ML_FILES + ("README",):
            data = (FIXTURES / "ml100k" / name).read_bytes() if name != "README" else b"readme\n"
            zf.writestr(f"ml-100k/{name}", data)
            if name in ML_FILES:
                checksums[name] = _sha(data)
        zf.writestr("other/ignored.txt", "not under the prefix")
    return archive, checksums


def _fixture_source(archive: Path, checksums: dict[str, str]) -> DatasetSource:
    return dataclasses.replace(
        get_source("ml-100k"), checksums=checksums, downloads=((archive.as_uri(), "zip:ml-100k/"),)
    )


def test_file_sha256(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    assert file_sha256(tmp_path / "f") == _sha(b"abc")


def test_missing_without_download(tmp_path: Path) -> None:
    source = get_source("gowalla")
    with pytest.raises(DatasetNotFoundError) as info:
        ensure_files(source, tmp_path, download=False)
    msg = str(info.value)
    assert "train.txt" in msg and str(tmp_path / "gowalla") in msg and source.url in msg
    assert "GRAPHREC_DATA_DIR" in msg
    assert not (tmp_path / "gowalla").exists()


def test_network_error_leaves_no_partial_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "gowalla"
    folder.mkdir()
    (folder / "user_list.txt").write_text("org_id remap_id\n")  # present, no checksum match needed below
    source = dataclasses.replace(get_source("gowalla"), checksums={})
    calls = []

    def fake_urlopen(url: str, timeout: float | None = None):
        calls.append((url, timeout))
        if len(calls) == 1:  # first file "arrives", the second fails: nothing may be placed
            return io.BytesIO(b"0 1 2\n")
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    with pytest.raises(DatasetNotFoundError) as info:
        ensure_files(source, tmp_path, download=True)
    msg = str(info.value)
    assert "train.txt" in msg and str(folder) in msg and source.url in msg
    assert sorted(p.name for p in folder.iterdir()) == ["user_list.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["gowalla"]  # temporary folder removed
    assert calls[0][1] is not None and calls[0][1] <= 60


def test_zip_download_extracts_verifies_and_places(tmp_path: Path) -> None:
    archive, checksums = _fixture_zip(tmp_path)
    data_dir = tmp_path / "data"
    source = _fixture_source(archive, checksums)
    folder = ensure_files(source, data_dir, download=True)
    assert folder == data_dir / "ml-100k"
    for name in ML_FILES:
        assert (folder / name).read_bytes() == (FIXTURES / "ml100k" / name).read_bytes()
    assert (folder / "README").is_file() and not (folder / "other").exists()
    assert [p.name for p in data_dir.iterdir()] == ["ml-100k"]  # no temporary leftovers
    raw = source.load(data_dir, download=False)
    assert len(raw) == 4 and raw.item_text[1].startswith("Misérables")
    assert source.fingerprint(data_dir) == source.fingerprint(data_dir)


def test_downloaded_checksum_mismatch_places_nothing(tmp_path: Path) -> None:
    archive, checksums = _fixture_zip(tmp_path)
    source = _fixture_source(archive, checksums | {"u.data": "0" * 64})
    data_dir = tmp_path / "data"
    with pytest.raises(DataFormatError, match="u.data"):
        ensure_files(source, data_dir, download=True)
    assert list(data_dir.iterdir()) == []  # neither the dataset folder nor the temporary one


def test_existing_file_checksum_mismatch_is_kept(tmp_path: Path) -> None:
    archive, checksums = _fixture_zip(tmp_path)
    source = _fixture_source(archive, checksums)
    folder = tmp_path / "data" / "ml-100k"
    folder.mkdir(parents=True)
    for name in ML_FILES:
        (folder / name).write_bytes((FIXTURES / "ml100k" / name).read_bytes())
    tampered = b"1\t1\t5\t0\n"
    (folder / "u.data").write_bytes(tampered)
    with pytest.raises(DataFormatError) as info:
        ensure_files(source, tmp_path / "data", download=True)
    msg = str(info.value)
    assert msg.startswith(f"{folder / 'u.data'}: ")
    assert checksums["u.data"] in msg and _sha(tampered) in msg
    assert (folder / "u.data").read_bytes() == tampered


def test_timeout_constant() -> None:
    assert 10 <= download_module.DOWNLOAD_TIMEOUT_S <= 60
