"""Scaling benchmark: full-graph vs neighbour-sampled LightGCN training on random graphs of
growing size, peak memory and time per training step.

Each (size, mode) runs in a fresh process (so its peak RSS is its own): build a random bipartite
graph (users = E/20, items = E/40, uniform edges, duplicates merged), the ``TrainGraph`` (full mode
only: the normalised adjacency; sampled mode keeps the neighbour CSR of ``NeighborSampler``), a
LightGCN (d=64, 3 layers) and the ``RecommendationTask``, then time ``--steps`` BPR steps of
``--batch`` triples (forward, backward, Adam) after one warm-up step. Printed: the graph, the peak RSS
while building, the RSS after building and one warm-up step (static: graph, sampler, parameters,
Adam state), the peak RSS during the timed steps (the peak is reset before them), the steps' own
memory (step peak - static), seconds per step, and seconds per epoch = s/step x E/batch (extrapolated from the measured
steps, not a timed epoch: a full-graph epoch of 20M edges is hours on this machine).

    OMP_NUM_THREADS=1 python benchmarks/scaling/benchmark.py                     # 1e5 .. 2e7 edges
    OMP_NUM_THREADS=1 python benchmarks/scaling/benchmark.py --edges 100000 --steps 2   # quick look
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def _status_gib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def rss_gib() -> float:
    return _status_gib("VmRSS")


def reset_peak() -> None:
    """Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def release_free_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc ``malloc_trim``)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc: RSS then also counts pages the allocator keeps
        pass


def peak_gib() -> float:
    return _status_gib("VmHWM")


def worker(edges: int, mode: str, steps: int, batch: int, fanouts: list[int]) -> dict:
    import torch

    from graphrec_lab.data.neighbor_sampling import NeighborSampler
    from graphrec_lab.data.sampling import BPRTrainBatches
    from graphrec_lab.data.train_graph import TrainGraph
    from graphrec_lab.models.gnn.lightgcn import LightGCN
    from graphrec_lab.training.task import RecommendationTask

    torch.manual_seed(0)
    num_users, num_items = max(edges // 20, 10), max(edges // 40, 10)
    keys = torch.unique(torch.randint(0, num_users * num_items, (edges,)))
    users, items = keys // num_items, keys % num_items
    t0 = time.perf_counter()
    graph = TrainGraph.from_edges(users, items, num_users, num_items)
    model = LightGCN(num_users, num_items, embedding_dim=64, num_layers=3)
    sampling = {"fanouts": fanouts, "row_updates": "lazy_adam" if mode == "sampled_lazy" else "dense"}
    task = RecommendationTask(model, sampling=None if mode == "full" else sampling, ks=(20,), metrics=("recall",))
    task.attach_graph(graph)
    if mode != "full":
        graph.norm_adj = None  # type: ignore[assignment]  # sampled training never touches the full adjacency
        import gc

        gc.collect()
    build_s = time.perf_counter() - t0
    opt = task.configure_optimizers()  # Adam over every parameter, less the lazily updated ID table
    batches = iter(BPRTrainBatches(users, items, num_users, num_items, batch, seed=0))
    task.on_train_epoch_start()
    used = []  # the batches, for the sizes of their computation graphs (below, after the measurements)
    step_times: list[float] = []

    def step() -> None:
        t = time.perf_counter()
        b = next(batches)
        used.append(b)
        loss = task.training_step(b, 0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        task.on_after_backward()  # lazy_adam: the step's rows of the ID table
        opt.step()
        step_times.append(time.perf_counter() - t)

    build_peak = peak_gib()
    step()  # warm-up (Adam state allocated here)
    release_free_memory()  # so RSS counts live memory, not what the allocator kept from the warm-up
    static = rss_gib()
    reset_peak()
    step_times.clear()
    for _ in range(steps):
        step()
    per_step = sum(step_times) / steps
    step_peak = peak_gib()
    # (nodes, undirected edges) of each step's sampled computation graph, from a second sampler over
    # the same batches (its own generator: the same distribution as the task's own samples).
    sizes: list[tuple[int, int]] = []
    if mode != "full":
        probe, probe_gen = NeighborSampler(graph, fanouts), torch.Generator().manual_seed(0)
        for b in used:
            sub = probe.sample(b.users, b.pos_items, b.neg_items, generator=probe_gen)
            sizes.append((sub.graph.num_nodes, sub.graph.edge_index.shape[1] // 2))
    return {
        "edges": int(keys.numel()), "users": num_users, "items": num_items, "mode": mode, "build_s": build_s,
        "build_peak_gib": build_peak, "static_gib": static, "peak_gib": step_peak, "s_per_step": per_step,
        "s_per_epoch_extrapolated": per_step * keys.numel() / batch,
        "params_gib": sum(p.numel() for p in model.parameters()) * 4 / 2**30,
        "graph_nodes": sum(n for n, _ in sizes) / len(sizes) if sizes else num_users + num_items,
        "graph_edges": sum(e for _, e in sizes) / len(sizes) if sizes else int(keys.numel()),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edges", type=int, nargs="+", default=[100_000, 1_000_000, 5_000_000, 20_000_000])
    parser.add_argument("--modes", nargs="+", default=["full", "sampled", "sampled_lazy"], choices=["full", "sampled", "sampled_lazy"])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--fanouts", type=int, nargs="+", default=[10, 10, 10])
    parser.add_argument("--worker", nargs=2, metavar=("EDGES", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(int(args.worker[0]), args.worker[1], args.steps, args.batch, args.fanouts)))
        return

    print(f"LightGCN d=64, 3 layers, batch {args.batch}, fanouts {args.fanouts}, {args.steps} timed steps after 1 warm-up")
    print("| interactions | users | items | mode | nodes / step | edges / step | params GiB | build peak GiB | static GiB | step peak GiB | step GiB (peak - static) | s / step | s / epoch (extrapolated) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for edges in args.edges:
        for mode in args.modes:
            cmd = [sys.executable, __file__, "--worker", str(edges), mode, "--steps", str(args.steps),
                   "--batch", str(args.batch), "--fanouts", *map(str, args.fanouts)]  # fmt: skip
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                print(f"| {edges:,} | | | {mode} | failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode} |")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"| {r['edges']:,} | {r['users']:,} | {r['items']:,} | {mode} | {r['graph_nodes']:,.0f} | {r['graph_edges']:,.0f} "
                f"| {r['params_gib']:.2f} | {r['build_peak_gib']:.2f} | {r['static_gib']:.2f} "
                f"| {r['peak_gib']:.2f} | {r['peak_gib'] - r['static_gib']:.2f} | {r['s_per_step']:.3f} | {r['s_per_epoch_extrapolated']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
