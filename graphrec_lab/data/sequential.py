"""Time-ordered item sequences, leave-one-out splits by time and SR-GNN session graphs.

Items are 1-based inside sequences so that 0 can pad a batch: a dataset item id ``i`` appears as
``i + 1``. The session graphs follow SR-GNN (Wu et al., 2019): one graph per sequence, nodes are the
unique items of the sequence, edges are consecutive transitions, and the incoming / outgoing adjacency
rows are divided by their sums (node out-degree and in-degree normalisation).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from graphrec_lab.data.graph import RawInteractions


class SequenceDataError(ValueError):
    """Raised on interactions that cannot form sequences (mismatched lengths, too few items)."""


@dataclass(frozen=True)
class SequenceSplit:
    """Per-user leave-one-out split by time.

    ``train[u]`` holds the item ids (0-based dataset ids) seen before the validation item; ``valid[u]``
    the second-last item and ``test[u]`` the last one. Users with fewer than three interactions are
    left out.
    """

    users: list[int]
    train: list[list[int]]
    valid: list[int]
    test: list[int]


def user_sequences(
    user: torch.Tensor, item: torch.Tensor, timestamp: torch.Tensor
) -> dict[int, list[int]]:
    """Group interactions into per-user item sequences ordered by ``timestamp``.

    user, item, timestamp: ``[E]``. Ties in time keep the input order (stable sort), as RecBole does.
    """
    if not (user.numel() == item.numel() == timestamp.numel()):
        raise SequenceDataError(
            f"user/item/timestamp lengths differ: {user.numel()}, {item.numel()}, {timestamp.numel()}"
        )
    order = torch.sort(timestamp, stable=True).indices
    order = order[torch.sort(user[order], stable=True).indices]
    sequences: dict[int, list[int]] = {}
    for u, i in zip(user[order].tolist(), item[order].tolist()):
        sequences.setdefault(u, []).append(i)
    return sequences


def leave_one_out(sequences: dict[int, list[int]], min_length: int = 3) -> SequenceSplit:
    """Hold out each user's last item for test and second-last for validation."""
    if min_length < 3:
        raise SequenceDataError(f"min_length must be at least 3 for leave-one-out, got {min_length}")
    users, train, valid, test = [], [], [], []
    for u in sorted(sequences):
        seq = sequences[u]
        if len(seq) < min_length:
            continue
        users.append(u)
        train.append(seq[:-2])
        valid.append(seq[-2])
        test.append(seq[-1])
    if not users:
        raise SequenceDataError(f"no user has at least {min_length} interactions")
    return SequenceSplit(users=users, train=train, valid=valid, test=test)


def pad_sequences(sequences: list[list[int]], max_length: int) -> torch.Tensor:
    """Right-aligned padding: ``[B, max_length]`` of 1-based items, 0 = padding, latest items kept."""
    if max_length < 1:
        raise SequenceDataError(f"max_length must be positive, got {max_length}")
    out = torch.zeros(len(sequences), max_length, dtype=torch.long)
    for row, seq in enumerate(sequences):
        tail = seq[-max_length:]
        if tail:
            out[row, max_length - len(tail):] = torch.as_tensor(tail, dtype=torch.long) + 1
    return out


@dataclass(frozen=True)
class SessionGraphs:
    """A batch of SR-GNN session graphs.

    nodes: ``[B, N]`` unique 1-based items per session (0 pads), in order of first appearance.
    alias: ``[B, L]`` index into ``nodes`` for each position of the padded sequence (0 on padding).
    adj_in, adj_out: ``[B, N, N]`` row-normalised incoming / outgoing transition matrices.
    """

    nodes: torch.Tensor
    alias: torch.Tensor
    adj_in: torch.Tensor
    adj_out: torch.Tensor


def session_graphs(items: torch.Tensor) -> SessionGraphs:
    """Build the session graph of every row of ``items`` (``[B, L]``, 1-based, 0 = padding) at once.

    Padding may sit anywhere; only non-zero positions count, in their order.
    """
    b, length = items.shape
    device = items.device
    valid = items > 0
    # First occurrence of each item within its row: equal to an earlier position → not new.
    same = (items.unsqueeze(2) == items.unsqueeze(1)) & valid.unsqueeze(1) & valid.unsqueeze(2)
    earlier = torch.tril(torch.ones(length, length, dtype=torch.bool, device=device), diagonal=-1)
    first = valid & ~(same & earlier).any(dim=2)
    node_rank = torch.cumsum(first.long(), dim=1) - 1  # node index at first occurrences
    # Each position points at the position of its item's first occurrence.
    first_pos = (same & (earlier | torch.eye(length, dtype=torch.bool, device=device))).long().argmax(dim=2)
    alias = torch.where(valid, node_rank.gather(1, first_pos), torch.zeros_like(node_rank))
    n = int(first.sum(dim=1).max().item()) if b else 0
    n = max(n, 1)
    nodes = torch.zeros(b, n, dtype=torch.long, device=device)
    rows, cols = first.nonzero(as_tuple=True)
    nodes[rows, node_rank[rows, cols]] = items[rows, cols]
    # Transitions between consecutive non-padding positions.
    pos = torch.arange(length, device=device).expand(b, length)
    packed_order = torch.sort(torch.where(valid, pos, pos + length), dim=1).indices
    packed_alias = alias.gather(1, packed_order)
    packed_valid = valid.gather(1, packed_order)
    edge_ok = packed_valid[:, :-1] & packed_valid[:, 1:]
    er, ec = edge_ok.nonzero(as_tuple=True)
    src, dst = packed_alias[er, ec], packed_alias[er, ec + 1]
    counts = torch.zeros(b, n, n, device=device)
    counts[er, src, dst] = 1.0  # SR-GNN counts a repeated transition once
    out_deg = counts.sum(dim=2, keepdim=True).clamp(min=1.0)
    in_deg = counts.sum(dim=1, keepdim=True).clamp(min=1.0)
    adj_out = counts / out_deg
    adj_in = (counts / in_deg).transpose(1, 2)
    return SessionGraphs(nodes=nodes, alias=alias, adj_in=adj_in, adj_out=adj_out)


def keep_items_with_text(raw: RawInteractions) -> RawInteractions:
    """``raw`` restricted to the items that have a non-empty text: their interactions kept, the item
    ids compacted (order kept) and tokens / text / features re-indexed; users keep their ids. For
    transfer through text, where an item without text has no representation."""
    if raw.item_text is None:
        raise SequenceDataError(f"{raw.source} has no item text to keep items by")
    has_text = torch.tensor([bool(t and t.strip()) for t in raw.item_text], dtype=torch.bool)
    new_id = torch.cumsum(has_text.long(), 0) - 1
    keep = has_text[raw.item]
    kept = has_text.nonzero().squeeze(1).tolist()

    def pick(values):
        return None if values is None else [values[i] for i in kept]

    return dataclasses.replace(
        raw,
        user=raw.user[keep], item=new_id[raw.item[keep]], num_items=len(kept),
        rating=None if raw.rating is None else raw.rating[keep],
        timestamp=None if raw.timestamp is None else raw.timestamp[keep],
        split=None if raw.split is None else raw.split[keep],
        item_tokens=pick(raw.item_tokens), item_text=pick(raw.item_text),
        item_features=None if raw.item_features is None else raw.item_features[has_text],
        source=f"{raw.source} (items with text only)",
    )  # fmt: skip
