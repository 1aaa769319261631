"""Cross-domain transfer to amazon-scientific through item text, from MovieLens-100K and the MIND sample.

A text-only UniSRec-style model (``model=unisrec model.feature_mode=features``: frozen MiniLM text
vectors -> whitening adaptor -> SASRec; no item-ID table in the item representation) is trained on
a source domain (``--sources``: ``ml100k``, movie titles and genres; ``mind``, news titles of the
MIND sample, articles with a title only; ``ml100k+mind``, both at once as one multi-domain dataset,
``data=sequential_multi``; ``ml100k+mind-unisrec``, the same trained with UniSRec's contrastive
pre-training tasks, ``task.loss=unisrec``), then evaluated on the target with
``init_from=<source run>``:

- ``zero-shot``: no target training (``fit=false``);
- ``few-shot``: target training on 10% of the target users' samples (``data.train_user_fraction=0.1``),
  against ``target-only-10``: the same from a fresh model;
- ``popularity``: items ranked by their count in the target's training sequences.

Each cell is one ``run_experiment`` call (``graphrec_lab.config.compose`` + overrides below); its
record goes to ``records.jsonl`` (committed). ``--report-only`` prints the table from the records.

    python experiments/transfer/ml100k_to_scientific/transfer.py --seeds 2020 --sources ml100k mind
    python experiments/transfer/ml100k_to_scientific/transfer.py --report-only
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
RECORDS = HERE / "records.jsonl"
COMMON = ["task=sequential", "model=unisrec", "text=frozen", "model.feature_mode=features", "logger=csv",
          "optimized_metric=val/ndcg@10", "trainer.check_val_every_n_epoch=1", "callbacks.early_stopping.patience=5",
          "data.train_batch_size=256"]  # fmt: skip
SOURCES = {"ml100k": ["data=sequential_ml100k", "trainer.max_epochs=10"],
           "mind": ["data=sequential_mind_sample", "trainer.max_epochs=10"],
           "ml100k+mind": ["data=sequential_multi", "trainer.max_epochs=10"],
           "ml100k+mind-unisrec": ["data=sequential_multi", "trainer.max_epochs=10", "task.loss=unisrec"]}  # fmt: skip
TARGET = ["data=sequential_scientific", "trainer.max_epochs=20"]
METRICS = ("test/recall@10", "test/ndcg@10", "test/recall@50", "test/ndcg@50")


def _run(overrides: list[str], root: Path) -> dict:
    from graphrec_lab.config import compose
    from graphrec_lab.experiment import run_experiment

    run_experiment(compose([f"paths.root={root}", *overrides]))
    return json.loads((root / "results.jsonl").read_text().splitlines()[-1])


def _popularity(seed: int) -> dict[str, float]:
    import torch

    from graphrec_lab.data.sequence_datamodule import SequentialDataModule
    from graphrec_lab.evaluation.evaluator import FullRankingEvaluator

    dm = SequentialDataModule(dataset="amazon-scientific", split_seed=seed)
    dm.setup()
    counts = torch.zeros(dm._raw.num_items)
    for seq, _, _ in dm.sequences().values():
        counts.index_add_(0, torch.tensor(seq, dtype=torch.long), torch.ones(len(seq)))
    evaluator = FullRankingEvaluator(dm._raw.num_items, (10, 50), ("recall", "ndcg"))
    for batch in dm.test_dataloader():
        evaluator.update(counts.expand(len(batch), -1).clone(), batch.eval_batch())
    return {f"test/{k}": v for k, v in evaluator.compute().items()}


def _record(cell: str, seed: int, metrics: dict, extra: dict) -> None:
    row = {"cell": cell, "seed": seed, **{m: metrics.get(m) for m in METRICS}, **extra,
           "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "loadavg": round(os.getloadavg()[0], 2)}
    with RECORDS.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def _stored() -> list[dict]:
    rows = [json.loads(line) for line in RECORDS.read_text().splitlines()] if RECORDS.exists() else []
    return [{**r, "source": r.get("source", "ml100k")} for r in rows]  # the first records predate the field


def measure(seed: int, sources: list[str], root: Path) -> None:
    """The seed's cells not yet in ``records.jsonl``: popularity and target-only once, then per source
    its run, zero-shot and few-shot."""
    done = {(r["cell"], r["source"]) for r in _stored() if r["seed"] == seed}
    if not any(cell == "popularity" for cell, _ in done):
        _record("popularity", seed, _popularity(seed), {"source": None})
    if not any(cell == "target-only-10" for cell, _ in done):
        rec = _run([*COMMON, *TARGET, f"seed={seed}", "name=transfer-target-only-10", "data.train_user_fraction=0.1"], root)
        _record("target-only-10", seed, rec["metrics"], {"source": None, "best_epoch": rec["metrics"].get("best_epoch"),
                                                         "git_commit": rec.get("git_commit")})  # fmt: skip
    for source in sources:
        if ("zero-shot", source) in done and ("few-shot-10", source) in done:
            continue
        src = _run([*COMMON, *SOURCES[source], f"seed={seed}", f"name=transfer-source-{source}"], root)
        extra = {"source": source, "source_run": src["paths"]["run_dir"], "source_test/ndcg@10": src["metrics"]["test/ndcg@10"]}
        cells = {
            "zero-shot": ["fit=false", f"init_from={src['paths']['run_dir']}"],
            "few-shot-10": ["data.train_user_fraction=0.1", f"init_from={src['paths']['run_dir']}"],
        }
        for cell, overrides in cells.items():
            rec = _run([*COMMON, *TARGET, f"seed={seed}", f"name=transfer-{cell}-{source}", *overrides], root)
            _record(cell, seed, rec["metrics"], {**extra, "best_epoch": rec["metrics"].get("best_epoch"),
                                                 "git_commit": rec.get("git_commit")})  # fmt: skip


def table() -> str:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in _stored():
        shared = r["cell"] in ("popularity", "target-only-10")  # these do not depend on a source
        groups[r["cell"] if shared else f"{r['cell']} from {r['source']}"].append(r)
    out = ["| cell | seeds | Recall@10 | NDCG@10 | Recall@50 | NDCG@50 |", "|---|---:|---:|---:|---:|---:|"]
    for cell, g in groups.items():
        vals = [f"{mean(x[m] for x in g):.4f} ± {pstdev([x[m] for x in g]):.4f}" for m in METRICS]
        out.append(f"| {cell} | {len(g)} | " + " | ".join(vals) + " |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="*", default=[2020, 2021, 2022])
    p.add_argument("--sources", nargs="*", choices=sorted(SOURCES), default=sorted(SOURCES))
    p.add_argument("--root", type=Path, default=HERE / "outputs")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args()
    if not args.report_only:
        for seed in args.seeds:
            measure(seed, args.sources, args.root)
    print(table())


if __name__ == "__main__":
    main()
