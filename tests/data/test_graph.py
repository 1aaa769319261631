"""InteractionGraph invariants, content hash and save/load on tiny hand-made graphs."""

from __future__ import annotations

import re

import pytest
import torch

from graphrec_lab.data.graph import DataValidationError, EdgeSet, InteractionGraph, RawInteractions


def _edges(pairs: list[tuple[int, int]]) -> EdgeSet:
    if not pairs:
        return EdgeSet(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    u, i = zip(*pairs)
    return EdgeSet(torch.tensor(u, dtype=torch.long), torch.tensor(i, dtype=torch.long))


TRAIN = [(0, 0), (0, 1), (1, 1), (1, 2), (2, 0), (2, 3)]
VAL = [(0, 2), (1, 3)]
TEST = [(0, 3), (2, 1)]


def _graph(train=TRAIN, val=VAL, test=TEST, num_users=3, num_items=4, **kw) -> InteractionGraph:
    return InteractionGraph(num_users, num_items, _edges(train), _edges(val), _edges(test), name="toy", **kw)


def test_valid_graph_builds_and_stats():
    g = _graph()
    s = g.stats()
    assert (s["num_users"], s["num_items"], s["num_train"], s["num_val"], s["num_test"]) == (3, 4, 6, 2, 2)
    assert s["density"] == pytest.approx(10 / 12)


@pytest.mark.parametrize("split", ["val", "test"])
def test_leak_into_train_raises_naming_split_and_edge(split):
    leaked = (1, 2)  # a training edge
    kw = {"val": VAL, "test": TEST}
    kw[split] = kw[split] + [leaked]
    with pytest.raises(DataValidationError) as info:
        _graph(**kw)
    msg = str(info.value)
    assert f"1 {split} edges are also training edges" in msg
    assert "user 1, item 2" in msg
    assert "toy" in msg


def test_leak_message_reports_count_and_first_edge():
    with pytest.raises(DataValidationError, match=r"2 test edges .*first: user 0, item 0"):
        _graph(test=[(0, 0), (2, 3)])


@pytest.mark.parametrize(
    "split,pairs,what,bad,upper",
    [
        ("train", TRAIN + [(3, 0)], "train user id", 3, 3),
        ("train", TRAIN + [(0, 7)], "train item id", 7, 4),
        ("val", VAL + [(-1, 0)], "val user id", -1, 3),
        ("test", TEST + [(1, 4)], "test item id", 4, 4),
    ],
)
def test_out_of_range_id_raises_naming_id_and_range(split, pairs, what, bad, upper):
    kw = {"train": TRAIN, "val": VAL, "test": TEST}
    kw[split] = pairs
    with pytest.raises(DataValidationError) as info:
        _graph(**kw)
    assert f"{what} {bad} is out of range [0, {upper})" in str(info.value)


def test_mismatched_users_items_raises():
    bad = EdgeSet(torch.tensor([0, 1]), torch.tensor([0]))
    with pytest.raises(DataValidationError, match="train users/items"):
        InteractionGraph(3, 4, bad, _edges(VAL), _edges(TEST))


@pytest.mark.parametrize(
    "social,pattern",
    [
        (torch.tensor([0, 1, 2]), r"social_edges must have shape \[2, S\]"),
        (torch.tensor([[0, 1], [1, 2], [2, 0]]), r"social_edges must have shape \[2, S\]"),
        (torch.tensor([[0, 1], [1, 3]]), r"social user id 3 is out of range \[0, 3\)"),
        (torch.tensor([[0, -2], [1, 2]]), r"social user id -2 is out of range \[0, 3\)"),
    ],
)
def test_malformed_social_edges_raise(social, pattern):
    with pytest.raises(DataValidationError, match=pattern):
        _graph(social_edges=social)


def test_valid_social_edges_and_text_accepted_and_text_length_checked():
    _graph(social_edges=torch.tensor([[0, 1], [1, 2]]), item_text=["a", "b", None, "d"])
    with pytest.raises(DataValidationError, match="item_text has 3 entries, expected 4"):
        _graph(item_text=["a", "b", "c"])
    with pytest.raises(DataValidationError, match="user_text has 4 entries, expected 3"):
        _graph(user_text=["a", "b", "c", "d"])


def test_content_hash_equal_for_equal_graphs():
    h1, h2 = _graph().content_hash(), _graph().content_hash()
    assert h1 == h2
    assert re.fullmatch(r"[0-9a-f]{16}", h1)


@pytest.mark.parametrize(
    "change",
    [
        {"train": TRAIN[:-1] + [(2, 2)]},  # one training edge's item changed
        {"val": [(0, 2), (2, 2)]},  # one validation edge changed
        {"test": [(0, 3), (1, 0)]},  # one test edge changed
        {"val": [(0, 2)], "test": TEST + [(1, 3)]},  # an edge moved from val to test
        {"num_items": 5},
    ],
)
def test_content_hash_changes_when_one_edge_changes(change):
    assert _graph(**change).content_hash() != _graph().content_hash()


def test_save_load_round_trip(tmp_path):
    g = InteractionGraph(
        3,
        4,
        EdgeSet(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 3]), timestamps=torch.tensor([5, 6, 7]), ratings=torch.tensor([1.0, 2.0, 3.0])),
        _edges(VAL),
        _edges(TEST),
        name="rt",
        item_text=["a", None, "c", "d"],
        social_edges=torch.tensor([[0, 1], [1, 2]]),
        item_tokens=["i0", "i1", "i2", "i3"],
        meta={"source": "x", "n": 3},
    )
    path = tmp_path / "g.pt"
    g.save(path)
    h = InteractionGraph.load(path)
    assert isinstance(h, InteractionGraph)
    assert h.content_hash() == g.content_hash()
    assert (h.num_users, h.num_items, h.name) == (3, 4, "rt")
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(h, split).users, getattr(g, split).users)
        assert torch.equal(getattr(h, split).items, getattr(g, split).items)
    assert torch.equal(h.train.timestamps, g.train.timestamps)
    assert torch.equal(h.train.ratings, g.train.ratings)
    assert h.val.timestamps is None
    assert h.item_text == g.item_text
    assert h.item_tokens == g.item_tokens
    assert torch.equal(h.social_edges, g.social_edges)
    assert h.meta == g.meta


def test_load_revalidates(tmp_path):
    """A saved file that was tampered with into a leaky split does not load silently."""
    g = _graph()
    path = tmp_path / "g.pt"
    g.save(path)
    state = torch.load(path, weights_only=False)
    state["test"] = _edges(TEST + [(0, 0)])
    torch.save(state, path)
    with pytest.raises(DataValidationError, match="test edges are also training edges"):
        InteractionGraph.load(path)


def test_raw_interactions_checks_lengths_and_ranges_and_select():
    with pytest.raises(DataValidationError, match="'item' has 2 entries, 'user' has 3"):
        RawInteractions(torch.tensor([0, 1, 2]), torch.tensor([0, 1]), 3, 2)
    with pytest.raises(DataValidationError, match="'timestamp' has 1 entries"):
        RawInteractions(torch.tensor([0, 1]), torch.tensor([0, 1]), 2, 2, timestamp=torch.tensor([1]))
    with pytest.raises(DataValidationError, match=r"item id 2 is out of range \[0, 2\)"):
        RawInteractions(torch.tensor([0, 1]), torch.tensor([0, 2]), 2, 2)
    raw = RawInteractions(torch.tensor([0, 1, 1]), torch.tensor([1, 0, 1]), 2, 2, timestamp=torch.tensor([3, 2, 1]))
    sub = raw.select(torch.tensor([True, False, True]))
    assert len(sub) == 2
    assert sub.item.tolist() == [1, 1] and sub.timestamp.tolist() == [3, 1]
    assert sub.rating is None and sub.num_items == 2
