"""Ensembles of three zoo models against each member, 3 seeds, for one folder of experiments/ensemble/.

A folder (``ml100k``, ``scientific``) names its members in ``members.yaml`` (label -> run name and
the study result store holding it); per seed the members must share the split (checked by the
ensemble code through the split hash). Each seed's runs are combined by every method of
``graphrec_lab.inference.ensemble`` and evaluated with the runs' full-ranking evaluator; rows go to
``<folder>/ensemble_records.jsonl`` (committed) and the table, with a paired t-test over seeds
against the best member, to ``<folder>/results.md``.

    python experiments/ensemble/ensemble.py ml100k
    python experiments/ensemble/ensemble.py scientific --report-only

"±" is the sample standard deviation over seeds, as in the study tables.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path
from statistics import mean, stdev

import yaml

HERE = Path(__file__).resolve().parent
EXPERIMENTS = HERE.parent
METHODS = ("zscore", "minmax", "rrf", "borda")
KEYS = ("test/recall@20", "test/ndcg@20")


def read_members(folder: Path) -> dict[str, tuple[str, Path]]:
    """label -> (run name, result store path) from ``folder/members.yaml``."""
    spec = yaml.safe_load((folder / "members.yaml").read_text())
    return {label: (m["name"], EXPERIMENTS / m["store"]) for label, m in spec.items()}


def members(spec: dict[str, tuple[str, Path]]) -> dict[int, dict[str, dict]]:
    """seed -> member label -> its result record."""
    out: dict[int, dict[str, dict]] = {}
    for label, (name, path) in spec.items():
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if rec["name"] == name and rec.get("status", "ok") == "ok":
                run_dir = Path(rec["paths"]["run_dir"])
                if not run_dir.is_absolute() and "outputs" in run_dir.parts:  # relative to the study's cwd
                    run_dir = path.parent.joinpath(*run_dir.parts[run_dir.parts.index("outputs") + 1 :])
                rec["paths"]["run_dir"] = str(run_dir)
                out.setdefault(rec["seed"], {})[label] = rec
    return {s: m for s, m in out.items() if len(m) == len(spec)}


def measure(by_seed: dict[int, dict[str, dict]], labels: list[str], records: Path) -> None:
    from graphrec_lab.inference import load_run
    from graphrec_lab.inference.ensemble import evaluate_ensemble

    done = {(r["seed"], r["method"]) for r in map(json.loads, records.read_text().splitlines())} if records.exists() else set()
    for seed, recs in sorted(by_seed.items()):
        runs = None
        for method in METHODS:
            if (seed, method) in done:
                continue
            runs = runs or [load_run(recs[label]["paths"]["run_dir"]) for label in labels]
            result = evaluate_ensemble(runs, method, splits=("test",))
            row = {"seed": seed, "method": method, **{k: result.metrics[k] for k in KEYS},
                   "members": {label: {k: recs[label]["metrics"][k] for k in KEYS} for label in labels},
                   "split_hash": recs[labels[0]]["data"]["split_hash"],
                   "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
            print(row, flush=True)
            with records.open("a") as f:
                f.write(json.dumps(row) + "\n")


def table(labels: list[str], records: Path) -> str:
    from graphrec_lab.reporting.significance import format_p, paired_test

    rows = [json.loads(line) for line in records.read_text().splitlines()]
    seeds = sorted({r["seed"] for r in rows})
    first = {r["seed"]: r for r in rows if r["method"] == rows[0]["method"]}
    member = {label: {s: first[s]["members"][label] for s in seeds} for label in labels}
    best = max(labels, key=lambda label: mean(member[label][s]["test/ndcg@20"] for s in seeds))
    lines = ["| model | seeds | test Recall@20 | test NDCG@20 | p (NDCG@20 vs best member) |", "|---|---:|---|---|---:|"]

    def ms(values: list[float]) -> str:
        return f"{mean(values):.4f} ± {stdev(values):.4f}"

    for label in labels:
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
    p.add_argument("folder", help="a folder of experiments/ensemble/ with a members.yaml (ml100k, scientific)")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args()
    folder = HERE / args.folder
    spec = read_members(folder)
    records = folder / "ensemble_records.jsonl"
    if not args.report_only:
        measure(members(spec), list(spec), records)
    text = table(list(spec), records)
    (folder / "results.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
