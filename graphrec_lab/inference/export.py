"""Export a run's embeddings with their raw ids, and an approximate nearest-neighbour index.

Files written to the output folder:

* ``user_embeddings.npy`` [U, D] and ``item_embeddings.npy`` [I, D] (float32; row r is dense id r),
* ``users.csv`` (``index,id``) and ``items.csv`` (``index,id,text``): the raw ids of the rows,
* ``user_embeddings.csv`` / ``item_embeddings.csv``: ``id,e0,...,e{D-1}`` for tools that read CSV,
* ``*.parquet`` of the same tables when pyarrow is installed,
* ``items.faiss`` + ``index.json``: a FAISS inner-product index over the items (optional extra
  ``serve``: ``pip install 'graphrec-lab[serve]'``), with its recall@k against exact search and its
  per-query latency measured at export time.

The score is the dot product, so the index searches by maximum inner product (HNSW with
``METRIC_INNER_PRODUCT``; ``flat`` is exact).
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from graphrec_lab.inference.run import InferenceError, LoadedRun

INDEX_KINDS = ("hnsw", "flat")


@dataclass
class IndexReport:
    """How well an ANN index reproduces exact top-k: recall@k over ``queries`` users, mean latency."""

    kind: str
    k: int
    queries: int
    recall_at_k: float
    latency_ms: float  # mean per single-user query
    exact_latency_ms: float  # the same users by exact matrix product, per user

    def format(self) -> str:
        return (
            f"index {self.kind}: recall@{self.k} vs exact top-{self.k} = {self.recall_at_k:.4f} over {self.queries} users; "
            f"{self.latency_ms:.3f} ms/query (exact: {self.exact_latency_ms:.3f} ms/query)"
        )


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _faiss():
    try:
        import faiss
    except ImportError as exc:
        raise InferenceError("the ANN index needs faiss: pip install 'graphrec-lab[serve]' (faiss-cpu)") from exc
    return faiss


def build_index(items: np.ndarray, kind: str = "hnsw", hnsw_m: int = 32, ef_search: int = 128):
    """A FAISS inner-product index over ``items`` [I, D] float32 (row = dense item id)."""
    faiss = _faiss()
    if kind not in INDEX_KINDS:
        raise InferenceError(f"index kind {kind!r}: expected one of {INDEX_KINDS}")
    items = np.ascontiguousarray(items, dtype=np.float32)
    if kind == "flat":
        index = faiss.IndexFlatIP(items.shape[1])
    else:
        index = faiss.IndexHNSWFlat(items.shape[1], hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = ef_search
    index.add(items)
    return index


def exact_topk(users: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k item ids [B, k] by inner product, ties to the lower id (the evaluator's rule)."""
    scores = users @ items.T
    order = np.argsort(-scores, axis=1, kind="stable")
    return order[:, :k]


def measure_index(index, users: np.ndarray, items: np.ndarray, k: int, kind: str) -> IndexReport:
    """Recall@k of ``index`` against exact top-k over ``users`` [B, D], and per-query latencies."""
    users = np.ascontiguousarray(users, dtype=np.float32)
    t0 = time.perf_counter()
    exact = exact_topk(users, items, k)
    exact_ms = (time.perf_counter() - t0) * 1e3 / max(1, len(users))
    t0 = time.perf_counter()
    found = [index.search(users[b : b + 1], k)[1][0] for b in range(len(users))]  # one query at a time
    ann_ms = (time.perf_counter() - t0) * 1e3 / max(1, len(users))
    hits = [len(set(exact[b].tolist()) & set(found[b].tolist())) for b in range(len(users))]
    k_eff = min(k, items.shape[0])
    return IndexReport(kind, k, len(users), float(np.mean(hits)) / k_eff, ann_ms, exact_ms)


def _write_table(path: Path, header: list[str], rows) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def export_run(
    run: LoadedRun,
    out: str | Path,
    index: str | None = "hnsw",
    k: int = 20,
    queries: int = 1000,
    seed: int = 0,
) -> tuple[Path, IndexReport | None]:
    """Write the embeddings (and the index unless ``index`` is None) to ``out``; see the module docstring.

    Returns (out, the index's ``IndexReport`` or None). ``queries`` users (a seeded sample) measure it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    user_emb, item_emb = (t.cpu().numpy().astype(np.float32) for t in run.embeddings())
    np.save(out / "user_embeddings.npy", user_emb)
    np.save(out / "item_embeddings.npy", item_emb)
    texts = run.item_text or [None] * len(run.item_ids)
    _write_table(out / "users.csv", ["index", "id"], enumerate(run.user_ids))
    _write_table(out / "items.csv", ["index", "id", "text"], ((i, raw, texts[i] or "") for i, raw in enumerate(run.item_ids)))
    dims = [f"e{d}" for d in range(user_emb.shape[1])]
    _write_table(out / "user_embeddings.csv", ["id", *dims], ([raw, *row] for raw, row in zip(run.user_ids, user_emb.tolist())))
    _write_table(out / "item_embeddings.csv", ["id", *dims], ([raw, *row] for raw, row in zip(run.item_ids, item_emb.tolist())))
    _write_parquet(out, run, user_emb, item_emb)

    report = None
    if index is not None:
        faiss = _faiss()
        idx = build_index(item_emb, index)
        rng = np.random.default_rng(seed)
        sample = rng.choice(len(user_emb), size=min(queries, len(user_emb)), replace=False)
        report = measure_index(idx, user_emb[np.sort(sample)], item_emb, k, index)
        faiss.write_index(idx, str(out / "items.faiss"))
        meta = {"kind": index, "num_items": int(item_emb.shape[0]), "dim": int(item_emb.shape[1]), "metric": "inner_product",
                "run_dir": str(run.run_dir), "report": asdict(report)}
        (out / "index.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out, report


def _write_parquet(out: Path, run: LoadedRun, user_emb: np.ndarray, item_emb: np.ndarray) -> bool:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return False
    for name, ids, emb in (("user", run.user_ids, user_emb), ("item", run.item_ids, item_emb)):
        table = pa.table({"id": ids, "embedding": list(emb)})
        pq.write_table(table, out / f"{name}_embeddings.parquet")
    return True


def load_index(path: str | Path):
    """A FAISS index written by ``export_run`` (``items.faiss`` or the folder holding it)."""
    faiss = _faiss()
    path = Path(path)
    if path.is_dir():
        path = path / "items.faiss"
    if not path.is_file():
        raise InferenceError(f"--index {path}: no such FAISS index (graphrec-lab export writes items.faiss)")
    return faiss.read_index(str(path))


def search_index(index, user_vecs: np.ndarray, exclude: list[set[int]], k: int) -> list[list[tuple[int, float]]]:
    """Top-k (item id, score) per user from the ANN index, excluded items dropped: the index is asked
    for k plus the number of excluded items, so at least k remain whenever the catalogue has them."""
    out = []
    for b in range(len(user_vecs)):
        n = min(index.ntotal, k + len(exclude[b]))
        scores, ids = index.search(np.ascontiguousarray(user_vecs[b : b + 1], dtype=np.float32), n)
        kept = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0 and int(i) not in exclude[b]]
        # the index's order among equal scores is its own: apply the evaluator's rule (lower id first)
        kept.sort(key=lambda t: (-t[1], t[0]))
        out.append(kept[:k])
    return out
