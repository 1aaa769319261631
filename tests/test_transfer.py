"""Cross-domain transfer: warm starts load shared layers and never ID tables; on the synthetic
multi-domain generator a text-only model transfers zero-shot where structure was planted and not
where it was not; few-shot keeps a share of the users' training samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from graphrec_lab.config import ConfigError
from graphrec_lab.data.sequence_datamodule import SequentialDataModule
from graphrec_lab.evaluation.evaluator import FullRankingEvaluator
from graphrec_lab.models.sequential import SASRec
from graphrec_lab.training.warm_start import warm_start


def _domain(name: str, planted: bool, seed: int, num_items: int = 48) -> SequentialDataModule:
    dm = SequentialDataModule(
        dataset="synthetic_domain", max_length=8, train_batch_size=128, eval_batch_size=512,
        synthetic={"name": name, "num_users": 300, "num_items": num_items, "length": 10, "planted": planted, "seed": seed},
    )  # fmt: skip
    dm.setup()
    return dm


def _model(dm: SequentialDataModule) -> SASRec:
    return SASRec(dm._raw.num_items, dim=16, max_length=8, num_layers=1, dropout=0.0,
                  item_features=dm._raw.item_features, feature_mode="features", adaptor_dropout=0.0)  # fmt: skip


def _ndcg(model: SASRec, dm: SequentialDataModule) -> float:
    model.eval()
    evaluator = FullRankingEvaluator(dm._raw.num_items, (10,), ("ndcg",))
    with torch.no_grad():
        for batch in dm.test_dataloader():
            evaluator.update(model.full_scores(batch.history), batch.eval_batch())
    return evaluator.compute()["ndcg@10"]


def _save(model: SASRec, path: Path) -> Path:
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, path)
    return path


@pytest.fixture(scope="module")
def source_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    dm = _domain("source", planted=True, seed=1, num_items=60)
    model = _model(dm)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(15):
        model.train()
        for batch in dm.train_dataloader():
            loss = F.cross_entropy(model.full_scores(batch.history), batch.target)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return _save(model, tmp_path_factory.mktemp("source") / "source.ckpt")


def test_zero_shot_transfer_where_planted_and_none_where_not(source_checkpoint):
    scores = {}
    for planted in (True, False):
        dm = _domain("target", planted=planted, seed=2)  # other items, other users, never trained on
        torch.manual_seed(3)
        fresh = _model(dm)
        scores[("fresh", planted)] = _ndcg(fresh, dm)
        report = warm_start(fresh, source_checkpoint)
        assert "item_embedding.weight" in report.fresh and "text_features" in report.fresh
        scores[("transfer", planted)] = _ndcg(fresh, dm)
    chance = scores[("fresh", False)]
    assert scores[("transfer", True)] > 3 * max(scores[("fresh", True)], chance)  # the planted rule carried over
    assert scores[("transfer", False)] < 2 * max(chance, 0.05)  # nothing to carry where nothing was planted


def test_warm_start_loads_shared_layers_and_never_id_tables(tmp_path):
    torch.manual_seed(0)
    src = SASRec(30, dim=8, max_length=8, num_layers=1)
    ckpt = _save(src, tmp_path / "src.ckpt")
    dst = SASRec(30, dim=8, max_length=8, num_layers=1)  # same shapes: the ID table still stays fresh
    before = dst.item_embedding.weight.clone()
    report = warm_start(dst, ckpt)
    torch.testing.assert_close(dst.item_embedding.weight, before)
    torch.testing.assert_close(dst.position.weight, src.position.weight)
    assert "position.weight" in report.loaded and report.fresh == ["item_embedding.weight"]
    wider = SASRec(30, dim=8, max_length=12, num_layers=1)
    assert "position.weight" in warm_start(wider, ckpt).shape_mismatch


def test_warm_start_errors_name_init_from(tmp_path):
    with pytest.raises(ConfigError, match="init_from=.*no such run directory"):
        warm_start(SASRec(5, dim=4), tmp_path / "missing")
    (tmp_path / "run").mkdir()
    with pytest.raises(ConfigError, match="no checkpoints/best.ckpt"):
        warm_start(SASRec(5, dim=4), tmp_path / "run")
    torch.save({"state_dict": {"model.other.weight": torch.zeros(2)}}, tmp_path / "x.ckpt")
    with pytest.raises(ConfigError, match="shares no parameter"):
        warm_start(SASRec(5, dim=4), tmp_path / "x.ckpt")


def test_few_shot_keeps_a_share_of_users_and_evaluates_all():
    full = _domain("t", planted=True, seed=2)
    few = SequentialDataModule(dataset="synthetic_domain", max_length=8, train_user_fraction=0.1, split_seed=5,
                               synthetic={"name": "t", "num_users": 300, "num_items": 48, "length": 10, "seed": 2})  # fmt: skip
    few.setup()
    assert len(set(few._rows["train"].users.tolist())) == 30
    assert len(few._rows["test"]) == len(full._rows["test"]) == 300


def test_init_from_through_run_experiment(tmp_path):
    from graphrec_lab.config import compose
    from graphrec_lab.experiment import run_experiment

    base = [f"paths.root={tmp_path}", "data=sequential_synthetic", "task=sequential", "model=sasrec", "model.dim=8",
            "optimized_metric=val/ndcg@10", "trainer.max_epochs=1", "trainer.check_val_every_n_epoch=1",
            "trainer.accelerator=cpu", "logger=csv", "data.synthetic.num_users=50", "data.synthetic.num_items=30"]  # fmt: skip
    run_experiment(compose(base))
    source = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])["paths"]["run_dir"]
    run_experiment(compose([*base, f"init_from={source}", "fit=false", "+data.synthetic.seed=7"]))
    record = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])
    assert record["init_from"]["loaded"] > 0 and record["init_from"]["fresh"] == ["item_embedding.weight"]
    with pytest.raises(ConfigError, match="init_from and ckpt_path"):
        run_experiment(compose([*base, f"init_from={source}", f"ckpt_path={source}/checkpoints/best.ckpt"]))
