"""Social recommendation tables: item recommendation on LastFM and Yelp, friend recommendation on LastFM.

    GRAPHREC_DATA_DIR=../shared/datasets python experiments/social/run.py --table lastfm
    GRAPHREC_DATA_DIR=../shared/datasets python experiments/social/run.py --table yelp --seeds 2020 --epochs 30
    GRAPHREC_DATA_DIR=../shared/datasets python experiments/social/run.py --table friends
    python experiments/social/run.py --table lastfm --report-only      # rebuild the table from the store

``lastfm``: RecBole-GNN's social protocol (results/social/lastfm.md): HetRec 2011 lastfm-2k
(``data=hetrec_lastfm``), per-user random 8:1:1, full ranking, selection on val NDCG@10, batch 4096,
d=64, RecBole-GNN's best depths (LightGCN 3, DiffNet 1; SocialLGN 3 as in its paper), Adam lr 1e-2
for every model (RecBole-GNN tuned 1e-3 / 5e-4 with up to 5000 epochs; see ITEM_ROWS), L2 1e-4 on
the batch's layer-0 embeddings; validation every 5 epochs and early stopping after 10 checks without
improvement (RecBole-GNN: every epoch, 50 epochs of patience), up to ``--epochs`` (150) epochs. Rows: LightGCN,
DiffNet, SocialLGN, and LightGCN on the joined user-item + user-user graph (``data.join_social``).
``yelp``: the same rows on DiffNet's Yelp split (``data=yelp_social``), with a reduced budget.
``friends``: friend recommendation (``data=lastfm_friends``), LightGCN on the user-user graph and on
the graph joined with the listening interactions (``data.join_interactions``), selection on val NDCG@20.
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

# Depths are RecBole-GNN's best on LastFM (LightGCN 3, DiffNet 1) and SocialLGN's paper (3). The
# learning rate is 1e-2 for every model (RecBole-GNN: 1e-3 LightGCN, 5e-4 DiffNet, with up to 5000
# epochs): at 1e-3 LightGCN is still improving after 300 epochs (README), more than this CPU affords.
ITEM_ROWS: dict[str, list[str]] = {
    "lightgcn": ["model=lightgcn", "model.num_layers=3"],
    "diffnet": ["model=diffnet", "model.num_layers=1"],
    "sociallgn": ["model=sociallgn", "model.num_layers=3"],
    "lightgcn-joined": ["model=lightgcn", "model.num_layers=3", "data.join_social=true"],
}
FRIEND_ROWS: dict[str, list[str]] = {
    "lightgcn-user-user": ["model=lightgcn", "model.num_layers=3"],
    "lightgcn-joined-interactions": ["model=lightgcn", "model.num_layers=3", "data.join_interactions=true"],
}
# RecBole-GNN's LastFM leaderboard (results/social/lastfm.md), test Recall@10 / NDCG@10.
LEADERBOARD = {"lightgcn": (0.2064, 0.1972), "diffnet": (0.1757, 0.1694), "diffnet-lr5e-4": (0.1757, 0.1694), "mhcn": (0.2123, 0.2068), "mhcn-lr1e-3": (0.2123, 0.2068)}
# MHCN is ~7x slower per epoch than LightGCN here: run on request (--rows mhcn), LastFM only.
# diffnet-lr5e-4: RecBole-GNN's tuned learning rate for DiffNet (at 1e-2 DiffNet peaks within ~15 epochs).
EXTRA_ROWS: dict[str, list[str]] = {
    "mhcn": ["model=mhcn", "model.num_layers=2"],
    "diffnet-lr5e-4": ["model=diffnet", "model.num_layers=1", "task.lr=0.0005", "trainer.max_epochs=400"],
    "sociallgn-matrixnorm": ["model=sociallgn", "model.num_layers=3", "model.fusion_norm=matrix"],
    # MHCN at 1e-2 peaks by epoch 10 (as DiffNet does); 1e-3 is RecBole(-GNN)'s default learning rate.
    "mhcn-lr1e-3": ["model=mhcn", "model.num_layers=2", "task.lr=0.001"],
}
TABLES = {
    "lastfm": ("data=hetrec_lastfm", ITEM_ROWS | EXTRA_ROWS, 10, 150),
    "yelp": ("data=yelp_social", ITEM_ROWS, 10, 30),
    "friends": ("data=lastfm_friends", FRIEND_ROWS, 20, 150),
}
DEFAULT_ROWS = {"lastfm": list(ITEM_ROWS), "yelp": list(ITEM_ROWS), "friends": list(FRIEND_ROWS)}


def shared_overrides(table: str, epochs: int, out: Path) -> list[str]:
    data, _, k, _ = TABLES[table]
    return [
        data, f"optimized_metric=val/ndcg@{k}", "task.ks=[10,20]", "task.lr=0.01", f"trainer.max_epochs={epochs}",
        "trainer.check_val_every_n_epoch=5", "callbacks.early_stopping.patience=10",
        f"paths.root={out}", "logger=csv", f"group=social-{table}", "print_table=false",
    ]  # fmt: skip


def from_store(out: Path, table: str, rows: list[str], seeds: list[int]) -> list[tuple[str, list[dict], list[str]]]:
    """Finished runs of this table from ``out/results.jsonl`` (the last run per row and seed)."""
    found: dict[str, dict[int, dict]] = {}
    for record in ResultStore(out / "results.jsonl").read():
        row = str(record.get("name", "")).removeprefix(f"social-{table}-")
        if record.get("group") == f"social-{table}" and row in rows and record["seed"] in seeds:
            found.setdefault(row, {})[record["seed"]] = record["metrics"]
    return [(r, [found[r][s] for s in sorted(found[r])], []) for r in rows if r in found]


def render(table: str, rows: list[tuple[str, list[dict], list[str]]]) -> str:
    k = TABLES[table][2]
    lines = [
        f"| model | seeds | test Recall@{k} | test NDCG@{k} | val NDCG@{k} | best epoch | epochs run | s / epoch |"
        + (" RecBole-GNN Recall@10 / NDCG@10 |" if table == "lastfm" else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|" if table == "lastfm" else ""),
    ]
    for row, runs, errors in rows:
        get = lambda key: [r[key] for r in runs]  # noqa: E731
        ref = LEADERBOARD.get(row) if table == "lastfm" else None
        lines.append(
            f"| {row} | {len(runs)} | {mean_std(get(f'test/recall@{k}'))} | {mean_std(get(f'test/ndcg@{k}'))} "
            f"| {mean_std(get(f'val/ndcg@{k}'))} | {mean_std([r['best_epoch'] + 1 for r in runs], 0)} "
            f"| {mean_std(get('epochs'), 0)} | {mean_std(get('time/epoch_s'), 2)} |"
            + ((f" {ref[0]:.4f} / {ref[1]:.4f} |" if ref else " - |") if table == "lastfm" else "")
            + (f" failed: {'; '.join(errors)}" if errors else "")
        )
    if table == "lastfm" and "mhcn" not in [r for r, _, _ in rows]:
        lines.append("| mhcn (not run) | | | | | | | | 0.2123 / 0.2068 |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", choices=sorted(TABLES), default="lastfm")
    parser.add_argument("--rows", nargs="+", default=None, help="subset of the table's rows")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020, 2021, 2022])
    parser.add_argument("--epochs", type=int, default=None, help="max epochs (lastfm/friends 150, yelp 30)")
    parser.add_argument("--out", default=str(HERE / "outputs"))
    parser.add_argument("--report-only", action="store_true", help="rebuild the table from the result store, no training")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args()

    _, table_rows, _, default_epochs = TABLES[args.table]
    rows = args.rows or DEFAULT_ROWS[args.table]
    unknown = sorted(set(rows) - set(table_rows))
    if unknown:
        parser.error(f"unknown rows {unknown} for --table {args.table}; known: {list(table_rows)}")
    epochs = args.epochs or default_epochs
    out = Path(args.out)
    results = []
    t0 = time.perf_counter()
    for row in rows if not args.report_only else []:
        runs, errors = [], []
        for seed in args.seeds:
            overrides = [
                *shared_overrides(args.table, epochs, out), *table_rows[row], f"seed={seed}",
                f"name=social-{args.table}-{row}", *args.overrides,
            ]
            try:
                runs.append(run_experiment(compose(overrides), overrides))
            except Exception as exc:  # one failing row must not cost the whole table
                errors.append(f"seed {seed}: {type(exc).__name__}: {exc}")
            print(f"[{time.perf_counter() - t0:8.0f} s] {row} seed {seed}: {len(runs)} runs, {len(errors)} errors", flush=True)
        results.append((row, runs, errors))
    if args.report_only:
        results = from_store(out, args.table, rows, args.seeds)
    seeds = " ".join(str(s) for s in args.seeds)
    text = (
        f"Table {args.table}. Seeds: {seeds}. Adam lr 1e-2, up to {epochs} epochs, validation every 5, early stopping after "
        f"10 checks; test metrics of the checkpoint selected on validation (mean ± std over seeds).\n\n"
        f"{render(args.table, results)}\n"
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / f"results_{args.table}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
