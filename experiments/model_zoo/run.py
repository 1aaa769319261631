"""Train every model of the zoo on equal terms and write a table of test Recall@20 / NDCG@20.

Same data, split, evaluator, optimiser (the task's defaults: Adam 1e-3, L2 1e-4, BPR) and budget for
every model; selection (best checkpoint, early stopping) on validation NDCG@20; 3 seeds.

    GRAPHREC_DATA_DIR=../shared/datasets python experiments/model_zoo/run.py --data ml100k
    GRAPHREC_DATA_DIR=../shared/datasets python experiments/model_zoo/run.py --data gowalla
    python experiments/model_zoo/run.py --data synthetic --epochs 2 --seeds 0     # smoke test

``ml100k``: experiment=ml100k_recbole (RecBole's default protocol: per-user random 8:1:1, validation
every 5 epochs, early stopping after 10 checks without improvement, up to 1000 epochs).
``gowalla``: the LightGCN paper's split (10% of train carved out for validation); budget per run:
``--epochs`` (default 200) epochs and ``--max-hours`` (default 2) hours of training, whichever comes
first, with the same early stopping. The budget is written above the table.
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
MODELS = ["pop", "bprmf", "lightgcn", "gcn", "gat", "gin", "sage", "gated", "ngcf", "sgl", "simgcl", "xsimgcl"]


def _dhms(hours: float) -> str:
    """Lightning's max_time format, DD:HH:MM:SS."""
    minutes = round(hours * 60)
    return f"{minutes // 1440:02d}:{minutes // 60 % 24:02d}:{minutes % 60:02d}:00"


def protocol(args: argparse.Namespace) -> tuple[list[str], str]:
    """The overrides shared by every run of this table, and the budget sentence written above it."""
    if args.data == "ml100k":
        over = ["experiment=ml100k_recbole"]
        budget = "RecBole protocol: up to 1000 epochs, validation every 5, early stopping after 10 checks"
        if args.epochs:
            over.append(f"trainer.max_epochs={args.epochs}")
            budget += f"; capped at {args.epochs} epochs"
        return over, budget
    if args.data == "gowalla":
        epochs = args.epochs or 200
        hours = args.max_hours
        over = [
            "data=gowalla",
            f"trainer.max_epochs={epochs}",
            "trainer.check_val_every_n_epoch=5",
            f"+trainer.max_time='{_dhms(hours)}'",
        ]
        return over, f"budget per run: {epochs} epochs or {hours} h of training, whichever first; validation every 5 epochs, early stopping after 10 checks"
    # synthetic: the embedded default graph, for smoke tests of this script
    epochs = args.epochs or 20
    over = [f"trainer.max_epochs={epochs}", "trainer.check_val_every_n_epoch=1", "data.cache_dir=none"]
    return over, f"synthetic default graph, {epochs} epochs, validation every epoch"


def from_store(out: Path, group: str, models: list[str], seeds: list[int]) -> list[tuple[str, list[dict], list[str]]]:
    """Finished runs of this table from ``out/results.jsonl`` (the last run per model and seed)."""
    found: dict[str, dict[int, dict]] = {}
    for record in ResultStore(out / "results.jsonl").read():
        model = next((o.split("=", 1)[1] for o in record.get("overrides", []) if o.startswith("model=")), None)
        if record.get("group") == group and model in models and record["seed"] in seeds:
            found.setdefault(model, {})[record["seed"]] = record["metrics"]
    return [(m, [found[m][s] for s in sorted(found[m])], []) for m in models if m in found]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=["ml100k", "gowalla", "synthetic"], default="ml100k")
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020, 2021, 2022])
    parser.add_argument("--epochs", type=int, default=None, help="max epochs (gowalla default 200)")
    parser.add_argument("--max-hours", type=float, default=2.0, help="gowalla: training hours per run")
    parser.add_argument("--out", default=str(HERE / "outputs"))
    parser.add_argument("--report-only", action="store_true", help="rebuild the table from the result store, no training")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args()

    shared, budget = protocol(args)
    out = Path(args.out)
    rows = []
    t0 = time.perf_counter()
    for model in args.models if not args.report_only else []:
        runs, errors = [], []
        for seed in args.seeds:
            overrides = [
                *shared, f"model={model}", f"seed={seed}", f"paths.root={out}", "logger=csv",
                f"group=model_zoo-{args.data}", "print_table=false", *args.overrides,
            ]
            try:
                runs.append(run_experiment(compose(overrides), overrides))
            except Exception as exc:  # one failing model must not cost the whole table
                errors.append(f"seed {seed}: {type(exc).__name__}: {exc}")
        rows.append((model, runs, errors))
        print(f"[{time.perf_counter() - t0:8.0f} s] {model}: {len(runs)} runs, {len(errors)} errors", flush=True)

    if args.report_only:
        rows = from_store(out, f"model_zoo-{args.data}", args.models, args.seeds)

    lines = [
        "| model | test Recall@20 | test NDCG@20 | val NDCG@20 | epochs to best val | epochs run | s / epoch |",
        "|---|---|---|---|---|---|---|",
    ]
    for model, runs, errors in rows:
        get = lambda key: [r[key] for r in runs]  # noqa: E731
        trained = [r for r in runs if r["epochs"] > 0]
        lines.append(
            f"| {model} | {mean_std(get('test/recall@20'))} | {mean_std(get('test/ndcg@20'))} "
            f"| {mean_std(get('val/ndcg@20'))} "
            f"| {mean_std([r['best_epoch'] + 1 for r in trained])} | {mean_std([r['epochs'] for r in trained])} "
            f"| {mean_std([r['time/epoch_s'] for r in trained])} |"
            + (f" failed: {'; '.join(errors)}" if errors else "")
        )
    table = "\n".join(lines)
    seeds = " ".join(str(s) for s in args.seeds)
    text = (
        f"Data: {args.data}. Seeds: {seeds}. {budget}. Selection on val/ndcg@20; test metrics of the selected "
        f"checkpoint (mean ± std over seeds).\n\nCommand: `python experiments/model_zoo/run.py --data {args.data} "
        f"--seeds {seeds}{f' --epochs {args.epochs}' if args.epochs else ''}`\n\n{table}\n"
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / f"results_{args.data}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
