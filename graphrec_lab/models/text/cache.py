"""Disk cache of frozen text-encoder vectors: each distinct text is encoded once per setting.

Layout: ``<cache_dir>/<encoder.settings_key()>/`` holds ``meta.json`` (the settings, for people) and
shard files ``shard-*.safetensors``, each with ``vectors`` [n, H] float32 and ``hashes`` [n, 32]
uint8 (sha256 of each text's UTF-8 bytes), plus a checksum of both in the header metadata. Every
call that encodes new texts adds one shard; the loader merges all shards. When shards pile up they
are merged into one (compaction).

Safety: a shard is written to a temporary file, fsync'ed and ``os.replace``d into place, so readers
only ever see complete shards, and concurrent writers each add their own shard (same text, same
settings, same vector: duplicates are harmless). A shard that fails to parse, has the wrong shape or
fails its checksum is moved aside (``*.corrupt``) with a warning and its texts are re-encoded: a
damaged store is rebuilt, never read as wrong vectors.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from graphrec_lab.models.text.encoder import TextEncoder
from graphrec_lab.models.text.errors import TextEncoderError
from graphrec_lab.models.text.inputs import TextErrors, validate_texts

log = logging.getLogger(__name__)

STORE_FORMAT = "1"
SHARD_GLOB = "shard-*.safetensors"
MAX_SHARDS = 16  # more than this after a write: merge them into one


def default_cache_dir() -> Path:
    """``$GRAPHREC_CACHE_DIR/text_embeddings``, else ``./.cache/graphrec_lab/text_embeddings``."""
    return Path(os.environ.get("GRAPHREC_CACHE_DIR", ".cache/graphrec_lab")).expanduser() / "text_embeddings"


def text_hashes(texts: Sequence[str]) -> list[bytes]:
    """sha256 digest (32 bytes) of each text's UTF-8 encoding."""
    return [hashlib.sha256(t.encode("utf-8")).digest() for t in texts]


def _checksum(vectors: Tensor, hashes: Tensor) -> str:
    h = hashlib.sha256()
    h.update(hashes.contiguous().numpy().data)
    h.update(vectors.contiguous().numpy().data)
    return h.hexdigest()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either absent/old or complete, never partial."""
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class EmbeddingStore:
    """The shards of one settings directory.

    Args:
        root: ``<cache_dir>/<settings_key>``.
        dim: H; a shard with another width is treated as corrupt.
    """

    def __init__(self, root: str | Path, dim: int) -> None:
        self.root = Path(root)
        self.dim = dim

    def shard_paths(self) -> list[Path]:
        return sorted(self.root.glob(SHARD_GLOB)) if self.root.is_dir() else []

    def _read_shard(self, path: Path) -> tuple[Tensor, Tensor]:
        """(vectors [n, H] float32, hashes [n, 32] uint8) of one shard; raises ValueError if damaged."""
        from safetensors import safe_open  # comes with transformers; only the frozen-text cache reads it

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                vectors, hashes = f.get_tensor("vectors"), f.get_tensor("hashes")
        except FileNotFoundError:
            raise
        except Exception as exc:  # SafetensorError (truncated/garbled header), missing tensor, OSError
            raise ValueError(f"unreadable ({type(exc).__name__}: {exc})") from exc
        if meta.get("format") != STORE_FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {STORE_FORMAT!r}")
        n = vectors.shape[0] if vectors.dim() == 2 else -1
        if vectors.dtype != torch.float32 or tuple(vectors.shape) != (n, self.dim):
            raise ValueError(f"vectors are {vectors.dtype} {tuple(vectors.shape)}, expected float32 [n, {self.dim}]")
        if hashes.dtype != torch.uint8 or tuple(hashes.shape) != (n, 32):
            raise ValueError(f"hashes are {hashes.dtype} {tuple(hashes.shape)}, expected uint8 [{n}, 32]")
        if meta.get("checksum") != _checksum(vectors, hashes):
            raise ValueError("checksum mismatch (bytes changed after writing)")
        return vectors, hashes

    def _quarantine(self, path: Path, reason: str) -> None:
        warnings.warn(f"text-embedding cache shard {path} is corrupt ({reason}); moving it aside and re-encoding its texts", RuntimeWarning, stacklevel=3)
        with contextlib.suppress(OSError):  # another process may have moved it already
            os.replace(path, path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.corrupt"))

    def load(self) -> tuple[dict[bytes, int], Tensor, list[Path]]:
        """Merge every readable shard.

        Returns:
            (text hash -> row, vectors [M, H] float32, the shard files merged). Damaged shards are
            quarantined and skipped.
        """
        index: dict[bytes, int] = {}
        blocks: list[Tensor] = []
        used: list[Path] = []
        rows = 0
        for path in self.shard_paths():
            try:
                vectors, hashes = self._read_shard(path)
            except FileNotFoundError:  # compacted away by a concurrent process between glob and open
                continue
            except ValueError as exc:
                self._quarantine(path, str(exc))
                continue
            keep: list[int] = []
            for r, digest in enumerate(hashes.numpy()):
                key = digest.tobytes()
                if key not in index:
                    index[key] = rows + len(keep)
                    keep.append(r)
            if keep:
                blocks.append(vectors if len(keep) == len(vectors) else vectors[torch.as_tensor(keep)])
                rows += len(keep)
            used.append(path)
        merged = torch.cat(blocks) if blocks else torch.zeros(0, self.dim)
        return index, merged, used

    def write(self, hashes: list[bytes], vectors: Tensor) -> Path:
        """Add one shard atomically; returns its path."""
        from safetensors.torch import save  # as in _read_shard

        vectors = vectors.detach().to("cpu", torch.float32).contiguous()
        if vectors.shape != (len(hashes), self.dim):
            raise TextEncoderError(f"cannot store vectors {tuple(vectors.shape)} for {len(hashes)} texts of dim {self.dim}")
        hash_tensor = torch.from_numpy(np.frombuffer(b"".join(hashes), dtype=np.uint8).reshape(len(hashes), 32).copy())
        meta = {"format": STORE_FORMAT, "dim": str(self.dim), "count": str(len(hashes)), "checksum": _checksum(vectors, hash_tensor)}
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"shard-{uuid.uuid4().hex}.safetensors"
        _atomic_write_bytes(path, save({"vectors": vectors, "hashes": hash_tensor}, metadata=meta))
        return path

    def compact(self, index: dict[bytes, int], vectors: Tensor, merged: list[Path]) -> None:
        """Replace the shards ``merged`` (whose rows are ``index``/``vectors``) by one shard.

        The new shard is in place before any old one is removed, so a reader never misses a text
        (at worst it sees duplicates, which ``load`` skips)."""
        if len(merged) <= 1:
            return
        hashes = [b""] * len(index)
        for key, row in index.items():
            hashes[row] = key
        self.write(hashes, vectors)
        for path in merged:
            with contextlib.suppress(OSError):
                path.unlink()
        log.info("compacted %d text-embedding shards in %s", len(merged), self.root)


def encode_cached(
    encoder: TextEncoder,
    texts: Sequence[str],
    cache_dir: str | Path | None = None,
    *,
    batch_size: int | None = None,
    errors: TextErrors | None = None,
) -> Tensor:
    """``encoder.encode(texts)`` through a disk cache keyed by ``encoder.settings_key()``.

    Each distinct text is encoded at most once per setting: a repeated call performs no forward pass,
    and a call with some new texts encodes only those (deduplicated) and stores them as a new shard.

    Args:
        encoder: a frozen ``TextEncoder`` (LoRA encoders change with training: not cacheable).
        texts: N strings (validated like ``encode``).
        cache_dir: root of the cache (default ``default_cache_dir()``).
        batch_size, errors: passed to ``encode``.

    Returns:
        [N, H] float32 on the CPU, row i for ``texts[i]``.
    """
    if not encoder.frozen or any(p.requires_grad for p in encoder.parameters()):
        raise TextEncoderError("encode_cached needs a frozen TextEncoder (lora=None): trainable weights make cached vectors stale")
    clean, _ = validate_texts(texts, errors or encoder.text_errors)
    if not clean:
        return torch.zeros(0, encoder.dim)
    root = Path(cache_dir if cache_dir is not None else default_cache_dir()).expanduser()
    store = EmbeddingStore(root / encoder.settings_key(), encoder.dim)
    hashes = text_hashes(clean)
    index, stored, shard_files = store.load()

    missing: dict[bytes, int] = {}  # hash -> first position among the inputs
    for pos, key in enumerate(hashes):
        if key not in index and key not in missing:
            missing[key] = pos
    if missing:
        log.info("text-embedding cache %s: encoding %d of %d distinct texts", store.root, len(missing), len(set(hashes)))
        new_keys = list(missing)
        new_vectors = encoder.encode([clean[missing[k]] for k in new_keys], batch_size=batch_size).detach().float().cpu()
        if not store.root.joinpath("meta.json").exists():
            store.root.mkdir(parents=True, exist_ok=True)
            meta = {"model_name_or_path": encoder.model_name_or_path, **encoder.settings()}
            _atomic_write_bytes(store.root / "meta.json", json.dumps(meta, indent=2, sort_keys=True).encode())
        new_file = store.write(new_keys, new_vectors)
        for offset, key in enumerate(new_keys):
            index[key] = len(stored) + offset
        stored = torch.cat([stored, new_vectors])
        shard_files.append(new_file)
        if len(shard_files) > MAX_SHARDS:
            store.compact(index, stored, shard_files)
    rows = torch.as_tensor([index[k] for k in hashes], dtype=torch.long)
    return stored[rows]
