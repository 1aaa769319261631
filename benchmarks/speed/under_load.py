"""LightGCN on Gowalla under CPU load: our training step against the PyG-example approach, quiet and
beside 1 and 2 competing processes, in one run, with torch's default threads and with ``threads: auto``.

For each load level (``--levels``, default 0 1 2) the script starts that many competing processes
(``benchmark_gowalla.py --competitor``: our training step in a loop, 1 thread each), waits for their
first step, then for each thread policy runs ``--rounds`` paired rounds of [1 reference step,
``--ours`` steps of ours] (the reference: PyG's ``LightGCN.get_embedding(edge_index)`` every batch, as
in PyG's ``examples/lightgcn.py``; both with the same BPR + L2 loss and Adam) and stops the
competitors. The speed-up of a cell is the reference's median step over ours, from the same rounds.

Thread policies, both applied to ours and to the reference alike:

* ``default``: torch's own choice (one thread per core), fixed, as a plain torch script runs;
* ``auto``: graphrec_lab's ``threads: auto`` (``graphrec_lab/training/threads.py``): the
  ``ThreadGovernor`` re-measures the load every ``--period`` seconds and keeps the intra-op threads at
  the cores other processes leave free; a warm-up of ``--period`` seconds of our steps precedes the
  timed rounds, so the first measurement has happened when timing starts (as in a run, where it
  happens in the first seconds of the first epoch).

With ``--eval-users N`` (default 8192; 0 skips) the quiet level also times full-ranking evaluation of N
test users: ``FullRankingEvaluator`` against the bare ``U @ I.T`` + top-k, min of 3 each.

    python benchmarks/speed/under_load.py --json benchmarks/speed/under_load.json

Run it alone: the quiet level is only quiet when nothing else runs. The JSON records the load average
at the start and end of every cell.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchmark_gowalla as bg  # noqa: E402  (the competitor processes and the reference loss)

TARGET_QUIET = 20.0
TARGET_LOADED = 15.0
TARGET_EVAL = 1.2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--cache-dir", default="/tmp/graphrec_speedcache")
    p.add_argument("--levels", type=int, nargs="+", default=[0, 1, 2], help="competing processes per level")
    p.add_argument("--policies", nargs="+", default=["default", "auto"], choices=["default", "auto"])
    p.add_argument("--rounds", type=int, default=3, help="paired rounds per cell")
    p.add_argument("--ours", type=int, default=5, help="our steps per round")
    p.add_argument("--period", type=float, default=2.0, help="seconds between the governor's load measurements")
    p.add_argument("--eval-users", type=int, default=8192)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
    from torch_geometric.nn.models import LightGCN as PyGLightGCN

    from graphrec_lab.data.sampling import BPRTrainBatches
    from graphrec_lab.models.gnn.lightgcn import LightGCN
    from graphrec_lab.training.task import RecommendationTask
    from graphrec_lab.training.threads import ThreadGovernor, resolve_threads

    gw = bg.parse_args(["--cache-dir", args.cache_dir, "--seed", str(args.seed), *(["--data-dir", args.data_dir] if args.data_dir else [])])
    dm = bg._data_module(gw)
    graph = dm.load_graph()
    U, I = graph.num_users, graph.num_items
    batches = list(BPRTrainBatches(graph.train.users, graph.train.items, U, I, gw.batch_size, args.seed))
    torch.manual_seed(args.seed)
    task = RecommendationTask(LightGCN(U, I, embedding_dim=gw.dim, num_layers=gw.layers), lr=gw.lr, l2_reg=gw.l2)
    task.attach_graph(dm.train_graph)
    opt = task.configure_optimizers()
    task.on_train_epoch_start()
    ref = PyGLightGCN(U + I, gw.dim, num_layers=gw.layers)
    ref_opt = torch.optim.Adam(ref.parameters(), lr=gw.lr)
    edge_index = task.graph.edge_index
    default_threads = torch.get_num_threads()
    step = [0]

    def ours_step() -> float:
        b = batches[step[0] % len(batches)]
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        task.training_step(b, step[0]).backward()
        opt.step()
        step[0] += 1
        return time.perf_counter() - t0

    def ref_step() -> float:
        b = batches[step[0] % len(batches)]
        t0 = time.perf_counter()
        ref_opt.zero_grad(set_to_none=True)
        bg.reference_step_loss(ref, edge_index, b, U, gw.l2).backward()
        ref_opt.step()
        return time.perf_counter() - t0

    out: dict = {
        "started_at": datetime.now(timezone.utc).isoformat(),
        "argv": sys.argv[1:] if argv is None else argv,
        "env": {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
                "cpu_count": os.cpu_count(), "torch_default_threads": default_threads},  # fmt: skip
        "cells": [],
    }
    print(f"Gowalla {U:,} users, {I:,} items, {graph.train.users.numel():,} training edges; {os.cpu_count()} CPUs, "
          f"torch default {default_threads} threads", flush=True)  # fmt: skip
    ours_step(), ref_step()  # warm-up of both (allocations, first CSR product)
    for level in args.levels:
        comp_args = argparse.Namespace(**{**vars(gw), "competitors": level, "competitor_threads": 1})
        with bg.competing_processes(comp_args) as competitors:
            for policy in args.policies:
                cell = {"competitors": level, "policy": policy, "loadavg_start": list(os.getloadavg())}
                governor = None
                torch.set_num_threads(default_threads)
                if policy == "auto":
                    governor = ThreadGovernor(resolve_threads("auto"), period_s=args.period)
                    t0 = time.perf_counter()
                    while time.perf_counter() - t0 < args.period * 1.5:
                        governor.maybe_update()
                        ours_step()
                ours_t, ref_t, threads_seen = [], [], []
                for _ in range(args.rounds):
                    if governor is not None:
                        governor.maybe_update()
                    threads_seen.append(torch.get_num_threads())
                    ref_t.append(ref_step())
                    for _ in range(args.ours):
                        if governor is not None:
                            governor.maybe_update()
                        ours_t.append(ours_step())
                cell.update(
                    ours_median_s=statistics.median(ours_t), ref_median_s=statistics.median(ref_t),
                    ours_s=ours_t, ref_s=ref_t, threads=threads_seen, loadavg_end=list(os.getloadavg()),
                    competitors_alive=[bg._running(pid) for pid in competitors["pids"]],
                )  # fmt: skip
                cell["speedup"] = cell["ref_median_s"] / cell["ours_median_s"]
                out["cells"].append(cell)
                print(f"{level} competing, threads {policy:7s} ({'/'.join(map(str, sorted(set(threads_seen))))}): "
                      f"ours {cell['ours_median_s'] * 1e3:7.1f} ms, reference {cell['ref_median_s']:.2f} s -> "
                      f"{cell['speedup']:5.1f}x   load avg {cell['loadavg_start'][0]:.2f}->{cell['loadavg_end'][0]:.2f}", flush=True)  # fmt: skip
            if level == 0 and args.eval_users > 0:
                torch.set_num_threads(resolve_threads("auto"))
                out["eval"] = _eval(dm, task, I, args.eval_users)
                print(f"quiet evaluation of {out['eval']['users']:,} test users: ours {out['eval']['ours_s']:.2f} s, bare "
                      f"{out['eval']['bare_s']:.2f} s -> {out['eval']['ratio']:.2f}x", flush=True)  # fmt: skip
    torch.set_num_threads(default_threads)
    out["summary"] = _summary(out)
    for line in out["summary"]["lines"]:
        print(line)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json}")
    return out


def _eval(dm, task, num_items: int, n_users: int) -> dict:
    """Full-ranking evaluation of the first ``n_users`` test users: ours against the bare matmul + top-k."""
    from torch.utils.data import DataLoader, Subset

    from graphrec_lab.evaluation.evaluator import FullRankingEvaluator

    with torch.no_grad():
        user_emb, item_emb = task.model(task.graph)
    users = dm.eval_users("test")
    n = min(n_users, len(users))
    ids = users.user_ids[:n]
    evaluator = FullRankingEvaluator(num_items, ks=(10, 20))

    def bare() -> float:
        t0 = time.perf_counter()
        for start in range(0, n, 2048):
            (user_emb[ids[start : start + 2048]] @ item_emb.T).topk(evaluator.max_k)
        return time.perf_counter() - t0

    def ours() -> float:
        evaluator.reset()
        t0 = time.perf_counter()
        for batch in DataLoader(Subset(users, range(n)), batch_size=2048, collate_fn=users.collate):
            evaluator.update(user_emb[batch.users] @ item_emb.T, batch)
        evaluator.compute()
        return time.perf_counter() - t0

    b, o = [], []
    for _ in range(3):
        b.append(bare())
        o.append(ours())
    return {"users": n, "bare_s": min(b), "ours_s": min(o), "ratio": min(o) / min(b), "loadavg": list(os.getloadavg())}


def _summary(out: dict) -> dict:
    lines = ["", "| competing processes | threads | ours ms/step | reference s/step | speed-up | target |", "|---:|---|---:|---:|---:|---:|"]
    ok = {}
    for c in out["cells"]:
        target = TARGET_QUIET if c["competitors"] == 0 else TARGET_LOADED
        if c["policy"] == "auto":
            ok[f"speedup_{c['competitors']}"] = c["speedup"] >= target
        lines.append(f"| {c['competitors']} | {c['policy']} | {c['ours_median_s'] * 1e3:.1f} | {c['ref_median_s']:.2f} | "
                     f"{c['speedup']:.1f}x | >= {target:.0f}x |")  # fmt: skip
    if "eval" in out:
        ok["eval"] = out["eval"]["ratio"] <= TARGET_EVAL
        lines.append(f"\nquiet evaluation ours / bare: {out['eval']['ratio']:.2f}x (target <= {TARGET_EVAL}x)")
    lines.append("targets (threads auto): " + ", ".join(f"{k} {'OK' if v else 'MISSED'}" for k, v in ok.items()))
    return {"targets_met": ok, "lines": lines}


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
