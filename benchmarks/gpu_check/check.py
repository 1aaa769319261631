"""One short GPU check: LightGCN on Gowalla on one GPU, fp32 and bf16-mixed.

Trains ``--epochs`` epochs per precision through ``run_experiment`` (validation once, at the end; the
test split evaluated with that checkpoint), and prints seconds per epoch, evaluation seconds, peak GPU
memory and Recall/NDCG@20, with bf16's speed as a ratio to fp32 measured in the same process.

    python benchmarks/gpu_check/check.py            # GPU machine
    python benchmarks/gpu_check/check.py --accelerator cpu --data synthetic --epochs 1   # smoke test

LightGCN's propagation is a sparse CSR product, which autocast leaves in fp32; bf16 reaches the dense
parts (the [B, I] score matrix of evaluation, the BPR dot products). The ratio says whether that helps.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from graphrec_lab.config import compose
from graphrec_lab.experiment import run_experiment

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="gowalla")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--accelerator", default="gpu")
    parser.add_argument("--precisions", nargs="+", default=["32-true", "bf16-mixed"])
    parser.add_argument("--out", type=Path, default=HERE / "outputs")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    args = parser.parse_args()
    gpu = args.accelerator in ("gpu", "cuda")
    if gpu and not torch.cuda.is_available():
        raise SystemExit("no CUDA device visible; run with --accelerator cpu for a smoke test")
    if gpu:
        print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")

    rows = []
    for precision in args.precisions:
        if gpu:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        metrics = run_experiment(
            compose(
                [
                    f"data={args.data}", "model=lightgcn", f"trainer.accelerator={args.accelerator}", "trainer.devices=1",
                    f"trainer.precision={precision}", f"trainer.max_epochs={args.epochs}",
                    f"trainer.check_val_every_n_epoch={args.epochs}", "logger=csv", f"paths.root={args.out}",
                    f"group=gpu-check", f"name=gpu-check-{precision}", "print_table=false", *args.overrides,
                ]  # fmt: skip
            )
        )
        peak = torch.cuda.max_memory_allocated() / 2**30 if gpu else float("nan")
        rows.append((precision, metrics, peak, time.perf_counter() - t0))

    base = rows[0][1]["time/epoch_s"]
    print(f"\nLightGCN on {args.data}, {args.epochs} epochs per precision, {args.accelerator}")
    print("| precision | s / epoch | vs first | test s | peak GPU GiB | val Recall@20 | test Recall@20 | test NDCG@20 | total s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for precision, m, peak, total in rows:
        print(
            f"| {precision} | {m['time/epoch_s']:.3f} | {base / m['time/epoch_s']:.2f}x | {m['time/test_s']:.2f} | {peak:.2f} "
            f"| {m['val/recall@20']:.4f} | {m['test/recall@20']:.4f} | {m['test/ndcg@20']:.4f} | {total:.0f} |"
        )


if __name__ == "__main__":
    main()
