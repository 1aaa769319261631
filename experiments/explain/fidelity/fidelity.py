"""Deletion fidelity of explanations over the study's runs (3 seeds per model).

For every run of ``study.yaml`` found in the study's result store, ``deletion_fidelity`` samples
(user, top-10 item) pairs and compares removing the m most attributed training interactions with
removing m random ones and the m most popular ones (``graphrec_lab/explain/fidelity.py``), and PyG's
fidelity+/- of the same interactions for the top-10 decision (``graphrec_lab/explain/pyg_fidelity.py``). LightGCN
is explained by the exact decomposition, GAT by GNNExplainer and Captum Integrated Gradients. The
rows of every run go to ``fidelity_records.jsonl`` (committed); the table (``results.md``) is the
mean and standard deviation over seeds.

    graphrec-lab study experiments/explain/fidelity          # trains the 9 runs
    python experiments/explain/fidelity/fidelity.py          # measures them (skips runs already measured)
    python experiments/explain/fidelity/fidelity.py --report-only
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from statistics import mean, pstdev

HERE = Path(__file__).resolve().parent
RECORDS = HERE / "fidelity_records.jsonl"
PAIRS = {"lightgcn": 100, "gat": 12}  # on ml-100k a GAT pair's 3-hop subgraph is most of the graph: ~1 min per pair
METHODS = {"lightgcn": ["exact"], "gat": ["gnnexplainer", "captum_ig"]}


def study_runs(store: Path) -> list[dict]:
    """The study's result records whose run directory still holds a checkpoint."""
    runs = []
    for line in store.read_text().splitlines():
        rec = json.loads(line)
        run_dir = Path(rec.get("paths", {}).get("run_dir", ""))
        if rec.get("status", "ok") == "ok" and (run_dir / "checkpoints").is_dir():
            runs.append(rec)
    return runs


def measure(store: Path, epochs: int, pyg_pairs: int, cells: list[str] | None) -> None:
    from graphrec_lab.explain.fidelity import deletion_fidelity
    from graphrec_lab.inference import load_run

    done = set()
    if RECORDS.exists():
        done = {(r["cell"], r["seed"]) for r in map(json.loads, RECORDS.read_text().splitlines())}
    for rec in study_runs(store):
        cell = rec["name"].split("-", 1)[1]  # <study>-<cell id>
        if (cell, rec["seed"]) in done or (cells and cell not in cells):
            continue
        family = cell.rsplit("-", 1)[1]
        run = load_run(rec["paths"]["run_dir"])
        result = deletion_fidelity(run, num_pairs=PAIRS[family], methods=METHODS[family], k=10, seed=rec["seed"], epochs=epochs,
                                   pyg_pairs=pyg_pairs)
        print(result.format(), flush=True)
        stamp = {"cell": cell, "seed": rec["seed"], "dataset": result.dataset, "model": result.model,
                 "test/ndcg@20": rec["metrics"].get("test/ndcg@20"), "git_commit": rec.get("git_commit"),
                 "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "loadavg": round(os.getloadavg()[0], 2)}  # fmt: skip
        with RECORDS.open("a") as f:
            for row in result.rows:
                f.write(json.dumps({**stamp, **row.__dict__}) + "\n")


def table() -> str:
    rows = [json.loads(line) for line in RECORDS.read_text().splitlines()]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["cell"], r["method"], r["m"])].append(r)
    out = ["| cell | method | m | seeds | pairs / seed (PyG) | mean rank drop | rank drop > random | > popular | > both | "
           "mean score drop | score drop > both | PyG fid+ | PyG fid- | s / explanation |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for (cell, method, m), g in groups.items():
        def ms(key: str, digits: int = 2) -> str:
            v = [x[key] for x in g if x.get(key) is not None]
            return f"{mean(v):.{digits}f} ± {pstdev(v):.{digits}f}" if v else "n/a"
        out.append(f"| {cell} | {method} | {m} | {len(g)} | {g[0]['pairs']} ({g[0].get('fid_pairs', 0)}) | {ms('mean_drop', 1)} | {ms('beats_random')} | "
                   f"{ms('beats_popular')} | {ms('beats_both')} | {ms('mean_score_drop', 4)} | {ms('score_beats_both')} | "
                   f"{ms('fid_plus')} | {ms('fid_minus')} | "
                   f"{mean(x['seconds_per_explanation'] for x in g):.3f} |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", type=Path, default=HERE / "outputs" / "results.jsonl")
    p.add_argument("--epochs", type=int, default=100, help="GNNExplainer's optimisation epochs")
    p.add_argument("--pyg-pairs", type=int, default=20, help="PyG fidelity+/- over the first N pairs of each run")
    p.add_argument("--cells", nargs="*", help="measure only these cells (default: all not yet measured)")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args()
    if not args.report_only:
        measure(args.store, args.epochs, args.pyg_pairs, args.cells)
    text = table()
    (HERE / "results.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
