"""The embedded default dataset: a synthetic domain graph with planted structure, made in code.

Users and items belong to latent communities; a user interacts mostly with items of its own
communities, with a Zipf popularity skew on top. Each item's text is drawn from its community's
vocabulary plus shared filler words, so a text encoder has real signal to find. Deterministic by
seed and generated in well under a second at the default size.
"""

from __future__ import annotations

import torch

from graphrec_lab.data.graph import RawInteractions

_SYLLABLES = ["ka", "lo", "mi", "ra", "tu", "ve", "zo", "ni", "pe", "su", "do", "fa", "gi", "ho", "ju", "be"]
_FILLER = ["new", "classic", "great", "edition", "set", "pack", "pro", "mini", "deluxe", "basic", "the", "with"]


def generate_synthetic(
    num_users: int = 600,
    num_items: int = 800,
    num_communities: int = 8,
    interactions_per_user: float = 30.0,
    community_affinity: float = 0.85,
    popularity_exponent: float = 0.8,
    words_per_community: int = 12,
    words_per_text: int = 6,
    seed: int = 0,
) -> RawInteractions:
    """Sample a user-item interaction table with communities, popularity skew and item text.

    Args:
        num_users / num_items: node counts.
        num_communities: latent groups; each item has one, each user a main one and a second one.
        interactions_per_user: mean of the (Poisson, at least 5) number of interactions per user.
        community_affinity: probability that an interaction falls in one of the user's communities.
        popularity_exponent: items' Zipf exponent inside a community (0 means uniform).
        words_per_community / words_per_text: vocabulary size per community and words per title.
        seed: every random choice derives from it.

    Returns:
        RawInteractions with timestamps (one tick per interaction, shuffled per user) and item text.
    """
    gen = torch.Generator().manual_seed(seed)
    item_comm = torch.randint(0, num_communities, (num_items,), generator=gen)
    user_main = torch.randint(0, num_communities, (num_users,), generator=gen)
    user_second = torch.randint(0, num_communities, (num_users,), generator=gen)
    # Zipf weights by a random rank inside the community.
    rank = torch.randperm(num_items, generator=gen).float() + 1.0
    pop = rank.pow(-popularity_exponent) if popularity_exponent > 0 else torch.ones(num_items)
    comm_onehot = torch.nn.functional.one_hot(item_comm, num_communities).float()  # [I, C]
    comm_mass = comm_onehot.T @ pop  # [C]

    counts = torch.poisson(torch.full((num_users,), float(interactions_per_user)), generator=gen).long()
    counts = counts.clamp(min=5, max=num_items // 2)
    users, items = [], []
    for u in range(num_users):
        # Per-user item distribution: affinity mass over the user's two communities (70/30), the
        # rest spread by popularity over all items.
        w_comm = torch.zeros(num_communities)
        w_comm[user_main[u]] += 0.7 * community_affinity
        w_comm[user_second[u]] += 0.3 * community_affinity
        probs = pop * (w_comm[item_comm] / comm_mass[item_comm]) + (1 - community_affinity) * pop / pop.sum()
        chosen = torch.multinomial(probs, int(counts[u]), replacement=False, generator=gen)
        users.append(torch.full((chosen.numel(),), u, dtype=torch.long))
        items.append(chosen)
    user = torch.cat(users)
    item = torch.cat(items)
    timestamp = torch.randperm(user.numel(), generator=gen)
    return RawInteractions(
        user=user,
        item=item,
        num_users=num_users,
        num_items=num_items,
        timestamp=timestamp,
        rating=torch.ones(user.numel()),
        item_text=_item_texts(item_comm, words_per_community, words_per_text, gen),
        user_tokens=[f"u{u}" for u in range(num_users)],
        item_tokens=[f"i{i}" for i in range(num_items)],
        source=f"synthetic(seed={seed})",
    )


def _item_texts(item_comm: torch.Tensor, words_per_community: int, words_per_text: int, gen: torch.Generator) -> list[str | None]:
    num_comm = int(item_comm.max()) + 1 if item_comm.numel() else 0
    vocab = []
    for c in range(num_comm):
        words = []
        for _ in range(words_per_community):
            idx = torch.randint(0, len(_SYLLABLES), (3,), generator=gen).tolist()
            words.append("".join(_SYLLABLES[i] for i in idx))
        vocab.append(words)
    texts: list[str | None] = []
    for c in item_comm.tolist():
        n_topic = max(1, words_per_text - 2)
        topic = torch.randint(0, words_per_community, (n_topic,), generator=gen).tolist()
        filler = torch.randint(0, len(_FILLER), (words_per_text - n_topic,), generator=gen).tolist()
        texts.append(" ".join([vocab[c][i] for i in topic] + [_FILLER[i] for i in filler]))
    return texts
