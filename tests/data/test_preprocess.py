"""Filtering, id compaction and every split strategy, on tiny synthetic tables."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
import torch

from graphrec_lab.data.graph import SPLIT_TEST, SPLIT_TRAIN, SPLIT_VAL, RawInteractions
from graphrec_lab.data.preprocess import (
    PreprocessConfig,
    assign_split,
    build_graph,
    compact_ids,
    deduplicate,
    k_core,
    leave_one_out_split,
    per_user_ratio_split,
    recbole_split_counts,
    temporal_split,
)
from graphrec_lab.data.synthetic import generate_synthetic

RATIOS = (0.8, 0.1, 0.1)


def _recbole_reference(tot: int, ratios) -> list[int]:
    """RecBole's ``Dataset._calcu_split_ids`` rule, written out independently."""
    s = sum(ratios)
    r = [x / s for x in ratios]
    cnt = [int(x * tot) for x in r]
    cnt[0] = tot - sum(cnt[1:])
    for i in range(1, len(r)):
        if cnt[0] <= 1:
            break
        if 0 < r[-i] * tot < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


# Worked by hand from the rule for ratios 0.8/0.1/0.1.
HAND = {
    1: [1, 0, 0],
    2: [1, 0, 1],
    3: [1, 1, 1],
    4: [2, 1, 1],
    5: [3, 1, 1],
    6: [4, 1, 1],
    7: [5, 1, 1],
    8: [6, 1, 1],
    9: [7, 1, 1],
    10: [8, 1, 1],
    11: [9, 1, 1],
    12: [10, 1, 1],
}


@pytest.mark.parametrize("tot", range(1, 13))
def test_recbole_split_counts_match_recbole_rule(tot):
    assert _recbole_reference(tot, RATIOS) == HAND[tot]
    assert recbole_split_counts(tot, RATIOS) == HAND[tot]


@pytest.mark.parametrize("ratios", [(0.7, 0.2, 0.1), (8, 1, 1), (0.6, 0.2, 0.2), (0.9, 0.0, 0.1)])
def test_recbole_split_counts_other_ratios(ratios):
    for tot in range(1, 40):
        got = recbole_split_counts(tot, ratios)
        assert got == _recbole_reference(tot, ratios), tot
        assert sum(got) == tot


def _users_with_sizes(sizes: list[int]) -> torch.Tensor:
    """A user column where user u has sizes[u] rows, interleaved (not grouped) in row order."""
    user = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return user[torch.randperm(user.numel(), generator=torch.Generator().manual_seed(123))]


SIZES = list(range(1, 13)) + [12, 5, 1, 30]


def test_per_user_ratio_split_gives_recbole_counts_per_user():
    user = _users_with_sizes(SIZES)
    split = per_user_ratio_split(user, RATIOS, torch.Generator().manual_seed(7))
    assert split.dtype == torch.int8 and split.shape == user.shape
    assert set(split.unique().tolist()) <= {SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST}
    for u, size in enumerate(SIZES):
        mine = split[user == u]
        got = [int((mine == s).sum()) for s in (SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST)]
        assert got == _recbole_reference(size, RATIOS), (u, size)


def test_per_user_ratio_split_deterministic_and_seed_dependent():
    user = _users_with_sizes(SIZES)
    a = per_user_ratio_split(user, RATIOS, torch.Generator().manual_seed(7))
    b = per_user_ratio_split(user, RATIOS, torch.Generator().manual_seed(7))
    c = per_user_ratio_split(user, RATIOS, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # Different seed, same per-user counts.
    for u in range(len(SIZES)):
        assert torch.equal(torch.bincount(a[user == u].long(), minlength=3), torch.bincount(c[user == u].long(), minlength=3))


def _raw(user, item, num_users=None, num_items=None, **kw) -> RawInteractions:
    user = torch.as_tensor(user, dtype=torch.long)
    item = torch.as_tensor(item, dtype=torch.long)
    for k in ("timestamp", "split"):
        if k in kw and kw[k] is not None and not isinstance(kw[k], torch.Tensor):
            kw[k] = torch.tensor(kw[k], dtype=torch.long if k == "timestamp" else torch.int8)
    if "rating" in kw and not isinstance(kw["rating"], torch.Tensor):
        kw["rating"] = torch.tensor(kw["rating"], dtype=torch.float32)
    return RawInteractions(
        user=user,
        item=item,
        num_users=num_users if num_users is not None else int(user.max()) + 1,
        num_items=num_items if num_items is not None else int(item.max()) + 1,
        **kw,
    )


def _random_raw(seed=0, num_users=30, num_items=40, per_user=(1, 15)) -> RawInteractions:
    g = torch.Generator().manual_seed(seed)
    users, items = [], []
    for u in range(num_users):
        n = int(torch.randint(per_user[0], per_user[1] + 1, (1,), generator=g))
        items.append(torch.randperm(num_items, generator=g)[:n])
        users.append(torch.full((n,), u))
    user, item = torch.cat(users), torch.cat(items)
    ts = torch.randperm(user.numel(), generator=g)
    return _raw(user, item, num_users, num_items, timestamp=ts)


@pytest.mark.parametrize("strategy", ["ratio", "loo", "temporal"])
def test_splits_are_disjoint_and_cover_all_rows(strategy):
    raw = _random_raw()
    cfg = PreprocessConfig(split=strategy)
    split = assign_split(raw, cfg, torch.Generator().manual_seed(cfg.seed))
    assert split.shape == (len(raw),)
    # Every row gets exactly one label from the three.
    assert set(split.unique().tolist()) <= {SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST}
    n = [int((split == s).sum()) for s in (SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST)]
    assert sum(n) == len(raw)
    assert min(n) > 0
    g = build_graph(raw, cfg, "toy")
    keys = [set(getattr(g, s).keys(g.num_items).tolist()) for s in ("train", "val", "test")]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    all_keys = set((raw.user * raw.num_items + raw.item).tolist())
    assert keys[0] | keys[1] | keys[2] == all_keys
    assert len(g.train) + len(g.val) + len(g.test) == len(raw)


def test_leave_one_out_latest_is_test_second_latest_is_val():
    # user 0: 4 rows, user 1: 1 row, user 2: 2 rows, user 3: 3 rows; rows interleaved, timestamps
    # not in file order.
    user = [0, 2, 0, 1, 3, 0, 2, 3, 0, 3]
    item = [0, 1, 1, 2, 3, 2, 3, 0, 3, 1]
    ts = [50, 9, 10, 7, 4, 80, 3, 6, 20, 5]
    raw = _raw(user, item, timestamp=ts)
    split = leave_one_out_split(raw, torch.Generator().manual_seed(0)).tolist()
    expected = {
        # user 0: ts 50, 10, 80, 20 -> 80 test, 50 val
        0: SPLIT_VAL, 2: SPLIT_TRAIN, 5: SPLIT_TEST, 8: SPLIT_TRAIN,
        # user 1: one row -> train
        3: SPLIT_TRAIN,
        # user 2: ts 9, 3 -> 9 test, 3 train
        1: SPLIT_TEST, 6: SPLIT_TRAIN,
        # user 3: ts 4, 6, 5 -> 6 test, 5 val, 4 train
        4: SPLIT_TRAIN, 7: SPLIT_TEST, 9: SPLIT_VAL,
    }
    assert split == [expected[r] for r in range(len(user))]


def test_leave_one_out_random_table_rule():
    raw = _random_raw(seed=3, per_user=(1, 8))
    split = leave_one_out_split(raw, torch.Generator().manual_seed(0))
    for u in range(raw.num_users):
        rows = (raw.user == u).nonzero().flatten()
        by_time = rows[torch.argsort(raw.timestamp[rows])]
        labels = split[by_time].tolist()
        n = len(labels)
        if n == 1:
            assert labels == [SPLIT_TRAIN]
        elif n == 2:
            assert labels == [SPLIT_TRAIN, SPLIT_TEST]
        else:
            assert labels == [SPLIT_TRAIN] * (n - 2) + [SPLIT_VAL, SPLIT_TEST]


def test_leave_one_out_without_timestamps_uses_file_order():
    raw = _raw([0, 0, 0, 1, 1], [0, 1, 2, 0, 1])
    split = leave_one_out_split(raw, torch.Generator().manual_seed(0)).tolist()
    assert split == [SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST, SPLIT_TRAIN, SPLIT_TEST]


def test_temporal_split_respects_global_time_order():
    raw = _random_raw(seed=5)
    split = temporal_split(raw, RATIOS)
    ts = raw.timestamp
    tr, va, te = ts[split == SPLIT_TRAIN], ts[split == SPLIT_VAL], ts[split == SPLIT_TEST]
    assert int(tr.max()) < int(va.min())
    assert int(va.max()) < int(te.min())
    n = len(raw)
    # Sizes as RecBole computes them: val and test rounded down, train takes the rest.
    assert [tr.numel(), va.numel(), te.numel()] == recbole_split_counts(n, RATIOS)
    assert recbole_split_counts(5, (0.5, 0.5, 0.0))[2] == 0  # a zero ratio gets no rows


def test_temporal_split_requires_timestamps():
    with pytest.raises(ValueError, match="needs timestamps"):
        temporal_split(_raw([0, 1], [0, 1]), RATIOS)


def _given_raw(seed=0):
    """A table with its own train/test split (no validation), like Gowalla's files."""
    raw = _random_raw(seed=seed, per_user=(1, 25))
    g = torch.Generator().manual_seed(seed + 100)
    split = torch.where(torch.rand(len(raw), generator=g) < 0.2, SPLIT_TEST, SPLIT_TRAIN).to(torch.int8)
    raw.split = split
    return raw


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5, 0.9])
def test_given_split_carves_validation_only_from_train(fraction):
    raw = _given_raw()
    cfg = PreprocessConfig(split="given", val_fraction=fraction)
    split = assign_split(raw, cfg, torch.Generator().manual_seed(1))
    orig = raw.split
    # Test rows never move, and nothing becomes test.
    assert torch.equal(split == SPLIT_TEST, orig == SPLIT_TEST)
    # Validation rows come only from training rows.
    assert bool((orig[split == SPLIT_VAL] == SPLIT_TRAIN).all())
    assert int((split == SPLIT_VAL).sum()) > 0
    for u in range(raw.num_users):
        n_train0 = int(((raw.user == u) & (orig == SPLIT_TRAIN)).sum())
        n_train = int(((raw.user == u) & (split == SPLIT_TRAIN)).sum())
        n_val = int(((raw.user == u) & (split == SPLIT_VAL)).sum())
        assert n_train + n_val == n_train0
        if n_train0 >= 1:
            assert n_train >= 1, u
        # Rounded down, capped so one training row stays.
        assert n_val == min(int(n_train0 * fraction), max(n_train0 - 1, 0)), (u, n_train0)


def test_given_split_keeps_files_validation_and_zero_fraction():
    raw = _given_raw()
    zero = assign_split(raw, PreprocessConfig(split="given", val_fraction=0.0), torch.Generator().manual_seed(1))
    assert torch.equal(zero, raw.split)
    with_val = raw.split.clone()
    with_val[0] = SPLIT_VAL
    raw.split = with_val
    kept = assign_split(raw, PreprocessConfig(split="given", val_fraction=0.5), torch.Generator().manual_seed(1))
    assert torch.equal(kept, with_val)


def test_given_split_requires_split_column():
    with pytest.raises(ValueError, match="carries no split"):
        assign_split(_random_raw(), PreprocessConfig(split="given"), torch.Generator().manual_seed(0))


def test_dedup_keeps_latest_row_per_pair():
    user = [0, 0, 1, 0, 1, 0]
    item = [1, 2, 1, 1, 1, 1]
    ts = [5, 1, 3, 9, 2, 7]
    rating = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    out = deduplicate(_raw(user, item, timestamp=ts, rating=rating))
    rows = sorted(zip(out.user.tolist(), out.item.tolist(), out.timestamp.tolist(), out.rating.tolist()))
    assert rows == [(0, 1, 9, 4.0), (0, 2, 1, 2.0), (1, 1, 3, 3.0)]


def test_dedup_without_timestamps_keeps_last_in_file_order():
    out = deduplicate(_raw([0, 0, 0, 1], [1, 1, 2, 1], rating=[1.0, 2.0, 3.0, 4.0]))
    rows = sorted(zip(out.user.tolist(), out.item.tolist(), out.rating.tolist()))
    assert rows == [(0, 1, 2.0), (0, 2, 3.0), (1, 1, 4.0)]


def test_dedup_equal_timestamps_file_order_breaks_tie():
    out = deduplicate(_raw([0, 0, 0], [1, 1, 1], timestamp=[4, 4, 2], rating=[1.0, 2.0, 3.0]))
    assert out.rating.tolist() == [2.0]


def test_k_core_iterates_until_stable():
    # 3-core for users and items. One pass: user 3 has 2 items -> dropped, which leaves item 3
    # with 2 users -> dropped, which leaves user 2 with 2 items -> dropped, ...
    rows = [
        (0, 0), (0, 1), (0, 2),
        (1, 0), (1, 1), (1, 2),
        (4, 0), (4, 1), (4, 2),
        (2, 0), (2, 1), (2, 3),
        (5, 3), (5, 4),
        (3, 3), (3, 4),
        (6, 4),
    ]
    user, item = zip(*rows)
    raw = _raw(list(user), list(item))
    one_pass_u = torch.bincount(raw.user, minlength=raw.num_users)
    one_pass_i = torch.bincount(raw.item, minlength=raw.num_items)
    bad = (one_pass_u[raw.user] < 3) | (one_pass_i[raw.item] < 3)
    after_one = raw.select(~bad)
    # One pass is not stable: item 3 is left with one user (user 2), so user 2 must go next.
    i_deg = torch.bincount(after_one.item, minlength=raw.num_items)
    assert int(i_deg[3]) == 1
    assert len(after_one) == 12
    out = k_core(raw, 3, 3)
    assert sorted(zip(out.user.tolist(), out.item.tolist())) == [
        (0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (4, 0), (4, 1), (4, 2)
    ]
    assert int(torch.bincount(out.user)[out.user].min()) >= 3
    assert int(torch.bincount(out.item)[out.item].min()) >= 3


def test_k_core_cascade_empties_chain():
    # A chain where every removal exposes the next: nothing survives a 2-core.
    raw = _raw([0, 1, 1, 2, 2], [0, 0, 1, 1, 2])
    out = k_core(raw, 2, 2)
    assert len(out) == 0
    assert len(k_core(raw, 0, 0)) == 5


def test_rating_threshold_filters():
    raw = _raw([0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 0, 1], rating=[5, 2, 4, 3, 1, 4], timestamp=[1, 2, 3, 4, 5, 6])
    cfg = PreprocessConfig(rating_threshold=4, split="loo")
    g = build_graph(raw, cfg, "thr")
    kept = []
    for s in ("train", "val", "test"):
        e = getattr(g, s)
        kept += e.ratings.tolist()
    assert sorted(kept) == [4.0, 4.0, 5.0]
    assert g.meta["raw_interactions"] == 6 and g.meta["kept_interactions"] == 3
    # Every user and item keeps a row, so nothing is compacted away.
    assert (g.num_users, g.num_items) == (3, 2)


def test_rating_threshold_without_ratings_raises():
    with pytest.raises(ValueError, match="no ratings"):
        build_graph(_raw([0, 1], [0, 1]), PreprocessConfig(rating_threshold=1.0), "x")


def test_compact_ids_dense_and_item_text_aligned():
    raw = _raw(
        [1, 3, 3, 1],
        [4, 0, 2, 2],
        num_users=5,
        num_items=6,
        item_text=[f"text{i}" for i in range(6)],
        item_tokens=[f"i{i}" for i in range(6)],
        user_tokens=[f"u{u}" for u in range(5)],
        item_features=torch.arange(6, dtype=torch.float32).unsqueeze(1) * 10,
        social_edges=torch.tensor([[1, 3, 0], [3, 1, 1]]),
    )
    out = compact_ids(raw)
    assert (out.num_users, out.num_items) == (2, 3)
    assert out.user.tolist() == [0, 1, 1, 0]
    assert out.item.tolist() == [2, 0, 1, 1]
    assert out.item_text == ["text0", "text2", "text4"]
    assert out.item_tokens == ["i0", "i2", "i4"]
    assert out.user_tokens == ["u1", "u3"]
    assert out.item_features.flatten().tolist() == [0.0, 20.0, 40.0]
    # Social edges touching a dropped user are removed, the rest renumbered.
    assert out.social_edges.tolist() == [[0, 1], [1, 0]]
    # Each row's text is the text of its original item.
    for old, new in zip(raw.item.tolist(), out.item.tolist()):
        assert out.item_text[new] == raw.item_text[old]


def test_compact_ids_keeps_everything_when_nothing_dropped():
    raw = _raw([0, 1], [1, 0], num_users=2, num_items=2, item_text=["a", "b"])
    assert compact_ids(raw) is raw


@pytest.mark.parametrize("strategy", ["ratio", "loo", "temporal", "given"])
def test_build_graph_on_synthetic_every_split(strategy):
    raw = generate_synthetic(num_users=40, num_items=60, interactions_per_user=8, seed=1)
    if strategy == "given":
        g = torch.Generator().manual_seed(9)
        raw.split = torch.where(torch.rand(len(raw), generator=g) < 0.2, SPLIT_TEST, SPLIT_TRAIN).to(torch.int8)
    cfg = PreprocessConfig(split=strategy, val_fraction=0.2, user_core=2, item_core=2)
    graph = build_graph(raw, cfg, f"syn-{strategy}")
    graph.validate()  # ids in range, no leakage
    train = set(graph.train.keys(graph.num_items).tolist())
    val = set(graph.val.keys(graph.num_items).tolist())
    test = set(graph.test.keys(graph.num_items).tolist())
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(graph.train) > 0 and len(graph.val) > 0 and len(graph.test) > 0
    assert len(graph.train) + len(graph.val) + len(graph.test) == graph.meta["kept_interactions"]
    assert graph.item_text is not None and len(graph.item_text) == graph.num_items
    assert graph.user_tokens is not None and len(graph.user_tokens) == graph.num_users
    # The same config reproduces the same split.
    assert build_graph(raw, cfg, f"syn-{strategy}").content_hash() == graph.content_hash()


def test_build_graph_ratio_split_seed_changes_hash():
    raw = generate_synthetic(num_users=30, num_items=40, interactions_per_user=8, seed=2)
    a = build_graph(raw, PreprocessConfig(seed=1), "s")
    b = build_graph(raw, PreprocessConfig(seed=2), "s")
    assert a.content_hash() != b.content_hash()


def test_preprocess_config_rejects_bad_values():
    with pytest.raises(ValueError, match="data.split"):
        PreprocessConfig(split="random")
    with pytest.raises(ValueError, match="data.ratios"):
        PreprocessConfig(ratios=(0.5, 0.5))
    with pytest.raises(ValueError, match="data.ratios"):
        PreprocessConfig(ratios=(0.9, -0.1, 0.2))
    with pytest.raises(ValueError, match="data.val_fraction"):
        PreprocessConfig(val_fraction=1.0)
