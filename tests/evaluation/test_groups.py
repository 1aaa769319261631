"""Generalisation groups: popularity (head/mid/tail) item groups and activity user groups.

The group definitions are checked against a plain per-item / per-user loop, and the evaluator's
per-group metrics against the brute-force per-user metric restricted to the group's users or items.
"""

from __future__ import annotations

import pytest
import torch

from graphrec_lab.config import ConfigError
from graphrec_lab.data.sampling import EvalUsers
from graphrec_lab.evaluation import FullRankingEvaluator
from graphrec_lab.evaluation.groups import GroupSpec, activity_group_names, activity_groups, build_groups, popularity_groups
from tests.evaluation.test_evaluator import brute_force, random_case
from tests.evaluation.test_item_groups import _csr

KS = [1, 5, 10]


def _degrees(train: list[set[int]], num_items: int) -> tuple[torch.Tensor, torch.Tensor]:
    item_degree = torch.zeros(num_items)
    for items in train:
        for i in items:
            item_degree[i] += 1
    return item_degree, torch.tensor([float(len(t)) for t in train])


def _popularity_loop(degree: list[float], cuts: tuple[float, float]) -> list[str]:
    """Reference: walk the items most popular first (ties: lower id), tracking the share before each."""
    order = sorted(range(len(degree)), key=lambda i: (-degree[i], i))
    total, seen, out = sum(degree), 0.0, [""] * len(degree)
    for i in order:
        share = seen / total
        out[i] = "tail" if degree[i] == 0 else "head" if share < cuts[0] else "mid" if share < cuts[1] else "tail"
        seen += degree[i]
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("cuts", [(0.2, 0.8), (0.5, 0.9)])
def test_popularity_groups_match_loop(seed: int, cuts: tuple[float, float]) -> None:
    g = torch.Generator().manual_seed(seed)
    degree = torch.randint(0, 6, (40,), generator=g).float() ** 2  # skewed, with ties and zeros
    groups = popularity_groups(degree, cuts)
    expected = _popularity_loop(degree.tolist(), cuts)
    for name, mask in groups.items():
        assert mask.tolist() == [e == name for e in expected], name
    assert sum(m.long() for m in groups.values()).eq(1).all()  # a partition of the items
    assert groups["head"].any() and groups["tail"].any()
    # The head holds the popular items: its least popular item beats the tail's most popular one.
    assert degree[groups["head"]].min() >= degree[groups["tail"]].max()


def test_activity_groups_match_loop() -> None:
    degree = torch.tensor([0, 1, 4, 5, 6, 19, 20, 300], dtype=torch.float)
    groups = activity_groups(degree, (5, 20))
    assert list(groups) == ["active_lt5", "active_5to19", "active_ge20"] == activity_group_names((5, 20))
    for u, d in enumerate(degree.tolist()):
        name = "active_lt5" if d < 5 else "active_5to19" if d < 20 else "active_ge20"
        assert [n for n, m in groups.items() if m[u]] == [name]


def _evaluate(scores, train, target, batch_size, item_groups=None, user_groups=None):
    num_users, num_items = scores.shape
    users = EvalUsers(target=_csr(target, num_users), exclude=_csr(train, num_users))
    ev = FullRankingEvaluator(num_items, KS, item_groups=item_groups, user_groups=user_groups)
    ids = [users[i] for i in range(len(users))]
    for start in range(0, len(ids), batch_size):
        batch = users.collate(ids[start : start + batch_size])
        ev.update(scores[batch.users].clone(), batch)
    return ev.compute(), ev


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("batch_size", [5, 37])
def test_group_metrics_match_brute_force(seed: int, batch_size: int) -> None:
    scores, train, target = random_case(seed)
    num_users, num_items = scores.shape
    item_degree, user_degree = _degrees(train, num_items)
    items, users = build_groups(GroupSpec.parse(["popularity", "activity"]), item_degree, user_degree)
    users = activity_groups(user_degree, (2, 5))  # bins that split this small case into non-empty groups
    got, ev = _evaluate(scores, train, target, batch_size, items, users)
    for key, value in brute_force(scores, train, target, KS).items():  # overall metrics unchanged
        assert got[key] == pytest.approx(value, abs=1e-12), key
    checked = 0
    for name, mask in items.items():
        group_target = [{i for i in t if mask[i]} for t in target]
        expected = brute_force(scores, train, group_target, KS)
        assert ev.group_num_users[name] == sum(1 for t in group_target if t)
        for key, value in expected.items():
            if key.startswith("itemcoverage"):
                continue
            assert got[f"{name}/{key}"] == pytest.approx(value, abs=1e-12), (name, key)
            checked += 1
    for name, mask in users.items():
        # The group's users only, each with all their held-out items.
        group_target = [t if mask[u] else set() for u, t in enumerate(target)]
        expected = brute_force(scores, train, group_target, KS)
        assert ev.group_num_users[name] == sum(1 for t in group_target if t) > 0
        for key, value in expected.items():
            if key.startswith("itemcoverage"):
                continue
            assert got[f"{name}/{key}"] == pytest.approx(value, abs=1e-12), (name, key)
            checked += 1
    assert checked > 0 and any(got[f"{n}/recall@10"] != got["recall@10"] for n in users)


def test_group_spec_rejects_bad_options() -> None:
    assert not GroupSpec.parse(None).enabled and not GroupSpec.parse([]).enabled
    spec = GroupSpec.parse({"popularity": {"cuts": [0.1, 0.5]}, "activity": None})
    assert spec.cuts == (0.1, 0.5) and spec.bins == (5, 20)
    with pytest.raises(ValueError, match="unknown group kinds"):
        GroupSpec.parse(["popularity", "genre"])
    with pytest.raises(ValueError, match="popularity.cuts"):
        GroupSpec.parse({"popularity": {"cuts": [0.8, 0.2]}})
    with pytest.raises(ValueError, match="activity.bins"):
        GroupSpec.parse({"activity": {"bins": [20, 5]}})


def test_task_adds_groups_from_the_training_graph() -> None:
    from graphrec_lab.data.train_graph import TrainGraph
    from graphrec_lab.models.gnn.lightgcn import LightGCN
    from graphrec_lab.training.task import RecommendationTask

    users = torch.tensor([0, 0, 0, 1, 2, 2])
    items = torch.tensor([0, 1, 2, 0, 0, 3])
    graph = TrainGraph.from_edges(users, items, 3, 5)
    model = LightGCN(num_users=3, num_items=5, embedding_dim=4, num_layers=1)
    task = RecommendationTask(model, group_metrics={"popularity": None, "activity": {"bins": [2]}})
    task.attach_graph(graph)
    task.attach_graph(graph)  # re-attaching the same graph adds nothing twice
    names = set(task.test_evaluator.group_names)
    assert names == {"head", "mid", "tail", "active_lt2", "active_ge2"}
    assert "head/recall@20" in task.test_evaluator.metric_names
    assert task.test_evaluator.group_mask("head").tolist() == [True, False, False, False, False]
    with pytest.raises(ConfigError, match="task.group_metrics"):
        RecommendationTask(model, group_metrics=["genre"])


def test_run_records_group_metrics_and_the_default_adds_none(tmp_path) -> None:
    from graphrec_lab.config import compose
    from graphrec_lab.experiment import run_experiment
    from graphrec_lab.tracking.results import ResultStore
    from tests.conftest import tiny_overrides

    overrides = tiny_overrides(tmp_path, "task.group_metrics=[popularity,activity]", "trainer.max_epochs=1",
                               "trainer.check_val_every_n_epoch=1")
    metrics = run_experiment(compose(overrides), overrides)
    record = ResultStore(tmp_path / "results.jsonl").read()[-1]
    for group in ("head", "mid", "tail", "active_lt5", "active_5to19", "active_ge20"):
        assert f"test/{group}/recall@20" in metrics and f"val/{group}/ndcg@20" in metrics
    assert record["metrics"]["test/head/recall@20"] == metrics["test/head/recall@20"]
    # Popular items are easier to recall than the long tail after training on popularity-skewed data.
    assert metrics["test/head/recall@20"] > metrics["test/tail/recall@20"]
    plain = compose(tiny_overrides(tmp_path / "plain"))
    assert plain.task.group_metrics is None
