"""Rating prediction: full-batch training of GC-MC on explicit ratings, selected on validation RMSE.

``fit_gcmc`` trains on the split's train triples (the graph is built from them only), evaluates RMSE /
MAE on validation every ``eval_every`` epochs, keeps the weights of the lowest validation RMSE and
reports that epoch's test RMSE / MAE. ``loss="ce"`` is the paper's cross-entropy over rating levels,
``loss="mse"`` the squared error of the expected rating.

Run ``python -m graphrec_lab.training.rating_task --seeds 0 1 2 --out records.jsonl`` to train on the
canonical ``u1.base`` / ``u1.test`` split of MovieLens-100K under ``$GRAPHREC_DATA_DIR/ml-100k``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from graphrec_lab.data.sources.movielens_ratings import RatingSplit, RatingTriples, read_canonical_split
from graphrec_lab.evaluation.rating import best_epoch, rating_metrics
from graphrec_lab.models.gcmc import GCMC, rating_adjacencies

RATING_LOSSES = ("ce", "mse")


@dataclass
class GCMCSettings:
    """The paper's ML-100K settings: 1000 full-batch epochs of Adam at lr 0.01, stack accumulation,
    500 hidden / 75 output units, 2 basis matrices, dropout 0.7."""

    epochs: int = 1000
    lr: float = 0.01
    hidden_dim: int = 500
    out_dim: int = 75
    num_basis: int = 2
    dropout: float = 0.7
    accumulation: str = "stack"
    loss: str = "ce"
    eval_every: int = 5


def _evaluate(model: GCMC, adjs: list[torch.Tensor], triples: RatingTriples, prefix: str) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        pred = model(adjs, triples.user, triples.item)
    return rating_metrics(pred, triples.rating, prefix)


def fit_gcmc(split: RatingSplit, settings: GCMCSettings, seed: int = 0) -> dict[str, float]:
    """Train, select on validation RMSE (minimised) and return val / test RMSE and MAE of that epoch."""
    if settings.loss not in RATING_LOSSES:
        raise ValueError(f"task.loss {settings.loss!r} is not a rating loss; choose one of {list(RATING_LOSSES)}")
    torch.manual_seed(seed)
    levels = list(split.levels)
    adjs = rating_adjacencies(split.train.user, split.train.item, split.train.rating, split.num_users, split.num_items, levels)
    model = GCMC(split.num_users, split.num_items, levels, settings.hidden_dim, settings.out_dim, settings.num_basis,
                 settings.dropout, settings.accumulation)  # fmt: skip
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.lr)
    target_level = torch.bucketize(split.train.rating, model.levels)  # rating -> level index
    history: list[float] = []
    best_state, best_epochs = None, []
    for epoch in range(1, settings.epochs + 1):
        model.train()
        optimiser.zero_grad()
        if settings.loss == "ce":
            loss = nn.functional.cross_entropy(model.logits(adjs, split.train.user, split.train.item), target_level)
        else:
            loss = nn.functional.mse_loss(model(adjs, split.train.user, split.train.item), split.train.rating)
        loss.backward()
        optimiser.step()
        if epoch % settings.eval_every == 0 or epoch == settings.epochs:
            history.append(_evaluate(model, adjs, split.val, "val_")["val_rmse"])
            best_epochs.append(epoch)
            if best_epoch(history) == len(history) - 1:
                best_state = copy.deepcopy(model.state_dict())
    assert best_state is not None
    model.load_state_dict(best_state)
    result = {"best_epoch": best_epochs[best_epoch(history)]}
    result.update(_evaluate(model, adjs, split.val, "val_"))
    result.update(_evaluate(model, adjs, split.test, "test_"))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="GC-MC on the MovieLens-100K u1..u5 split")
    parser.add_argument("--data-dir", default=os.path.join(os.environ.get("GRAPHREC_DATA_DIR", "data"), "ml-100k"))
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=GCMCSettings.epochs)
    parser.add_argument("--loss", choices=RATING_LOSSES, default="ce")
    parser.add_argument("--out", type=Path, default=None, help="append one JSON record per seed")
    args = parser.parse_args(argv)
    settings = GCMCSettings(epochs=args.epochs, loss=args.loss)
    for seed in args.seeds:
        split = read_canonical_split(args.data_dir, fold=args.fold, seed=seed)
        start = time.perf_counter()
        record = {"model": "gcmc", "dataset": "ml-100k", "split": f"u{args.fold}", "seed": seed, **asdict(settings)}
        record.update(fit_gcmc(split, settings, seed))
        record["fit_seconds"] = round(time.perf_counter() - start, 1)
        print(json.dumps(record), flush=True)
        if args.out is not None:
            with args.out.open("a") as fh:
                fh.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
