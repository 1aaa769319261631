"""Several sequential domains as one dataset, for multi-domain pre-training (``data.domains``).

Each domain keeps its own users and items; in the union they get disjoint dense ids (the domains'
blocks one after another, in the given order), tokens are prefixed with the domain's name
(``ml-100k:50``), and item texts are concatenated, so a text model trains on every domain's items
at once and its full softmax ranks them together. Each domain's own split (leave-one-out by time,
or the release's) is kept as it is.
"""

from __future__ import annotations

import torch

from graphrec_lab.data.graph import RawInteractions

Split = dict[int, tuple[list[int], int | None, int | None]]  # user -> (training sequence, valid, test)


def union_domains(parts: list[tuple[str, RawInteractions, Split]]) -> tuple[RawInteractions, Split, list[dict[str, int]]]:
    """The union of ``(name, raw, split)`` domains: the merged table, the merged split, and per
    domain its name and id offsets (``{"name", "user_offset", "num_users", "item_offset", "num_items"}``)."""
    if len(parts) < 2:
        raise ValueError(f"data.domains: a union needs at least two domains, got {len(parts)}")
    users, items, times, texts, user_tokens, item_tokens, blocks = [], [], [], [], [], [], []
    split: Split = {}
    u0 = i0 = 0
    for name, raw, own in parts:
        users.append(raw.user + u0)
        items.append(raw.item + i0)
        times.append(raw.timestamp)
        texts += list(raw.item_text) if raw.item_text is not None else [None] * raw.num_items
        user_tokens += [f"{name}:{t}" for t in (raw.user_tokens or range(raw.num_users))]
        item_tokens += [f"{name}:{t}" for t in (raw.item_tokens or range(raw.num_items))]
        for user, (seq, valid, test) in own.items():
            split[user + u0] = ([i + i0 for i in seq], None if valid is None else valid + i0, None if test is None else test + i0)
        blocks.append({"name": name, "user_offset": u0, "num_users": raw.num_users, "item_offset": i0, "num_items": raw.num_items})
        u0 += raw.num_users
        i0 += raw.num_items
    merged = RawInteractions(
        torch.cat(users), torch.cat(items), u0, i0,
        timestamp=torch.cat(times) if all(t is not None for t in times) else None,  # type: ignore[arg-type]
        user_tokens=user_tokens, item_tokens=item_tokens, item_text=texts,
        source=" + ".join(name for name, _, _ in parts),
    )  # fmt: skip
    return merged, split, blocks
