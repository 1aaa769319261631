"""Edge-level DP of the training graph: the mechanisms' probabilities, sparsity, and the data module."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from graphrec_lab.privacy.edge_dp import (
    EdgeDPConfig,
    EdgeDPError,
    edgerand_probabilities,
    parse_privacy,
    release_bipartite,
    rr_probabilities,
    sample_non_edges,
    top_laplace_order_statistics,
)


def _graph(num_users: int, num_items: int, edges: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    keys = np.unique(rng.choice(num_users * num_items, size=edges, replace=False))
    return torch.from_numpy(keys // num_items), torch.from_numpy(keys % num_items)


def _keys(users: torch.Tensor, items: torch.Tensor, num_items: int) -> set[int]:
    return set((users * num_items + items).tolist())


@pytest.mark.parametrize("eps", [0.5, 1.0, 2.0])
def test_randomised_response_flip_probabilities_match_closed_form(eps):
    num_users, num_items = 12, 15
    users, items = _graph(num_users, num_items, 60)
    true = _keys(users, items, num_items)
    draws = 400
    kept = added = 0
    watched = next(k for k in range(num_users * num_items) if k not in true)  # one fixed non-edge
    watched_on = 0
    for seed in range(draws):
        out = release_bipartite(users, items, num_users, num_items, EdgeDPConfig("rr", eps, seed=seed))
        released = _keys(out.users, out.items, num_items)
        kept += len(released & true)
        added += len(released - true)
        watched_on += watched in released
    flip = 1.0 / (1.0 + math.exp(eps))
    n_edges, n_free = draws * len(true), draws * (num_users * num_items - len(true))
    # Binomial counts: within 5 standard deviations of their closed-form means.
    assert abs(kept - n_edges * (1 - flip)) < 5 * math.sqrt(n_edges * flip * (1 - flip))
    assert abs(added - n_free * flip) < 5 * math.sqrt(n_free * flip * (1 - flip))
    assert abs(watched_on - draws * flip) < 5 * math.sqrt(draws * flip * (1 - flip))


def test_mechanisms_are_epsilon_dp_per_cell():
    for eps in (0.1, 1.0, 4.0, 8.0):
        keep, add = rr_probabilities(eps)
        assert max(keep / add, (1 - add) / (1 - keep)) == pytest.approx(math.exp(eps))
        for density in (1e-6, 0.01, 0.3, 0.5):
            keep, add = edgerand_probabilities(eps, density)
            assert keep / add == pytest.approx(math.exp(eps))
            assert (1 - add) / (1 - keep) <= math.exp(eps) * (1 + 1e-12)
            # The expected count of a graph of exactly that density is its edge count.
            total, edges = 10_000, density * 10_000
            assert edges * keep + (total - edges) * add == pytest.approx(edges)


@pytest.mark.parametrize("mechanism", ["none", "rr", "edgerand", "lapgraph"])
def test_disabled_release_is_the_input_bit_for_bit(mechanism):
    users, items = _graph(30, 40, 200)
    users, items = users.flip(0), items.flip(0)  # an order the mechanisms would not produce
    eps = math.inf if mechanism != "none" else 1.0
    out = release_bipartite(users, items, 30, 40, EdgeDPConfig(mechanism, eps))
    assert out.users is users and out.items is items


@pytest.mark.parametrize("mechanism", ["edgerand", "lapgraph"])
def test_degree_preserving_variants_keep_the_expected_edge_count(mechanism):
    num_users, num_items, m = 60, 80, 500
    users, items = _graph(num_users, num_items, m)
    counts = [
        release_bipartite(users, items, num_users, num_items, EdgeDPConfig(mechanism, 4.0, seed=s, count_fraction=0.5)).report["edges_out"]
        for s in range(300)
    ]
    mean, se = float(np.mean(counts)), float(np.std(counts)) / math.sqrt(len(counts))
    assert abs(mean - m) < 5 * se + 1.0
    # ... while randomised response inflates a sparse graph (epsilon 1: 27% of all cells).
    rr = release_bipartite(users, items, num_users, num_items, EdgeDPConfig("rr", 1.0)).report["edges_out"]
    assert rr > 1.5 * m


def test_lapgraph_keeps_true_edges_at_large_epsilon_and_loses_them_at_small():
    num_users, num_items = 50, 60
    users, items = _graph(num_users, num_items, 300)
    true = _keys(users, items, num_items)

    def overlap(eps: float) -> float:
        out = release_bipartite(users, items, num_users, num_items, EdgeDPConfig("lapgraph", eps, seed=3))
        return len(_keys(out.users, out.items, num_items) & true) / len(true)

    assert overlap(50.0) > 0.95
    assert overlap(0.5) < 0.3


def test_release_of_a_large_sparse_graph_never_builds_the_dense_matrix():
    # 1e10 cells: a dense mask would need 10 GB; the release touches only edges and released cells.
    num_users = num_items = 100_000
    users, items = torch.randint(0, num_users, (50_000,)), torch.randint(0, num_items, (50_000,))
    for mechanism in ("edgerand", "lapgraph"):
        out = release_bipartite(users, items, num_users, num_items, EdgeDPConfig(mechanism, 2.0, seed=0))
        assert abs(out.users.numel() - 50_000) < 2_000
        assert int(out.users.max()) < num_users and int(out.items.max()) < num_items
        keys = out.users * num_items + out.items
        assert keys.unique().numel() == keys.numel()


def test_sampled_non_edges_are_distinct_uniform_non_edges():
    rng = np.random.default_rng(0)
    edges = np.array([0, 1, 5, 6, 7, 12], dtype=np.int64)
    free = np.setdiff1d(np.arange(15), edges)
    hits = np.zeros(15)
    for _ in range(3000):
        cells = sample_non_edges(edges, 15, 4, rng)
        assert len(set(cells.tolist())) == 4 and not set(cells.tolist()) & set(edges.tolist())
        hits[cells] += 1
    expected = 3000 * 4 / free.size
    assert np.all(np.abs(hits[free] - expected) < 5 * math.sqrt(expected))


def test_top_laplace_order_statistics_match_a_direct_sort():
    rng = np.random.default_rng(1)
    n, k, reps = 2_000, 5, 2_000
    fast = np.stack([top_laplace_order_statistics(n, k, 0.7, rng) for _ in range(reps)])
    slow = np.stack([np.sort(rng.laplace(0, 0.7, n))[::-1][:k] for _ in range(reps)])
    assert np.all(np.diff(fast, axis=1) <= 0)
    se = np.sqrt(fast.var(0) / reps + slow.var(0) / reps)
    assert np.all(np.abs(fast.mean(0) - slow.mean(0)) < 5 * se)


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ({"edge_dp": {"mechanism": "rr", "epsilon": 0}}, "data.privacy.edge_dp.epsilon"),
        ({"edge_dp": {"mechanism": "rr", "epsilon": -1.0}}, "data.privacy.edge_dp.epsilon"),
        ({"edge_dp": {"mechanism": "rr", "epsilon": "abc"}}, "data.privacy.edge_dp.epsilon"),
        ({"edge_dp": {"mechanism": "flip", "epsilon": 1.0}}, "data.privacy.edge_dp.mechanism"),
        ({"edge_dp": {"mechanism": "rr", "epsilom": 1.0}}, "data.privacy.edge_dp.epsilom"),
        ({"edge_dp": {"mechanism": "lapgraph", "epsilon": 1.0, "count_fraction": 1.0}}, "data.privacy.edge_dp.count_fraction"),
        ({"dp": {}}, "data.privacy.dp"),
    ],
)
def test_bad_settings_name_the_key(value, key):
    with pytest.raises(EdgeDPError, match=key.replace(".", r"\.")):
        parse_privacy(value)


def test_rr_refuses_a_release_larger_than_max_edges():
    users, items = _graph(100, 100, 50)
    with pytest.raises(EdgeDPError, match="edgerand or lapgraph"):
        release_bipartite(users, items, 100, 100, EdgeDPConfig("rr", 1.0, max_edges=1000))


def test_datamodule_trains_on_the_released_graph_and_evaluates_on_the_true_one():
    from graphrec_lab.data.datamodule import InteractionDataModule

    synthetic = {"num_users": 80, "num_items": 100, "interactions_per_user": 10.0, "seed": 0}
    plain = InteractionDataModule(synthetic=synthetic, cache_dir="none")
    private = InteractionDataModule(
        synthetic=synthetic, cache_dir="none", privacy={"edge_dp": {"mechanism": "lapgraph", "epsilon": 1.0}}
    )
    off = InteractionDataModule(
        synthetic=synthetic, cache_dir="none", privacy={"edge_dp": {"mechanism": "lapgraph", "epsilon": ".inf"}}
    )
    for dm in (plain, private, off):
        dm.setup()
    graph = plain.load_graph()
    true = _keys(graph.train.users, graph.train.items, graph.num_items)
    released = _keys(private._fit_edges()[0], private._fit_edges()[1], graph.num_items)
    assert released != true and private.edge_dp_report["mechanism"] == "lapgraph"
    batch = next(iter(private.train_dataloader()))
    assert set((batch.users * graph.num_items + batch.pos_items).tolist()) <= released
    assert private.train_graph.edge_index.shape[1] == 2 * len(released)
    # The evaluator's exclusion mask is the user's own true training data.
    for split in ("val", "test"):
        assert torch.equal(private.eval_users(split).exclude.cols, plain.eval_users(split).exclude.cols)
        assert torch.equal(private.eval_users(split).exclude.rowptr, plain.eval_users(split).exclude.rowptr)
    # epsilon = inf: the very same training graph and batches as without the setting.
    assert torch.equal(off.train_graph.edge_index, plain.train_graph.edge_index)
    b_off, b_plain = next(iter(off.train_dataloader())), next(iter(plain.train_dataloader()))
    assert torch.equal(b_off.neg_items, b_plain.neg_items)


def test_social_data_module_releases_interactions_and_ties():
    from graphrec_lab.data.social import SocialDataModule
    from tests.data.test_social import dm

    def pairs(e: torch.Tensor) -> set[tuple[int, int]]:
        return set(map(tuple, e.t().tolist()))

    privacy = {"edge_dp": {"mechanism": "rr", "epsilon": 1.0, "seed": 3}}
    plain = dm("diffnet:tiny", social_only_users="keep")
    private = dm("diffnet:tiny", social_only_users="keep", privacy=privacy)
    graph = plain.load_graph()
    true_ties, released_ties = pairs(graph.social_edges), pairs(private.train_graph.social_edge_index)
    assert released_ties != true_ties and private.edge_dp_report["ties"]["mechanism"] == "rr"
    assert released_ties == {(b, a) for a, b in released_ties}  # symmetric ties stay symmetric
    n = graph.num_users
    half = private.train_graph.edge_index.shape[1] // 2
    released = set((private.train_graph.edge_index[0, :half] * graph.num_items
                    + private.train_graph.edge_index[1, :half] - n).tolist())  # fmt: skip
    assert released != set((graph.train.users * graph.num_items + graph.train.items).tolist())
    # The models' tie accessor reads the release, never the true ties.
    assert pairs(private.social_edges()) == released_ties
    with pytest.raises(ValueError, match=r"data\.privacy\.edge_dp applies to data\.target=items"):
        SocialDataModule(dataset="hetrec2011-lastfm-2k", target="friends", privacy=privacy)


def test_pair_index_round_trips():
    from graphrec_lab.privacy.edge_dp import _pair_from_index, _pair_index

    for n in (2, 3, 7, 50):
        i, j = np.triu_indices(n, k=1)
        t = _pair_index(i, j, n)
        assert np.array_equal(t, np.arange(n * (n - 1) // 2))
        a, b = _pair_from_index(t, n)
        assert np.array_equal(a, i) and np.array_equal(b, j)
    n = 3_000_000  # 4.5e12 pairs: the float square root is corrected to the exact row
    t = np.array([0, 1, n - 2, n - 1, n * (n - 1) // 2 - 1, 123_456_789_012])
    a, b = _pair_from_index(t, n)
    assert np.array_equal(_pair_index(a, b, n), t) and np.all(a < b) and np.all(b < n)


@pytest.mark.parametrize("symmetric", [True, False])
def test_tie_release_flips_pairs_at_the_closed_form_rate(symmetric):
    from graphrec_lab.privacy.edge_dp import release_ties

    n = 12
    rng = np.random.default_rng(0)
    pairs = {(int(a), int(b)) for a, b in rng.integers(0, n, (40, 2)) if a != b}
    if symmetric:
        pairs = {(min(a, b), max(a, b)) for a, b in pairs}
        edges = torch.tensor([[a for a, b in pairs] + [b for a, b in pairs], [b for a, b in pairs] + [a for a, b in pairs]])
        cells = n * (n - 1) // 2
    else:
        edges = torch.tensor([[a for a, b in pairs], [b for a, b in pairs]])
        cells = n * (n - 1)
    eps, draws = 1.0, 300
    kept = added = 0
    for seed in range(draws):
        out, report = release_ties(edges, n, EdgeDPConfig("rr", eps, seed=seed), symmetric=symmetric)
        assert not bool((out[0] == out[1]).any())
        got = set(zip(out[0].tolist(), out[1].tolist()))
        if symmetric:
            assert all((b, a) in got for a, b in got)  # both directions
            got = {(a, b) for a, b in got if a < b}
        kept += len(got & pairs)
        added += len(got - pairs)
    flip = 1.0 / (1.0 + math.exp(eps))
    n_edges, n_free = draws * len(pairs), draws * (cells - len(pairs))
    assert abs(kept - n_edges * (1 - flip)) < 5 * math.sqrt(n_edges * flip * (1 - flip))
    assert abs(added - n_free * flip) < 5 * math.sqrt(n_free * flip * (1 - flip))
    same, _ = release_ties(edges, n, EdgeDPConfig("rr", math.inf), symmetric=symmetric)
    assert same is edges
