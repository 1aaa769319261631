"""Processed-data cache: raw files are parsed and split once, then loaded from disk.

An entry lives in ``<cache_dir>/<name>-<key>/`` where ``key`` hashes the source files' contents and
every preprocessing parameter, so a changed file or parameter gives a new entry and never a stale
one. Entries are written to a temporary folder and renamed into place, so a crash or a bad input
never leaves a half-written entry, and an existing entry is never overwritten.
"""

from __future__ import annotations

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
    if target.exists():
        log.info("processed cache hit: %s", entry)
        return load(target)
    log.info("processing %s (once: later runs load it from %s)", name, entry)
    obj = build()
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-{key}-", dir=entry.parent))
    try:
        obj.save(tmp / filename)  # type: ignore[attr-defined]
        info = {"name": name, "key": key, "parts": parts, **meta(obj)}
        (tmp / "meta.json").write_text(json.dumps(info, indent=2, sort_keys=True, default=str))
        try:
            os.rename(tmp, entry)  # atomic; fails if another process won the race
            log.info("processed cache written: %s", entry)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return obj
