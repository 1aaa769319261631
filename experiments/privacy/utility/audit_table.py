"""Membership-inference AUC for every run of the privacy-utility study, the joined table and the plot.

For each finished run in the study's result store, the threshold attack of ``graphrec-lab audit``
(members: the run's true training interactions; non-members: as many held-out test interactions of
the same users) gives the attack AUC and TPR at 1% FPR. Rows go to ``audit_records.jsonl``
(committed); ``results.md`` joins them with the study's utility (mean ± std over seeds) and
``utility_vs_epsilon.png`` plots test NDCG@20 against epsilon per mechanism.

    graphrec-lab study experiments/privacy/utility
    cp experiments/privacy/utility/outputs/results.jsonl experiments/privacy/utility/records.jsonl
    python experiments/privacy/utility/audit_table.py                 # audits runs not yet audited
    python experiments/privacy/utility/audit_table.py --report-only   # table and plot from the records
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from statistics import mean, pstdev

HERE = Path(__file__).resolve().parent
AUDITS = HERE / "audit_records.jsonl"
STUDY = "utility"  # record names are <study>-<cell id>


def _records(store: Path) -> list[dict]:
    out = [json.loads(line) for line in store.read_text().splitlines() if line.strip()]
    return [r for r in out if r.get("status", "ok") == "ok" and r["name"].startswith(STUDY + "-")]


def audit(store: Path) -> None:
    from graphrec_lab.privacy.audit import audit_run

    done = {(a["cell"], a["seed"]) for a in map(json.loads, AUDITS.read_text().splitlines())} if AUDITS.exists() else set()
    for rec in _records(store):
        cell = rec["name"][len(STUDY) + 1 :]
        if (cell, rec["seed"]) in done:
            continue
        report = audit_run(rec["paths"]["run_dir"], results=store, write=False)
        score = report["threshold"]["score"]
        row = {"cell": cell, "seed": rec["seed"], "auc": score["auc"], "tpr@0.01fpr": score["tpr@0.01fpr"],
               "auc_rank": report["threshold"]["rank"]["auc"], "git_commit": rec.get("git_commit")}  # fmt: skip
        print(row, flush=True)
        with AUDITS.open("a") as f:
            f.write(json.dumps(row) + "\n")


def _ms(values: list[float], digits: int) -> str:
    return f"{mean(values):.{digits}f} ± {pstdev(values):.{digits}f}" if values else "-"


def report(store: Path) -> str:
    from graphrec_lab.reporting.significance import format_p, paired_test

    recs = _records(store)
    audits = [json.loads(line) for line in AUDITS.read_text().splitlines()] if AUDITS.exists() else []
    util: dict[str, dict[int, dict]] = defaultdict(dict)
    for r in recs:
        util[r["name"][len(STUDY) + 1 :]][r["seed"]] = r["metrics"]
    mia: dict[str, dict[int, dict]] = defaultdict(dict)
    for a in audits:
        mia[a["cell"]][a["seed"]] = a
    base = util.get("mf", {})
    lines = ["| cell | seeds | test Recall@20 | test NDCG@20 | p (NDCG@20 vs mf) | spent epsilon | MIA AUC | MIA TPR@1% FPR |",
             "|---|---:|---|---|---:|---|---|---|"]  # fmt: skip
    for cell, by_seed in util.items():
        seeds = sorted(by_seed)
        ndcg = [by_seed[s]["test/ndcg@20"] for s in seeds]
        p = "-" if cell == "mf" else format_p(paired_test(
            {s: m["test/ndcg@20"] for s, m in by_seed.items()}, {s: m["test/ndcg@20"] for s, m in base.items()}).p_ttest)
        eps = [by_seed[s]["privacy/epsilon"] for s in seeds if "privacy/epsilon" in by_seed[s]]
        lines.append(
            f"| {cell} | {len(seeds)} | {_ms([by_seed[s]['test/recall@20'] for s in seeds], 4)} | {_ms(ndcg, 4)} | {p} | "
            f"{_ms(eps, 2) if eps else '-'} | {_ms([m['auc'] for m in mia.get(cell, {}).values()], 3)} | "
            f"{_ms([m['tpr@0.01fpr'] for m in mia.get(cell, {}).values()], 3)} |"
        )
    _plot(util)
    return "\n".join(lines)


def _plot(util: dict[str, dict[int, dict]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    series = {"MF-BPR, edge-DP graph": ("mf-edgedp-", "mf"), "MF-BPR, DP-SGD": ("mf-dpsgd-", "mf"),
              "LightGCN, edge-DP graph": ("lightgcn-edgedp-", "lightgcn")}  # fmt: skip
    for label, (prefix, plain) in series.items():
        xs, ys, es = [], [], []
        for cell, by_seed in util.items():
            if cell.startswith(prefix):
                v = [m["test/ndcg@20"] for m in by_seed.values()]
                xs.append(float(cell[len(prefix) :]))
                ys.append(mean(v))
                es.append(pstdev(v))
        order = sorted(range(len(xs)), key=xs.__getitem__)
        line = ax.errorbar([xs[i] for i in order], [ys[i] for i in order], yerr=[es[i] for i in order], marker="o", capsize=3, label=label)
        if plain in util:
            ax.axhline(mean(m["test/ndcg@20"] for m in util[plain].values()), color=line[0].get_color(), ls=":", lw=1)
    for cell, marker in (("mf-federated", "s"), ("lightgcn-federated", "D")):
        if cell in util:
            ax.scatter([16], [mean(m["test/ndcg@20"] for m in util[cell].values())], marker=marker, label=cell.replace("-", ", "))
    ax.set_xscale("log", base=2)
    ax.set_xticks([1, 2, 4, 8, 16], ["1", "2", "4", "8", "no DP"])
    ax.set_xlabel("epsilon (dotted: non-private)")
    ax.set_ylabel("test NDCG@20")
    ax.set_title("ml-100k: utility against privacy (3 seeds)")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(HERE / "utility_vs_epsilon.png", dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", type=Path, default=HERE / "records.jsonl")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args()
    if not args.report_only:
        audit(args.store)
    text = report(args.store)
    (HERE / "results.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
