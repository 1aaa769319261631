"""Plot the learning curves that ``run.py --curve`` writes (``curves_<data>.csv``): a test metric
against epochs, one line per model (and seed), with published values as dashed lines.

    python experiments/model_zoo/plot_curves.py experiments/model_zoo/gowalla_h200/curves_*.csv \
        --published lightgcn=0.1830 ngcf=0.1570 --out experiments/model_zoo/gowalla_h200/curves.png
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


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
                if args.models and row["model"] not in args.models:
                    continue
                label = f"{row['model']} seed {row['seed']} ({path.stem})"
                lines.setdefault(label, []).append((int(row["epoch"]), float(row[args.metric])))
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
