"""The evaluator against a brute-force per-user loop written from the metric definitions."""

from __future__ import annotations

import math

import pytest
import torch

from graphrec_lab.data.sampling import CSR, EvalUsers
from graphrec_lab.evaluation import FullRankingEvaluator, topk_stable


def brute_force(scores: torch.Tensor, train: list[set[int]], target: list[set[int]], ks: list[int]) -> dict[str, float]:
    """Per-user loop: stable descending sort (ties -> lower item id), known items skipped."""
    num_items = scores.size(1)
    sums: dict[str, float] = {}
    covered: dict[int, set[int]] = {k: set() for k in ks}
    n_users = 0
    for u in range(scores.size(0)):
        if not target[u]:
            continue
        n_users += 1
        ranked = sorted((i for i in range(num_items) if i not in train[u]), key=lambda i: (-float(scores[u, i]), i))
        for k in ks:
            top = ranked[:k]
            covered[k].update(top)
            rel = [1.0 if i in target[u] else 0.0 for i in top]
            hits = sum(rel)
            n = len(target[u])
            dcg = sum(r / math.log2(j + 2) for j, r in enumerate(rel))
            idcg = sum(1.0 / math.log2(j + 2) for j in range(min(n, k)))
            first = next((j for j, r in enumerate(rel) if r), None)
            ap = sum((sum(rel[: j + 1]) / (j + 1)) * rel[j] for j in range(len(rel))) / min(n, k)
            values = {
                "recall": hits / n,
                "precision": hits / k,
                "hit": float(hits > 0),
                "ndcg": dcg / idcg,
                "mrr": 0.0 if first is None else 1.0 / (first + 1),
                "map": ap,
            }
            for name, v in values.items():
                sums[f"{name}@{k}"] = sums.get(f"{name}@{k}", 0.0) + v
    out = {key: v / n_users for key, v in sums.items()}
    for k in ks:
        out[f"itemcoverage@{k}"] = len(covered[k]) / num_items
    return out


def random_case(seed: int, num_users: int = 37, num_items: int = 23, levels: int = 4):
    """Integer scores from a few levels, so ties are everywhere, including at the top-k cut-off."""
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, levels, (num_users, num_items), generator=g).float()
    train, target = [], []
    for u in range(num_users):
        perm = torch.randperm(num_items, generator=g).tolist()
        n_train = int(torch.randint(0, 8, (1,), generator=g))
        n_target = int(torch.randint(0, 5, (1,), generator=g))  # 0: user without held-out items
        train.append(set(perm[:n_train]))
        target.append(set(perm[n_train : n_train + n_target]))
    return scores, train, target


def evaluate(scores, train, target, ks, batch_size):
    num_users, num_items = scores.shape

    def csr(sets):
        users = torch.tensor([u for u, s in enumerate(sets) for _ in s], dtype=torch.long)
        items = torch.tensor([i for s in sets for i in sorted(s)], dtype=torch.long)
        return CSR(users, items, num_users)

    users = EvalUsers(target=csr(target), exclude=csr(train))
    ev = FullRankingEvaluator(num_items, ks)
    ids = [users[i] for i in range(len(users))]
    for start in range(0, len(ids), batch_size):
        batch = users.collate(ids[start : start + batch_size])
        ev.update(scores[batch.users].clone(), batch)
    return ev.compute(), ev.num_users


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_evaluator_matches_brute_force_with_ties(seed):
    scores, train, target = random_case(seed)
    ks = [1, 5, 10]
    expected = brute_force(scores, train, target, ks)
    got, n_users = evaluate(scores, train, target, ks, batch_size=8)
    assert n_users == sum(1 for t in target if t)
    assert set(got) == set(expected)
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=1e-12), key


def test_results_do_not_depend_on_batch_size():
    scores, train, target = random_case(7, num_users=50, num_items=40, levels=3)
    results = [evaluate(scores, train, target, [5, 20], bs)[0] for bs in (1, 3, 16, 1000)]
    for other in results[1:]:
        assert other.keys() == results[0].keys()
        for key in other:
            assert other[key] == pytest.approx(results[0][key], rel=1e-12, abs=1e-12), key


def test_topk_stable_breaks_ties_by_item_id():
    scores = torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    assert topk_stable(scores.clone(), 2).tolist() == [[1, 2], [0, 1]]
    assert topk_stable(scores.clone(), 4).tolist() == [[1, 2, 4, 3], [0, 1, 2, 3]]
    # k at and beyond the catalogue size: the whole row in rule order.
    assert topk_stable(scores.clone(), 5).tolist() == [[1, 2, 4, 3, 0], [0, 1, 2, 3, 4]]
    assert topk_stable(scores.clone(), 9).tolist() == [[1, 2, 4, 3, 0], [0, 1, 2, 3, 4]]
    # Masked (-inf) items tie among themselves at the cut-off.
    masked = torch.tensor([[float("-inf"), 2.0, float("-inf"), float("-inf")]])
    assert topk_stable(masked, 3).tolist() == [[1, 0, 2]]


def test_topk_stable_equals_full_stable_sort_on_random_rows():
    g = torch.Generator().manual_seed(3)
    scores = torch.randint(0, 5, (200, 60), generator=g).float()
    expected = scores.sort(dim=1, descending=True, stable=True).indices[:, :10]
    assert torch.equal(topk_stable(scores.clone(), 10), expected)


def test_evaluator_resets_between_epochs():
    scores, train, target = random_case(4)
    first = evaluate(scores, train, target, [5], 8)[0]
    ev = FullRankingEvaluator(scores.size(1), [5])
    assert ev.compute()["recall@5"] == 0.0
    assert first["recall@5"] > 0.0


def test_unknown_metric_is_rejected():
    with pytest.raises(ValueError, match="unknown metrics"):
        FullRankingEvaluator(10, [5], ["recall", "ndgc"])
