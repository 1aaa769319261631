"""Models: shapes, gradients, determinism, and LightGCN against PyG's reference propagation."""

from __future__ import annotations

import math

import pytest
import torch

from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.models import LightGCN, MatrixFactorization, Popularity
from graphrec_lab.training.losses import bpr_loss, l2_batch_loss

U, I = 7, 9


def tiny_graph() -> TrainGraph:
    g = torch.Generator().manual_seed(0)
    users = torch.randint(0, U, (30,), generator=g)
    items = torch.randint(0, I, (30,), generator=g)
    keys = torch.unique(users * I + items)
    return TrainGraph.from_edges(keys // I, keys % I, U, I)


@pytest.mark.parametrize("make", [lambda: LightGCN(U, I, 8, 2), lambda: MatrixFactorization(U, I, 8)])
def test_shapes_and_gradients_reach_every_parameter(make):
    torch.manual_seed(0)
    model = make()
    graph = tiny_graph()
    users_emb, items_emb = model(graph)
    assert users_emb.shape == (U, 8) and items_emb.shape == (I, 8)
    users, pos, neg = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5])
    loss = bpr_loss((users_emb[users] * items_emb[pos]).sum(-1), (users_emb[users] * items_emb[neg]).sum(-1))
    loss = loss + l2_batch_loss(model.ego_embeddings(users, pos, neg))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_same_seed_same_init():
    torch.manual_seed(3)
    a = LightGCN(U, I, 8, 3).embedding.weight.clone()
    torch.manual_seed(3)
    b = LightGCN(U, I, 8, 3).embedding.weight.clone()
    assert torch.equal(a, b)


@pytest.mark.parametrize("init", ["normal", "xavier_normal", "xavier_uniform"])
def test_inits(init):
    w = MatrixFactorization(50, 60, 16, init=init).user_embedding.weight
    assert w.std() > 0
    with pytest.raises(ValueError, match="init="):
        MatrixFactorization(5, 6, 4, init="zeros")


@pytest.mark.parametrize("init", ["xavier_uniform", "xavier_normal"])
def test_shared_table_xavier_uses_each_sides_fan(init):
    """One [U+I, D] table, but each block scaled as the papers' separate [U, D] and [I, D] tables."""
    num_users, num_items, dim = 300, 3000, 16
    torch.manual_seed(0)
    w = LightGCN(num_users, num_items, dim, 3, init=init).embedding.weight.detach()
    for block, n in ((w[:num_users], num_users), (w[num_users:], num_items)):
        std = math.sqrt(2.0 / (n + dim))  # Xavier's std for a [n, dim] table (uniform or normal)
        assert block.std().item() == pytest.approx(std, rel=0.05)
        if init == "xavier_uniform":
            assert block.abs().max().item() <= math.sqrt(3) * std + 1e-6


def test_lightgcn_equals_pyg_reference_propagation():
    from torch_geometric.nn.models import LightGCN as PyGLightGCN

    graph = tiny_graph()
    ours = LightGCN(U, I, 8, 3)
    ref = PyGLightGCN(U + I, 8, num_layers=3)
    with torch.no_grad():
        ref.embedding.weight.copy_(ours.embedding.weight)
    users_emb, items_emb = ours(graph)
    expected = ref.get_embedding(graph.edge_index)
    assert torch.allclose(torch.cat([users_emb, items_emb]), expected, atol=1e-6)


def test_popularity_scores_items_by_training_degree():
    graph = tiny_graph()
    users_emb, items_emb = Popularity(U, I)(graph)
    scores = users_emb @ items_emb.T
    assert torch.equal(scores[0], graph.item_degree)
    assert not Popularity(U, I).trainable
