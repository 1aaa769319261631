"""Per-item-group metrics of the evaluator against a brute-force per-user loop.

The ranking is over all items with the usual exclusions; only the held-out targets are restricted
to the group, and users without a target in the group are skipped for it.
"""

from __future__ import annotations

import pytest
import torch

from graphrec_lab.data.sampling import CSR, EvalUsers
from graphrec_lab.evaluation import FullRankingEvaluator
from tests.evaluation.test_evaluator import brute_force, random_case

KS = [1, 5, 10]


def _csr(sets: list[set[int]], num_users: int) -> CSR:
    users = torch.tensor([u for u, s in enumerate(sets) for _ in s], dtype=torch.long)
    items = torch.tensor([i for s in sets for i in sorted(s)], dtype=torch.long)
    return CSR(users, items, num_users)


def evaluate_groups(scores, train, target, ks, batch_size, groups, metrics=None):
    num_users, num_items = scores.shape
    users = EvalUsers(target=_csr(target, num_users), exclude=_csr(train, num_users))
    kwargs = {} if metrics is None else {"metrics": metrics}
    ev = FullRankingEvaluator(num_items, ks, item_groups=groups, **kwargs)
    ids = [users[i] for i in range(len(users))]
    for start in range(0, len(ids), batch_size):
        batch = users.collate(ids[start : start + batch_size])
        ev.update(scores[batch.users].clone(), batch)
    return ev.compute(), ev


def _groups(num_items: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    cold = torch.rand(num_items, generator=g) < 0.3
    return {"cold": cold, "warm": ~cold, "head": torch.arange(5)}  # a mask, its complement, an id tensor


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_group_metrics_match_brute_force(seed: int) -> None:
    scores, train, target = random_case(seed)
    num_items = scores.size(1)
    groups = _groups(num_items, seed)
    got, ev = evaluate_groups(scores, train, target, KS, 8, groups)
    # The overall metrics are unchanged by adding groups.
    overall = brute_force(scores, train, target, KS)
    for key, value in overall.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    for name, items in groups.items():
        mask = torch.zeros(num_items, dtype=torch.bool)
        mask[items] = True
        in_group = {i for i in range(num_items) if mask[i]}
        # Same ranking (exclusions unchanged), targets restricted to the group.
        group_target = [t & in_group for t in target]
        expected = brute_force(scores, train, group_target, KS)
        n_users = sum(1 for t in group_target if t)
        assert 0 < n_users < sum(1 for t in target if t)  # some users are skipped for the group
        assert ev.group_num_users[name] == n_users
        for key, value in expected.items():
            if key.startswith("itemcoverage"):
                assert f"{name}/{key}" not in got
                continue
            assert got[f"{name}/{key}"] == pytest.approx(value, abs=1e-12), f"{name}/{key}"


def test_group_metrics_do_not_depend_on_batch_size() -> None:
    scores, train, target = random_case(7, num_users=50, num_items=40, levels=3)
    groups = _groups(40, 7)
    results = [evaluate_groups(scores, train, target, [5, 20], bs, groups)[0] for bs in (1, 3, 16, 1000)]
    for other in results[1:]:
        assert other.keys() == results[0].keys()
        for key in other:
            assert other[key] == pytest.approx(results[0][key], rel=1e-12, abs=1e-12), key


def test_metric_names_and_keys() -> None:
    ev = FullRankingEvaluator(10, [5, 20], ["recall", "ndcg", "itemcoverage"], item_groups={"cold": torch.tensor([1, 2])})
    assert ev.metric_names == [
        "recall@5", "recall@20", "ndcg@5", "ndcg@20", "itemcoverage@5", "itemcoverage@20",
        "cold/recall@5", "cold/recall@20", "cold/ndcg@5", "cold/ndcg@20",
    ]  # fmt: skip
    assert ev.group_mask("cold").tolist() == [False, True, True] + [False] * 7
    # Groups are data, not checkpoint state.
    assert not any("group" in key for key in ev.state_dict())
    with pytest.warns(UserWarning, match="before the ``update``"):  # torchmetrics, as without groups
        assert set(ev.compute()) == set(ev.metric_names)


@pytest.mark.filterwarnings("error::UserWarning")
def test_group_without_targets_and_reset() -> None:
    # A group no user has a target in computes zeros, without torchmetrics' "compute before update".
    scores, train, target = random_case(4)
    empty = torch.zeros(scores.size(1), dtype=torch.bool)
    got, ev = evaluate_groups(scores, train, target, [5], 8, {"none": empty})
    assert got["none/recall@5"] == 0.0 and ev.group_num_users["none"] == 0
    ev.reset()
    assert ev.group_num_users == {"none": 0} and ev.num_users == 0


@pytest.mark.parametrize(
    ("groups", "needle"),
    [
        ({"cold/x": torch.tensor([1])}, "letters, digits"),
        ({"cold": torch.zeros(3, dtype=torch.bool)}, "shape \\[10\\]"),
        ({"cold": torch.tensor([0, 10])}, "in \\[0, 10\\)"),
        ({"cold": torch.tensor([[1]])}, "1-D tensor"),
    ],
)
def test_bad_groups_are_rejected(groups, needle) -> None:
    with pytest.raises(ValueError, match=needle):
        FullRankingEvaluator(10, [5], item_groups=groups)
    with pytest.raises(ValueError, match="no per-user metric"):
        FullRankingEvaluator(10, [5], ["itemcoverage"], item_groups={"cold": torch.tensor([1])})


def test_group_keys_in_the_metrics_table() -> None:
    from graphrec_lab.experiment import format_metrics_table

    table = format_metrics_table(
        {"val/recall@20": 0.5, "test/recall@20": 0.4, "val/cold/recall@20": 0.1, "test/cold/recall@20": 0.05, "val/cold/ndcg@5": 0.2},
        title="t",
    )
    lines = {line.split()[0]: line.split()[1:] for line in table.splitlines()[3:]}
    assert lines["cold/recall@20"] == ["0.1000", "0.0500"]
    assert lines["cold/ndcg@5"] == ["0.2000", "-"]
    assert lines["recall@20"] == ["0.5000", "0.4000"]
