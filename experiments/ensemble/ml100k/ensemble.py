"""Ensembles of three zoo models on ml-100k against each member, 3 seeds.

Members (same protocol, experiment=ml100k_recbole; per seed the same split): MF-BPR from the
privacy-utility study (cell ``mf``, 50 epochs), LightGCN (100 epochs) and GAT (30 epochs) from the
deletion-fidelity study. Each seed's three runs are combined by every method of
``graphrec_lab.inference.ensemble`` and evaluated with the runs' full-ranking evaluator; rows go to
``ensemble_records.jsonl`` (committed) and the table, with a paired t-test over seeds against the best
member, to ``results.md``.

    graphrec-lab study experiments/privacy/utility --rows mf
    graphrec-lab study experiments/explain/fidelity --rows ml100k-lightgcn ml100k-gat
    python experiments/ensemble/ml100k/ensemble.py
    python experiments/ensemble/ml100k/ensemble.py --report-only
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path
from statistics import mean, pstdev

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RECORDS = HERE / "ensemble_records.jsonl"
MEMBERS = {"MF-BPR": ("utility-mf", ROOT / "privacy/utility/outputs/results.jsonl"),
           "LightGCN": ("fidelity-ml100k-lightgcn", ROOT / "explain/fidelity/outputs/results.jsonl"),
           "GAT": ("fidelity-ml100k-gat", ROOT / "explain/fidelity/outputs/results.jsonl")}  # fmt: skip
METHODS = ("zscore", "minmax", "rrf", "borda")
KEYS = ("test/recall@20", "test/ndcg@20")


def members(stores: dict[str, Path]) -> dict[int, dict[str, dict]]:
    """seed -> member label -> its result record."""
    out: dict[int, dict[str, dict]] = {}
    for label, (name, default) in MEMBERS.items():
        path = stores.get(label, default)
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if rec["name"] == name and rec.get("status", "ok") == "ok":
                run_dir = Path(rec["paths"]["run_dir"])
                if not run_dir.is_absolute() and "outputs" in run_dir.parts:  # relative to the study's cwd
                    run_dir = path.parent.joinpath(*run_dir.parts[run_dir.parts.index("outputs") + 1 :])
                rec["paths"]["run_dir"] = str(run_dir)
                out.setdefault(rec["seed"], {})[label] = rec
    return {s: m for s, m in out.items() if len(m) == len(MEMBERS)}


def measure(by_seed: dict[int, dict[str, dict]]) -> None:
    from graphrec_lab.inference import load_run
    from graphrec_lab.inference.ensemble import evaluate_ensemble

    done = {(r["seed"], r["method"]) for r in map(json.loads, RECORDS.read_text().splitlines())} if RECORDS.exists() else set()
    for seed, recs in sorted(by_seed.items()):
        runs = None
        for method in METHODS:
            if (seed, method) in done:
                continue
            runs = runs or [load_run(recs[label]["paths"]["run_dir"]) for label in MEMBERS]
            result = evaluate_ensemble(runs, method, splits=("test",))
            row = {"seed": seed, "method": method, **{k: result.metrics[k] for k in KEYS},
                   "members": {label: {k: recs[label]["metrics"][k] for k in KEYS} for label in MEMBERS},
                   "split_hash": recs["MF-BPR"]["data"]["split_hash"],
                   "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
            print(row, flush=True)
            with RECORDS.open("a") as f:
                f.write(json.dumps(row) + "\n")


def table() -> str:
    from graphrec_lab.reporting.significance import format_p, paired_test

    rows = [json.loads(line) for line in RECORDS.read_text().splitlines()]
    seeds = sorted({r["seed"] for r in rows})
    first = {r["seed"]: r for r in rows if r["method"] == rows[0]["method"]}
    member = {label: {s: first[s]["members"][label] for s in seeds} for label in MEMBERS}
    best = max(MEMBERS, key=lambda label: mean(member[label][s]["test/ndcg@20"] for s in seeds))
    lines = ["| model | seeds | test Recall@20 | test NDCG@20 | p (NDCG@20 vs best member) |", "|---|---:|---|---|---:|"]

    def ms(values: list[float]) -> str:
        return f"{mean(values):.4f} ± {pstdev(values):.4f}"

    for label in MEMBERS:
        vals = member[label]
        p = "-" if label == best else format_p(paired_test({s: vals[s]["test/ndcg@20"] for s in seeds},
                                                           {s: member[best][s]["test/ndcg@20"] for s in seeds}).p_ttest)
        lines.append(f"| {label} (member) | {len(seeds)} | {ms([vals[s]['test/recall@20'] for s in seeds])} | "
                     f"{ms([vals[s]['test/ndcg@20'] for s in seeds])} | {p} |")
    for method in METHODS:
        got = {r["seed"]: r for r in rows if r["method"] == method}
        p = format_p(paired_test({s: got[s]["test/ndcg@20"] for s in got}, {s: member[best][s]["test/ndcg@20"] for s in got}).p_ttest)
        lines.append(f"| ensemble, {method} | {len(got)} | {ms([g['test/recall@20'] for g in got.values()])} | "
                     f"{ms([g['test/ndcg@20'] for g in got.values()])} | {p} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mf-store", type=Path, help="result store holding the MF-BPR runs (default: the privacy study's)")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args()
    if not args.report_only:
        measure(members({"MF-BPR": args.mf_store} if args.mf_store else {}))
    text = table()
    (HERE / "results.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
