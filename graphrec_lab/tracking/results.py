"""The local result store: one JSON line per finished run, appended under a file lock.

Appends are a single ``write`` of a whole line on a locked, append-mode file followed by fsync, so
concurrent sweep workers never interleave records and a crash never truncates earlier ones.
Readers skip (and report) a torn last line instead of failing on it.

Results are never lost: ``check_writable`` runs before training (a store that cannot be written stops
the run before any compute is spent), and ``save_fallback`` keeps a record whose append still failed
in the run directory. A run that failed after it started is recorded with ``status: "failed"`` (see
``failure_record``); readers of results (``ResultStore.read``, ``reporting.load_records``) leave such
records out of results and count them.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FAILED = "failed"  # the ``status`` of a run that started and did not finish (absent for finished runs)


class ResultStoreError(OSError):
    """The result store (``paths.results``) or the run directory cannot be written."""


def is_failed(record: dict[str, Any]) -> bool:
    """Whether a record is a failed run's (``status: failed``), not a result."""
    return record.get("status") == FAILED


def failure_record(base: dict[str, Any], error: BaseException) -> dict[str, Any]:
    """A record of a failed run: ``base`` (run id, name, config, ...) plus ``status: failed`` and the
    error; it has no ``metrics``, so no table can average it with results."""
    return {
        **base,
        "status": FAILED,
        "error": f"{type(error).__name__}: {error}",
        "finished_at": datetime.now(timezone.utc).isoformat(),
    }


def save_fallback(record: dict[str, Any], run_dir: str | Path) -> Path:
    """Write ``record`` to ``<run_dir>/result.json`` (the place a record goes when the store cannot
    take it); returns the path. ``ResultStore(path).append(json.loads(...))`` files it later."""
    path = Path(run_dir) / "result.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, sort_keys=True, indent=1, default=str) + "\n", encoding="utf-8")
    return path


class ResultStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def check_writable(self) -> None:
        """Raise ``ResultStoreError`` naming the file unless a record could be appended now.

        Opens the file for appending (creating nothing when it does not exist yet: a temporary
        file in its folder stands in), so permissions, a read-only filesystem, a folder in the
        file's place or a missing parent that cannot be created are all caught before training."""
        try:
            if self.path.exists():
                with open(self.path, "a", encoding="utf-8"):
                    pass
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=self.path.parent, prefix=f".{self.path.name}."):
                    pass
        except OSError as exc:
            raise ResultStoreError(
                f"paths.results={str(self.path)!r}: the result store cannot be written ({exc}); "
                "fix its permissions or set paths.results (or paths.root) to a writable place"
            ) from None

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                # A crash elsewhere may have left a torn last line: start ours on a fresh line so the
                # torn bytes do not swallow this record too.
                if fh.tell() > 0:
                    with open(self.path, "rb") as tail:
                        tail.seek(-1, os.SEEK_END)
                        if tail.read(1) != b"\n":
                            line = "\n" + line
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def read(self, include_failed: bool = False) -> list[dict[str, Any]]:
        """The records in order; failed runs' records only with ``include_failed``."""
        if not self.path.exists():
            return []
        records = []
        with open(self.path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    log.warning("%s:%d: unreadable result record skipped", self.path, lineno)
        return records if include_failed else [r for r in records if not is_failed(r)]
