"""Make a dataset's files present and verified: check, download, extract, verify, place atomically.

Downloads go to a temporary folder inside the data directory (same filesystem, so ``os.replace``
is atomic) and only verified files are moved into the dataset folder: an interrupted or corrupt
download never leaves a half-written file where a reader would pick it up.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Protocol

from graphrec_lab.data.errors import DataFormatError, DatasetNotFoundError, not_found_error

DOWNLOAD_TIMEOUT_S = 30.0
_CHUNK = 1 << 20
# (resolved path, size, mtime_ns) -> sha256, so load() + fingerprint() hash each file once.
_HASH_CACHE: dict[tuple[str, int, int], str] = {}


class SourceFiles(Protocol):
    """What ``ensure_files`` reads of a dataset source (``base.DatasetSource`` has it all; a Protocol,
    so that ``DatasetSource.load`` can call this module without the two importing each other)."""

    @property
    def name(self) -> str: ...
    @property
    def dirname(self) -> str: ...
    @property
    def files(self) -> tuple[str, ...]: ...
    @property
    def url(self) -> str: ...
    @property
    def checksums(self) -> dict[str, str]: ...
    @property
    def downloads(self) -> tuple[tuple[str, str], ...]: ...
    def path(self, data_dir: str | Path) -> Path: ...


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB chunks; memoised on path, size and mtime)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    cached = _HASH_CACHE.get(key)
    if cached is not None:
        return cached
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    _HASH_CACHE[key] = digest = h.hexdigest()
    return digest


def _verify(source: SourceFiles, folder: Path, names: list[str] | tuple[str, ...], origin: str) -> None:
    for name in names:
        expected = source.checksums.get(name)
        if expected is None:
            continue
        actual = file_sha256(folder / name)
        if actual != expected.lower():
            raise DataFormatError(
                f"{folder / name}: sha256 mismatch for {name} of dataset {source.name!r} "
                f"(expected {expected}, actual {actual}; {origin}). The file is corrupt or a "
                f"different version; get the canonical copy from {source.url}"
            )


def _fetch(url: str, dest: Path) -> None:
    """Stream ``url`` to ``dest``."""
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out, _CHUNK)


def _extract(archive: Path, prefix: str, dest: Path) -> None:
    """Extract the members of ``archive`` under ``prefix`` into ``dest`` with the prefix removed."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            if info.is_dir() or not info.filename.startswith(prefix):
                continue
            rel = PurePosixPath(info.filename[len(prefix):])
            if not rel.parts or rel.is_absolute() or ".." in rel.parts:
                continue  # never write outside dest (zip-slip)
            target = dest.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)


def ensure_files(source: SourceFiles, data_dir: str | Path, download: bool = True) -> Path:
    """Return the source's folder once every file in ``source.files`` is present and verified.

    Present files are checked against ``source.checksums`` (mismatch: ``DataFormatError``, the file
    is left alone). Missing files are downloaded when ``download`` is true, else, or when the
    network fails, ``DatasetNotFoundError`` names the files, the folder and the canonical URL.
    """
    folder = source.path(data_dir)
    missing = [name for name in source.files if not (folder / name).is_file()]
    if not source.files and not folder.is_dir():
        raise not_found_error([], folder, source.url)
    if not missing:
        _verify(source, folder, source.files, "existing file")
        return folder
    _verify(source, folder, [n for n in source.files if n not in missing], "existing file")
    if not download:
        raise not_found_error(missing, folder, source.url, "download disabled")
    if not source.downloads:
        raise not_found_error(missing, folder, source.url, "no automatic download for this dataset")

    data_dir = Path(data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".download-{source.dirname}-", dir=data_dir))
    except OSError as exc:
        raise not_found_error(missing, folder, source.url, f"cannot write to {data_dir}: {exc}") from exc
    try:
        for i, (url, kind) in enumerate(source.downloads):
            kind_name, _, arg = kind.partition(":")
            if kind_name == "file" and arg not in missing:
                continue  # present and verified: fetch (and name in errors) only what is missing
            try:
                if kind_name == "file":
                    dest = tmp / arg
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    _fetch(url, dest)
                elif kind_name == "zip":
                    archive = tmp / f".archive-{i}.zip"
                    _fetch(url, archive)
                    _extract(archive, arg, tmp)
                    archive.unlink()
                else:
                    raise ValueError(f"dataset source {source.name!r}: unknown download kind {kind!r}")
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                raise not_found_error(missing, folder, source.url, f"download of {url} failed: {exc}") from exc
            except zipfile.BadZipFile as exc:
                raise not_found_error(missing, folder, source.url, f"{url} is not a valid zip: {exc}") from exc
        still_missing = [name for name in missing if not (tmp / name).is_file()]
        if still_missing:
            raise not_found_error(still_missing, folder, source.url, "not in the downloaded files")
        _verify(source, tmp, missing, "downloaded file")
        folder.mkdir(parents=True, exist_ok=True)
        # Move every downloaded file that is not already there (extra archive members included);
        # existing user files are never overwritten.
        for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
            rel = path.relative_to(tmp)
            target = folder / rel
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


__all__ = ["DOWNLOAD_TIMEOUT_S", "DatasetNotFoundError", "SourceFiles", "ensure_files", "file_sha256"]
