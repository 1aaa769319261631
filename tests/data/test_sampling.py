"""Negative sampling, BPR epochs, CSR tables and evaluation batches on tiny random graphs."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader

from graphrec_lab.data.sampling import CSR, BPRTrainBatches, EvalBatch, EvalUsers, NegativeSampler


def _random_edges(num_users=20, num_items=15, seed=0, max_per_user=10):
    g = torch.Generator().manual_seed(seed)
    users, items = [], []
    for u in range(num_users):
        n = min(int(torch.randint(1, max_per_user + 1, (1,), generator=g)), num_items - 1)
        items.append(torch.randperm(num_items, generator=g)[:n])
        users.append(torch.full((n,), u))
    users, items = torch.cat(users), torch.cat(items)
    perm = torch.randperm(users.numel(), generator=g)  # not grouped by user
    return users[perm], items[perm]


def _sets(users, items) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for u, i in zip(users.tolist(), items.tolist()):
        out.setdefault(u, set()).add(i)
    return out


def test_negative_sampler_never_returns_positive():
    num_users, num_items = 20, 15
    users, items = _random_edges(num_users, num_items)
    # User 20 has every item but item 7: its only valid negative is 7.
    almost = torch.tensor([i for i in range(num_items) if i != 7])
    users = torch.cat([users, torch.full((almost.numel(),), num_users)])
    items = torch.cat([items, almost])
    num_users += 1
    pos = _sets(users, items)
    sampler = NegativeSampler(users, items, num_users, num_items)
    q = torch.randint(0, num_users, (20_000,), generator=torch.Generator().manual_seed(1))
    q[:500] = num_users - 1
    neg = sampler.sample(q, torch.Generator().manual_seed(2))
    assert neg.shape == q.shape and neg.dtype == torch.long
    assert int(neg.min()) >= 0 and int(neg.max()) < num_items
    for u, i in zip(q.tolist(), neg.tolist()):
        assert i not in pos.get(u, set()), (u, i)
    assert set(neg[q == num_users - 1].tolist()) == {7}
    # Negatives are not degenerate: a user with few positives sees many different negatives.
    light = min(pos, key=lambda u: len(pos[u]))
    assert len(set(neg[q == light].tolist())) == num_items - len(pos[light])


def test_negative_sampler_is_positive():
    users, items = torch.tensor([0, 0, 1]), torch.tensor([2, 0, 1])
    s = NegativeSampler(users, items, 2, 3)
    got = s.is_positive(torch.tensor([0, 0, 0, 1, 1, 1]), torch.tensor([0, 1, 2, 0, 1, 2]))
    assert got.tolist() == [True, False, True, False, True, False]


def test_negative_sampler_deterministic_for_generator():
    users, items = _random_edges()
    s = NegativeSampler(users, items, 20, 15)
    q = torch.arange(20).repeat(10)
    a = s.sample(q, torch.Generator().manual_seed(5))
    b = s.sample(q, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_negative_sampler_raises_for_user_with_every_item():
    users = torch.tensor([0, 0, 0, 1])
    items = torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match="user 0 interacted with every item"):
        NegativeSampler(users, items, 2, 3)


def _epoch(ds: BPRTrainBatches):
    batches = list(ds)
    return (
        torch.cat([b.users for b in batches]),
        torch.cat([b.pos_items for b in batches]),
        torch.cat([b.neg_items for b in batches]),
        [len(b) for b in batches],
    )


def test_bpr_epoch_covers_every_edge_once_with_valid_negatives():
    users, items = _random_edges(seed=3)
    ds = BPRTrainBatches(users, items, 20, 15, batch_size=16, seed=11)
    assert len(ds) == -(-users.numel() // 16)
    pos = _sets(users, items)
    for _ in range(2):
        u, p, n, sizes = _epoch(ds)
        assert len(sizes) == len(ds)
        assert all(s == 16 for s in sizes[:-1]) and 0 < sizes[-1] <= 16
        assert Counter(zip(u.tolist(), p.tolist())) == Counter(zip(users.tolist(), items.tolist()))
        assert all(c == 1 for c in Counter(zip(u.tolist(), p.tolist())).values())
        for uu, nn in zip(u.tolist(), n.tolist()):
            assert nn not in pos[uu]


def test_bpr_same_seed_identical_epochs_and_new_epoch_differs():
    users, items = _random_edges(seed=4)
    a = BPRTrainBatches(users, items, 20, 15, batch_size=32, seed=7)
    b = BPRTrainBatches(users, items, 20, 15, batch_size=32, seed=7)
    a1, b1 = _epoch(a), _epoch(b)
    for x, y in zip(a1[:3], b1[:3]):
        assert torch.equal(x, y)
    a2, b2 = _epoch(a), _epoch(b)
    for x, y in zip(a2[:3], b2[:3]):
        assert torch.equal(x, y)
    # The second epoch is a different permutation with different negatives.
    assert not torch.equal(a1[0], a2[0]) or not torch.equal(a1[1], a2[1])
    assert not torch.equal(a1[2], a2[2])
    # Another seed gives another epoch.
    c1 = _epoch(BPRTrainBatches(users, items, 20, 15, batch_size=32, seed=8))
    assert not (torch.equal(a1[0], c1[0]) and torch.equal(a1[1], c1[1]) and torch.equal(a1[2], c1[2]))


def test_bpr_through_dataloader():
    users, items = _random_edges(seed=5)
    ds = BPRTrainBatches(users, items, 20, 15, batch_size=8, seed=0)
    loader = DataLoader(ds, batch_size=None, num_workers=0)
    n = sum(len(b) for b in loader)
    assert n == users.numel()


def test_csr_rows_returns_each_users_items():
    users, items = _random_edges(num_users=12, num_items=9, seed=6)
    num_users = 14  # users 12, 13 have no items
    csr = CSR(users, items, num_users)
    pos = _sets(users, items)
    assert csr.degree.tolist() == [len(pos.get(u, ())) for u in range(num_users)]
    query = torch.tensor([13, 3, 0, 3, 12, 7])
    coo = csr.rows(query)
    assert coo.shape[0] == 2
    got: dict[int, list[int]] = {r: [] for r in range(query.numel())}
    for r, i in zip(coo[0].tolist(), coo[1].tolist()):
        got[r].append(i)
    for r, u in enumerate(query.tolist()):
        assert got[r] == sorted(pos.get(u, set())), (r, u)  # exact, sorted within the row


def test_csr_rows_empty_query_and_empty_table():
    csr = CSR(torch.tensor([1, 1]), torch.tensor([2, 0]), 3)
    assert csr.rows(torch.zeros(0, dtype=torch.long)).shape == (2, 0)
    empty = CSR(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), 3)
    assert empty.degree.tolist() == [0, 0, 0]
    assert empty.rows(torch.tensor([0, 2])).shape == (2, 0)


def test_csr_merge_is_union():
    ua, ia = _random_edges(num_users=10, num_items=12, seed=7, max_per_user=4)
    ub, ib = _random_edges(num_users=10, num_items=12, seed=8, max_per_user=4)
    # Make b disjoint from a (train and validation never share an edge).
    a_keys = set((ua * 12 + ia).tolist())
    keep = torch.tensor([k not in a_keys for k in (ub * 12 + ib).tolist()])
    ub, ib = ub[keep], ib[keep]
    a, b = CSR(ua, ia, 10), CSR(ub, ib, 10)
    m = CSR.merge(a, b)
    sa, sb = _sets(ua, ia), _sets(ub, ib)
    coo = m.rows(torch.arange(10))
    got = _sets(coo[0], coo[1])
    for u in range(10):
        assert got.get(u, set()) == sa.get(u, set()) | sb.get(u, set())
    assert m.degree.tolist() == [len(sa.get(u, ())) + len(sb.get(u, ())) for u in range(10)]


def test_eval_users_lists_only_users_with_targets_and_batches_match():
    num_users, num_items = 8, 10
    train_u, train_i = _random_edges(num_users, num_items, seed=9, max_per_user=5)
    train_keys = set((train_u * num_items + train_i).tolist())
    # Targets for users 1, 4, 6 only, disjoint from training.
    tu, ti = [], []
    for u, cand in ((1, [0, 3, 9]), (4, [2]), (6, [5, 8])):
        for i in cand:
            if u * num_items + i not in train_keys:
                tu.append(u)
                ti.append(i)
    tu, ti = torch.tensor(tu), torch.tensor(ti)
    target, exclude = CSR(tu, ti, num_users), CSR(train_u, train_i, num_users)
    ds = EvalUsers(target, exclude)
    expected_users = sorted(set(tu.tolist()))
    assert [ds[k] for k in range(len(ds))] == expected_users
    loader = DataLoader(ds, batch_size=2, shuffle=False, collate_fn=ds.collate)
    seen = []
    t_sets, x_sets = _sets(tu, ti), _sets(train_u, train_i)
    for batch in loader:
        assert isinstance(batch, EvalBatch)
        seen += batch.users.tolist()
        for r, u in enumerate(batch.users.tolist()):
            tgt = set(batch.target[1, batch.target[0] == r].tolist())
            exc = set(batch.exclude[1, batch.exclude[0] == r].tolist())
            assert tgt == t_sets[u]
            assert exc == x_sets.get(u, set())
        assert int(batch.target[0].max()) < len(batch) and int(batch.exclude[0].max()) < len(batch)
    assert seen == expected_users


def test_negative_sampler_duplicate_edges_do_not_count_as_distinct_items():
    # User 0 has items {0, 1} (item 0 twice) out of 3: item 2 is a valid negative.
    users = torch.tensor([0, 0, 0, 1])
    items = torch.tensor([0, 0, 1, 0])
    sampler = NegativeSampler(users, items, 2, 3)
    neg = sampler.sample(torch.zeros(50, dtype=torch.long), torch.Generator().manual_seed(0))
    assert set(neg.tolist()) == {2}


def test_negative_sampler_without_training_edges_samples_any_item():
    empty = torch.zeros(0, dtype=torch.long)
    sampler = NegativeSampler(empty, empty, 2, 3)
    neg = sampler.sample(torch.tensor([0, 1, 1]), torch.Generator().manual_seed(0))
    assert neg.shape == (3,) and int(neg.min()) >= 0 and int(neg.max()) < 3
