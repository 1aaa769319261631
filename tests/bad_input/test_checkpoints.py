"""Checkpoints: every one carries its run's config; ``ckpt_path`` is read with ``weights_only=True``
and checked against the run before Lightning loads it; training keeps a ``last.ckpt`` to resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from graphrec_lab.config import compose
from graphrec_lab.experiment import run_experiment
from graphrec_lab.training.checkpoint import CHECKPOINT_KEY, CheckpointError
from tests.conftest import tiny_overrides


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The checkpoint folder of one tiny LightGCN run (4 epochs, validated every 2)."""
    out = tmp_path_factory.mktemp("ckpt-run")
    run_experiment(compose(tiny_overrides(out)))
    return next(out.glob("runs/*/*/checkpoints"))


def evaluate(tmp_path: Path, ckpt: Path, *extra: str) -> dict[str, float]:
    return run_experiment(compose(tiny_overrides(tmp_path, f"ckpt_path={ckpt}", "fit=false", *extra)))


def test_training_keeps_best_and_last_checkpoints_with_the_run_config(trained):
    assert {p.name for p in trained.iterdir()} == {"best.ckpt", "last.ckpt"}
    saved = torch.load(trained / "last.ckpt", map_location="cpu", weights_only=True)[CHECKPOINT_KEY]
    assert saved["config"]["model"]["_target_"] == "graphrec_lab.models.LightGCN"
    assert saved["config"]["data"]["synthetic"]["num_users"] == 120
    assert saved["num_items"] == 150 and saved["model"].endswith("LightGCN")
    assert torch.load(trained / "last.ckpt", map_location="cpu", weights_only=True)["epoch"] == 3


def test_resume_from_last_checkpoint_continues_where_it_stopped(tmp_path, trained):
    metrics = run_experiment(compose(tiny_overrides(tmp_path, f"ckpt_path={trained / 'last.ckpt'}", "fit=true", "trainer.max_epochs=6")))
    assert metrics["epochs"] == 6.0  # epochs 4 and 5 trained on top of the 4 saved ones


def test_saved_checkpoint_evaluates(tmp_path, trained):
    assert 0.0 <= evaluate(tmp_path, trained / "best.ckpt")["test/ndcg@20"] <= 1.0


def _bad_files(folder: Path, good: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"empty": folder / "empty.ckpt", "truncated": folder / "truncated.ckpt", "text": folder / "notes.ckpt",
             "pickle": folder / "object.ckpt"}  # fmt: skip
    files["empty"].write_bytes(b"")
    blob = good.read_bytes()
    files["truncated"].write_bytes(blob[: len(blob) // 2])
    files["text"].write_text("not a checkpoint\n")
    torch.save({"state_dict": {}, "thing": Path("x")}, files["pickle"])  # a class weights_only refuses
    return files


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("empty", r"the file is empty \(0 bytes\)"),
        ("truncated", r"not a readable PyTorch checkpoint \(truncated, corrupt"),
        ("text", r"not a readable PyTorch checkpoint"),
        ("pickle", r"not a graphrec_lab checkpoint: it holds objects other than tensors"),
    ],
)
def test_unreadable_checkpoint_names_the_path(tmp_path, trained, kind, message):
    path = _bad_files(tmp_path / "bad", trained / "best.ckpt")[kind]
    with pytest.raises(CheckpointError, match=rf"ckpt_path='{path}': {message}") as info:
        evaluate(tmp_path, path)
    assert "weights_only=False" not in str(info.value)


def test_checkpoint_of_another_model_size_names_what_differs(tmp_path, trained):
    with pytest.raises(CheckpointError, match=r"model\.embedding_dim: checkpoint 64, this run 32") as info:
        evaluate(tmp_path, trained / "best.ckpt", "model.embedding_dim=32")
    assert "checkpoint shape [270, 64], this run [270, 32]" in str(info.value)


def test_checkpoint_of_another_dataset_names_what_differs(tmp_path, trained):
    with pytest.raises(CheckpointError) as info:
        evaluate(tmp_path, trained / "best.ckpt", "data.synthetic.num_users=100")
    message = str(info.value)
    assert "data.synthetic: checkpoint {" in message and "'num_users': 120" in message and "'num_users': 100" in message
    assert "num_users: checkpoint 120, this run 100" in message
    assert "checkpoint shape [270, 64], this run [248, 64]" in message
