"""Processed-data cache: raw files are parsed and split once, then loaded from disk.

An entry lives in ``<cache_dir>/<name>-<key>/`` where ``key`` hashes the source files' contents and
every preprocessing parameter, so a changed file or parameter gives a new entry and never a stale
one. Entries are written to a temporary folder and renamed into place, so a crash or a bad input
never leaves a half-written entry.

Every load is verified: ``meta.json`` stores the sha256 of each file of the entry (``files``), and
an entry whose bytes no longer match (a flipped bit, a truncated or empty file), whose ``meta.json``
is unreadable, or that fails to load is rebuilt from the raw files, with one warning naming the
entry; the rebuilt entry replaces it. Entries written before hashes were stored have no ``files``:
they are rebuilt once, with one warning, and carry hashes from then on. A cache directory that
cannot be written (read-only share, no permission) does not stop a run: the data is built in
memory with a warning naming the directory.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, TypeVar

from graphrec_lab.data.graph import InteractionGraph

log = logging.getLogger(__name__)
T = TypeVar("T")

# Bump when the processed format or the preprocessing code changes meaning.
CACHE_FORMAT = 1
# A cache directory that cannot be written (read-only share, no permission, a file in the way):
# the run goes on without caching.
_UNWRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST}
HASHES_KEY = "files"  # meta.json: {file name: sha256} of the entry's files


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _entry_problem(entry: Path) -> str | None:
    """Why ``entry`` cannot be trusted (None: every file matches the hashes in its meta.json)."""
    try:
        info = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"has no readable meta.json ({type(exc).__name__})"
    hashes = info.get(HASHES_KEY) if isinstance(info, dict) else None
    if not isinstance(hashes, dict) or not hashes:
        return "was written without content hashes (an older version): it is rebuilt once to be verifiable"
    for fname, expected in sorted(hashes.items()):
        path = entry / fname
        if not path.is_file():
            return f"misses {fname}"
        actual = _sha256(path)
        if actual != expected:
            size = path.stat().st_size
            return f"has a corrupt {fname} ({size} bytes, sha256 {actual[:12]}... instead of {expected[:12]}...)"
    return None


def cache_key(parts: dict) -> str:
    """A stable 16-hex-digit key of a JSON-serialisable description of the processed data."""
    blob = json.dumps({"format": CACHE_FORMAT, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_or_build(cache_dir: str | Path | None, name: str, parts: dict, build: Callable[[], InteractionGraph]) -> InteractionGraph:
    """Load the entry for ``parts`` from ``cache_dir`` or build, save and return it.

    ``cache_dir=None`` disables caching (the graph is built in memory every time).
    """
    return load_or_build_entry(
        cache_dir, name, parts, build, filename="graph.pt", load=InteractionGraph.load,
        meta=lambda graph: {"split_hash": graph.content_hash(), "stats": graph.stats()},
    )  # fmt: skip


def load_or_build_entry(
    cache_dir: str | Path | None,
    name: str,
    parts: dict,
    build: Callable[[], T],
    *,
    filename: str,
    load: Callable[[Path], T],
    meta: Callable[[T], dict[str, Any]],
) -> T:
    """The cache protocol for any processed object with ``save(path)``: ``<cache_dir>/<name>-<key>/
    <filename>`` plus ``meta.json`` (name, key, parts and ``meta(obj)``), written to a temporary
    folder and renamed into place."""
    if cache_dir is None:
        return build()
    key = cache_key(parts)
    entry = Path(cache_dir) / f"{name}-{key}"
    target = entry / filename
    stale = False
    if entry.exists():
        problem = _entry_problem(entry)
        if problem is None:
            try:
                obj = load(target)
            except Exception as exc:  # hashes match but the format is not ours (e.g. written by hand)
                problem = f"cannot be loaded ({type(exc).__name__}: {str(exc)[:200]})"
            else:
                log.info("processed cache hit (verified): %s", entry)
                return obj
        log.warning("processed cache entry %s %s; rebuilding it from the raw files", entry, problem)
        stale = True
    log.info("processing %s (once: later runs load it from %s)", name, entry)
    obj = build()
    try:
        _write_entry(obj, entry, name, key, parts, filename, meta, replace=stale)
    except OSError as exc:
        if exc.errno not in _UNWRITABLE:
            raise  # e.g. disk full: a real fault, not a read-only cache
        log.warning(
            "processed cache directory %s cannot be written (%s): the data is built in memory and not "
            "cached; set data.cache_dir (or GRAPHREC_CACHE_DIR) to a writable folder, or none", entry.parent, exc,
        )
    return obj


def _write_entry(
    obj: Any, entry: Path, name: str, key: str, parts: dict, filename: str,
    meta: Callable[[Any], dict[str, Any]], replace: bool,
) -> None:  # fmt: skip
    """Save ``obj`` and its meta.json (with the files' hashes) into a temporary folder and rename it
    to ``entry``; ``replace``: an untrusted entry there is swapped out first."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-{key}-", dir=entry.parent))
    try:
        obj.save(tmp / filename)
        hashes = {p.name: _sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        info = {"name": name, "key": key, "parts": parts, **meta(obj), HASHES_KEY: hashes}
        (tmp / "meta.json").write_text(json.dumps(info, indent=2, sort_keys=True, default=str))
        if replace and entry.exists():
            trash = entry.parent / f".{entry.name}.replaced-{os.getpid()}"
            try:
                os.rename(entry, trash)
            except OSError:
                trash = None  # another process moved it first
            if trash is not None:
                shutil.rmtree(trash, ignore_errors=True)
        try:
            os.rename(tmp, entry)  # atomic; fails if another process won the race
            log.info("processed cache written: %s", entry)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
