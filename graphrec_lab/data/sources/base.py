"""Dataset sources: where a dataset's files live, where they come from, and how to read them.

A ``DatasetSource`` ties a registry name to a folder under the data directory, the files that
must be there, their canonical sha256 and download locations, and the reader that turns the folder
into ``RawInteractions``. Keeping this metadata in one frozen record means the download, checksum
and cache-key logic is written once, not per dataset. The named sources are listed in ``registry``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from graphrec_lab.data.errors import DataFormatError, DatasetNotFoundError, format_error, not_found_error
from graphrec_lab.data.graph import RawInteractions
from graphrec_lab.data.sources.download import ensure_files, file_sha256


@dataclass(frozen=True)
class DatasetSource:
    """One readable dataset: folder layout, canonical origin and reader.

    ``downloads`` holds ``(url, kind)`` pairs where ``kind`` is ``"file:<relative name>"`` for a
    single file or ``"zip:<member prefix to strip>"`` for an archive to extract.
    """

    name: str
    dirname: str
    files: tuple[str, ...]
    url: str
    checksums: dict[str, str]
    downloads: tuple[tuple[str, str], ...]
    reader: Callable[..., RawInteractions]

    def path(self, data_dir: str | Path) -> Path:
        """The dataset's folder, ``data_dir / dirname``."""
        return Path(data_dir) / self.dirname

    def load(self, data_dir: str | Path, download: bool = True, **reader_kwargs) -> RawInteractions:
        """Make sure the files are present and verified (downloading if allowed), then read them."""
        folder = ensure_files(self, data_dir, download=download)
        return self.reader(folder, **reader_kwargs)

    def fingerprint(self, data_dir: str | Path) -> str:
        """sha256 over ``(file name, file sha256)`` of ``files``, for cache keys.

        A source with no declared files (an ad-hoc RecBole folder) is fingerprinted over every
        regular file in its folder, so editing any of them invalidates caches.
        """
        folder = self.path(data_dir)
        names = list(self.files) or sorted(
            p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
        )
        h = hashlib.sha256(self.name.encode())
        for name in names:
            h.update(b"\0" + name.encode() + b"\0" + file_sha256(folder / name).encode())
        return h.hexdigest()


# The error types and their builders are the data layer's (``graphrec_lab.data.errors``); readers
# import them from here too.
__all__ = ["DataFormatError", "DatasetNotFoundError", "DatasetSource", "format_error", "not_found_error"]
