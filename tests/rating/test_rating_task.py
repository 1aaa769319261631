"""task=rating through run_experiment: GC-MC and a zoo model's rating variant train and are selected on
validation RMSE (mode min); batch-size-independent RMSE/MAE; bad configurations named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from graphrec_lab.config import ConfigError, compose
from graphrec_lab.data.graph import DataValidationError
from graphrec_lab.data.rating_datamodule import RatingDataModule
from graphrec_lab.evaluation.rating import RatingEvaluator, mae, rmse
from graphrec_lab.experiment import run_experiment
from tests.rating.test_rating import _write


@pytest.fixture()
def ml100k_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = [(u, i, 5 if (u + i) % 2 else 1) for u in range(1, 31) for i in range(1, 21) if rng.random() < 0.5]
    folder = tmp_path / "data" / "ml-100k"
    folder.mkdir(parents=True)
    _write(folder / "u1.base", rows[20:])
    _write(folder / "u1.test", rows[:20])
    return tmp_path / "data"


def _cfg(tmp_path: Path, data_dir: Path, *extra: str):
    return compose([f"paths.root={tmp_path / 'out'}", "experiment=rating_ml100k", f"data.data_dir={data_dir}", "logger=csv",
                    "trainer.max_epochs=30", "trainer.accelerator=cpu", "data.val_fraction=0.2", *extra])  # fmt: skip


def test_gcmc_trains_and_selects_on_validation_rmse(tmp_path, ml100k_dir):
    metrics = run_experiment(_cfg(tmp_path, ml100k_dir, "model.hidden_dim=20", "model.out_dim=8", "model.dropout=0.0", "task.lr=0.02", "trainer.max_epochs=100"))
    assert metrics["val/rmse"] < 1.5  # the training mean predicts every rating with RMSE ~2
    record = json.loads((tmp_path / "out" / "results.jsonl").read_text().splitlines()[-1])
    assert record["config"]["callbacks"]["model_checkpoint"]["mode"] == "min"
    assert 5 <= record["metrics"]["best_epoch"] + 1 <= 100


def test_a_zoo_model_learns_ratings(tmp_path):
    rng = np.random.default_rng(0)
    rows = [(u, i, 1 + u % 5) for u in range(1, 31) for i in range(1, 21) if rng.random() < 0.5]  # a user's own level
    folder = tmp_path / "data" / "ml-100k"
    folder.mkdir(parents=True)
    _write(folder / "u1.base", rows[20:])
    _write(folder / "u1.test", rows[:20])
    metrics = run_experiment(_cfg(tmp_path, tmp_path / "data", "model=lightgcn", "task.loss=mse", "model.embedding_dim=8",
                                  "task.lr=0.05", "trainer.max_epochs=100"))  # fmt: skip
    assert metrics["val/rmse"] < 0.7  # predicting the training mean for everyone gives ~1.4 here


def test_incompatible_loss_and_selection_direction_are_named(tmp_path, ml100k_dir):
    with pytest.raises(ConfigError, match="task.loss='ce'.*needs model=gcmc"):
        run_experiment(_cfg(tmp_path, ml100k_dir, "model=lightgcn"))
    with pytest.raises(ConfigError, match="task.loss='bpr' is not a rating loss"):
        run_experiment(_cfg(tmp_path, ml100k_dir, "task.loss=bpr"))
    with pytest.raises(ConfigError, match="mode='max': lower is better"):
        run_experiment(_cfg(tmp_path, ml100k_dir, "callbacks.model_checkpoint.mode=max", "model.hidden_dim=20"))


def test_rating_task_on_data_without_ratings_is_refused(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "plain.inter").write_text("user_id:token\titem_id:token\n" + "".join(f"u{u}\ti{i}\n" for u in range(4) for i in range(3)))
    with pytest.raises(DataValidationError, match="data.dataset='recbole:plain': task=rating needs explicit ratings"):
        RatingDataModule(dataset="recbole:plain", data_dir=str(tmp_path), split="ratio").setup()
    with pytest.raises(ValueError, match="split=ratio"):
        RatingDataModule(dataset="recbole:plain", split="canonical")


def test_rmse_and_mae_do_not_depend_on_the_batch_size():
    gen = torch.Generator().manual_seed(0)
    pred, target = torch.rand(101, generator=gen) * 4 + 1, torch.randint(1, 6, (101,), generator=gen).float()
    for size in (1, 7, 101):
        ev = RatingEvaluator()
        for p, t in zip(pred.split(size), target.split(size)):
            ev.update(p, t)
        got = ev.compute()
        assert got["rmse"] == pytest.approx(rmse(pred, target), rel=1e-9) and got["mae"] == pytest.approx(mae(pred, target), rel=1e-9)


def _feature_tables(folder: Path, n_users: int, n_items: int, gender: list[str]) -> None:
    genres = ["unknown", "Action"]
    (folder / "u.genre").write_text("".join(f"{g}|{k}\n" for k, g in enumerate(genres)), encoding="latin-1")
    (folder / "u.user").write_text("".join(f"{u}|30|{gender[u - 1]}|other|12345\n" for u in range(1, n_users + 1)))
    (folder / "u.item").write_text("".join(f"{i}|t {i}|01-Jan-1995||url|0|1\n" for i in range(1, n_items + 1)), encoding="latin-1")


def test_gcmc_side_features_reach_users_without_training_ratings(tmp_path):
    """A user's gender sets every rating (F: 5, M: 1); users 1-6 have no training rating, so only the
    side-feature branch can tell their level. With the feature their test RMSE drops far below the
    featureless model's, and the record says what was built."""
    n_users, n_items = 30, 20
    gender = ["F" if u % 2 else "M" for u in range(1, n_users + 1)]
    rng = np.random.default_rng(0)
    rows = [(u, i, 5 if gender[u - 1] == "F" else 1) for u in range(1, n_users + 1) for i in range(1, n_items + 1) if rng.random() < 0.5]
    folder = tmp_path / "data" / "ml-100k"
    folder.mkdir(parents=True)
    _write(folder / "u1.base", [r for r in rows if r[0] > 6])
    _write(folder / "u1.test", [r for r in rows if r[0] <= 6])
    _feature_tables(folder, n_users, n_items, gender)
    common = ("model.hidden_dim=20", "model.out_dim=8", "model.dropout=0.0", "task.lr=0.02", "trainer.max_epochs=100")
    plain = run_experiment(_cfg(tmp_path / "a", tmp_path / "data", *common))
    featured = run_experiment(_cfg(tmp_path / "b", tmp_path / "data", *common, "+data.features.user={gender: onehot}"))
    assert featured["test/rmse"] < 0.5 * plain["test/rmse"]  # without features a cold user gets a mid-range guess
    record = json.loads((tmp_path / "b" / "out" / "results.jsonl").read_text().splitlines()[-1])
    assert record["side_features"]["user"]["columns"] == ["gender=F", "gender=M"]


def test_rating_side_features_are_fitted_on_training_users(tmp_path):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    _write(folder / "u1.base", [(u, i, 3) for u in range(2, 5) for i in range(1, 4)])
    _write(folder / "u1.test", [(1, 1, 4), (1, 2, 2)])  # user 1: test ratings only
    _feature_tables(folder, 4, 3, ["F", "M", "M", "M"])
    (folder / "u.user").write_text("1|90|F|artist|1\n2|20|M|doctor|2\n3|30|M|doctor|3\n4|40|M|writer|4\n")
    dm = RatingDataModule(data_dir=str(tmp_path), features={"user": {"age": "numeric", "occupation": "onehot"}}, val_fraction=0.2)
    user = dm.side_features()["user"]
    assert dm.feature_report["user"]["unseen"] == {"occupation": 1}  # user 1's 'artist' is not a training user's
    assert user.shape == (4, 3) and user[0, 1:].tolist() == [0.0, 0.0]
    assert abs(float(user[1:, 0].mean())) < 1e-5 and float(user[0, 0]) > 3  # scaled by users 2-4 only
    with pytest.raises(ValueError, match="data.features: dataset 'x' has no side-feature tables"):
        RatingDataModule(dataset="recbole:x", split="ratio", features={"user": {"age": "numeric"}}).side_features()
