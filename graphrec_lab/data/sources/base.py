"""Dataset sources: where a dataset's files live, where they come from, and how to read them.

A ``DatasetSource`` ties a registry name to a folder under the data directory, the files that
must be there, their canonical sha256 and download locations, and the reader that turns the folder
into ``RawInteractions``. Keeping this metadata in one frozen record means the download, checksum
and cache-key logic is written once, not per dataset.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from graphrec_lab.data.graph import RawInteractions


class DataFormatError(ValueError):
    """A dataset file does not have the expected format.

    The message starts with ``"<path>:<line>: "`` (1-based line) when one line is at fault, else
    with ``"<path>: "``, so editors and terminals can jump straight to the problem.
    """


class DatasetNotFoundError(FileNotFoundError):
    """Files a dataset needs are absent and could not be downloaded."""


class UnknownDatasetError(DatasetNotFoundError, KeyError):
    """``data.dataset`` names no registered source and has no ``recbole:``/``unisrec:`` prefix."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def format_error(path: str | Path, line: int | None, message: str) -> DataFormatError:
    """Build a ``DataFormatError`` with the ``path:line: `` prefix of the contract."""
    where = f"{path}:{line}" if line is not None else f"{path}"
    return DataFormatError(f"{where}: {message}")


def read_text_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file (a leading byte-order mark dropped, as editors on Windows write
    one); undecodable bytes raise ``DataFormatError`` naming the file, line and column."""
    data = Path(path).read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - line_start + 1
        raise format_error(
            path, line, f"column {column}: byte 0x{data[exc.start]:02x} is not valid UTF-8 ({exc.reason}); save the file as UTF-8"
        ) from None


def not_found_error(
    missing: list[str] | tuple[str, ...], folder: Path, url: str, reason: str | None = None
) -> DatasetNotFoundError:
    """Build a ``DatasetNotFoundError`` that names the files, the folder, the URL and the fix."""
    names = ", ".join(missing) if missing else "(the dataset folder)"
    why = f" ({reason})" if reason else ""
    return DatasetNotFoundError(
        f"missing {names} in {folder}{why}. Download the dataset from {url} on a machine with "
        f"internet (loaders download it automatically when download is enabled), or place the "
        f"files in {folder} yourself; the data directory is set by GRAPHREC_DATA_DIR or "
        f"data.data_dir."
    )


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
        from graphrec_lab.data.sources.download import ensure_files

        folder = ensure_files(self, data_dir, download=download)
        return self.reader(folder, **reader_kwargs)

    def fingerprint(self, data_dir: str | Path) -> str:
        """sha256 over ``(file name, file sha256)`` of ``files``, for cache keys.

        A source with no declared files (an ad-hoc RecBole folder) is fingerprinted over every
        regular file in its folder, so editing any of them invalidates caches.
        """
        from graphrec_lab.data.sources.download import file_sha256

        folder = self.path(data_dir)
        names = list(self.files) or sorted(
            p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
        )
        h = hashlib.sha256(self.name.encode())
        for name in names:
            h.update(b"\0" + name.encode() + b"\0" + file_sha256(folder / name).encode())
        return h.hexdigest()


SOURCES: dict[str, DatasetSource] = {}


def get_source(name: str) -> DatasetSource:
    """The registered source called ``name``; an unknown name raises ``UnknownDatasetError`` (a
    ``KeyError``) listing the known ones and the prefixes for ad-hoc folders."""
    try:
        return SOURCES[name]
    except KeyError:
        known = ", ".join(sorted(SOURCES))
        raise UnknownDatasetError(
            f"data.dataset={name!r}: unknown dataset; registered: synthetic, {known}. For a folder of "
            f"RecBole atomic files <data_dir>/{name}/{name}.inter use data.dataset=recbole:{name}; for "
            f"UniSRec files <data_dir>/{name}/{name}.* use data.dataset=unisrec:{name}"
        ) from None


def _register() -> None:
    # Imported here (not at the top) because the readers import the error classes above.
    from graphrec_lab.data.sources.lightgcn_text import read_lightgcn_text
    from graphrec_lab.data.sources.movielens import read_movielens_100k

    gowalla_raw = "https://raw.githubusercontent.com/gusye1234/LightGCN-PyTorch/master/data/gowalla"
    gowalla_files = ("train.txt", "test.txt", "user_list.txt", "item_list.txt")
    SOURCES["gowalla"] = DatasetSource(
        name="gowalla",
        dirname="gowalla",
        files=gowalla_files,
        url="https://github.com/gusye1234/LightGCN-PyTorch/tree/master/data/gowalla",
        checksums={
            "train.txt": "7244696fdeb23911319cf7b689f2e15a3c4c92549c873a5677b44e3f13cc3e62",
            "test.txt": "099a2a73924e4b754dc6efd730d764f492321b53c38eb93298850c83acf57be3",
            "user_list.txt": "5344c4d0deef610e1f148f23ad216a0db03b36f88834cd39a06786a672c5f5a1",
            "item_list.txt": "6b186f92890cc3f0c15a6dae5d6285f125a302bb8c5ea0cd9a16cf9c16347139",
        },
        downloads=tuple((f"{gowalla_raw}/{f}", f"file:{f}") for f in gowalla_files),
        reader=read_lightgcn_text,
    )
    SOURCES["ml-100k"] = DatasetSource(
        name="ml-100k",
        dirname="ml-100k",
        files=("u.data", "u.item", "u.user", "u.genre", "u.info"),
        url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        checksums={
            # u.data: sha256 of the original GroupLens file (no header line).
            "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
            "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
            "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
            "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
            "u.info": "5b0a40b2e47a729ee6203063f6dcf8790c2e63f5a18663e6ee318a72c5f3c27b",
        },
        downloads=(("https://files.grouplens.org/datasets/movielens/ml-100k.zip", "zip:ml-100k/"),),
        reader=read_movielens_100k,
    )


_register()
