"""Negative samplers: each distribution matches its definition (chi-square over many seeded draws)
and no draw is ever a training positive of its user."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import chisquare

from graphrec_lab.data.sampling import NegativeSampler, hardest_negatives, popularity_weights

NUM_USERS, NUM_ITEMS = 3, 8
# user 0: items 0, 1; user 1: items 0, 2, 3; user 2: items 0, 1, 4, 5 (item 0 is the most popular)
USERS = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2, 2])
ITEMS = torch.tensor([0, 1, 0, 2, 3, 0, 1, 4, 5])
POSITIVES = {0: {0, 1}, 1: {0, 2, 3}, 2: {0, 1, 4, 5}}
DRAWS = 40_000


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _assert_matches(draws: torch.Tensor, expected_p: torch.Tensor) -> None:
    """Chi-square goodness of fit over the categories of nonzero probability (a fixed seed: a
    p-value below 1e-3 means the draw does not follow ``expected_p``); zero-probability items never drawn."""
    counts = torch.bincount(draws.flatten(), minlength=expected_p.numel()).double()
    support = expected_p > 0
    assert counts[~support].sum() == 0, f"drawn outside the support: {counts}"
    expected = expected_p[support] / expected_p[support].sum() * counts.sum()
    assert chisquare(counts[support].numpy(), expected.numpy()).pvalue > 1e-3


def _never_positive(users: torch.Tensor, negatives: torch.Tensor) -> None:
    for u, row in zip(users.tolist(), negatives.view(users.numel(), -1).tolist()):
        assert not POSITIVES[u] & set(row)


def test_uniform_is_uniform_over_the_users_non_positives() -> None:
    sampler = NegativeSampler(USERS, ITEMS, NUM_USERS, NUM_ITEMS)
    users = torch.full((DRAWS,), 1)
    draws = sampler.sample(users, _gen())
    p = torch.ones(NUM_ITEMS, dtype=torch.float64)
    p[list(POSITIVES[1])] = 0
    _assert_matches(draws, p)
    many = torch.tensor([0, 1, 2]).repeat(2000)
    _never_positive(many, sampler.sample_k(many, 5, _gen(1)))


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_popularity_alpha_is_count_to_the_alpha_over_non_positives(alpha: float) -> None:
    # Popularity over a larger catalogue, so that items of different counts stay drawable.
    users = torch.tensor([0, 1, 1, 2, 2, 2, 3, 3, 3, 3, 4])
    items = torch.tensor([0, 0, 1, 0, 1, 2, 0, 1, 2, 3, 5])
    weights = popularity_weights(items, 7, alpha)
    assert torch.allclose(weights, torch.tensor([4.0, 3, 2, 1, 0, 1, 0], dtype=torch.float64).pow(alpha))
    sampler = NegativeSampler(users, items, 5, 7, weights=weights)
    draws = sampler.sample(torch.full((DRAWS,), 0), _gen())  # user 0 has item 0
    p = weights.clone()
    p[0] = 0
    _assert_matches(draws, p)
    many = torch.arange(5).repeat(1000)
    negatives = sampler.sample_k(many, 3, _gen(2))
    edges = set(zip(users.tolist(), items.tolist()))
    assert not any((u, i) in edges for u, row in zip(many.tolist(), negatives.tolist()) for i in row)


def test_popularity_rejects_negative_alpha_and_users_with_no_drawable_negative() -> None:
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        popularity_weights(ITEMS, NUM_ITEMS, -0.5)
    # alpha > 0: only interacted items are drawable; user 0 holds both of them
    users, items = torch.tensor([0, 0, 1]), torch.tensor([0, 1, 0])
    with pytest.raises(ValueError, match="user 0 has every item of nonzero sampling weight"):
        NegativeSampler(users, items, 2, 4, weights=popularity_weights(items, 4, 1.0))


def test_in_batch_draws_the_other_rows_positives_in_proportion() -> None:
    sampler = NegativeSampler(USERS, ITEMS, NUM_USERS, NUM_ITEMS)
    users = torch.tensor([0, 1, 2, 0])
    pos = torch.tensor([1, 2, 5, 0])  # each row's positive
    draws = sampler.sample_in_batch(users, pos, DRAWS, _gen())
    assert draws.shape == (4, DRAWS)
    # row 0 (user 0): the other rows give 2, 5, 0; item 0 is user 0's positive -> 2 and 5 equally
    _assert_matches(draws[0], torch.tensor([0, 0, 1, 0, 0, 1, 0, 0], dtype=torch.float64))
    # row 1 (user 1): others give 1, 5, 0; 0 is user 1's positive -> 1 and 5 equally
    _assert_matches(draws[1], torch.tensor([0, 1, 0, 0, 0, 1, 0, 0], dtype=torch.float64))
    # row 2 (user 2): others give 1, 2, 0; only 2 is not user 2's positive
    assert bool((draws[2] == 2).all())
    _never_positive(users, draws)


def test_in_batch_falls_back_to_the_sampler_when_no_other_row_qualifies() -> None:
    sampler = NegativeSampler(USERS, ITEMS, NUM_USERS, NUM_ITEMS)
    draws = sampler.sample_in_batch(torch.tensor([0]), torch.tensor([1]), 500, _gen())  # a batch of one
    _never_positive(torch.tensor([0]), draws)
    assert draws.unique().numel() == NUM_ITEMS - 2  # every non-positive reachable, as a uniform draw


def test_hard_keeps_the_highest_scored_of_m_uniform_candidates() -> None:
    """Scores increase with the item id, so the pick is the max of M uniform draws over the user's
    non-positives {2, ..., 7} (user 0): P(pick = r-th of n) = (r/n)^M - ((r-1)/n)^M."""
    sampler = NegativeSampler(USERS, ITEMS, NUM_USERS, NUM_ITEMS)
    m, k = 3, 2
    users = torch.zeros(DRAWS // k, dtype=torch.long)
    candidates = sampler.sample_k(users, k * m, _gen()).view(-1, k, m)
    picks = hardest_negatives(candidates, candidates.double())
    assert picks.shape == (DRAWS // k, k)
    n = 6
    p = torch.zeros(NUM_ITEMS, dtype=torch.float64)
    for r, item in enumerate(range(2, 8), start=1):
        p[item] = (r / n) ** m - ((r - 1) / n) ** m
    _assert_matches(picks, p)
    _never_positive(users, picks)


def test_the_one_negative_api_is_unchanged() -> None:
    sampler = NegativeSampler(USERS, ITEMS, NUM_USERS, NUM_ITEMS)
    users = torch.tensor([0, 1, 2, 2])
    a = sampler.sample(users, _gen(5))
    assert a.shape == users.shape and a.dtype == torch.long
    assert torch.equal(a, sampler.sample(users, _gen(5)))
    assert sampler.is_positive(torch.tensor([0, 0]), torch.tensor([1, 2])).tolist() == [True, False]
