"""Errors for bad or missing dataset files, shared by every reader of the data layer.

Messages name the file (and the line, when one line is at fault) and the fix, so that a user can go
straight to the problem.
"""

from __future__ import annotations

from pathlib import Path


class DataFormatError(ValueError):
    """A dataset file does not have the expected format.

    The message starts with ``"<path>:<line>: "`` (1-based line) when one line is at fault, else
    with ``"<path>: "``, so editors and terminals can jump straight to the problem.
    """


class DatasetNotFoundError(FileNotFoundError):
    """Files a dataset needs are absent and could not be downloaded."""


class UnknownDatasetError(DatasetNotFoundError, KeyError):
    """``data.dataset`` names no listed source and has no ``recbole:``/``unisrec:`` prefix."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def format_error(path: str | Path, line: int | None, message: str) -> DataFormatError:
    """Build a ``DataFormatError`` with the ``path:line: `` prefix of the contract."""
    where = f"{path}:{line}" if line is not None else f"{path}"
    return DataFormatError(f"{where}: {message}")


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


__all__ = ["DataFormatError", "DatasetNotFoundError", "format_error", "not_found_error"]
