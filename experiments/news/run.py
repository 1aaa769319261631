"""News recommendation experiments: the synthetic comparison table and the MIND pipeline checks.

    # popularity vs NRMS-style vs graph-enhanced NRMS on synthetic news, 3 seeds (~30 min on 2 cores)
    OMP_NUM_THREADS=1 python experiments/news/run.py synthetic

    # the whole pipeline on ../shared/datasets/mind-small-sample (format check; ~2 min)
    OMP_NUM_THREADS=1 GRAPHREC_DATA_DIR=../shared/datasets python experiments/news/run.py mind-sample

    # MIND-small (needs MINDsmall_train/ and MINDsmall_dev/ in $GRAPHREC_DATA_DIR, or internet)
    GRAPHREC_DATA_DIR=/path/to/data python experiments/news/run.py mind-small --models nrms graph_nrms

Every run goes through ``run_experiment`` (``experiment=news_*``), so each one appends a record to
``experiments/news/outputs/results.jsonl``; the tables are rebuilt from that store
(``--report-only`` rebuilds without training). The synthetic data's seed follows the run's seed, so
the three seeds differ in data, initialisation and sampling. Selection: best validation AUC; test
evaluated once with that checkpoint.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from graphrec_lab.config import compose
from graphrec_lab.experiment import run_experiment
from graphrec_lab.reporting import mean_std
from graphrec_lab.tracking.results import ResultStore

HERE = Path(__file__).resolve().parent
MODELS = ["news_pop", "nrms", "graph_nrms"]
LABELS = {"news_pop": "popularity", "nrms": "NRMS-style (MiniLM frozen)", "graph_nrms": "graph-enhanced NRMS (+LightGCN)"}
COLUMNS = ["test/auc", "test/mrr", "test/ndcg@5", "test/ndcg@10"]
EXPERIMENTS = {"synthetic": "news_synthetic", "mind-sample": "news_mind_sample", "mind-small": "news_mind_small"}


def overrides(table: str, model: str, seed: int, out: Path, extra: list[str]) -> list[str]:
    over = [
        f"experiment={EXPERIMENTS[table]}", f"model={model}", f"seed={seed}", f"paths.root={out}",
        "logger=csv", f"group=news-{table}", "print_table=false",
    ]
    if table == "synthetic":
        over.append(f"data.synthetic.seed={seed}")
    return over + extra


def collect(out: Path, table: str, models: list[str], seeds: list[int]) -> dict[str, list[dict]]:
    """The last finished run per model and seed of this table, from the result store."""
    found: dict[str, dict[int, dict]] = {}
    for record in ResultStore(out / "results.jsonl").read():
        if record.get("group") != f"news-{table}":
            continue
        model = next((o.split("=", 1)[1] for o in record.get("overrides", []) if o.startswith("model=")), None)
        if model in models and record["seed"] in seeds:
            found.setdefault(model, {})[record["seed"]] = record
    return {m: [found[m][s] for s in sorted(found[m])] for m in models if m in found}


def render(table: str, runs: dict[str, list[dict]], command: str) -> str:
    head = "| model | seeds | test AUC | test MRR | test nDCG@5 | test nDCG@10 | val AUC | best epoch | s / epoch |"
    lines = [f"Command: `{command}`", "", head, "|" + "---|" * 9]
    # best epoch counts from 0; selection on validation AUC, early stopping after 4 checks without gain
    for model, records in runs.items():
        m = [r["metrics"] for r in records]
        cells = [mean_std([x[c] for x in m]) for c in COLUMNS]
        trained = all(x["best_epoch"] >= 0 for x in m)
        epoch = mean_std([x["best_epoch"] for x in m], 1) if trained else "no training"
        speed = mean_std([x["time/epoch_s"] for x in m], 1) if trained else "-"
        lines.append(
            f"| {LABELS.get(model, model)} | {len(m)} | " + " | ".join(cells)
            + f" | {mean_std([x['val/auc'] for x in m])} | {epoch} | {speed} |"
        )
    if len(runs) > 1:
        seeds = sorted({r["seed"] for records in runs.values() for r in records})
        lines += ["", "Per seed, test AUC / nDCG@10:", "", "| seed | " + " | ".join(LABELS.get(m, m) for m in runs) + " |",
                  "|---|" + "---|" * len(runs)]
        for seed in seeds:
            cells = []
            for records in runs.values():
                r = next((r["metrics"] for r in records if r["seed"] == seed), None)
                cells.append(f"{r['test/auc']:.4f} / {r['test/ndcg@10']:.4f}" if r else "-")
            lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    first = next(iter(runs.values()))[0] if runs else None
    if first is not None:
        m = first["metrics"]
        lines += ["", f"Scored impressions (first run): validation {m['val/num_impressions']:.0f}, test "
                  f"{m['test/num_impressions']:.0f}; single-class impressions left out: {m['val/skipped_impressions']:.0f} / "
                  f"{m['test/skipped_impressions']:.0f}."]
    data = first["data"] if first is not None else {}
    if data:
        lines += ["", f"Data ({data.get('name')}): {data.get('num_users')} users, {data.get('num_items')} articles, "
                  f"{data.get('num_train')} click-graph edges (first seed)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", choices=sorted(EXPERIMENTS))
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 0 1 2 (synthetic), 0 otherwise")
    parser.add_argument("--out", default=str(HERE / "outputs"))
    parser.add_argument("--report-only", action="store_true", help="rebuild the table from the result store")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run (after --)")
    args = parser.parse_args()
    seeds = args.seeds if args.seeds is not None else ([0, 1, 2] if args.table == "synthetic" else [0])
    out = Path(args.out)
    command = "OMP_NUM_THREADS=1 python experiments/news/run.py " + args.table
    if args.models != MODELS:
        command += " --models " + " ".join(args.models)
    if args.overrides:
        command += " -- " + " ".join(args.overrides)
    if not args.report_only:
        for seed in seeds:
            for model in args.models:
                t0 = time.perf_counter()
                cfg = compose(overrides(args.table, model, seed, out, list(args.overrides)))
                metrics = run_experiment(cfg, overrides=overrides(args.table, model, seed, out, list(args.overrides)))
                summary = {k: round(v, 4) for k, v in metrics.items() if k in COLUMNS or k.startswith("data/")}
                print(f"{model} seed {seed}: {summary} ({time.perf_counter() - t0:.0f} s)", flush=True)
    runs = collect(out, args.table, args.models, seeds)
    text = render(args.table, runs, command)
    if args.table == "mind-sample" and runs:
        report = {k: v for k, v in next(iter(runs.values()))[0]["metrics"].items() if k.startswith("data/")}
        text += "\nArticles (from the run record):\n\n```\n" + json.dumps(report, indent=2) + "\n```\n"
    target = HERE / f"results_{args.table.replace('-', '_')}.md"
    target.write_text(text)
    print(text)
    print(f"written to {target}")


if __name__ == "__main__":
    main()
