"""Time to accuracy: wall-clock seconds until the validation-selected model reaches a test Recall@20.

Trains one model of ``configs.yaml`` on Gowalla (the LightGCN paper's split with a 10% validation
carve-out, ``data=gowalla``) with ``task.test_curve=true``. At every validation check (every epoch)
the selected model is the best so far on validation NDCG@20; its test Recall@20, logged at that check,
is the benchmark's curve (``TargetMetricStop``; test is never used to select). The run stops at the
first check where that value reaches ``--target`` (default 0.1830, the LightGCN paper's Gowalla
Recall@20) or once ``--max-seconds`` of fit have passed, and writes a JSON result.

Times are reported from the start of fit and from the start of the script (config, data loading and
graph building included). Both include every validation pass and the test-curve evaluation at each
check, so they are an upper bound on training alone; ``mean_epoch_s`` is training alone.

    python benchmarks/time_to_accuracy/tta.py --model xsimgcl --json tta_xsimgcl.json
    python benchmarks/time_to_accuracy/tta.py --model lightgcn --max-seconds 3600 --json tta_lightgcn.json
    python benchmarks/time_to_accuracy/tta.py --model xsimgcl --device cuda --precision bf16-mixed
    # smoke test (seconds): tiny data, no target
    python benchmarks/time_to_accuracy/tta.py --model lightgcn --data synthetic --max-seconds 20 --json /tmp/tta.json

Extra Hydra overrides go after ``--`` and are recorded in the result.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import yaml

from graphrec_lab import build
from graphrec_lab.config import compose
from graphrec_lab.training.callbacks import TargetMetricStop

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def load_configs(path: Path) -> dict[str, Any]:
    """``configs.yaml``: target, metric, monitor, base_overrides and ``models: {name: {overrides}}``."""
    with open(path) as f:
        spec = yaml.safe_load(f)
    for key in ("target", "metric", "monitor", "base_overrides", "models"):
        if key not in spec:
            raise SystemExit(f"{path}: missing key {key!r}")
    return spec


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores available"


def peak_memory_bytes(device: str) -> tuple[int, str]:
    """Peak memory of this process: CUDA allocations on a GPU, the resident set on the CPU."""
    if device == "cuda":
        return int(torch.cuda.max_memory_allocated()), "torch.cuda.max_memory_allocated"
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "ru_maxrss"  # Linux: KiB


def git_commit() -> str | None:
    """HEAD of this checkout; ``$GRAPHREC_GIT_COMMIT`` where the copy has no ``.git`` (a copied work tree)."""
    if os.environ.get("GRAPHREC_GIT_COMMIT"):
        return os.environ["GRAPHREC_GIT_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=ROOT, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def run(args: argparse.Namespace) -> dict[str, Any]:
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    spec = load_configs(args.configs)
    if args.model not in spec["models"]:
        raise SystemExit(f"--model {args.model!r}: not in {args.configs} (models: {', '.join(spec['models'])})")
    target = float(args.target if args.target is not None else spec["target"])
    model_overrides = list(spec["models"][args.model]["overrides"])
    accelerator = "gpu" if args.device == "cuda" else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible")
    out_root = args.out_root or Path(tempfile.mkdtemp(prefix="tta-"))
    overrides = [
        f"data={args.data}", *spec["base_overrides"], *model_overrides, f"trainer.accelerator={accelerator}",
        "trainer.devices=1", f"trainer.precision={args.precision}", f"seed={args.seed}", f"paths.root={out_root}",
        f"name=tta-{args.model}-{args.precision}", *args.overrides,
    ]  # fmt: skip
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    def on_check(point: dict[str, Any]) -> None:
        print(
            f"[tta {args.model} {args.precision}] epoch {point['epoch']:4d}  {point['seconds']:8.1f} s  "
            f"val {point['val']:.4f}  selected epoch {point['selected_epoch']} test recall {point['selected_curve']:.4f}",
            flush=True,
        )

    stop = TargetMetricStop(
        target, monitor=spec["monitor"], curve=spec["metric"], max_seconds=args.max_seconds, on_point=on_check
    )
    experiment = build(compose(overrides), extra_callbacks=[stop])
    experiment.trainer.fit(experiment.task, datamodule=experiment.datamodule)
    fit_end = time.perf_counter()
    load_s = stop.fit_start - t_start
    peak, peak_kind = peak_memory_bytes(args.device)
    # An epoch the budget cut short is left out of the epoch time (it would read as a fast epoch).
    epoch_seconds = list(experiment.timer.epoch_seconds)
    complete = epoch_seconds[:-1] if stop.stopped_mid_epoch else epoch_seconds
    return {
        "model": args.model,
        "config_overrides": overrides,
        "target": target,
        "metric": spec["metric"],
        "monitor": spec["monitor"],
        "reached": stop.reached_seconds is not None,
        "seconds_to_target_fit": stop.reached_seconds,
        "seconds_to_target_total": None if stop.reached_seconds is None else load_s + stop.reached_seconds,
        "epochs_to_target": stop.reached_epoch,
        "stopped_by": stop.stopped_by or "max_epochs",
        "max_seconds": args.max_seconds,
        "setup_s": load_s,
        "fit_s": fit_end - stop.fit_start,
        "epochs": len(epoch_seconds),
        "complete_epochs": len(complete),
        "mean_epoch_s": sum(complete) / len(complete) if complete else None,
        "epoch_seconds": epoch_seconds,
        "final_selected_curve": stop.points[-1]["selected_curve"] if stop.points else None,
        "curve": stop.points,
        "device": device_name(args.device),
        "accelerator": accelerator,
        "precision": args.precision,
        "torch_threads": torch.get_num_threads(),
        "peak_memory_bytes": peak,
        "peak_memory_kind": peak_kind,
        "torch": torch.__version__,
        "git_commit": git_commit(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "loadavg_start": list(load_start),
        "loadavg_end": list(os.getloadavg()),
        "run_dir": str(experiment.run_dir),
    }


def summary(result: dict[str, Any]) -> str:
    mean_epoch = "-" if result["mean_epoch_s"] is None else f"{result['mean_epoch_s']:.2f}"
    reached = (
        f"{result['seconds_to_target_fit']:.1f} s of fit ({result['seconds_to_target_total']:.1f} s with setup), "
        f"epoch {result['epochs_to_target']}"
        if result["reached"]
        else f"not reached (selected model at the end {result['final_selected_curve']}, stopped by {result['stopped_by']})"
    )
    return (
        f"{result['model']} {result['precision']} on {result['device']}: target {result['target']:.4f} {reached}; "
        f"{result['epochs']} epochs, {mean_epoch} s/epoch, peak memory "
        f"{result['peak_memory_bytes'] / 2**30:.2f} GiB ({result['peak_memory_kind']})"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="an entry of --configs")
    parser.add_argument("--configs", type=Path, default=HERE / "configs.yaml")
    parser.add_argument("--target", type=float, default=None, help="default: configs.yaml's target")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="budget in seconds of fit")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", default="32-true", help="Lightning precision: 32-true, bf16-mixed, ...")
    parser.add_argument("--data", default="gowalla")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--out-root", type=Path, default=None, help="paths.root of the run (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides (after --)")
    args = parser.parse_args(argv)
    result = run(args)
    text = summary(result)
    result["summary"] = text
    print(text, flush=True)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
