"""Microbenchmarks behind the LightGCN step's kernels, each against the one it replaced, in one process.

1. ``A @ X``: one CSR product of the whole normalised adjacency against ``BlockAdjacency.matmul``
   (user-item and item-user blocks written into one output).
2. LightGCN propagation, forward + backward of ``sum(E * W)``: layer by layer with ``symmetric_spmm``
   over the whole CSR and a stacked layer mean (the earlier path) against ``propagate_layer_mean``
   over the blocks (one autograd node, Horner backward).
3. One Adam step on the [U+I, 64] table: ``torch.optim.Adam`` with its default (for-loop) kernel
   against the fused kernel (``training.optim.adam``).
4. The block product itself: int64 indices and ``torch.mm(out=...)`` (the earlier ``BlockAdjacency``)
   against int32 indices and ``torch.addmm(beta=0)`` written into the output (the current one).
5. A BPR batch's rows of the LightGCN mean, forward + backward: the full mean indexed at the rows
   against ``propagate_layer_mean(..., rows=...)`` (last product and the backward's first product
   restricted to the rows). The batch: 2,048 training edges drawn uniformly (as BPR does) and as many
   uniform negative items; the share of A's nonzeros in its rows is printed.

Repetitions alternate between the two sides; the medians and the ratio old / new are printed.

    python benchmarks/speed/kernels.py --data gowalla
    python benchmarks/speed/kernels.py --data ml100k
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from collections.abc import Callable

import torch


def load_graph(name: str, data_dir: str, cache_dir: str):
    from graphrec_lab.data.datamodule import InteractionDataModule

    if name == "gowalla":
        dm = InteractionDataModule(dataset="gowalla", data_dir=data_dir, cache_dir=cache_dir, download=False, split="given", val_fraction=0.0)
    else:
        dm = InteractionDataModule(dataset="ml-100k", data_dir=data_dir, cache_dir=cache_dir, download=False)
    dm.load_graph()
    return dm.train_graph


def compare(name: str, old: Callable[[], object], new: Callable[[], object], reps: int) -> None:
    times: dict[str, list[float]] = {"old": [], "new": []}
    old(), new()  # warm-up
    for _ in range(reps):
        for side, fn in (("old", old), ("new", new)):
            t0 = time.perf_counter()
            fn()
            times[side].append(time.perf_counter() - t0)
    o, n = statistics.median(times["old"]), statistics.median(times["new"])
    print(f"{name:<58} old {o * 1e3:8.2f} ms   new {n * 1e3:8.2f} ms   old/new {o / n:5.2f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=["gowalla", "ml100k"], default="gowalla")
    parser.add_argument("--data-dir", default=os.environ.get("GRAPHREC_DATA_DIR", "data"))
    parser.add_argument("--cache-dir", default="/tmp/graphrec_speedcache")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per side (default: 15 Gowalla, 200 ml100k)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from graphrec_lab.ops.sparse import BlockAdjacency, propagate_layer_mean, symmetric_spmm

    reps = args.reps or (15 if args.data == "gowalla" else 200)
    graph = load_graph(args.data, args.data_dir, args.cache_dir)
    adj, n = graph.norm_adj, graph.num_nodes
    blocks = BlockAdjacency(adj, graph.num_users)
    print(f"{args.data}: {n:,} nodes, {adj._nnz():,} nonzeros, d=64, {torch.get_num_threads()} threads, {reps} repetitions per side")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 64, generator=g)
    w = torch.randn(n, 64, generator=g)

    compare("A @ X: one CSR product vs two block products", lambda: torch.sparse.mm(adj, x), lambda: blocks.matmul(x), reps)

    def layer_by_layer() -> None:
        e0 = x.clone().requires_grad_(True)
        layers = [e0]
        for _ in range(3):
            layers.append(symmetric_spmm(adj, layers[-1]))
        out = layers[0]
        for layer in layers[1:]:
            out = out + layer
        ((out / 4) * w).sum().backward()

    def fused() -> None:
        e0 = x.clone().requires_grad_(True)
        (propagate_layer_mean(blocks, e0, 3) * w).sum().backward()

    compare("LightGCN 3-layer mean, forward + backward", layer_by_layer, fused, max(reps // 3, 5))

    params = {}
    for kind in ("default", "fused"):
        p = torch.nn.Parameter(x.clone())
        p.grad = w.clone()
        opt = torch.optim.Adam([p], lr=1e-3, foreach=False) if kind == "default" else torch.optim.Adam([p], lr=1e-3, fused=True)
        params[kind] = opt
    compare("Adam step on the [U+I, 64] table: default vs fused", params["default"].step, params["fused"].step, reps)

    def int64(t: torch.Tensor) -> torch.Tensor:
        return torch.sparse_csr_tensor(t.crow_indices().long(), t.col_indices().long(), t.values(), t.shape)

    user_item, item_user, u = int64(blocks.user_item), int64(blocks.item_user), graph.num_users

    def block_mm_int64() -> torch.Tensor:
        out = torch.empty_like(x)
        torch.mm(user_item, x[u:], out=out[:u])
        torch.mm(item_user, x[:u], out=out[u:])
        return out

    compare("A @ X blocks: int64 + mm(out) vs int32 + addmm(beta=0)", block_mm_int64, lambda: blocks.matmul(x), reps)

    num_edges = graph.edge_index.shape[1] // 2  # the first half runs user -> item
    edges = torch.randint(0, num_edges, (2048,), generator=g)
    users, pos = graph.edge_index[0, edges], graph.edge_index[1, edges]
    neg = u + torch.randint(0, graph.num_items, (2048,), generator=g)
    rows = torch.unique(torch.cat([users, pos, neg]))
    wr = torch.randn(rows.numel(), 64, generator=g)
    print(f"batch of 2048: {rows.numel():,} distinct rows holding {blocks.row_share(rows):.1%} of A's nonzeros")

    def full_then_rows() -> None:
        e0 = x.clone().requires_grad_(True)
        (propagate_layer_mean(blocks, e0, 3)[rows] * wr).sum().backward()

    def restricted() -> None:
        e0 = x.clone().requires_grad_(True)
        (propagate_layer_mean(blocks, e0, 3, rows=rows) * wr).sum().backward()

    compare("batch rows of the 3-layer mean, fwd + bwd: full vs restricted", full_then_rows, restricted, max(reps // 3, 5))


if __name__ == "__main__":
    main()
