"""UniSRec's pre-training tasks: item drop keeps order and alignment; the in-batch contrastive losses
equal a hand-written softmax with same-target rows left out; task.loss=unisrec trains end to end."""

from __future__ import annotations

import math

import pytest
import torch

from graphrec_lab.training.objectives.contrastive import info_nce
from graphrec_lab.training.sequence_losses import item_drop


def test_item_drop_keeps_order_right_alignment_and_at_least_one_item():
    torch.manual_seed(0)
    history = torch.tensor([[0, 0, 3, 5, 7, 9], [0, 0, 0, 0, 0, 4], [1, 2, 3, 4, 5, 6]])
    assert torch.equal(item_drop(history, 0.0), history)
    for _ in range(200):
        out = item_drop(history, 0.5)
        for row, orig in zip(out, history):
            kept = row[row > 0].tolist()
            assert kept and kept == [i for i in orig.tolist() if i in kept]  # a subsequence, in order
            assert (row[: len(row) - len(kept)] == 0).all()  # right-aligned
    gen = torch.Generator().manual_seed(1)
    big = torch.arange(1, 10001).reshape(100, 100)
    rate = 1 - (item_drop(big, 0.2, gen) > 0).float().mean().item()
    assert abs(rate - 0.2) < 0.01  # each item dropped with probability 0.2


def test_in_batch_contrast_against_a_hand_computed_softmax():
    states = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    items = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, -1.0]])
    targets = torch.tensor([5, 7, 5])  # rows 0 and 2 share a target: not each other's negatives
    tau = 0.5
    s = torch.nn.functional.normalize(states, dim=1)
    c = torch.nn.functional.normalize(items, dim=1)
    cos = (s @ c.T).tolist()
    expected = 0.0
    for i, allowed in enumerate(([0, 1], [0, 1, 2], [1, 2])):
        denom = sum(math.exp(cos[i][j] / tau) for j in allowed)
        expected += -math.log(math.exp(cos[i][i] / tau) / denom)
    assert info_nce(states, items, tau, targets).item() == pytest.approx(expected / 3, rel=1e-5)


def test_unisrec_pretraining_runs_and_bad_loss_is_named(tmp_path):
    import json

    from graphrec_lab.config import ConfigError, compose
    from graphrec_lab.experiment import run_experiment

    base = [f"paths.root={tmp_path}", "data=sequential_synthetic", "task=sequential", "model=sasrec", "model.dim=8",
            "optimized_metric=val/ndcg@10", "trainer.max_epochs=2", "trainer.check_val_every_n_epoch=1",
            "trainer.accelerator=cpu", "logger=csv", "data.synthetic.num_users=50", "data.synthetic.num_items=30"]  # fmt: skip
    metrics = run_experiment(compose([*base, "task.loss=unisrec"]))
    assert metrics["test/num_users"] == 50
    record = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])
    assert record["config"]["task"]["loss"] == "unisrec"
    with pytest.raises(ConfigError, match="task.loss='bpr': task=sequential takes one of ce, unisrec"):
        run_experiment(compose([*base, "task.loss=bpr"]))


def test_train_only_freezes_every_other_parameter_and_names_unknown_prefixes():
    from graphrec_lab.config import ConfigError
    from graphrec_lab.models.sequential import SASRec
    from graphrec_lab.training.sequential_task import SequentialTask

    model = SASRec(6, dim=4, max_length=3, item_features=torch.randn(6, 5), feature_mode="sum")
    task = SequentialTask(model, train_only=["adaptor", "item_embedding"])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("adaptor.", "item_embedding.")) for n in trainable)
    optimised = {id(p) for g in task.configure_optimizers().param_groups for p in g["params"]}
    assert optimised == {id(p) for p in model.parameters() if p.requires_grad}
    with pytest.raises(ConfigError, match=r"no parameter under \['adapter'\].*'encoder', 'item_embedding'"):
        SequentialTask(SASRec(6, dim=4, max_length=3), train_only=["adapter"])


def test_the_task_optimises_the_unisrec_objective_when_asked():
    """task.loss=unisrec: the step's loss is sequence-item + weight x sequence-sequence on the model's
    states (same item-drop draw), not the cross-entropy."""
    import torch.nn.functional as F

    from graphrec_lab.data.sequence_datamodule import SequenceBatch
    from graphrec_lab.models.sequential import SASRec
    from graphrec_lab.training.sequential_task import SequentialTask

    torch.manual_seed(0)
    model = SASRec(8, dim=4, max_length=4, dropout=0.0)
    model.eval()
    batch = SequenceBatch(torch.arange(3), torch.tensor([[0, 1, 2, 3], [0, 0, 4, 5], [6, 7, 8, 1]]),
                          torch.tensor([4, 0, 4]), torch.empty(2, 0, dtype=torch.long))  # fmt: skip
    task = SequentialTask(model, loss="unisrec", seq_seq_weight=0.5, item_drop=0.3)
    torch.manual_seed(1)
    got = task._loss(batch)
    torch.manual_seed(1)
    table = model.item_table()
    states = model(batch.history, table)
    want = info_nce(states, table[batch.target + 1], 0.07, batch.target) + 0.5 * info_nce(
        states, model(item_drop(batch.history, 0.3), table), 0.07, batch.target)
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    ce = F.cross_entropy(model.full_scores(batch.history), batch.target)
    assert got.item() != pytest.approx(ce.item(), rel=1e-3)
    assert SequentialTask(model)._loss(batch).item() == pytest.approx(ce.item(), rel=1e-6)
