"""Plot the learning curves of a study run with ``curves: true`` (``outputs/curves_<budget>.csv``:
cell, seed, epoch, ``val/...``, ``curve/test/...``) or of the committed ``gowalla_h200/curves_*.csv``
(model, seed, epoch, val_ndcg@20, test_recall@20, test_ndcg@20): a test metric against epochs, one
line per model or cell (and seed), with published values as dashed lines.

    python experiments/model_zoo/plot_curves.py experiments/model_zoo/gowalla_h200/curves_*.csv \
        --published lightgcn=0.1830 ngcf=0.1570 --out experiments/model_zoo/gowalla_h200/curves.png
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


STUDY_COLUMNS = {"test_recall@20": "curve/test/recall@20", "test_ndcg@20": "curve/test/ndcg@20", "val_ndcg@20": "val/ndcg@20"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csvs", nargs="+", type=Path)
    parser.add_argument("--metric", default="test_recall@20", choices=["test_recall@20", "test_ndcg@20", "val_ndcg@20"])
    parser.add_argument("--models", nargs="*", default=None, help="only these models")
    parser.add_argument("--published", nargs="*", default=[], metavar="MODEL=VALUE", help="dashed reference lines")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines: dict[str, list[tuple[int, float]]] = {}
    for path in args.csvs:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                name = row.get("model") or row["cell"]
                # A study's curves file names the metrics as they were logged.
                value = row.get(args.metric) or row.get(STUDY_COLUMNS[args.metric])
                if (args.models and name not in args.models) or not value:
                    continue
                label = f"{name} seed {row['seed']} ({path.stem})"
                lines.setdefault(label, []).append((int(row["epoch"]), float(value)))
    if not lines:
        raise SystemExit(f"no curve points in {[str(p) for p in args.csvs]}")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, points in sorted(lines.items()):
        xs, ys = zip(*sorted(points))
        ax.plot(xs, ys, marker=".", label=label)
    for item in args.published:
        model, value = item.split("=", 1)
        ax.axhline(float(value), linestyle="--", color="grey", linewidth=0.8)
        ax.annotate(f"{model} published {value}", (0, float(value)), fontsize=8, va="bottom")
    ax.set_xlabel("epoch")
    ax.set_ylabel(args.metric.replace("_", " "))
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
