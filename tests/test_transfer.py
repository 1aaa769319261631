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


def _train(model: SASRec, dm: SequentialDataModule, epochs: int = 15) -> None:
    """Full-softmax next-item training with Adam (lr 5e-3)."""
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(epochs):
        model.train()
        for batch in dm.train_dataloader():
            loss = F.cross_entropy(model.full_scores(batch.history), batch.target)
            opt.zero_grad()
            loss.backward()
            opt.step()


@pytest.fixture(scope="module")
def source_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    dm = _domain("source", planted=True, seed=1, num_items=60)
    model = _model(dm)
    _train(model, dm)
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
    assert "mapped" not in record["init_from"]
    run_experiment(compose([*base, f"init_from={source}", "init_from_ids=text", "fit=false", "+data.synthetic.seed=7"]))
    mapped = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])["init_from"]["mapped"]
    assert [m["table"] for m in mapped] == ["item_embedding.weight"] and mapped[0]["items"] == 30
    with pytest.raises(ConfigError, match="init_from and ckpt_path"):
        run_experiment(compose([*base, f"init_from={source}", f"ckpt_path={source}/checkpoints/best.ckpt"]))


def test_text_neighbours_against_a_brute_force_cosine():
    """TF-IDF neighbours equal a dense brute-force cosine over the same vectorizer; chunking changes nothing."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    import graphrec_lab.training.text_id_map as tim

    source = ["red apple pie", "green apple", "blue car engine", "fast red car", "kitchen knife"]
    target = ["apple pie recipe", "red car", "garden hose", "knife"]
    ids, sims = tim.text_neighbours(source, target, k=3)
    vec = TfidfVectorizer(sublinear_tf=True).fit(source + target)
    dense = torch.from_numpy((vec.transform(target) @ vec.transform(source).T).toarray()).float()
    assert torch.allclose(sims, dense.sort(1, descending=True).values[:, :3], atol=1e-6)
    assert torch.allclose(dense.gather(1, ids), sims, atol=1e-6)
    assert sims[2].abs().sum() == 0  # "garden hose" shares no term with the source
    old = tim.CHUNK
    try:
        tim.CHUNK = 1
        ids1, sims1 = tim.text_neighbours(source, target, k=3)
    finally:
        tim.CHUNK = old
    assert torch.allclose(sims1, sims)


def test_map_item_rows_copies_same_text_rows_averages_the_rest_and_keeps_unrelated_fresh():
    from graphrec_lab.training.text_id_map import map_item_rows, text_neighbours

    source = ["alpha beta", "gamma delta", "gamma epsilon"]
    target = ["gamma delta", "gamma zeta", "omega"]
    src_rows = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    fresh = torch.full((3, 2), 7.0)
    ids, sims = text_neighbours(source, target, k=2)
    rows, report = map_item_rows(src_rows, fresh, ids, sims, "t")
    assert torch.equal(rows[0], src_rows[1])  # same text: that item's row
    w = sims[1].clamp(min=0)
    assert torch.allclose(rows[1], (w.unsqueeze(1) * src_rows[ids[1]]).sum(0) / w.sum())
    assert rows[1, 0] == 0 and 1 < rows[1, 1] < 3  # between the two "gamma" items' rows
    assert torch.equal(rows[2], fresh[2])  # no shared term: fresh
    assert (report.items, report.mapped, report.exact) == (3, 2, 1)


def test_init_from_ids_text_carries_id_rows_through_text(source_id_checkpoint):
    """An ID-only SASRec trained on one planted domain, warm-started on another planted domain whose
    items share the text vocabulary: with ids="text" the item rows come from same-topic source items
    and zero-shot NDCG@10 is well above the fresh-ID warm start (which can only be at chance)."""
    ckpt, src_dm = source_id_checkpoint
    dm = _domain("target", planted=True, seed=2)
    texts = dm.item_texts()
    scores = {}
    for ids in ("fresh", "text"):
        torch.manual_seed(3)
        model = SASRec(dm._raw.num_items, dim=16, max_length=8, num_layers=1, dropout=0.0)
        report = warm_start(model, ckpt, ids=ids, target_item_texts=texts if ids == "text" else None, k=5)
        scores[ids] = _ndcg(model, dm)
        if ids == "text":
            assert report.mapped == [{"table": "item_embedding.weight", "items": 48, "mapped": 48, "exact": 48, "mean_top1": 1.0}]
    assert scores["text"] > 3 * scores["fresh"], scores
    with pytest.raises(ConfigError, match="init_from_ids=text: this run's data has no item text"):
        warm_start(SASRec(48, dim=16, max_length=8, num_layers=1), ckpt, ids="text")
    with pytest.raises(ConfigError, match="holds no run config"):  # a bare state dict: no source data to read texts from
        warm_start(SASRec(48, dim=16, max_length=8, num_layers=1), _save(SASRec(60, dim=16, max_length=8, num_layers=1),
                   ckpt.parent / "bare.ckpt"), ids="text", target_item_texts=texts)  # fmt: skip
    with pytest.raises(ConfigError, match="init_from_ids='nearest'"):
        warm_start(SASRec(48, dim=16, max_length=8, num_layers=1), ckpt, ids="nearest")


@pytest.fixture(scope="module")
def source_id_checkpoint(tmp_path_factory):
    """An ID-only SASRec trained on a planted synthetic domain, saved with its data config (as
    run_experiment's checkpoints are), so the source items' texts can be rebuilt."""
    from graphrec_lab.training.checkpoint import CHECKPOINT_KEY

    torch.manual_seed(0)
    synthetic = {"name": "source", "num_users": 300, "num_items": 60, "length": 10, "planted": True, "seed": 1}
    dm = _domain("source", planted=True, seed=1, num_items=60)
    model = SASRec(dm._raw.num_items, dim=16, max_length=8, num_layers=1, dropout=0.0)
    _train(model, dm)
    data = {"_target_": "graphrec_lab.data.sequence_datamodule.SequentialDataModule", "dataset": "synthetic_domain",
            "max_length": 8, "synthetic": synthetic}  # fmt: skip
    path = tmp_path_factory.mktemp("source-id") / "source.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                CHECKPOINT_KEY: {"config": {"data": data}, "num_items": 60}}, path)  # fmt: skip
    return path, dm


def test_init_from_ids_text_maps_the_item_block_of_a_zoo_table(tmp_path):
    """LightGCN's [U + I, D] table: the item rows (after the users) are mapped through text with the
    source's own user count as offset; the user rows keep their fresh initialisation."""
    from graphrec_lab.models import LightGCN
    from graphrec_lab.training.checkpoint import CHECKPOINT_KEY

    synthetic = {"name": "source", "num_users": 50, "num_items": 30, "length": 6, "planted": True, "seed": 1}
    data = {"_target_": "graphrec_lab.data.sequence_datamodule.SequentialDataModule", "dataset": "synthetic_domain",
            "max_length": 8, "synthetic": synthetic}  # fmt: skip
    torch.manual_seed(0)
    src = LightGCN(7, 30, embedding_dim=4)
    path = tmp_path / "src.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in src.state_dict().items()},
                CHECKPOINT_KEY: {"config": {"data": data}, "num_users": 7, "num_items": 30}}, path)  # fmt: skip
    source_texts = _domain("source", planted=True, seed=1, num_items=30).item_texts()
    target_texts = [source_texts[5], source_texts[9], "nothing in common"]
    dst = LightGCN(4, 3, embedding_dim=4)
    before = dst.state_dict()["input.embedding.weight"].clone()
    report = warm_start(dst, path, ids="text", target_item_texts=target_texts, k=30)
    table = dst.state_dict()["input.embedding.weight"]
    source_rows = src.state_dict()["input.embedding.weight"][7:]
    assert torch.equal(table[:4], before[:4])  # users: fresh
    same = [i for i, t in enumerate(source_texts) if t == source_texts[5]]
    assert torch.allclose(table[4], source_rows[same].mean(0))  # same text: the mean of those items' rows
    assert torch.equal(table[6], before[6])  # no shared term: fresh
    assert report.mapped[0]["table"] == "input.embedding.weight" and report.mapped[0]["exact"] == 2


def test_warm_start_never_loads_separate_user_and_item_tables(tmp_path):
    """MF keeps separate [U, D] and [I, D] tables: of the same shapes on another dataset they still
    start fresh (they index other users and items)."""
    from graphrec_lab.models import MatrixFactorization as BPRMF

    src = BPRMF(5, 6, embedding_dim=4)
    path = tmp_path / "mf.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in src.state_dict().items()}}, path)
    dst = SASRec(6, dim=4)  # shares nothing: an error, not a silent ID copy
    with pytest.raises(ConfigError, match="shares no parameter"):
        warm_start(dst, path)
    mf = BPRMF(5, 6, embedding_dim=4)
    with pytest.raises(ConfigError, match="shares no parameter"):  # only ID tables in common
        warm_start(mf, path)
    assert not torch.equal(mf.state_dict()["input.item_embedding.weight"], src.state_dict()["input.item_embedding.weight"])


def test_a_multi_domain_dataset_is_the_union_of_its_domains():
    """data.domains: disjoint ids, each domain's own split shifted into the union, texts concatenated,
    training rows from every domain; bad domain entries are named."""
    doms = [{"dataset": "synthetic_domain", "synthetic": {"name": n, "num_users": 40, "num_items": k, "length": 6, "seed": s}}
            for n, k, s in (("a", 30, 1), ("b", 20, 2))]  # fmt: skip
    union = SequentialDataModule(dataset="multi", domains=doms, max_length=8)
    union.setup()
    parts = [SequentialDataModule(dataset="synthetic_domain", synthetic=d["synthetic"], max_length=8) for d in doms]
    for p in parts:
        p.setup()
    assert (union._raw.num_users, union._raw.num_items) == (80, 50)
    assert union.item_texts() == parts[0].item_texts() + parts[1].item_texts()
    assert union.sequences()[40 + 3] == tuple(
        [i + 30 for i in x] if isinstance(x, list) else x + 30 for x in parts[1].sequences()[3]
    )
    assert len(union._rows["train"]) == len(parts[0]._rows["train"]) + len(parts[1]._rows["train"])
    assert union.load_graph().meta["domains"][1] == {"name": "synthetic_domain/b", "user_offset": 40, "num_users": 40,
                                                     "item_offset": 30, "num_items": 20}  # fmt: skip
    with pytest.raises(ValueError, match=r"data.domains\[1\]: unknown keys \['max_len'\]"):
        SequentialDataModule(dataset="multi", domains=[doms[0], {**doms[1], "max_len": 3}]).setup()
    with pytest.raises(ValueError, match="data.dataset=multi"):
        SequentialDataModule(dataset="synthetic_domain", domains=doms)


def test_multi_domain_pretraining_then_transfer_through_run_experiment(tmp_path, tiny_encoder_dir):
    """A text-only model pre-trained on two synthetic domains at once warm-starts a third domain."""
    from graphrec_lab.config import compose
    from graphrec_lab.experiment import run_experiment

    common = [f"paths.root={tmp_path}", "task=sequential", "model=unisrec", "model.feature_mode=features", "text=frozen",
              f"text.encoder.model_name_or_path={tiny_encoder_dir}", "text.encoder.max_length=16", "text.cache_dir=none",
              "optimized_metric=val/ndcg@10", "trainer.max_epochs=1", "trainer.check_val_every_n_epoch=1",
              "trainer.accelerator=cpu", "logger=csv", "model.dim=8"]  # fmt: skip
    domains = ("data.domains=[{dataset: synthetic_domain, synthetic: {name: a, num_users: 30, num_items: 20, seed: 1}},"
               "{dataset: synthetic_domain, synthetic: {name: b, num_users: 30, num_items: 25, seed: 2}}]")
    run_experiment(compose([*common, "data=sequential_multi", domains]))
    record = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])
    assert (record["data"]["num_users"], record["data"]["num_items"]) == (60, 45)
    run_experiment(compose([*common, "data=sequential_scientific", "data.dataset=synthetic_domain", "data.reader={}",
                            "+data.synthetic.name=c", "+data.synthetic.num_users=30", "+data.synthetic.num_items=15",
                            f"init_from={record['paths']['run_dir']}", "fit=false"]))  # fmt: skip
    warm = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])["init_from"]
    assert warm["loaded"] > 0 and "item_embedding.weight" in warm["fresh"]
