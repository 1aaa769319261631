"""Synthetic domains for controlled transfer experiments: a shared text vocabulary, planted structure.

Every domain has its own items (its own ids), but all domains write item text with one shared
vocabulary: a topic word ``topic0 .. topic{T-1}`` and a filler word ``word0 .. word{F-1}`` that
carries no signal. With
``planted=True`` a user's next item has the topic after the current item's (``(t + 1) % T``) with
probability ``strength`` and any topic otherwise, so a text-only model trained on one planted domain
can predict the next item of another planted domain it never saw. With ``planted=False`` the next
item is uniform over the domain's items: nothing learned elsewhere can help.

``item_features`` [I, T + F] are the bag-of-words counts of each item's text over that vocabulary
(what a perfect text encoder would give), so transfer can be
tested without a transformer; ``item_text`` is the text itself for the framework's text encoders.
"""

from __future__ import annotations

import torch

from graphrec_lab.data.graph import RawInteractions


def generate_domain(
    name: str = "a",
    num_users: int = 200,
    num_items: int = 60,
    length: int = 12,
    topics: int = 6,
    planted: bool = True,
    strength: float = 0.9,
    fillers: int = 4,
    seed: int = 0,
) -> RawInteractions:
    """One domain's interactions (one tick per step of each user's sequence) with item text.

    Shapes: ``user``/``item``/``timestamp`` [num_users * length]; ``item_features`` [num_items, topics + fillers].
    """
    if num_items < topics:
        raise ValueError(f"num_items={num_items} < topics={topics}: every topic needs an item")
    gen = torch.Generator().manual_seed(seed)
    topic = torch.arange(num_items) % topics  # every topic has items
    topic = topic[torch.randperm(num_items, generator=gen)]
    by_topic = [torch.nonzero(topic == t).flatten() for t in range(topics)]
    filler = torch.randint(fillers, (num_items,), generator=gen)

    seqs = torch.empty(num_users, length, dtype=torch.long)
    seqs[:, 0] = torch.randint(num_items, (num_users,), generator=gen)
    for step in range(1, length):
        if planted:
            follow = torch.rand(num_users, generator=gen) < strength
            nxt_topic = torch.where(follow, (topic[seqs[:, step - 1]] + 1) % topics, torch.randint(topics, (num_users,), generator=gen))
            pick = torch.stack([by_topic[int(t)][int(torch.randint(len(by_topic[int(t)]), (1,), generator=gen))] for t in nxt_topic])
            seqs[:, step] = pick
        else:
            seqs[:, step] = torch.randint(num_items, (num_users,), generator=gen)

    features = torch.zeros(num_items, topics + fillers)
    features[torch.arange(num_items), topic] = 1.0
    features[torch.arange(num_items), topics + filler] = 1.0
    texts = [f"topic{int(topic[i])} word{int(filler[i])}" for i in range(num_items)]
    users = torch.arange(num_users).repeat_interleave(length)
    return RawInteractions(
        user=users, item=seqs.flatten(), num_users=num_users, num_items=num_items,
        timestamp=torch.arange(num_users * length, dtype=torch.long),
        item_tokens=[f"{name}-i{i}" for i in range(num_items)], user_tokens=[f"{name}-u{u}" for u in range(num_users)],
        item_text=texts, item_features=features, source=f"synthetic domain {name!r} (planted={planted}, seed={seed})",
    )  # fmt: skip
