"""Neighbour-sampled computation graphs: real edges only, fanouts respected, exact L-hop ball when the
fanouts exceed every degree, seeded; sampled training learns and refuses what it cannot do."""

from __future__ import annotations

import pytest
import torch

from graphrec_lab.config import ConfigError, compose
from graphrec_lab.data.neighbor_sampling import NeighborSampler
from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.experiment import run_experiment
from graphrec_lab.models.gnn.lightgcn import LightGCN
from graphrec_lab.training.task import RecommendationTask
from tests.conftest import tiny_overrides


def random_graph(num_users=40, num_items=30, edges=200, seed=0) -> tuple[TrainGraph, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    keys = torch.unique(torch.randint(0, num_users * num_items, (edges,), generator=g))
    users, items = keys // num_items, keys % num_items
    return TrainGraph.from_edges(users, items, num_users, num_items), users, items


def sampled_pairs(sub, num_items: int) -> set[tuple[int, int]]:
    """The computation graph's user-item edges in global ids."""
    src, dst = sub.graph.edge_index
    half = src < sub.graph.num_users
    u = sub.user_ids[src[half]]
    i = sub.item_ids[dst[half] - sub.graph.num_users]
    return set(zip(u.tolist(), i.tolist()))


def ball_edges(users, items, num_users, seeds: set[int], hops: int) -> set[tuple[int, int]]:
    """Brute force: the edges incident to nodes within hops-1 of the seeds (node ids: users, then items)."""
    adj: dict[int, set[int]] = {}
    for u, i in zip(users.tolist(), items.tolist()):
        adj.setdefault(u, set()).add(num_users + i)
        adj.setdefault(num_users + i, set()).add(u)
    frontier, seen, out = set(seeds), set(seeds), set()
    for _ in range(hops):
        nxt = set()
        for v in frontier:
            for w in adj.get(v, ()):
                u, i = (v, w) if v < num_users else (w, v)
                out.add((u, i - num_users))
                if w not in seen:
                    nxt.add(w)
        seen |= nxt
        frontier = nxt
    return out


def test_fanouts_above_every_degree_give_exactly_the_l_hop_ball():
    graph, users, items = random_graph()
    sampler = NeighborSampler(graph, [1000, 1000])
    bu, bp, bn = torch.tensor([0, 3]), torch.tensor([1, 2]), torch.tensor([5, 7])
    sub = sampler.sample(bu, bp, bn, torch.Generator().manual_seed(0))
    seeds = {0, 3} | {graph.num_users + i for i in (1, 2, 5, 7)}
    assert sampled_pairs(sub, graph.num_items) == ball_edges(users, items, graph.num_users, seeds, hops=2)
    # The batch maps back to its global ids.
    assert sub.user_ids[sub.users].tolist() == [0, 3]
    assert sub.item_ids[sub.pos_items].tolist() == [1, 2] and sub.item_ids[sub.neg_items].tolist() == [5, 7]


def test_sampled_edges_are_real_and_fanouts_are_respected():
    graph, users, items = random_graph(num_users=60, num_items=20, edges=600, seed=1)
    real = set(zip(users.tolist(), items.tolist()))
    sampler = NeighborSampler(graph, [3])
    bu = torch.arange(10)
    sub = sampler.sample(bu, torch.zeros(10, dtype=torch.long), torch.ones(10, dtype=torch.long), torch.Generator().manual_seed(0))
    pairs = sampled_pairs(sub, graph.num_items)
    assert pairs <= real
    # One hop: every sampled edge touches a seed, and each seed keeps at most 3 neighbours
    # (items 0 and 1 are seeds too, so count per seed over the edges they own).
    per_user = torch.bincount(torch.tensor([u for u, i in pairs if u < 10 and i not in (0, 1)]), minlength=10)
    assert int(per_user.max()) <= 3
    item_deg = {i: sum(1 for u, j in pairs if j == i and u >= 10) for i in (0, 1)}
    assert max(item_deg.values()) <= 3


def test_sampling_is_seeded():
    graph, _, _ = random_graph(edges=400, seed=2)
    sampler = NeighborSampler(graph, [2, 2])
    args = (torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6]), torch.tensor([7, 8, 9]))
    a = sampler.sample(*args, torch.Generator().manual_seed(5))
    b = sampler.sample(*args, torch.Generator().manual_seed(5))
    assert torch.equal(a.graph.edge_index, b.graph.edge_index) and torch.equal(a.item_ids, b.item_ids)


def test_with_every_neighbour_kept_a_seeds_aggregation_equals_the_full_graphs():
    """Sum aggregation of one hop: over the computation graph and over the full graph, for the seeds."""
    graph, _, _ = random_graph(edges=300, seed=3)
    model = LightGCN(graph.num_users, graph.num_items, embedding_dim=4, num_layers=1)
    sampler = NeighborSampler(graph, [1000])
    sub = sampler.sample(torch.tensor([0, 1]), torch.tensor([0]).repeat(2), torch.tensor([1]).repeat(2))
    x0 = model.input_rows(sub.user_ids, sub.item_ids)
    adj = torch.sparse_coo_tensor(sub.graph.edge_index, torch.ones(sub.graph.edge_index.shape[1]), (x0.shape[0],) * 2)
    full = torch.sparse_coo_tensor(graph.edge_index, torch.ones(graph.edge_index.shape[1]), (graph.num_nodes,) * 2)
    local = torch.sparse.mm(adj, x0)[sub.users]
    want = torch.sparse.mm(full, model.input())[torch.tensor([0, 1])]
    assert torch.allclose(local, want, atol=1e-6)


def test_sampled_training_learns_on_the_synthetic_graph(out_dir):
    common = tiny_overrides(out_dir, "trainer.max_epochs=20", "trainer.check_val_every_n_epoch=5", "print_table=false")
    sampled = run_experiment(compose([*common, "model=lightgcn", "model.num_layers=2", "task.sampling={fanouts:[5,5]}"]))
    pop = run_experiment(compose([*common, "model=pop"]))
    assert sampled["val/ndcg@20"] > pop["val/ndcg@20"]


def test_sampling_config_errors_name_the_key():
    graph, _, _ = random_graph()
    model = LightGCN(graph.num_users, graph.num_items, embedding_dim=4, num_layers=2)
    with pytest.raises(ConfigError, match=r"task.sampling.fanouts=\[5\]: need one positive fanout per layer \(2"):
        RecommendationTask(model, sampling={"fanouts": [5]})
    with pytest.raises(ConfigError, match="task.sampling: unknown keys \\['fanout'\\]"):
        RecommendationTask(model, sampling={"fanout": [5, 5]})
    from graphrec_lab.training.objectives import SimGCLContrast

    with pytest.raises(ConfigError, match="objectives and LoRA text need full-graph training"):
        RecommendationTask(model, sampling={"fanouts": [5, 5]}, objectives={"cl": SimGCLContrast()})


def test_lazy_row_adam_is_adam_when_every_row_is_touched():
    from graphrec_lab.training.lazy_adam import LazyRowAdam

    torch.manual_seed(0)
    dense = torch.nn.Parameter(torch.randn(6, 3))
    lazy_weight = torch.nn.Parameter(dense.detach().clone())
    adam = torch.optim.Adam([dense], lr=0.01, weight_decay=0.001)
    lazy = LazyRowAdam(lazy_weight, lr=0.01, weight_decay=0.001)
    ids = torch.tensor([3, 0, 5, 1, 4, 2])  # every row, in any order
    for _ in range(5):
        grad = torch.randn(6, 3)
        dense.grad = grad.clone()
        adam.step()
        lazy.step(ids, grad[ids])
    assert torch.allclose(dense, lazy_weight, atol=1e-6)


def test_lazy_row_adam_leaves_untouched_rows_and_their_moments_alone():
    from graphrec_lab.training.lazy_adam import LazyRowAdam

    weight = torch.nn.Parameter(torch.randn(5, 2))
    before = weight.detach().clone()
    lazy = LazyRowAdam(weight, lr=0.1)
    lazy.step(torch.tensor([1, 3]), torch.ones(2, 2))
    changed = (weight.detach() != before).any(1)
    assert changed.tolist() == [False, True, False, True, False]
    assert lazy.exp_avg[[0, 2, 4]].abs().sum() == 0


def test_sampled_training_with_lazy_row_updates_learns_and_trains_no_dense_table(out_dir):
    common = tiny_overrides(out_dir, "trainer.max_epochs=20", "trainer.check_val_every_n_epoch=5", "print_table=false")
    lazy = run_experiment(
        compose([*common, "model=lightgcn", "model.num_layers=2", "task.sampling={fanouts:[5,5],row_updates:lazy_adam}"])
    )
    pop = run_experiment(compose([*common, "model=pop"]))
    assert lazy["val/ndcg@20"] > pop["val/ndcg@20"]


def test_lazy_rows_need_an_id_table():
    graph, _, _ = random_graph()
    model = LightGCN(graph.num_users, graph.num_items, embedding_dim=4, num_layers=1, item_features=torch.randn(graph.num_items, 3), feature_mode="sum")
    with pytest.raises(ConfigError, match="row_updates=lazy_adam needs ID embeddings"):
        RecommendationTask(model, sampling={"fanouts": [5], "row_updates": "lazy_adam"})
    with pytest.raises(ConfigError, match="row_updates='sparse': expected dense or lazy_adam"):
        RecommendationTask(model, sampling={"fanouts": [5], "row_updates": "sparse"})


@pytest.mark.parametrize("row_updates", ["dense", "lazy_adam"])
def test_a_sampled_step_uses_only_the_sampled_graph(row_updates):
    """The step samples a computation graph and never needs the full graph's adjacency; with lazy rows
    the ID table is left out of Adam and only the step's rows change."""
    from graphrec_lab.data.sampling import TrainBatch

    graph, users, items = random_graph(num_users=50, num_items=40, edges=400, seed=4)
    model = LightGCN(graph.num_users, graph.num_items, embedding_dim=8, num_layers=2)
    task = RecommendationTask(model, sampling={"fanouts": [2, 2], "row_updates": row_updates})
    task.attach_graph(graph)
    calls = []
    sample = task._sampler.sample
    task._sampler.sample = lambda *a, **k: calls.append(1) or sample(*a, **k)
    graph.norm_adj = None  # a full-graph pass would fail on this
    task.on_train_epoch_start()
    batch = TrainBatch(torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5]))
    optimizer = task.configure_optimizers()
    before = model.embedding.weight.detach().clone()
    loss = task._training_step(batch)
    optimizer.zero_grad()
    loss.backward()
    task.on_after_backward()
    optimizer.step()
    assert calls == [1]
    changed = (model.embedding.weight.detach() != before).any(1)
    in_adam = any(p is model.embedding.weight for g in optimizer.param_groups for p in g["params"])
    assert in_adam == (row_updates == "dense")
    # Either way the first step moves the computation graph's rows and nothing else (Adam's first
    # step leaves zero-gradient rows in place).
    assert 0 < int(changed.sum()) < graph.num_nodes
