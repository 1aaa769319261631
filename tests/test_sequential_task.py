"""task=sequential: the DataModule's splits never leak a later item, states and metrics do not depend on
padding or batch size, the UniSRec release's sequences are read as released, and run_experiment trains
every sequential model (text ones through text=frozen)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from graphrec_lab.data.sequence_datamodule import SequentialDataModule
from graphrec_lab.data.sequential import pad_sequences
from graphrec_lab.evaluation.evaluator import FullRankingEvaluator
from graphrec_lab.models.sequential import GRU4Rec, SASRec, SRGNN
from tests.data.test_ecommerce import write_release

SYNTH = {"num_users": 40, "num_items": 30, "interactions_per_user": 9}
MODELS = {
    "gru4rec": lambda: GRU4Rec(30, dim=8, dropout=0.0),
    "sasrec": lambda: SASRec(30, dim=8, max_length=12, num_layers=2, dropout=0.0),
    "srgnn": lambda: SRGNN(30, dim=8),
    "sasrec-text-features": lambda: SASRec(30, dim=8, max_length=12, num_layers=1, dropout=0.0,
                                           item_features=torch.randn(30, 6), feature_mode="features", adaptor_dropout=0.0),
    "gru4rec-text-sum": lambda: GRU4Rec(30, dim=8, dropout=0.0, item_features=torch.randn(30, 6), feature_mode="sum",
                                        adaptor_dropout=0.0),
}


def _dm(**kw) -> SequentialDataModule:
    args = {"dataset": "synthetic", "synthetic": SYNTH, "max_length": 12, "train_batch_size": 16, "eval_batch_size": 16} | kw
    dm = SequentialDataModule(**args)
    dm.setup()
    return dm


def test_training_samples_are_prefixes_and_held_out_items_come_last_in_time():
    dm = _dm(max_length=4)
    raw = dm._raw
    when = {(int(u), int(i)): int(t) for u, i, t in zip(raw.user, raw.item, raw.timestamp)}
    rows = dm._rows["train"]
    expected = []
    for user, (seq, valid, test) in dm.sequences().items():
        times = [when[(user, i)] for i in seq]
        assert times == sorted(times) and times[-1] < when[(user, valid)] < when[(user, test)]
        expected += [(user, seq[max(0, t - 4):t], seq[t]) for t in range(1, len(seq))]
    got = [(int(u), [i - 1 for i in h.tolist() if i > 0], int(y)) for u, h, y in zip(rows.users, rows.history, rows.target)]
    assert got == expected  # each sample: the latest <= 4 items before its target, nothing later
    val, test = dm._rows["val"], dm._rows["test"]
    for k, user in enumerate(val.users.tolist()):
        seq, valid, _ = dm.sequences()[user]
        assert [i - 1 for i in val.history[k].tolist() if i > 0] == seq[-4:]
        assert [i - 1 for i in test.history[k].tolist() if i > 0] == (seq + [valid])[-4:]


def test_exclude_history_masks_the_known_items():
    batch = next(iter(_dm(exclude_history=True).test_dataloader()))
    dm = _dm(exclude_history=True)
    for row, user in enumerate(batch.users.tolist()[:5]):
        seq, valid, _ = dm.sequences()[user]
        assert set(batch.exclude[1][batch.exclude[0] == row].tolist()) == set(seq) | {valid}
    assert next(iter(_dm().test_dataloader())).exclude.numel() == 0


@pytest.mark.parametrize("name", list(MODELS))
def test_states_do_not_depend_on_padding(name):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    seqs = [[3, 5, 7], [1], [2, 2, 9, 4, 4, 8]]
    with torch.no_grad():  # eval mode and no grad: torch's fused attention path
        tight = model(pad_sequences(seqs, 6))
        loose = model(pad_sequences(seqs, 12))
    assert torch.isfinite(loose).all()
    torch.testing.assert_close(tight, loose)


@pytest.mark.parametrize("name", ["gru4rec", "sasrec", "srgnn"])
def test_metrics_do_not_depend_on_the_evaluation_batch_size(name):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    results = []
    for batch_size in (3, 1000):
        evaluator = FullRankingEvaluator(30, (5, 10), ("recall", "ndcg"))
        for batch in _dm(eval_batch_size=batch_size).test_dataloader():
            with torch.no_grad():
                evaluator.update(model.full_scores(batch.history), batch.eval_batch())
        results.append(evaluator.compute())
    assert results[0] == pytest.approx(results[1], abs=1e-12)


def test_the_unisrec_release_is_read_as_released(tmp_path):
    rng = random.Random(0)
    sequences = {u: [rng.randrange(25) for _ in range(rng.randint(3, 70))] for u in range(30)}
    write_release(tmp_path / "Gen", "Gen", sequences, 25)
    dm = SequentialDataModule(dataset="unisrec:Gen", data_dir=str(tmp_path), max_length=50)
    assert dm.sequences() == {u: (s[:-2], s[-2], s[-1]) for u, s in sequences.items()}  # repeats kept
    assert len(dm._rows["train"]) == sum(len(s) - 3 for s in sequences.values())
    assert len(dm.item_texts()) == 25 and dm.item_texts()[3].startswith("Item 3")


def test_data_without_timestamps_is_refused(tmp_path):
    folder = tmp_path / "notime"
    folder.mkdir()
    (folder / "notime.inter").write_text("user_id:token\titem_id:token\n" + "".join(f"u{u}\ti{i}\n" for u in range(5) for i in range(4)))
    with pytest.raises(ValueError, match="no timestamps"):
        SequentialDataModule(dataset="recbole:notime", data_dir=str(tmp_path)).setup()


@pytest.mark.parametrize("model", ["gru4rec", "sasrec", "srgnn"])
def test_run_experiment_trains_each_sequential_model(tmp_path, model):
    from graphrec_lab.config import compose
    from graphrec_lab.experiment import run_experiment

    cfg = compose([
        f"paths.root={tmp_path}", "data=sequential_synthetic", "task=sequential", f"model={model}",
        "optimized_metric=val/ndcg@10", "trainer.max_epochs=2", "trainer.check_val_every_n_epoch=1",
        "trainer.accelerator=cpu", "logger=csv", "data.synthetic.num_users=60", "data.synthetic.num_items=40", "model.dim=8",
    ])  # fmt: skip
    metrics = run_experiment(cfg)
    assert {"test/recall@10", "test/ndcg@50", "val/ndcg@10"} <= set(metrics)
    assert metrics["test/num_users"] == 60
    record = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])
    ckpt = torch.load(Path(record["paths"]["run_dir"]) / "checkpoints" / "best.ckpt", weights_only=True)
    assert any("config" in v for v in ckpt.values() if isinstance(v, dict))
    from graphrec_lab.inference import load_run
    from graphrec_lab.inference.run import InferenceError

    with pytest.raises(InferenceError, match="sequential models histories"):  # recommend/export/explain say why not
        load_run(record["paths"]["run_dir"]).embeddings()


def _text_run(tmp_path, encoder_dir, *extra: str) -> list[str]:
    """Overrides of a UniSRec run on 40 synthetic users with the tiny encoder; ``extra`` picks the text mode."""
    return [
        f"paths.root={tmp_path}", "data=sequential_synthetic", "task=sequential", "model=unisrec",
        f"text.encoder.model_name_or_path={encoder_dir}", "text.encoder.max_length=16",
        "optimized_metric=val/ndcg@10", "trainer.check_val_every_n_epoch=1", "trainer.accelerator=cpu", "logger=csv",
        "data.synthetic.num_users=40", "data.synthetic.num_items=30", "model.dim=8", *extra,
    ]  # fmt: skip


def test_run_experiment_trains_the_text_model(tmp_path, tiny_encoder_dir):
    from graphrec_lab.config import compose
    from graphrec_lab.experiment import run_experiment

    cfg = compose(_text_run(tmp_path, tiny_encoder_dir, "text=frozen", "text.cache_dir=none", "trainer.max_epochs=1"))
    assert run_experiment(cfg)["test/num_users"] == 40


def test_a_zoo_model_under_the_sequential_task_is_named(tmp_path):
    from graphrec_lab.config import ConfigError, compose
    from graphrec_lab.experiment import run_experiment

    cfg = compose([f"paths.root={tmp_path}", "data=sequential_synthetic", "task=sequential", "model=lightgcn",
                   "optimized_metric=val/ndcg@10", "trainer.accelerator=cpu", "logger=csv"])  # fmt: skip
    with pytest.raises(ConfigError, match="task=sequential needs a sequential model"):
        run_experiment(cfg)


def test_lora_text_trains_the_adapters_of_a_sequential_model(tmp_path, tiny_encoder_dir):
    """text=lora under task=sequential: the adapters get gradients through the batch's re-encoded
    rows, the checkpoint keeps the adapters (not the frozen encoder), and evaluation reads a bank
    re-encoded with the trained adapters."""
    from graphrec_lab.config import compose
    from graphrec_lab.experiment import run_experiment

    cfg = compose(_text_run(tmp_path, tiny_encoder_dir, "text=lora", "text.max_live_texts=8", "trainer.max_epochs=2"))
    assert run_experiment(cfg)["test/num_users"] == 40
    record = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])
    state = torch.load(Path(record["paths"]["run_dir"]) / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    lora_b = [v for k, v in state.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b), "LoRA B starts at zero: trained adapters are not"
    assert not any(k.startswith("text.") and "lora_" not in k for k in state), "frozen encoder weights are not saved"


def test_lora_bank_refresh_and_live_rows(tiny_encoder_dir):
    """The bank is the model's text buffer (a view): a refresh writes every item's encoding with the
    current adapters; a training step's live rows carry gradients to the adapters, the others none."""
    from hydra.utils import instantiate

    from graphrec_lab.config import compose
    from graphrec_lab.models.sequential import SASRec

    cfg = compose(["text=lora", f"text.encoder.model_name_or_path={tiny_encoder_dir}", "text.encoder.max_length=16",
                   "text.max_live_texts=3"])  # fmt: skip
    text = instantiate(cfg.text)
    texts = [f"item number {i} of the catalogue" for i in range(6)]
    feats = text.attach(texts)
    model = SASRec(6, dim=8, max_length=5, item_features=torch.zeros_like(feats), feature_mode="features")
    text.refresh_bank(model.text_bank())
    assert torch.allclose(model.text_features[1:], feats, atol=1e-5) and model.text_features[0].abs().sum() == 0
    live = text.live_bank(model.text_bank(), torch.tensor([0, 1, 1, 4, 5]))
    assert live.requires_grad and not model.text_bank().requires_grad
    model.live_text = live
    model.full_scores(torch.tensor([[0, 1, 2]])).sum().backward()
    grads = [p.grad for n, p in text.named_parameters() if p.requires_grad and "lora_B" in n]  # B starts at 0: its gradient is non-zero
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads)
