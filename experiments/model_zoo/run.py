"""Train every model of the zoo on equal terms and write a table of test Recall@20 / NDCG@20.

Same data, split, evaluator, optimiser (the task's defaults: Adam 1e-3, L2 1e-4, BPR) and budget for
every model; selection (best checkpoint, early stopping) on validation NDCG@20; 3 seeds.

    GRAPHREC_DATA_DIR=../shared/datasets python experiments/model_zoo/run.py --data ml100k
    GRAPHREC_DATA_DIR=../shared/datasets python experiments/model_zoo/run.py --data gowalla
    python experiments/model_zoo/run.py --data synthetic --epochs 2 --seeds 0     # smoke test
    # a GPU budget: 1 seed, seconds of training per model, learning curves of the test metric
    python experiments/model_zoo/run.py --data gowalla --seeds 2020 --epochs 1000 --max-seconds 20 \
        --model-seconds lightgcn=120 ngcf=75 --val-every 2 --curve trainer.accelerator=gpu

``ml100k``: experiment=ml100k_recbole (RecBole's default protocol: per-user random 8:1:1, validation
every 5 epochs, early stopping after 10 checks without improvement, up to 1000 epochs).
``gowalla``: the LightGCN paper's split (10% of train carved out for validation); budget per run:
``--epochs`` (default 200) epochs and ``--max-hours`` (default 2) hours of training, whichever comes
first, with the same early stopping. The budget is written above the table.

``--max-seconds`` (and per model ``--model-seconds m=s``) replace the hours with a budget in seconds
of training, for any data. ``--curve`` also evaluates test at every validation check
(``task.test_curve``: logged, never selected on) and writes ``curves_<data>.csv`` (model, seed,
epoch, val NDCG@20, test Recall@20 / NDCG@20), so a table row shows how far its budget is from
convergence.
"""

from __future__ import annotations

import argparse
import csv
import shlex
import sys
import time
from pathlib import Path

from graphrec_lab.config import compose
from graphrec_lab.experiment import run_experiment
from graphrec_lab.reporting import mean_std
from graphrec_lab.tracking.results import ResultStore

HERE = Path(__file__).resolve().parent
MODELS = ["pop", "bprmf", "lightgcn", "gcn", "gat", "gin", "sage", "gated", "ngcf", "sgl", "simgcl", "xsimgcl"]


def _dhms(seconds: float) -> str:
    """Lightning's max_time format, DD:HH:MM:SS."""
    s = max(1, round(seconds))
    return f"{s // 86400:02d}:{s // 3600 % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def _seconds(args: argparse.Namespace, model: str) -> float | None:
    """The training budget in seconds of one model's runs, if any (``--model-seconds`` > ``--max-seconds``)."""
    return args.model_seconds.get(model, args.max_seconds)


def _budget_overrides(args: argparse.Namespace, model: str) -> list[str]:
    seconds = _seconds(args, model)
    if seconds is None and args.data == "gowalla":
        seconds = args.max_hours * 3600
    return [f"+trainer.max_time='{_dhms(seconds)}'"] if seconds is not None else []


def protocol(args: argparse.Namespace) -> tuple[list[str], str]:
    """The overrides shared by every run of this table, and the budget sentence written above it."""
    if args.data == "ml100k":
        over = ["experiment=ml100k_recbole"]
        budget = "RecBole protocol: up to 1000 epochs, validation every 5, early stopping after 10 checks"
        if args.epochs:
            over.append(f"trainer.max_epochs={args.epochs}")
            budget += f"; capped at {args.epochs} epochs"
        if args.val_every:
            over.append(f"trainer.check_val_every_n_epoch={args.val_every}")
            budget = budget.replace("validation every 5", f"validation every {args.val_every}")
        if _time_sentence(args):
            budget += f"; at most {_time_sentence(args)}"
        return over, budget
    if args.data == "gowalla":
        epochs = args.epochs or 200
        every = args.val_every or 5
        over = ["data=gowalla", f"trainer.max_epochs={epochs}", f"trainer.check_val_every_n_epoch={every}"]
        limit = _time_sentence(args) or f"{args.max_hours} h of training"
        return over, f"budget per run: {epochs} epochs or {limit}, whichever first; validation every {every} epochs, early stopping after 10 checks"
    # synthetic: the embedded default graph, for smoke tests of this script
    epochs = args.epochs or 20
    every = args.val_every or 1
    over = [f"trainer.max_epochs={epochs}", f"trainer.check_val_every_n_epoch={every}", "data.cache_dir=none"]
    limit = f" or {_time_sentence(args)}" if _time_sentence(args) else ""
    return over, f"synthetic default graph, {epochs} epochs{limit}, validation every {every} epoch(s)"


def _time_sentence(args: argparse.Namespace) -> str:
    """The seconds budget in words ('' without one)."""
    parts = [f"{args.max_seconds:g} s of training"] if args.max_seconds is not None else []
    if args.model_seconds:
        parts.append("per model " + ", ".join(f"{m} {sec:g} s" for m, sec in args.model_seconds.items()))
    return "; ".join(parts)


def curve_points(record: dict) -> list[dict[str, float]]:
    """The ``task.test_curve`` points of one run from its CSV log: epoch, val NDCG@20, test Recall/NDCG@20."""
    log_dir = record.get("paths", {}).get("csvlogger_dir")
    if not log_dir or not (Path(log_dir) / "metrics.csv").is_file():
        return []
    points = []
    with open(Path(log_dir) / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row.get("curve/test/ndcg@20"):
                points.append({
                    "epoch": int(row["epoch"]) + 1, "val_ndcg@20": float(row["val/ndcg@20"]),
                    "test_recall@20": float(row["curve/test/recall@20"]), "test_ndcg@20": float(row["curve/test/ndcg@20"]),
                })  # fmt: skip
    return points


def write_curves(out: Path, data: str, runs: list[tuple[str, int, list[dict[str, float]]]]) -> Path:
    """``curves_<data>.csv``: one line per (model, seed, validation check), from ``curve_points``."""
    path = out / f"curves_{data}.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "seed", "epoch", "val_ndcg@20", "test_recall@20", "test_ndcg@20"])
        for model, seed, points in runs:
            for p in points:
                writer.writerow([model, seed, p["epoch"], *(f"{p[k]:.4f}" for k in ("val_ndcg@20", "test_recall@20", "test_ndcg@20"))])
    return path


TABLE_KEYS = {"model", "seed", "paths.root", "logger", "group", "print_table", "task.test_curve", "experiment", "data",
              "data.cache_dir", "trainer.max_epochs", "trainer.check_val_every_n_epoch", "trainer.max_time",
              "trainer.accelerator", "trainer.devices"}  # fmt: skip


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def from_store(
    out: Path, group: str, models: list[str], seeds: list[int], extra: list[str]
) -> list[tuple[str, list[dict], list[str]]]:
    """Finished runs of this table from ``out/results.jsonl`` (the last run per model and seed) whose
    overrides beyond the table's own (``TABLE_KEYS``: model, seed, budget, ...) are exactly ``extra``,
    so that e.g. runs at another contrastive weight in the same store are not mixed in."""
    found: dict[str, dict[int, dict]] = {}
    for record in ResultStore(out / "results.jsonl").read():
        overrides = record.get("overrides", [])
        model = next((o.split("=", 1)[1] for o in overrides if o.startswith("model=")), None)
        own_extra = sorted(o for o in overrides if _key(o) not in TABLE_KEYS)
        if record.get("group") == group and model in models and record["seed"] in seeds and own_extra == sorted(extra):
            found.setdefault(model, {})[record["seed"]] = record["metrics"]
    return [(m, [found[m][s] for s in sorted(found[m])], []) for m in models if m in found]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=["ml100k", "gowalla", "synthetic"], default="ml100k")
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020, 2021, 2022])
    parser.add_argument("--epochs", type=int, default=None, help="max epochs (gowalla default 200)")
    parser.add_argument("--max-hours", type=float, default=2.0, help="gowalla: training hours per run")
    parser.add_argument("--max-seconds", type=float, default=None, help="training seconds per run (any data)")
    parser.add_argument("--model-seconds", nargs="+", default=[], metavar="MODEL=S", help="per-model training seconds")
    parser.add_argument("--val-every", type=int, default=None, help="validate every N epochs (default: the protocol's)")
    parser.add_argument("--curve", action="store_true", help="log test at every validation check; write curves_<data>.csv")
    parser.add_argument("--out", default=str(HERE / "outputs"))
    parser.add_argument("--report-only", action="store_true", help="rebuild the table from the result store, no training")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args()
    per_model: dict[str, float] = {}
    for item in args.model_seconds:
        model, _, seconds = item.partition("=")
        try:
            per_model[model] = float(seconds)
        except ValueError:
            model = ""
        if model not in MODELS:
            parser.error(f"--model-seconds {item!r}: expected MODEL=SECONDS with MODEL in {MODELS}")
    args.model_seconds = per_model

    shared, budget = protocol(args)
    out = Path(args.out)
    rows = []
    curves: list[tuple[str, int, list[dict[str, float]]]] = []
    t0 = time.perf_counter()
    for model in args.models if not args.report_only else []:
        runs, errors = [], []
        for seed in args.seeds:
            overrides = [
                *shared, f"model={model}", f"seed={seed}", f"paths.root={out}", "logger=csv",
                f"group=model_zoo-{args.data}", "print_table=false", *_budget_overrides(args, model),
                *(["task.test_curve=true"] if args.curve else []), *args.overrides,
            ]  # fmt: skip
            try:
                runs.append(run_experiment(compose(overrides), overrides))
            except Exception as exc:  # one failing model must not cost the whole table
                errors.append(f"seed {seed}: {type(exc).__name__}: {exc}")
                continue
            if args.curve:
                # This run's record (matched on its overrides: other processes may share the store).
                record = next(r for r in reversed(ResultStore(out / "results.jsonl").read()) if r["overrides"] == overrides)
                curves.append((model, seed, curve_points(record)))
                write_curves(out, args.data, curves)  # after every run: a killed job keeps what it has
        rows.append((model, runs, errors))
        print(f"[{time.perf_counter() - t0:8.0f} s] {model}: {len(runs)} runs, {len(errors)} errors", flush=True)

    if args.report_only:
        rows = from_store(out, f"model_zoo-{args.data}", args.models, args.seeds, args.overrides)

    lines = [
        "| model | test Recall@20 | test NDCG@20 | val NDCG@20 | epochs to best val | epochs run | s / epoch | fit s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, runs, errors in rows:
        get = lambda key: [r[key] for r in runs]  # noqa: E731
        trained = [r for r in runs if r["epochs"] > 0]
        lines.append(
            f"| {model} | {mean_std(get('test/recall@20'))} | {mean_std(get('test/ndcg@20'))} "
            f"| {mean_std(get('val/ndcg@20'))} "
            f"| {mean_std([r['best_epoch'] + 1 for r in trained], digits=0)} | {mean_std([r['epochs'] for r in trained], digits=0)} "
            f"| {mean_std([r['time/epoch_s'] for r in trained], digits=2)} | {mean_std([r['time/fit_s'] for r in trained], digits=0)} |"
            + (f" failed: {'; '.join(errors)}" if errors else "")
        )
    table = "\n".join(lines)
    seeds = " ".join(str(s) for s in args.seeds)
    text = (
        f"Data: {args.data}. Seeds: {seeds}. {budget}. Selection on val/ndcg@20; test metrics of the selected "
        f"checkpoint (mean ± std over seeds).\n\nCommand: `python experiments/model_zoo/run.py {shlex.join(sys.argv[1:])}`\n\n{table}\n"
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / f"results_{args.data}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
