"""LightGCN training step with and without the batch-rows restriction, in one process, alternating.

Two ``RecommendationTask``s with identical initial weights train on the same BPR batches (2,048
training edges drawn uniformly, uniform negatives), one forced onto the full readout
(``LightGCN.ROW_RESTRICTION_MAX_SHARE = -1``), one with the default threshold. Prints the median
step (training_step + backward + Adam) of each side, the ratio, and the largest difference between
the two embedding tables after all steps (0 means bitwise equal).

    python benchmarks/speed/rows_ab.py --data gowalla --steps 16
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import torch

from kernels import load_graph  # same directory: the graph loading of kernels.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=["gowalla", "ml100k"], default="gowalla")
    parser.add_argument("--data-dir", default=os.environ.get("GRAPHREC_DATA_DIR", "data"))
    parser.add_argument("--cache-dir", default="/tmp/graphrec_speedcache")
    parser.add_argument("--steps", type=int, default=16, help="steps per side (the first is warm-up)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from graphrec_lab.data.sampling import TrainBatch
    from graphrec_lab.models.gnn.lightgcn import LightGCN
    from graphrec_lab.training.task import RecommendationTask

    graph = load_graph(args.data, args.data_dir, args.cache_dir)
    num_users, num_items = graph.num_users, graph.num_items
    num_edges = graph.edge_index.shape[1] // 2  # the first half runs user -> item
    g = torch.Generator().manual_seed(0)
    sides = {}
    for name, share in (("full", -1.0), ("rows", LightGCN.ROW_RESTRICTION_MAX_SHARE)):
        torch.manual_seed(0)
        model = LightGCN(num_users, num_items, 64, 3)
        model.ROW_RESTRICTION_MAX_SHARE = share
        task = RecommendationTask(model, lr=1e-3, l2_reg=1e-4)
        task.attach_graph(graph)
        task.on_train_epoch_start()
        sides[name] = (task, task.configure_optimizers())
    times: dict[str, list[float]] = {name: [] for name in sides}
    for step in range(args.steps):
        edges = torch.randint(0, num_edges, (2048,), generator=g)
        batch = TrainBatch(graph.edge_index[0, edges], graph.edge_index[1, edges] - num_users, torch.randint(0, num_items, (2048,), generator=g))
        for name, (task, opt) in sides.items():
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            task.training_step(batch, 0).backward()
            opt.step()
            if step:
                times[name].append(time.perf_counter() - t0)
    full, rows = statistics.median(times["full"]), statistics.median(times["rows"])
    # Whether the model computes the batch's rows for less (GraphRecommender.embed_rows; None: it does not).
    rows_task = sides["rows"][0]
    ids = torch.unique(torch.cat([batch.users, batch.pos_items + num_users, batch.neg_items + num_users]))
    took_rows = rows_task.model.embed_rows(rows_task.graph, ids) is not None
    diff = (sides["full"][0].model.embedding.weight - sides["rows"][0].model.embedding.weight).abs().max().item()
    print(
        f"{args.data}, {args.steps - 1} timed steps per side, {torch.get_num_threads()} threads: full {full * 1e3:.1f} ms, "
        f"rows {rows * 1e3:.1f} ms (restriction taken: {took_rows}), full/rows {full / rows:.2f}x; "
        f"max |table difference| after {args.steps} steps {diff:.2e}"
    )


if __name__ == "__main__":
    main()
