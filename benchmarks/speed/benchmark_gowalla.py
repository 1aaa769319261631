"""Speed and memory benchmark of graphrec_lab's LightGCN on Gowalla against the PyG-example approach.

What it measures (LightGCN paper settings: d=64, K=3, batch 2048, Adam lr 1e-3, L2 1e-4), all in one
process, on the same data and the same BPR batches:

1. Training step.
   * ours: ``RecommendationTask(LightGCN).training_step`` + ``backward`` + ``Adam.step`` called directly
     (outside Lightning: no trainer, no hooks, no data loader). Optionally also a short Lightning
     ``fit`` with ``limit_train_batches=N`` to show the framework's per-batch overhead.
   * reference: ``torch_geometric.nn.models.LightGCN`` propagating over ``edge_index`` every batch
     (``get_embedding(edge_index)``: ``LGConv`` with ``gcn_norm`` recomputed each call), the same
     BPR + L2-on-layer-0 loss, Adam step. This is the approach of PyG's ``examples/lightgcn.py``.
   * checks: with identical initial embeddings, our propagation equals PyG's ``get_embedding``; the
     first batch's losses agree; after the same optimisation steps on the same batches the two
     models' parameters agree.
2. Full-ranking evaluation of the test users: the bare cost (``U[chunk] @ I.T`` then ``topk(20)``,
   nothing else) against ours (``FullRankingEvaluator`` over ``DataLoader`` batches of
   ``dm.eval_users("test")``: collate, mask train(+val) items, stable top-k, all metrics at k=10,20
   incl. item coverage, ``compute()``), with the same embeddings. Each is run ``--eval-repeats``
   times (alternating) and the minimum is reported.
3. Peak resident memory of the process (``ru_maxrss``), also recorded after each phase so the cost
   of our pipeline can be told apart from the reference's (which runs last).

Run (from the repository root):

    python benchmarks/speed/benchmark_gowalla.py \
        --json benchmarks/speed/results.json

Under load: ``--competitors N`` starts N competing processes first (each this script in
``--competitor`` mode: our training step in a loop on the same data, ``--competitor-threads`` torch
threads each, default 1), waits for each one's first step, runs the whole benchmark beside them and
terminates them at the end; the JSON's ``competitors`` says how many ran and whether they were still
running at the end.

    python benchmarks/speed/benchmark_gowalla.py --competitors 2 --json /tmp/loaded2.json

Smoke test (a minute or two):

    python benchmarks/speed/benchmark_gowalla.py \
        --ours-batches 3 --ref-batches 1 --lightning-batches 4 --breakdown-steps 2 --eval-users 3000 \
        --json /tmp/smoke.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import platform
import resource
import select
import statistics
import subprocess
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import psutil
import torch
import torch.nn.functional as F

# Targets the report checks against (see benchmarks/speed/README.md).
TARGET_TRAIN_SPEEDUP = 20.0  # reference s/batch / ours s/batch >= this
TARGET_EVAL_OVERHEAD = 1.5  # ours eval s / bare eval s <= this
TARGET_PEAK_RSS_GB = 4.0  # process peak resident set < this
PROPAGATION_TOL = 1e-4


# ---------------------------------------------------------------------------------------------- utils
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--json", type=Path, default=None, help="write all numbers to this JSON file")
    p.add_argument("--data-dir", default=None, help="raw data root (default: $GRAPHREC_DATA_DIR)")
    p.add_argument("--cache-dir", default="/tmp/graphrec_speedcache", help="processed-graph cache")
    p.add_argument("--dataset", default="gowalla")
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.0,
        help="share of each user's train items carved out as validation; 0 keeps the paper's 810,128 "
        "training edges (396 batches/epoch); configs/data/gowalla.yaml uses 0.1",
    )
    p.add_argument("--split-seed", type=int, default=2020)
    p.add_argument("--seed", type=int, default=0, help="model init and sampler seed")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:n]")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    # model / optimisation (paper settings)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--l2", type=float, default=1e-4)
    # work sizes
    p.add_argument("--ours-batches", type=int, default=20, help="timed training steps of ours (after 1 warm-up)")
    p.add_argument("--ref-batches", type=int, default=3, help="timed training steps of the PyG reference (after 1 warm-up); 0 skips it")
    p.add_argument(
        "--paired-rounds",
        type=int,
        default=5,
        help="rounds of [1 reference step, --paired-ours steps of ours], interleaved so both see the same machine state; "
        "the speed-up verdict uses these (0: use the separate phases)",
    )
    p.add_argument("--paired-ours", type=int, default=5, help="our steps per paired round")
    p.add_argument("--lightning-batches", type=int, default=20, help="batches of the Lightning fit; 0 skips it")
    p.add_argument("--breakdown-steps", type=int, default=5, help="extra instrumented steps for the phase breakdown; 0 skips it")
    p.add_argument("--profile", action="store_true", help="also run torch.profiler over 3 steps of ours and print top ops")
    p.add_argument("--eval-batch", type=int, default=2048, help="users per evaluation batch")
    p.add_argument("--eval-users", type=int, default=None, help="evaluate only the first N test users (default: all)")
    p.add_argument("--eval-repeats", type=int, default=2)
    p.add_argument("--skip-eval", action="store_true")
    p.add_argument(
        "--competitors", type=int, default=0,
        help="start N competing CPU-bound processes (each a loop of our training step on the same data) for the "
        "whole benchmark, and stop them at the end: the machine under load",
    )  # fmt: skip
    p.add_argument("--competitor-threads", type=int, default=1, help="torch threads of each competing process")
    p.add_argument("--competitor-ready-timeout", type=float, default=600.0, help="seconds to wait for a competitor's first step")
    p.add_argument("--competitor", action="store_true", help=argparse.SUPPRESS)  # this process is a competitor
    return p.parse_args(argv)


class Clock:
    """perf_counter that synchronises the accelerator first (so GPU timings are real)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def __call__(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()


def peak_rss_mb() -> float:
    """Peak resident set of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def stats(times: list[float]) -> dict[str, float]:
    if not times:
        return {}
    return {
        "n": len(times),
        "mean_s": statistics.fmean(times),
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "times_s": times,
    }


def fmt_s(seconds: float) -> str:
    if seconds >= 60:
        return f"{seconds:8.1f} s ({seconds / 60:.1f} min)"
    if seconds >= 1:
        return f"{seconds:8.3f} s"
    return f"{seconds * 1e3:8.1f} ms"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("OK" if ok else "MISSED")


# ---------------------------------------------------------------------------------------------- losses
def reference_step_loss(ref, edge_index, batch, num_users: int, l2: float) -> torch.Tensor:
    """The PyG-example approach: propagate over ``edge_index`` (gcn_norm + LGConv x K) every batch,
    then BPR + L2 on the batch's layer-0 embeddings (same definition as graphrec_lab's task)."""
    emb = ref.get_embedding(edge_index)  # [U+I, d]
    u = emb.index_select(0, batch.users)
    p = emb.index_select(0, batch.pos_items + num_users)
    n = emb.index_select(0, batch.neg_items + num_users)
    bpr = F.softplus((u * n).sum(-1) - (u * p).sum(-1)).mean()
    w = ref.embedding.weight
    ego = [w.index_select(0, batch.users), w.index_select(0, batch.pos_items + num_users), w.index_select(0, batch.neg_items + num_users)]
    reg = 0.5 * sum(e.pow(2).sum() for e in ego) / batch.users.numel()
    return bpr + l2 * reg


def _update_metrics(evaluator, top, batch) -> None:
    """The metric part of FullRankingEvaluator.update (after mask and top-k), in float64 as the
    evaluator runs it (PyG's metrics keep their states in the default dtype)."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        evaluator.metrics.update(top, batch.target)
    finally:
        torch.set_default_dtype(default)


# ---------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.competitor:
        competitor_loop(args)
    with competing_processes(args) as competitors:
        return benchmark(args, argv, competitors)


def _data_module(args: argparse.Namespace):
    from graphrec_lab.data.datamodule import InteractionDataModule

    return InteractionDataModule(
        dataset=args.dataset, data_dir=args.data_dir, cache_dir=args.cache_dir, download=False, split="given",
        val_fraction=args.val_fraction, split_seed=args.split_seed, train_batch_size=args.batch_size,
        eval_batch_size=args.eval_batch, sampler_seed=args.seed,
    )  # fmt: skip


def competitor_loop(args: argparse.Namespace) -> None:
    """A competing CPU-bound process: our LightGCN training step (forward, BPR + L2, backward, Adam) in
    a loop over one epoch's batches, until it is terminated. Prints ``ready`` after its first step."""
    warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
    torch.set_num_threads(args.competitor_threads)
    from graphrec_lab.data.sampling import BPRTrainBatches
    from graphrec_lab.models.gnn.lightgcn import LightGCN
    from graphrec_lab.training.task import RecommendationTask

    dm = _data_module(args)
    graph = dm.load_graph()
    U, I = graph.num_users, graph.num_items
    batches = list(BPRTrainBatches(graph.train.users, graph.train.items, U, I, args.batch_size, args.seed))
    task = RecommendationTask(LightGCN(U, I, embedding_dim=args.dim, num_layers=args.layers), lr=args.lr, l2_reg=args.l2)
    task.attach_graph(dm.train_graph)
    opt = task.configure_optimizers()
    task.on_train_epoch_start()
    step = 0
    while True:
        opt.zero_grad(set_to_none=True)
        task.training_step(batches[step % len(batches)], step).backward()
        opt.step()
        if step == 0:
            print("ready", flush=True)
        step += 1


@contextlib.contextmanager
def competing_processes(args: argparse.Namespace):
    """Start ``args.competitors`` copies of this script in ``--competitor`` mode, wait until each has
    taken its first step, and terminate them (then kill) on exit. Yields their description."""
    procs: list[subprocess.Popen] = []
    info: dict = {"n": args.competitors, "threads": args.competitor_threads, "pids": []}
    argv = [
        sys.executable, str(Path(__file__).resolve()), "--competitor", "--dataset", args.dataset, "--cache-dir", args.cache_dir,
        "--val-fraction", str(args.val_fraction), "--split-seed", str(args.split_seed), "--seed", str(args.seed + 1),
        "--dim", str(args.dim), "--layers", str(args.layers), "--batch-size", str(args.batch_size),
        "--competitor-threads", str(args.competitor_threads),
        *(["--data-dir", args.data_dir] if args.data_dir else []),
    ]  # fmt: skip
    try:
        for _ in range(args.competitors):
            procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
        info["pids"] = [p.pid for p in procs]
        t0 = time.perf_counter()
        for p in procs:
            line = _read_line(p, args.competitor_ready_timeout - (time.perf_counter() - t0))
            if line != "ready":
                raise RuntimeError(f"competing process {p.pid} did not start (exit code {p.poll()}, said {line!r})")
        if procs:
            info["ready_after_s"] = time.perf_counter() - t0
            print(f"{len(procs)} competing process(es) running our training step with {args.competitor_threads} thread(s) "
                  f"each (pids {info['pids']})", flush=True)  # fmt: skip
        yield info
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _read_line(proc: subprocess.Popen, timeout: float) -> str | None:
    """The next stdout line of ``proc``, or None after ``timeout`` seconds or at its exit."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], max(0.0, timeout))
    return proc.stdout.readline().strip() if ready else None


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def benchmark(args: argparse.Namespace, argv: list[str] | None, competitors: dict) -> dict:
    warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="lightning")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clock = Clock(device)

    from lightning.pytorch import Trainer
    from lightning.pytorch.callbacks import Callback
    from torch.utils.data import DataLoader, Subset
    from torch_geometric.nn.models import LightGCN as PyGLightGCN

    from graphrec_lab.data.sampling import BPRTrainBatches
    from graphrec_lab.evaluation.evaluator import FullRankingEvaluator
    from graphrec_lab.evaluation.ranking import mask_scores, topk_stable
    from graphrec_lab.models.gnn.lightgcn import LightGCN
    from graphrec_lab.training.losses import bpr_loss, l2_batch_loss
    from graphrec_lab.training.task import RecommendationTask

    import lightning
    import torch_geometric

    out: dict = {
        "started_at": datetime.now(timezone.utc).isoformat(),
        "argv": sys.argv[1:] if argv is None else argv,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "env": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_geometric": torch_geometric.__version__,
            "lightning": lightning.__version__,
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "device": str(device),
            "cuda_device": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "memory_mb": {},
        "competitors": competitors,
    }
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    def mark_memory(phase: str) -> None:
        out["memory_mb"][phase] = {"rss": rss_mb(), "peak_rss": peak_rss_mb()}
        if device.type == "cuda":
            out["memory_mb"][phase]["cuda_peak_allocated"] = torch.cuda.max_memory_allocated(device) / 2**20

    env = out["env"]
    say(f"# LightGCN speed benchmark on {args.dataset}")
    say(
        f"torch {env['torch']} | PyG {env['torch_geometric']} | lightning {env['lightning']} | device {device}"
        f"{' (' + env['cuda_device'] + ')' if env['cuda_device'] else ''} | {env['cpu_count']} CPUs, "
        f"{env['torch_threads']} torch threads | load avg {env['loadavg_start']}"
    )
    if competitors["pids"]:
        say(f"under load: {competitors['n']} competing process(es) running our training step, {competitors['threads']} thread(s) each")
    mark_memory("start")

    # ------------------------------------------------------------------------------------ data
    t0 = time.perf_counter()
    dm = _data_module(args)
    graph = dm.load_graph()
    t_graph = time.perf_counter() - t0
    train_graph = dm.train_graph
    t_data = time.perf_counter() - t0
    U, I = graph.num_users, graph.num_items
    num_train = int(graph.train.users.numel())
    batches_per_epoch = math.ceil(num_train / args.batch_size)
    out["data"] = {
        "num_users": U,
        "num_items": I,
        "num_train": num_train,
        "num_val": int(graph.val.users.numel()),
        "num_test": int(graph.test.users.numel()),
        "batches_per_epoch": batches_per_epoch,
        "load_graph_s": t_graph,
        "load_total_s": t_data,
    }
    say(
        f"data: {U:,} users, {I:,} items, {num_train:,} train / {out['data']['num_val']:,} val / "
        f"{out['data']['num_test']:,} test interactions; {batches_per_epoch} batches of {args.batch_size} per epoch "
        f"(load {t_graph:.1f} s, + TrainGraph/CSR {t_data - t_graph:.1f} s)"
    )
    mark_memory("after_data")

    # The epoch's batches: drawn once (permutation + rejection-sampled negatives, one vectorised pass),
    # then shared by ours, the Lightning fit's first epoch and the reference.
    sampler = BPRTrainBatches(graph.train.users, graph.train.items, U, I, args.batch_size, args.seed)
    t0 = time.perf_counter()
    epoch_batches = list(sampler)
    t_sample = time.perf_counter() - t0
    assert len(epoch_batches) == batches_per_epoch, (len(epoch_batches), batches_per_epoch)
    out["data"]["epoch_sampling_s"] = t_sample
    say(f"drawing one epoch of BPR batches (permutation + negatives): {fmt_s(t_sample).strip()}")
    n_needed = 1 + max(args.ours_batches, args.ref_batches) + max(args.breakdown_steps, 0) + (3 if args.profile else 0)
    batches = [epoch_batches[i % len(epoch_batches)].to(device) for i in range(n_needed)]

    # ------------------------------------------------------------------------------------ models
    torch.manual_seed(args.seed)
    model = LightGCN(U, I, embedding_dim=args.dim, num_layers=args.layers)
    init_weight = model.embedding.weight.detach().clone()
    task = RecommendationTask(model, lr=args.lr, l2_reg=args.l2).to(device)
    task.attach_graph(train_graph)
    g = task.graph  # moved to the device once
    edge_index = g.edge_index

    with_ref = args.ref_batches > 0

    # ------------------------------------------------------------------------------------ checks
    say()
    # Ours on the initial weights now; PyG's side of the checks runs in the reference phase, last, so
    # that the memory peak before it is our pipeline's alone.
    checks: dict = {}
    with torch.no_grad():
        ours_emb_init = torch.cat(model(g))
        task.on_train_epoch_start()
        checks["first_batch_loss_ours"] = task.training_step(batches[0], 0).item()
    out["checks"] = checks
    mark_memory("after_ours_init_forward")

    # ------------------------------------------------------------------------------------ ours
    say("## Training step")
    opt = task.configure_optimizers()
    task.on_train_epoch_start()

    def ours_step(batch, i):
        opt.zero_grad(set_to_none=True)
        loss = task.training_step(batch, i)
        loss.backward()
        opt.step()
        return loss

    ours_times: list[float] = []
    snapshot = None
    for i in range(1 + args.ours_batches):
        t0 = clock()
        ours_step(batches[i], i)
        dt = clock() - t0
        if i > 0:
            ours_times.append(dt)
        if with_ref and i == args.ref_batches:  # after the same 1 + ref_batches steps as the reference
            snapshot = model.embedding.weight.detach().clone()
    if snapshot is None and with_ref:  # ref-batches > ours-batches: catch up untimed
        for i in range(1 + args.ours_batches, 1 + args.ref_batches):
            ours_step(batches[i], i)
        snapshot = model.embedding.weight.detach().clone()
    ours = stats(ours_times)
    ours["projected_epoch_s"] = ours["median_s"] * batches_per_epoch
    ours["projected_epoch_with_sampling_s"] = ours["projected_epoch_s"] + t_sample
    ours["mode"] = "RecommendationTask.training_step + backward + Adam.step, called directly (no Lightning Trainer)"
    out["train_ours"] = ours
    mark_memory("after_train_ours")
    say(
        f"ours (training_step+backward+Adam, outside Lightning), {ours['n']} batches: median {fmt_s(ours['median_s']).strip()}/batch "
        f"(mean {fmt_s(ours['mean_s']).strip()}, min {fmt_s(ours['min_s']).strip()}, max {fmt_s(ours['max_s']).strip()})"
    )
    say(
        f"    projected epoch ({batches_per_epoch} batches): {fmt_s(ours['projected_epoch_s']).strip()}"
        f"; + epoch sampling {t_sample:.2f} s = {fmt_s(ours['projected_epoch_with_sampling_s']).strip()}"
    )

    # Phase breakdown of our step (synchronised timers around each phase).
    if args.breakdown_steps > 0:
        phases: dict[str, list[float]] = {"zero_grad": [], "forward_propagation": [], "loss": [], "backward": [], "adam_step": []}
        base = 1 + max(args.ours_batches, args.ref_batches)
        for j in range(args.breakdown_steps):
            batch = batches[base + j]
            t0 = clock()
            opt.zero_grad(set_to_none=True)
            t1 = clock()
            user_emb, item_emb = task.model(g)
            t2 = clock()
            # the rest of training_step (same code path: it calls the model again, so time it from here)
            u = user_emb.index_select(0, batch.users)
            items = item_emb.index_select(0, torch.cat([batch.pos_items, batch.neg_items]))
            bpr = bpr_loss((u * items[: len(batch)]).sum(-1), (u * items[len(batch) :]).sum(-1))
            loss = bpr + task.l2_reg * l2_batch_loss(task.model.ego_embeddings(batch.users, batch.pos_items, batch.neg_items))
            t3 = clock()
            loss.backward()
            t4 = clock()
            opt.step()
            t5 = clock()
            for name, dt in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                phases[name].append(dt)
        breakdown = {name: statistics.median(v) for name, v in phases.items()}
        out["train_ours_breakdown_median_s"] = breakdown
        total = sum(breakdown.values())
        say(
            f"    breakdown (median of {args.breakdown_steps} steps, same ops as training_step): "
            + ", ".join(f"{k} {v * 1e3:.1f} ms ({v / total:.0%})" for k, v in breakdown.items())
        )

    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        base = 1 + max(args.ours_batches, args.ref_batches) + max(args.breakdown_steps, 0)
        with profile(activities=activities) as prof:
            for j in range(3):
                ours_step(batches[base + j], base + j)
        table = prof.key_averages().table(sort_by="self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total", row_limit=15)
        say("    torch.profiler, 3 steps of ours:")
        for row in table.splitlines():
            say("    " + row)

    # Lightning fit: the same task class through the real training loop (fresh model, same init).
    if args.lightning_batches > 0:
        torch.manual_seed(args.seed)
        pl_model = LightGCN(U, I, embedding_dim=args.dim, num_layers=args.layers)
        with torch.no_grad():
            pl_model.embedding.weight.copy_(init_weight)
        pl_task = RecommendationTask(pl_model, lr=args.lr, l2_reg=args.l2)
        pl_task.attach_graph(train_graph)

        class BatchTimer(Callback):
            def __init__(self) -> None:
                self.ends: list[float] = []
                self.fit_start = self.first_batch_start = 0.0

            def on_fit_start(self, trainer, pl_module) -> None:
                self.fit_start = clock()

            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
                if batch_idx == 0:
                    self.first_batch_start = clock()

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
                self.ends.append(clock())

        timer = BatchTimer()
        trainer = Trainer(
            accelerator="gpu" if device.type == "cuda" else "cpu",
            devices=[device.index or 0] if device.type == "cuda" else 1,
            max_epochs=1,
            limit_train_batches=args.lightning_batches,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[timer],
            default_root_dir="/tmp/graphrec_speed_lightning",
        )
        t0 = clock()
        trainer.fit(pl_task, datamodule=dm)
        t_fit = clock() - t0
        # Batch-to-batch intervals from the 2nd batch on (the loop's full cost per batch: data loader,
        # transfer, hooks, step); the first batch carries the epoch's sampling and warm-up.
        intervals = [b - a for a, b in zip(timer.ends, timer.ends[1:])]
        lt = stats(intervals)
        lt.update(
            {
                "batches": len(timer.ends),
                "fit_total_s": t_fit,
                "fit_start_to_first_batch_s": timer.first_batch_start - timer.fit_start if timer.ends else None,
                "first_batch_s": timer.ends[0] - timer.first_batch_start if timer.ends else None,
            }
        )
        if intervals:
            lt["overhead_vs_direct_s"] = lt["median_s"] - ours["median_s"]
            lt["projected_epoch_s"] = lt["median_s"] * batches_per_epoch
        out["train_lightning"] = lt
        if intervals:
            say(
                f"ours through Lightning fit (limit_train_batches={args.lightning_batches}): median {fmt_s(lt['median_s']).strip()}/batch "
                f"over {lt['n']} intervals (framework overhead vs direct {lt['overhead_vs_direct_s'] * 1e3:+.1f} ms/batch); "
                f"fit total {t_fit:.2f} s incl. setup {lt['fit_start_to_first_batch_s']:.2f} s and first batch {lt['first_batch_s']:.2f} s"
            )
        else:
            say(f"Lightning fit ran {len(timer.ends)} batch(es) in {t_fit:.2f} s (need >= 2 for per-batch intervals)")
        del trainer, pl_task, pl_model
        mark_memory("after_lightning")

    # ------------------------------------------------------------------------------------ eval
    if not args.skip_eval:
        say()
        say("## Full-ranking evaluation (test users)")
        with torch.no_grad():
            user_emb, item_emb = model(g)
        eval_users = dm.eval_users("test")
        n_eval = len(eval_users) if args.eval_users is None else min(args.eval_users, len(eval_users))
        dataset = eval_users if n_eval == len(eval_users) else Subset(eval_users, range(n_eval))
        user_ids = eval_users.user_ids[:n_eval].to(device)
        evaluator = FullRankingEvaluator(I, ks=(10, 20)).to(device)
        kmax = evaluator.max_k

        def bare() -> float:
            t0 = clock()
            for start in range(0, n_eval, args.eval_batch):
                chunk = user_ids[start : start + args.eval_batch]
                scores = user_emb[chunk] @ item_emb.T
                scores.topk(kmax)
            return clock() - t0

        def ours_eval() -> tuple[float, dict[str, float]]:
            evaluator.reset()
            loader = DataLoader(dataset, batch_size=args.eval_batch, shuffle=False, collate_fn=eval_users.collate)
            t0 = clock()
            for batch in loader:  # what RecommendationTask.test_step does per batch
                batch = batch.to(device)
                scores = user_emb[batch.users] @ item_emb.T
                evaluator.update(scores, batch)
            metrics = evaluator.compute()
            dt = clock() - t0
            assert evaluator.num_users == n_eval
            return dt, metrics

        bare_times, ours_times_eval = [], []
        metrics: dict[str, float] = {}
        for _ in range(max(1, args.eval_repeats)):
            bare_times.append(bare())
            dt, metrics = ours_eval()
            ours_times_eval.append(dt)
        ev = {
            "users": n_eval,
            "users_total": len(eval_users),
            "eval_batch": args.eval_batch,
            "bare_s": min(bare_times),
            "ours_s": min(ours_times_eval),
            "bare_times_s": bare_times,
            "ours_times_s": ours_times_eval,
            "metrics": metrics,
        }
        ev["ratio_ours_over_bare"] = ev["ours_s"] / ev["bare_s"]
        mark_memory("after_eval_runs")  # before the per-part probe below, which holds extra buffers
        # Where one batch's time goes (first batch, each part timed separately, min of 2).
        ids = [int(u) for u in eval_users.user_ids[: min(args.eval_batch, n_eval)]]
        parts: dict[str, float] = {}

        def part(name, fn):
            best, res = float("inf"), None
            for _ in range(2):
                t0 = clock()
                res = fn()
                best = min(best, clock() - t0)
            parts[name] = best
            return res

        b = part("collate", lambda: eval_users.collate(ids).to(device))
        s = part("matmul", lambda: user_emb[b.users] @ item_emb.T)
        part("mask", lambda: mask_scores(s, b.exclude))
        part("topk_plain", lambda: s.topk(kmax, dim=1))
        top = part("topk_stable", lambda: topk_stable(s, kmax))
        kth = s.topk(kmax, dim=1).values[:, -1:]
        part("  of which tie check (scores>=kth).sum(1)", lambda: (s >= kth).sum(dim=1))
        metrics_probe = FullRankingEvaluator(I, ks=(10, 20)).to(device)
        part("metrics_update", lambda: _update_metrics(metrics_probe, top, b))
        ev["batch_breakdown_s"] = {"users": len(ids), **parts}
        del s, top, kth, metrics_probe
        out["eval"] = ev
        say(f"users: {n_eval:,} of {len(eval_users):,}, {math.ceil(n_eval / args.eval_batch)} batches of {args.eval_batch}; min of {len(bare_times)} runs each")
        say(f"bare (U[chunk] @ I.T, topk({kmax})):                              {fmt_s(ev['bare_s'])}")
        say(f"ours (collate + matmul + mask + stable top-k + {len(metrics)} metrics):  {fmt_s(ev['ours_s'])}")
        say(f"ratio ours / bare: {ev['ratio_ours_over_bare']:.2f}x (target <= {TARGET_EVAL_OVERHEAD}x)")
        say(
            f"one batch of {ev['batch_breakdown_s']['users']} users: "
            + ", ".join(f"{k.strip()} {v * 1e3:.0f} ms" for k, v in ev["batch_breakdown_s"].items() if k != "users")
        )
        say(
            f"metrics (sanity; model trained only a few steps): recall@20 {metrics.get('recall@20', float('nan')):.4f}, "
            f"ndcg@20 {metrics.get('ndcg@20', float('nan')):.4f}, itemcoverage@20 {metrics.get('itemcoverage@20', float('nan')):.4f}"
        )
        del user_emb, item_emb
        mark_memory("after_eval_breakdown")

    # Our pipeline's peak: everything up to the timed evaluation runs (the per-part eval probe and the
    # reference come after and may add their own buffers).
    peak_ours_mb = out["memory_mb"].get("after_eval_runs", {}).get("peak_rss", peak_rss_mb())

    # ------------------------------------------------------------------------------------ reference
    say()
    say("## Reference: PyG LightGCN propagating over edge_index every batch")
    ref = PyGLightGCN(U + I, args.dim, num_layers=args.layers).to(device)
    with torch.no_grad():
        ref.embedding.weight.copy_(init_weight)
        pyg_emb = ref.get_embedding(edge_index)
        diff = (ours_emb_init - pyg_emb).abs().max().item()
        checks["propagation_max_abs_diff"] = diff
        checks["propagation_max_abs_value"] = ours_emb_init.abs().max().item()
        checks["propagation_ok"] = diff < PROPAGATION_TOL
        loss_ours = checks["first_batch_loss_ours"]
        loss_ref = reference_step_loss(ref, edge_index, batches[0], U, args.l2).item()
        checks["first_batch_loss_ref"] = loss_ref
        checks["first_batch_loss_abs_diff"] = abs(loss_ours - loss_ref)
        del pyg_emb, ours_emb_init
    say(
        f"check, identical initial embeddings: ours LightGCN.forward vs PyG LightGCN.get_embedding(edge_index): "
        f"max |diff| = {diff:.2e} (max |value| {checks['propagation_max_abs_value']:.2e}; tolerance {PROPAGATION_TOL:g}) "
        f"-> {verdict(checks['propagation_ok'])}"
    )
    say(f"check, first-batch loss: ours {loss_ours:.8f}, reference {loss_ref:.8f}, |diff| = {checks['first_batch_loss_abs_diff']:.2e}")
    mark_memory("after_ref_checks")
    if with_ref:
        ref_opt = torch.optim.Adam(ref.parameters(), lr=args.lr)
        ref_times: list[float] = []
        for i in range(1 + args.ref_batches):
            t0 = clock()
            ref_opt.zero_grad(set_to_none=True)
            loss = reference_step_loss(ref, edge_index, batches[i], U, args.l2)
            loss.backward()
            ref_opt.step()
            dt = clock() - t0
            if i > 0:
                ref_times.append(dt)
        rs = stats(ref_times)
        rs["projected_epoch_s"] = rs["median_s"] * batches_per_epoch
        out["train_ref"] = rs
        param_diff = (ref.embedding.weight.detach() - snapshot).abs().max().item()
        checks["params_after_same_steps_max_abs_diff"] = param_diff
        checks["params_compared_after_steps"] = 1 + args.ref_batches
        speedup = rs["median_s"] / ours["median_s"]
        out["train_speedup_separate_phases"] = speedup
        out["train_speedup_ref_over_ours"] = speedup
        out["train_speedup_ref_over_ours_mean"] = rs["mean_s"] / ours["mean_s"]
        mark_memory("after_train_ref")
        say(
            f"reference, {rs['n']} batches: median {fmt_s(rs['median_s']).strip()}/batch "
            f"(mean {fmt_s(rs['mean_s']).strip()}, min {fmt_s(rs['min_s']).strip()}, max {fmt_s(rs['max_s']).strip()})"
        )
        say(f"    projected epoch ({batches_per_epoch} batches): {fmt_s(rs['projected_epoch_s']).strip()}")
        say(
            f"    embeddings after the same {1 + args.ref_batches} Adam steps on the same batches: max |ours - ref| = {param_diff:.2e}"
        )
        say(f"    speed-up from the separate phases (minutes apart): {speedup:.1f}x")
        if args.paired_rounds > 0:
            # This machine's speed drifts by up to 2x over minutes (shared host), and the two phases
            # above run minutes apart; interleaving puts both sides in the same windows.
            paired: dict[str, list[float]] = {"ref": [], "ours": []}
            next_batch = 1 + max(args.ours_batches, args.ref_batches)
            for _ in range(args.paired_rounds):
                batch = epoch_batches[next_batch % len(epoch_batches)].to(device)
                next_batch += 1
                t0 = clock()
                ref_opt.zero_grad(set_to_none=True)
                reference_step_loss(ref, edge_index, batch, U, args.l2).backward()
                ref_opt.step()
                paired["ref"].append(clock() - t0)
                for _ in range(args.paired_ours):
                    batch = epoch_batches[next_batch % len(epoch_batches)].to(device)
                    next_batch += 1
                    t0 = clock()
                    ours_step(batch, 0)
                    paired["ours"].append(clock() - t0)
            pr, po = stats(paired["ref"]), stats(paired["ours"])
            speedup = pr["median_s"] / po["median_s"]
            out["train_paired"] = {"ref": pr, "ours": po, "rounds": args.paired_rounds, "ours_per_round": args.paired_ours}
            out["train_speedup_ref_over_ours"] = speedup
            say(
                f"paired, {args.paired_rounds} rounds of [1 reference step, {args.paired_ours} of ours]: reference median "
                f"{fmt_s(pr['median_s']).strip()}, ours median {fmt_s(po['median_s']).strip()} -> speed-up {speedup:.1f}x (the verdict's figure)"
            )

    # ------------------------------------------------------------------------------------ summary
    peak = peak_rss_mb()
    out["memory_mb"]["peak_rss_process"] = peak
    out["memory_mb"]["peak_rss_before_reference"] = peak_ours_mb
    out["env"]["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    speedup = out.get("train_speedup_ref_over_ours")
    ratio = out.get("eval", {}).get("ratio_ours_over_bare")
    out["targets"] = {
        "train_speedup_min": TARGET_TRAIN_SPEEDUP,
        "eval_overhead_max": TARGET_EVAL_OVERHEAD,
        "peak_rss_gb_max": TARGET_PEAK_RSS_GB,
        "train_speedup_met": None if speedup is None else speedup >= TARGET_TRAIN_SPEEDUP,
        "eval_overhead_met": None if ratio is None else ratio <= TARGET_EVAL_OVERHEAD,
        "peak_rss_met": peak / 1024 < TARGET_PEAK_RSS_GB,
        "peak_rss_before_reference_met": peak_ours_mb / 1024 < TARGET_PEAK_RSS_GB,
        "propagation_match": checks["propagation_ok"],
    }
    tg = out["targets"]
    say()
    say("## Summary")
    say(f"{'':40s} {'value':>14s}  {'target':>10s}  verdict")
    if speedup is not None:
        say(f"{'train speed-up (ref / ours, paired median)' if 'train_paired' in out else 'train speed-up (ref / ours, median)':40s} {speedup:13.1f}x  {'>= ' + str(TARGET_TRAIN_SPEEDUP) + 'x':>10s}  {verdict(tg['train_speedup_met'])}")
    say(f"{'ours s/batch (direct)':40s} {ours['median_s']:13.4f}s")
    if "train_ref" in out:
        say(f"{'reference s/batch':40s} {out['train_ref']['median_s']:13.4f}s")
    if ratio is not None:
        say(f"{'eval time ours / bare':40s} {ratio:13.2f}x  {'<= ' + str(TARGET_EVAL_OVERHEAD) + 'x':>10s}  {verdict(tg['eval_overhead_met'])}")
    say(f"{'peak RSS, whole process':40s} {peak / 1024:12.2f}GB  {'< ' + str(TARGET_PEAK_RSS_GB) + ' GB':>10s}  {verdict(tg['peak_rss_met'])}")
    say(f"{'peak RSS of our pipeline (pre-reference)':40s} {peak_ours_mb / 1024:12.2f}GB  {'< ' + str(TARGET_PEAK_RSS_GB) + ' GB':>10s}  {verdict(tg['peak_rss_before_reference_met'])}")
    say(f"{'propagation max |ours - PyG|':40s} {checks['propagation_max_abs_diff']:14.2e}  {'< ' + format(PROPAGATION_TOL, 'g'):>10s}  {verdict(tg['propagation_match'])}")
    say("memory by phase (MB; peak is cumulative): " + ", ".join(f"{k} rss {v['rss']:.0f}/peak {v['peak_rss']:.0f}" for k, v in out["memory_mb"].items() if isinstance(v, dict)))
    say(f"load avg at start {out['env']['loadavg_start']}, at end {out['env']['loadavg_end']} (timings are only meaningful on an idle machine)")

    if competitors["pids"]:  # a competitor that died early would leave part of the run unloaded
        alive = [_running(pid) for pid in competitors["pids"]]
        competitors["alive_at_end"] = alive
        say(f"competing processes still running at the end: {sum(alive)} of {len(alive)}")
    out["report"] = lines
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
        print(f"\nwrote {args.json}")
    return out


if __name__ == "__main__":
    main()
