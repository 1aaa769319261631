"""Sequences, leave-one-out by time and vectorised SR-GNN session graphs against a loop reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graphrec_lab.data.sequential import (
    SequenceDataError,
    leave_one_out,
    pad_sequences,
    session_graphs,
    user_sequences,
)


def _reference_graph(seq: list[int]) -> tuple[list[int], list[int], np.ndarray, np.ndarray]:
    """SR-GNN's per-session construction (as in its data loader), one session at a time."""
    nodes: list[int] = []
    for it in seq:
        if it not in nodes:
            nodes.append(it)
    n = len(nodes)
    a = np.zeros((n, n))
    for x, y in zip(seq[:-1], seq[1:]):
        a[nodes.index(x), nodes.index(y)] = 1
    out_deg = a.sum(1, keepdims=True)
    out_deg[out_deg == 0] = 1
    in_deg = a.sum(0, keepdims=True)
    in_deg[in_deg == 0] = 1
    return nodes, [nodes.index(i) for i in seq], (a / in_deg).T, a / out_deg


def test_session_graphs_match_the_per_session_reference() -> None:
    gen = torch.Generator().manual_seed(0)
    seqs = [torch.randint(1, 6, (int(torch.randint(1, 9, (1,), generator=gen)),), generator=gen).tolist()
            for _ in range(40)]
    seqs.append([3, 3, 3])
    batch = pad_sequences([[i - 1 for i in s] for s in seqs], max_length=8)
    graphs = session_graphs(batch)
    for row, seq in enumerate(seqs):
        nodes, alias, a_in, a_out = _reference_graph(seq)
        n = len(nodes)
        assert graphs.nodes[row, :n].tolist() == nodes
        assert graphs.nodes[row, n:].eq(0).all()
        positions = batch[row].gt(0)
        assert graphs.alias[row][positions].tolist() == alias
        np.testing.assert_allclose(graphs.adj_in[row, :n, :n].numpy(), a_in, atol=1e-6)
        np.testing.assert_allclose(graphs.adj_out[row, :n, :n].numpy(), a_out, atol=1e-6)
        assert graphs.adj_in[row, n:].eq(0).all() and graphs.adj_out[row, :, n:].eq(0).all()


def test_leave_one_out_never_leaks_a_future_item() -> None:
    gen = torch.Generator().manual_seed(1)
    e = 500
    user = torch.randint(0, 30, (e,), generator=gen)
    item = torch.arange(e)  # item id identifies the interaction, so its time can be looked up
    timestamp = torch.randint(0, 1000, (e,), generator=gen)
    split = leave_one_out(user_sequences(user, item, timestamp))
    for u, train, valid, test in zip(split.users, split.train, split.valid, split.test):
        assert user[train].eq(u).all() and user[valid] == u and user[test] == u
        assert timestamp[train].max() <= timestamp[valid] <= timestamp[test]
        assert len(train) + 2 == int(user.eq(u).sum())


def test_bad_sequence_input_is_refused() -> None:
    with pytest.raises(SequenceDataError, match="lengths differ"):
        user_sequences(torch.zeros(3, dtype=torch.long), torch.zeros(2, dtype=torch.long), torch.zeros(3))
    with pytest.raises(SequenceDataError, match="min_length"):
        leave_one_out({0: [1, 2, 3]}, min_length=2)


def test_keep_items_with_text_compacts_ids_and_drops_textless_interactions():
    from graphrec_lab.data.graph import RawInteractions
    from graphrec_lab.data.sequential import keep_items_with_text

    raw = RawInteractions(
        user=torch.tensor([0, 0, 1, 1, 2]), item=torch.tensor([0, 1, 2, 3, 1]), num_users=3, num_items=4,
        timestamp=torch.tensor([5, 6, 7, 8, 9]), item_tokens=["a", "b", "c", "d"], item_text=["A", None, " ", "D"],
    )  # fmt: skip
    kept = keep_items_with_text(raw)
    assert kept.num_items == 2 and kept.item_tokens == ["a", "d"] and kept.item_text == ["A", "D"]
    assert kept.user.tolist() == [0, 1] and kept.item.tolist() == [0, 1] and kept.timestamp.tolist() == [5, 8]
    assert kept.num_users == 3  # users keep their ids
    with pytest.raises(ValueError, match="no item text"):
        keep_items_with_text(RawInteractions(user=raw.user, item=raw.item, num_users=3, num_items=4))
