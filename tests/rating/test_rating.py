"""Rating prediction: metrics against numpy, selection on validation RMSE, the canonical split reader and
the GC-MC model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from graphrec_lab.data.sources.movielens_ratings import read_canonical_split
from graphrec_lab.evaluation.rating import best_epoch, mae, rating_metrics, rmse
from graphrec_lab.models.gcmc import GCMC, rating_adjacencies
from graphrec_lab.training.rating_task import GCMCSettings, fit_gcmc


def test_rmse_and_mae_match_numpy() -> None:
    rng = np.random.default_rng(0)
    pred, target = rng.uniform(1, 5, 50), rng.integers(1, 6, 50).astype(float)
    assert rmse(torch.tensor(pred), torch.tensor(target)) == pytest.approx(np.sqrt(np.mean((pred - target) ** 2)))
    assert mae(torch.tensor(pred), torch.tensor(target)) == pytest.approx(np.mean(np.abs(pred - target)))
    assert set(rating_metrics(torch.tensor(pred), torch.tensor(target), "val_")) == {"val_rmse", "val_mae"}


def test_metrics_refuse_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        rmse(torch.zeros(3), torch.zeros(4))


def test_selection_on_val_rmse_picks_the_minimum() -> None:
    assert best_epoch([1.10, 0.95, 0.97, 0.95, 1.2]) == 1
    with pytest.raises(ValueError):
        best_epoch([])


def _write(path: Path, rows: list[tuple[int, int, int]]) -> None:
    path.write_text("".join(f"{u}\t{i}\t{r}\t88{k}\n" for k, (u, i, r) in enumerate(rows)))


def test_canonical_split_keeps_ratings_and_carves_validation_from_base(tmp_path: Path) -> None:
    base = [(u, i, 1 + (u * i) % 5) for u in range(1, 6) for i in range(1, 9)]
    test = [(1, 9, 4), (6, 2, 2)]
    _write(tmp_path / "u1.base", base)
    _write(tmp_path / "u1.test", test)
    split = read_canonical_split(tmp_path, fold=1, val_fraction=0.25, seed=3)
    assert (split.num_users, split.num_items) == (6, 9)
    assert len(split.val) == 10 and len(split.train) == 30
    got = {(int(u) + 1, int(i) + 1, int(r)) for part in (split.train, split.val)
           for u, i, r in zip(part.user, part.item, part.rating)}  # fmt: skip
    assert got == set(base)  # every base rating, unchanged, in train or validation; none from test
    assert [(int(u) + 1, int(i) + 1, float(r)) for u, i, r in zip(split.test.user, split.test.item, split.test.rating)] == [
        (1, 9, 4.0), (6, 2, 2.0)]  # fmt: skip
    again = read_canonical_split(tmp_path, fold=1, val_fraction=0.25, seed=3)
    assert torch.equal(again.val.user, split.val.user)


def test_canonical_split_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="u2.base"):
        read_canonical_split(tmp_path, fold=2)


def _toy() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    user, item = torch.randint(0, 6, (40,), generator=g), torch.randint(0, 7, (40,), generator=g)
    rating = torch.randint(1, 6, (40,), generator=g).float()
    return user, item, rating


def test_adjacencies_one_per_level_and_refuse_unknown_levels() -> None:
    user, item, rating = _toy()
    adjs = rating_adjacencies(user, item, rating, 6, 7, [1.0, 2.0, 3.0, 4.0, 5.0])
    assert len(adjs) == 5 and all(a.shape == (13, 13) for a in adjs)
    assert sum(int(a._nnz()) for a in adjs) <= 2 * 40
    with pytest.raises(ValueError, match="2.5"):
        rating_adjacencies(user, item, torch.full((40,), 2.5), 6, 7, [1.0, 2.0])


@pytest.mark.parametrize("accumulation", ["sum", "stack"])
def test_gcmc_shapes_and_distribution_sums_to_one(accumulation: str) -> None:
    user, item, rating = _toy()
    levels = [1.0, 2.0, 3.0, 4.0, 5.0]
    adjs = rating_adjacencies(user, item, rating, 6, 7, levels)
    model = GCMC(6, 7, levels, hidden_dim=10, out_dim=4, num_basis=2, dropout=0.5, accumulation=accumulation)
    model.eval()
    dist = model.rating_distribution(adjs, user[:8], item[:8])
    assert dist.shape == (8, 5)
    assert torch.allclose(dist.sum(1), torch.ones(8), atol=1e-6)
    pred = model(adjs, user[:8], item[:8])
    assert pred.shape == (8,) and bool(((pred >= 1) & (pred <= 5)).all())
    model.train()  # node dropout makes two training passes differ
    assert not torch.equal(model.logits(adjs, user, item), model.logits(adjs, user, item))


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_fit_gcmc_learns_and_refuses_a_ranking_loss(tmp_path: Path, loss: str) -> None:
    rng = np.random.default_rng(0)
    rows = [(u, i, 5 if (u + i) % 2 else 1) for u in range(1, 21) for i in range(1, 16) if rng.random() < 0.6]
    _write(tmp_path / "u1.base", rows)
    _write(tmp_path / "u1.test", rows[:10])
    split = read_canonical_split(tmp_path, val_fraction=0.2)
    settings = GCMCSettings(epochs=100, lr=0.02, hidden_dim=40, out_dim=8, dropout=0.0, eval_every=10, loss=loss)
    result = fit_gcmc(split, settings)
    assert result["val_rmse"] < 1.0  # a constant predictor of the mean rating sits at about 2.0
    assert result["best_epoch"] in range(10, 101, 10)
    with pytest.raises(ValueError, match="task.loss 'bpr'"):
        fit_gcmc(split, GCMCSettings(loss="bpr"))
