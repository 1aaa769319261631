"""Per-epoch validation NDCG@20 and training BPR loss of zoo runs, from their Lightning CSV logs.

The result records hold only the selected checkpoint's metrics; this reads each run's ``metrics.csv``
(one file per model and seed, named ``<model>-<seed>.csv``) and prints, per model, the mean over seeds
at every validation epoch, so a curve that dips before it rises (SimGCL on Gowalla) is visible.

    python experiments/model_zoo/epoch_table.py experiments/model_zoo/gowalla_cpu/logs
"""

from __future__ import annotations

import argparse
import csv
import statistics
from collections import defaultdict
from pathlib import Path


def read_log(path: Path) -> tuple[dict[int, float], dict[int, float]]:
    """(epoch -> val/ndcg@20, epoch -> train/bpr) of one run, epochs counted from 1. The row the test
    stage writes (validation of the restored checkpoint, one epoch past the last) is dropped."""
    val: dict[int, float] = {}
    bpr: dict[int, float] = {}
    last_train_epoch = -1
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("epoch")]
    for r in rows:
        if r.get("train/bpr"):
            bpr[int(r["epoch"]) + 1] = float(r["train/bpr"])
            last_train_epoch = max(last_train_epoch, int(r["epoch"]))
    for r in rows:
        if r.get("val/ndcg@20") and (not bpr or int(r["epoch"]) <= last_train_epoch):
            val.setdefault(int(r["epoch"]) + 1, float(r["val/ndcg@20"]))
    return val, bpr


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("log_dir", type=Path, help="folder of <model>-<seed>.csv files")
    args = parser.parse_args()
    files = sorted(args.log_dir.glob("*-*.csv"))
    if not files:
        raise SystemExit(f"no <model>-<seed>.csv files in {args.log_dir}")
    by_model: dict[str, list[tuple[dict[int, float], dict[int, float]]]] = defaultdict(list)
    for path in files:
        by_model[path.stem.rsplit("-", 1)[0]].append(read_log(path))
    epochs = sorted({e for runs in by_model.values() for val, _ in runs for e in val})
    print("| model | seeds | " + " | ".join(f"val NDCG@20 ep {e}" for e in epochs) + " | " + " | ".join(f"train BPR ep {e}" for e in epochs) + " |")
    print("|---|---|" + "---|" * (2 * len(epochs)))

    def cell(runs: list[dict[int, float]], e: int) -> str:
        values = [r[e] for r in runs if e in r]
        return f"{statistics.mean(values):.4f}" if values else "-"

    for model, runs in by_model.items():
        vals, bprs = [v for v, _ in runs], [b for _, b in runs]
        print(f"| {model} | {len(runs)} | " + " | ".join(cell(vals, e) for e in epochs) + " | " + " | ".join(cell(bprs, e) for e in epochs) + " |")


if __name__ == "__main__":
    main()
