"""Seconds per training step and per epoch of every zoo model on a Gowalla-size random graph.

29,858 users, 40,981 items, 810,128 interactions (1.62M directed edges), batch 2048 (396 steps per
epoch), each model with its configs/model/*.yaml settings (objectives included), through the task's
own ``training_step`` + backward + Adam step, outside Lightning. Prints a markdown table.

    python benchmarks/model_zoo/bench.py [--scale 1.0] [--steps 2] [--models gat ngcf]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from hydra.utils import instantiate

from graphrec_lab.config import compose
from graphrec_lab.data.sampling import TrainBatch
from graphrec_lab.data.train_graph import TrainGraph

MODELS = ["bprmf", "lightgcn", "gcn", "gat", "gin", "sage", "gated", "ngcf", "sgl", "simgcl", "xsimgcl"]


def random_graph(users: int, items: int, edges: int, seed: int = 0) -> TrainGraph:
    g = torch.Generator().manual_seed(seed)
    keys = torch.unique(torch.randint(0, users * items, (int(edges * 1.01),), generator=g))[:edges]
    return TrainGraph.from_edges(keys // items, keys % items, users, items)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0, help="shrink the graph (0.1 for a quick look)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--pyg-reference", action="store_true", help="also time PyG GCNConv over edge_index")
    args = parser.parse_args()
    torch.manual_seed(0)
    U, I, E = (int(x * args.scale) for x in (29_858, 40_981, 810_128))
    graph = random_graph(U, I, E)
    steps_per_epoch = -(-E // 2048)
    print(f"graph: {U} users, {I} items, {graph.edge_index.size(1)} directed edges; {torch.get_num_threads()} threads")
    print("| model | s / step (fwd+bwd+Adam) | s / epoch (x{steps}) | per-epoch setup (s) |".format(steps=steps_per_epoch))
    print("|---|---|---|---|")
    for name in args.models:
        cfg = compose([f"model={name}"])
        model = instantiate(cfg.model, num_users=U, num_items=I)
        task = instantiate(cfg.task, model=model, _recursive_=False, _convert_="all")
        task.attach_graph(graph)
        opt = task.configure_optimizers()
        t = time.perf_counter()
        task.on_train_epoch_start()  # SGL draws its two views here
        setup = time.perf_counter() - t
        times = []
        for step in range(args.steps + 1):
            b = TrainBatch(torch.randint(0, U, (2048,)), torch.randint(0, I, (2048,)), torch.randint(0, I, (2048,)))
            t = time.perf_counter()
            loss = task.training_step(b, step)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step:
                times.append(time.perf_counter() - t)
        s = statistics.median(times)
        print(f"| {name} | {s:.3f} | {s * steps_per_epoch:.0f} | {setup:.2f} |", flush=True)
    if args.pyg_reference:
        from torch_geometric.nn import GCNConv

        conv = GCNConv(64, 64)
        x = torch.randn(U + I, 64, requires_grad=True)
        t = time.perf_counter()
        for _ in range(2):
            conv(conv(x, graph.edge_index).relu(), graph.edge_index).sum().backward()
        print(f"PyG GCNConv x2 over edge_index, fwd+bwd: {(time.perf_counter() - t) / 2:.3f} s")


if __name__ == "__main__":
    main()
