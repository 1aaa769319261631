"""Trials per hour of one sweep with 1 and with 2 worker processes on this machine.

Runs ``graphrec-lab sweep benchmarks/sweep_throughput/sweep.yaml --workers N`` for each N in
``--workers`` (default 1 2), each in a fresh ``paths.root`` (a new study), ``--repeats`` times in
alternating order, and reports wall seconds, trials per hour and the ratio to 1 worker. The trials
are of equal cost (fixed epochs, no pruning, no early stopping), so trials per hour compares the
worker counts and not the sampled parameters. ``threads: auto`` gives each worker its share of the
cores (graphrec_lab/training/threads.py).

    python benchmarks/sweep_throughput/throughput.py --json benchmarks/sweep_throughput/results.json

Run it alone: the comparison is only fair when nothing else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_sweep(workers: int, root: Path, n_trials: int) -> dict:
    cmd = [sys.executable, "-m", "graphrec_lab", "sweep", str(HERE / "sweep.yaml"), "--workers", str(workers),
           "--n-trials", str(n_trials), f"paths.root={root}"]  # fmt: skip
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "WANDB_MODE": "disabled"})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"sweep with {workers} worker(s) failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    records = [json.loads(line) for line in (root / "results.jsonl").read_text().splitlines() if line.strip()]
    done = [r for r in records if r.get("status", "ok") == "ok"]
    return {"workers": workers, "wall_s": wall, "trials": len(done), "trials_per_hour": 3600 * len(done) / wall,
            "torch_threads": sorted({r.get("torch_threads") for r in done}), "loadavg_start": load,
            "loadavg_end": os.getloadavg()[0]}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--n-trials", type=int, default=8, help="trials per sweep")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    out = {"started_at": datetime.now(timezone.utc).isoformat(), "cpu_count": os.cpu_count(), "platform": platform.platform(), "runs": []}
    order = [w for r in range(args.repeats) for w in (args.workers if r % 2 == 0 else args.workers[::-1])]
    for workers in order:
        with tempfile.TemporaryDirectory(prefix=f"sweep_tp_{workers}_") as root:
            res = run_sweep(workers, Path(root), args.n_trials)
        out["runs"].append(res)
        print(f"{workers} worker(s): {res['trials']} trials in {res['wall_s']:.0f} s = {res['trials_per_hour']:.0f} trials/h "
              f"(threads per trial {res['torch_threads']}, load avg {res['loadavg_start']:.2f}->{res['loadavg_end']:.2f})", flush=True)  # fmt: skip
    by = {w: [r["trials_per_hour"] for r in out["runs"] if r["workers"] == w] for w in args.workers}
    base = sum(by[args.workers[0]]) / len(by[args.workers[0]])
    out["mean_trials_per_hour"] = {str(w): sum(v) / len(v) for w, v in by.items()}
    out["ratio_to_first"] = {str(w): out["mean_trials_per_hour"][str(w)] / base for w in args.workers}
    for w in args.workers:
        print(f"{w} worker(s): mean {out['mean_trials_per_hour'][str(w)]:.0f} trials/h, {out['ratio_to_first'][str(w)]:.2f}x of {args.workers[0]} worker(s)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
