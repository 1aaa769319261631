"""Text fused into a graph model: ID-only vs text-only vs fused (frozen, LoRA), and the cold-start protocol.

Every cell is one ``run_experiment`` per seed with the same data, split, evaluator and selection on
validation NDCG@20; the table reports the selected checkpoint's test metrics (mean ± std over seeds).

    GRAPHREC_DATA_DIR=../shared/datasets python experiments/text_fusion/run.py --table main
    GRAPHREC_DATA_DIR=../shared/datasets python experiments/text_fusion/run.py --table cold --data amazon_scientific
    GRAPHREC_DATA_DIR=../shared/datasets python experiments/text_fusion/run.py --table cold --data ml100k_text
    python experiments/text_fusion/run.py --table main --data synthetic --epochs 4 --seeds 0 --cells id fused_frozen  # smoke

``--report-only`` rebuilds a table from the result store without training.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from graphrec_lab.config import compose
from graphrec_lab.experiment import run_experiment
from graphrec_lab.reporting import mean_std
from graphrec_lab.tracking.results import ResultStore

HERE = Path(__file__).resolve().parent

# cell name -> (description, overrides). LightGCN (d=64, 3 layers) is the graph model of every cell.
CELLS: dict[str, tuple[str, list[str]]] = {
    "id": ("ID-only LightGCN", ["model=lightgcn"]),
    "text_only": ("text-only items: frozen MiniLM replaces item IDs", ["model=lightgcn", "text=frozen", "model.feature_mode=features"]),
    "fused_frozen": ("fused, frozen MiniLM: item ID + projected text", ["model=lightgcn", "text=frozen", "model.feature_mode=sum"]),
    "fused_gated": ("fused, frozen MiniLM, gated sum", ["model=lightgcn", "text=frozen", "model.feature_mode=gated"]),
    "fused_align": ("fused frozen + text-graph alignment loss", ["model=lightgcn", "text=frozen", "model.feature_mode=sum", "+objective=text_align"]),
    "fused_align_id": (
        "fused by alignment: item IDs + contrastive text-graph alignment loss (frozen MiniLM, weight 0.05)",
        ["model=lightgcn", "text=frozen", "model.feature_mode=id", "+objective=text_align", "task.objectives.text_align.weight=0.05"],
    ),
    "fused_lora": ("fused, LoRA-tuned MiniLM (r=8, 128 texts re-encoded per step)", ["model=lightgcn", "text=lora", "model.feature_mode=sum", "text.max_live_texts=128"]),
}
TABLES = {"main": ["id", "text_only", "fused_frozen", "fused_lora"], "cold": ["id", "text_only", "fused_frozen"]}


def protocol(args: argparse.Namespace) -> tuple[list[str], str]:
    """Overrides shared by every run of the table, and the budget sentence written above it."""
    over = [f"data={args.data}", "trainer.check_val_every_n_epoch=5", f"trainer.max_epochs={args.epochs}"]
    if args.lr is not None:
        over.append(f"task.lr={args.lr}")
    if args.data == "synthetic":
        over += ["data.cache_dir=none", "trainer.check_val_every_n_epoch=1"]
    if args.table == "cold":
        # Self-loops on items without training edges: a layer mean would otherwise scale a cold item's
        # input by 1/(K+1) (graphrec_lab/data/train_graph.py). Same switch for every cell.
        over += ["data.cold_item_fraction=0.2", "data.isolated_self_loops=true"]
    budget = f"up to {args.epochs} epochs, validation every 5, early stopping after 10 checks without improvement"
    if args.lr is not None:
        budget += f"; Adam lr {args.lr} for every cell"
    if args.lora_epochs:
        budget += f"; LoRA cells capped at {args.lora_epochs} epochs (CPU budget)"
    return over, budget


def metric_keys(table: str) -> list[str]:
    if table == "cold":
        return [f"test/{g}recall@20" for g in ("", "warm/", "cold/")] + [f"test/{g}ndcg@20" for g in ("", "warm/", "cold/")]
    return ["test/recall@10", "test/recall@20", "test/ndcg@10", "test/ndcg@20"]


def from_store(out: Path, group: str, cells: list[str], seeds: list[int]) -> dict[str, list[dict]]:
    """Finished runs of this table (the last one per cell and seed)."""
    found: dict[str, dict[int, dict]] = {}
    for record in ResultStore(out / "results.jsonl").read():
        cell = str(record.get("name", "")).removeprefix("text_fusion-")
        if record.get("group") == group and cell in cells and record["seed"] in seeds:
            found.setdefault(cell, {})[record["seed"]] = record
    return {c: [found[c][s] for s in sorted(found[c])] for c in cells if c in found}


def render(args: argparse.Namespace, budget: str, records: dict[str, list[dict]], errors: dict[str, list[str]]) -> str:
    keys = metric_keys(args.table)
    header = "| cell | " + " | ".join(k.removeprefix("test/") for k in keys) + " | epochs to best val | s / epoch |"
    lines = [header, "|" + "---|" * (len(keys) + 3)]
    for cell in args.cells:
        recs = records.get(cell, [])
        metrics = [r["metrics"] for r in recs]
        row = [CELLS[cell][0]] + [mean_std([m[k] for m in metrics if k in m]) for k in keys]
        row += [mean_std([m["best_epoch"] + 1 for m in metrics]), mean_std([m["time/epoch_s"] for m in metrics])]
        line = "| " + " | ".join(row) + " |"
        if errors.get(cell):
            line += " failed: " + "; ".join(errors[cell])
        lines.append(line)
    seeds = " ".join(str(s) for s in args.seeds)
    command = (
        f"python experiments/text_fusion/run.py --table {args.table} --data {args.data} --seeds {seeds} "
        f"--epochs {args.epochs}" + (f" --lora-epochs {args.lora_epochs}" if args.lora_epochs else "")
        + (f" --lr {args.lr:g}" if args.lr is not None else "") + (f" --cells {' '.join(args.cells)}")
    )
    extra = ""
    if args.table == "cold":
        extra = " Cold-start protocol: 20% of the items (with their interactions) held out of training; `cold/` metrics restrict each user's targets to cold items, `warm/` to the others, ranking over all items."
    return (
        f"Data: {args.data}. Seeds: {seeds}. {budget}. Selection on val/ndcg@20; test metrics of the selected "
        f"checkpoint, mean ± std over seeds.{extra}\n\nCommand: `{command}`\n\n" + "\n".join(lines) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", choices=sorted(TABLES), default="main")
    parser.add_argument("--data", default="amazon_scientific", help="a data config with item text")
    parser.add_argument("--cells", nargs="+", choices=sorted(CELLS), default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020, 2021, 2022])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--lora-epochs", type=int, default=None, help="epoch cap of the LoRA cells (CPU budget)")
    parser.add_argument("--lr", type=float, default=None, help="Adam lr for every cell (default: the task's 1e-3); its own table")
    parser.add_argument("--out", default=str(HERE / "outputs"))
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args()
    args.cells = args.cells or TABLES[args.table]

    shared, budget = protocol(args)
    out = Path(args.out)
    suffix = f"-lr{args.lr:g}" if args.lr is not None else ""
    group = f"text_fusion-{args.table}-{args.data}{suffix}"
    errors: dict[str, list[str]] = {}
    t0 = time.perf_counter()
    # Seeds outermost: a table cut short by the budget still has every cell for its first seeds.
    for seed in [] if args.report_only else args.seeds:
        for cell in args.cells:
            overrides = [
                *shared, *CELLS[cell][1], f"seed={seed}", f"paths.root={out}", "logger=csv", f"group={group}",
                f"name=text_fusion-{cell}", "print_table=false", *args.overrides,
            ]
            if cell == "fused_lora" and args.lora_epochs:
                overrides.append(f"trainer.max_epochs={args.lora_epochs}")
            try:
                run_experiment(compose(overrides), overrides)
            except Exception as exc:  # one failing cell must not cost the table
                errors.setdefault(cell, []).append(f"seed {seed}: {type(exc).__name__}: {exc}")
            print(f"[{time.perf_counter() - t0:8.0f} s] {cell} seed {seed} done", flush=True)
    text = render(args, budget, from_store(out, group, args.cells, args.seeds), errors)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"results_{args.table}_{args.data}{suffix}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
