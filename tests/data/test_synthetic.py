"""The embedded synthetic dataset: determinism, ranges, text with community signal, popularity skew."""

from __future__ import annotations

import itertools

import torch

from graphrec_lab.data.synthetic import _FILLER, generate_synthetic

KW = {"num_users": 150, "num_items": 200, "num_communities": 5, "interactions_per_user": 12.0}


def _same(a, b) -> bool:
    return (
        torch.equal(a.user, b.user)
        and torch.equal(a.item, b.item)
        and torch.equal(a.timestamp, b.timestamp)
        and a.item_text == b.item_text
    )


def test_deterministic_for_seed_and_differs_across_seeds():
    a = generate_synthetic(**KW, seed=3)
    b = generate_synthetic(**KW, seed=3)
    c = generate_synthetic(**KW, seed=4)
    assert _same(a, b)
    assert not torch.equal(a.item[: min(len(a), len(c))], c.item[: min(len(a), len(c))])
    assert a.item_text != c.item_text
    assert a.source != c.source


def test_ids_in_range_and_shapes():
    r = generate_synthetic(**KW, seed=0)
    n = len(r)
    assert (r.num_users, r.num_items) == (150, 200)
    assert r.user.dtype == torch.long and r.item.dtype == torch.long
    assert int(r.user.min()) >= 0 and int(r.user.max()) < 150
    assert int(r.item.min()) >= 0 and int(r.item.max()) < 200
    assert r.timestamp.shape == (n,) and r.rating.shape == (n,)
    # Timestamps are one distinct tick per interaction.
    assert sorted(r.timestamp.tolist()) == list(range(n))
    # Every user has at least 5 interactions and no (user, item) pair repeats.
    assert int(torch.bincount(r.user, minlength=150).min()) >= 5
    assert torch.unique(r.user * 200 + r.item).numel() == n
    assert len(r.user_tokens) == 150 and len(r.item_tokens) == 200


def test_every_item_has_text():
    r = generate_synthetic(**KW, seed=0, words_per_text=6)
    assert len(r.item_text) == r.num_items
    for t in r.item_text:
        assert isinstance(t, str) and len(t.split()) == 6


def _topic_words(text: str) -> set[str]:
    return {w for w in text.split() if w not in _FILLER}


def _item_communities(seed: int, num_items: int, num_communities: int) -> torch.Tensor:
    """The generator's first draw is the item community (white-box: mirrors synthetic.py)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, num_communities, (num_items,), generator=gen)


def test_same_community_items_share_more_vocabulary():
    seed = 5
    r = generate_synthetic(**KW, seed=seed)
    comm = _item_communities(seed, KW["num_items"], KW["num_communities"]).tolist()
    words = [_topic_words(t) for t in r.item_text]
    same, diff = [], []
    for a, b in itertools.combinations(range(r.num_items), 2):
        inter = len(words[a] & words[b])
        (same if comm[a] == comm[b] else diff).append(inter)
    mean_same = sum(same) / len(same)
    mean_diff = sum(diff) / len(diff)
    assert mean_same > 0.5
    assert mean_same > 10 * max(mean_diff, 0.01)
    # The vocabulary of a community is small: its items use at most words_per_community topic words.
    by_comm: dict[int, set[str]] = {}
    for c, w in zip(comm, words):
        by_comm.setdefault(c, set()).update(w)
    assert all(len(v) <= 12 for v in by_comm.values())


def test_users_interact_mostly_within_their_community_structure():
    """Co-interaction signal: a user's items concentrate in few communities."""
    seed = 6
    r = generate_synthetic(**KW, seed=seed)
    comm = _item_communities(seed, KW["num_items"], KW["num_communities"])
    top2 = []
    for u in range(r.num_users):
        c = torch.bincount(comm[r.item[r.user == u]], minlength=KW["num_communities"]).sort(descending=True).values
        top2.append(float(c[:2].sum()) / float(c.sum()))
    # With affinity 0.85 most interactions fall in the user's two communities (2/5 at random).
    assert sum(top2) / len(top2) > 0.7


def test_popularity_is_skewed():
    r = generate_synthetic(**KW, seed=0)
    counts = torch.bincount(r.item, minlength=r.num_items).sort(descending=True).values
    top = counts[: r.num_items // 10].sum().item() / counts.sum().item()
    assert top > 0.2  # uniform popularity would give about 0.10
    flat = generate_synthetic(**KW, seed=0, popularity_exponent=0.0)
    flat_counts = torch.bincount(flat.item, minlength=flat.num_items).sort(descending=True).values
    flat_top = flat_counts[: flat.num_items // 10].sum().item() / flat_counts.sum().item()
    assert top > flat_top + 0.05
