"""TrainGraph's normalised adjacency against a hand-built dense matrix, and symmetric_spmm's gradient."""

from __future__ import annotations

import math

import pytest
import torch

from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.ops.sparse import BlockAdjacency, block_adjacency, propagate_layer_mean, symmetric_spmm

# 3 users, 4 items. Item 3 (node 6) has no edge: a zero-degree node.
USERS = torch.tensor([0, 0, 1, 2, 2, 2])
ITEMS = torch.tensor([0, 1, 1, 0, 1, 2])
U, I = 3, 4


def _dense_norm_adj() -> torch.Tensor:
    """D^-1/2 A D^-1/2, written out by hand: degrees counted, entries 1/sqrt(d_u d_i)."""
    n = U + I
    a = torch.zeros(n, n, dtype=torch.float64)
    for u, i in zip(USERS.tolist(), ITEMS.tolist()):
        a[u, U + i] = 1.0
        a[U + i, u] = 1.0
    deg = [sum(1 for u in USERS.tolist() if u == node) for node in range(U)]
    deg += [sum(1 for i in ITEMS.tolist() if i == item) for item in range(I)]
    assert deg == [2, 1, 3, 2, 3, 1, 0]
    out = torch.zeros(n, n, dtype=torch.float64)
    for r in range(n):
        for c in range(n):
            if a[r, c]:
                out[r, c] = 1.0 / math.sqrt(deg[r] * deg[c])
    return out


def test_norm_adj_matches_hand_computed_dense():
    tg = TrainGraph.from_edges(USERS, ITEMS, U, I)
    assert tg.num_nodes == 7
    assert tg.norm_adj.layout == torch.sparse_csr
    assert tg.norm_adj.shape == (7, 7)
    assert tg.norm_adj.dtype == torch.float32
    dense = tg.norm_adj.to_dense().double()
    expected = _dense_norm_adj()
    assert torch.allclose(dense, expected, atol=1e-6)
    # Spot values: user 0 - item 0 (node 3): 1/sqrt(2*2); user 2 - item 1 (node 4): 1/sqrt(3*3).
    assert dense[0, 3].item() == pytest.approx(0.5)
    assert dense[2, 4].item() == pytest.approx(1 / 3)
    assert dense[1, 4].item() == pytest.approx(1 / math.sqrt(3))
    # Zero-degree node: an all-zero row and column, no NaN/inf anywhere.
    assert torch.isfinite(dense).all()
    assert dense[6].abs().sum() == 0 and dense[:, 6].abs().sum() == 0
    # No user-user or item-item entries.
    assert dense[:U, :U].abs().sum() == 0 and dense[U:, U:].abs().sum() == 0


def test_norm_adj_is_symmetric_and_degrees_edge_index():
    tg = TrainGraph.from_edges(USERS, ITEMS, U, I)
    dense = tg.norm_adj.to_dense()
    assert torch.equal(dense, dense.T)
    assert tg.user_degree.tolist() == [2.0, 1.0, 3.0]
    assert tg.item_degree.tolist() == [2.0, 3.0, 1.0, 0.0]
    assert tg.edge_index.shape == (2, 2 * USERS.numel())
    pairs = set(map(tuple, tg.edge_index.T.tolist()))
    for u, i in zip(USERS.tolist(), ITEMS.tolist()):
        assert (u, U + i) in pairs and (U + i, u) in pairs


def test_norm_adj_symmetric_on_random_graph():
    g = torch.Generator().manual_seed(0)
    users = torch.randint(0, 15, (60,), generator=g)
    items = torch.randint(0, 25, (60,), generator=g)
    key = torch.unique(users * 25 + items)
    tg = TrainGraph.from_edges(key // 25, key % 25, 15, 25)
    dense = tg.norm_adj.to_dense()
    assert torch.allclose(dense, dense.T)
    # Spectral radius of D^-1/2 A D^-1/2 is at most 1.
    assert torch.linalg.eigvalsh(dense.double()).abs().max() <= 1 + 1e-6


def test_symmetric_spmm_forward_and_gradient_match_dense():
    tg = TrainGraph.from_edges(USERS, ITEMS, U, I)
    dense = tg.norm_adj.to_dense()
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(7, 5, generator=g)
    w = torch.randn(7, 5, generator=g)

    x_sparse = x0.clone().requires_grad_(True)
    out_sparse = symmetric_spmm(tg.norm_adj, x_sparse)
    (out_sparse * w).sum().backward()

    x_dense = x0.clone().requires_grad_(True)
    out_dense = dense @ x_dense
    (out_dense * w).sum().backward()

    assert torch.allclose(out_sparse, out_dense, atol=1e-6)
    assert x_sparse.grad is not None
    assert torch.allclose(x_sparse.grad, x_dense.grad, atol=1e-6)
    # The gradient is A^T w, which here must equal A w.
    assert torch.allclose(x_sparse.grad, dense.T @ w, atol=1e-6)


def test_symmetric_spmm_two_layers_gradient():
    """Stacked propagation (as in LightGCN) still back-propagates like dense matmuls."""
    g = torch.Generator().manual_seed(2)
    users = torch.randint(0, 6, (20,), generator=g)
    items = torch.randint(0, 8, (20,), generator=g)
    key = torch.unique(users * 8 + items)
    tg = TrainGraph.from_edges(key // 8, key % 8, 6, 8)
    dense = tg.norm_adj.to_dense()
    x0 = torch.randn(14, 3, generator=g)
    xs = x0.clone().requires_grad_(True)
    xd = x0.clone().requires_grad_(True)
    h1 = symmetric_spmm(tg.norm_adj, xs)
    ys = (xs + h1 + symmetric_spmm(tg.norm_adj, h1)).pow(2).sum()
    d1 = dense @ xd
    yd = (xd + d1 + dense @ d1).pow(2).sum()
    ys.backward()
    yd.backward()
    assert torch.allclose(ys, yd, atol=1e-5)
    assert torch.allclose(xs.grad, xd.grad, atol=1e-5)


def test_isolated_self_loops_keep_cold_inputs_at_full_scale() -> None:
    from graphrec_lab.models import LightGCN

    users, items = torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1])  # item 2 has no training edge
    plain = TrainGraph.from_edges(users, items, 2, 3)
    looped = TrainGraph.from_edges(users, items, 2, 3, isolated_self_loops=True)
    dense_plain, dense_looped = plain.norm_adj.to_dense(), looped.norm_adj.to_dense()
    cold = 2 + 2  # node id of item 2
    assert dense_plain[cold].abs().sum() == 0
    assert dense_looped[cold].tolist() == [0.0, 0.0, 0.0, 0.0, 1.0]
    mask = torch.ones(5, dtype=torch.bool)
    mask[cold] = False
    assert torch.equal(dense_plain[mask], dense_looped[mask]), "nodes with edges are untouched"
    assert torch.equal(plain.edge_index, looped.edge_index)
    torch.manual_seed(0)
    model = LightGCN(2, 3, embedding_dim=4, num_layers=3)
    e0 = model.input.items()[2].detach()
    assert torch.allclose(model(plain)[1][2].detach(), e0 / 4)
    assert torch.allclose(model(looped)[1][2].detach(), e0)


@pytest.mark.parametrize("include_ego", [True, False])
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("loops", [False, True])
def test_propagate_layer_mean_matches_layer_by_layer(include_ego: bool, num_layers: int, loops: bool) -> None:
    """The fused LightGCN readout equals dense layer-by-layer propagation, in values and gradients."""
    g = torch.Generator().manual_seed(3)
    users = torch.randint(0, 7, (25,), generator=g)
    items = torch.randint(0, 9, (25,), generator=g)
    key = torch.unique(users * 10 + items)
    tg = TrainGraph.from_edges(key // 10, key % 10, 7, 10, isolated_self_loops=loops)  # item 9: no edge
    dense = tg.norm_adj.to_dense().double()
    x0 = torch.randn(17, 4, generator=g, dtype=torch.float64)
    w = torch.randn(17, 4, generator=g, dtype=torch.float64)

    blocks = BlockAdjacency(tg.norm_adj.double(), tg.num_users)
    xf = x0.clone().requires_grad_(True)
    fused = propagate_layer_mean(blocks, xf, num_layers, include_ego)
    (fused * w).sum().backward()

    xd = x0.clone().requires_grad_(True)
    layers = [xd]
    for _ in range(num_layers):
        layers.append(dense @ layers[-1])
    parts = layers if include_ego else layers[1:]
    ref = torch.stack(parts).mean(0)
    (ref * w).sum().backward()

    assert torch.allclose(fused, ref, atol=1e-12)
    assert torch.allclose(xf.grad, xd.grad, atol=1e-12)
    assert torch.equal(x0, xf.detach()), "the input is not modified in place"
    assert torch.autograd.gradcheck(
        lambda x: propagate_layer_mean(blocks, x, num_layers, include_ego), (x0.clone().requires_grad_(True),)
    )
    plain = propagate_layer_mean(tg.norm_adj.double(), x0, num_layers, include_ego)  # one CSR, no blocks
    assert torch.allclose(plain, ref, atol=1e-12)


def test_block_adjacency_matches_dense_with_loops_and_same_side_entries() -> None:
    """User-item / item-user blocks plus the rest (self-loops, user-user and item-item entries)."""
    g = torch.Generator().manual_seed(4)
    n, num_users = 12, 5
    dense = torch.rand(n, n, generator=g, dtype=torch.float64) * (torch.rand(n, n, generator=g) < 0.4)
    dense = dense + dense.T  # symmetric, with diagonal and same-side entries
    blocks = BlockAdjacency(dense.to_sparse_csr(), num_users)
    assert blocks.rest is not None
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    assert torch.allclose(blocks.matmul(x), dense @ x, atol=1e-12)
    xs = x.clone().requires_grad_(True)
    (symmetric_spmm(blocks, xs) * x).sum().backward()
    assert torch.allclose(xs.grad, dense.T @ x, atol=1e-12)
    # A plain user-item graph has no rest; the blocks are cached per graph object.
    tg = TrainGraph.from_edges(USERS, ITEMS, U, I)
    assert block_adjacency(tg) is block_adjacency(tg) and block_adjacency(tg).rest is None
    assert block_adjacency(TrainGraph.from_edges(USERS, ITEMS, U, I, isolated_self_loops=True)).rest is not None


def test_block_product_ignores_whatever_the_output_buffer_held() -> None:
    """``BlockAdjacency.matmul`` writes with ``addmm(beta=0)`` into an uninitialised buffer: BLAS
    semantics must ignore its contents, NaN included (checked on this torch, not assumed)."""
    tg = TrainGraph.from_edges(USERS, ITEMS, U, I)
    blocks = block_adjacency(tg)
    assert blocks.user_item.crow_indices().dtype == torch.int32  # the MKL path needs no index copy
    x = torch.randn(U + I, 4, generator=torch.Generator().manual_seed(0))
    block, rhs = blocks.user_item, x[U:]
    out = torch.full((U, 4), float("nan"))
    torch.addmm(out, block, rhs, beta=0, out=out)
    assert torch.allclose(out, block.to_dense() @ rhs, atol=1e-6)
    assert torch.allclose(blocks.matmul(x), tg.norm_adj.to_dense() @ x, atol=1e-6)


@pytest.mark.parametrize("num_layers,include_ego", [(1, True), (1, False), (2, False), (3, True), (3, False)])
@pytest.mark.parametrize("isolated_self_loops", [False, True])
def test_layer_mean_restricted_to_rows_equals_rows_of_the_full_mean(num_layers: int, include_ego: bool, isolated_self_loops: bool) -> None:
    """The BPR batch's rows only: values and the gradient on every input row equal those of the full
    mean indexed at the rows (with self-loops the blocks have a rest: the full-product fallback)."""
    tg = TrainGraph.from_edges(USERS, ITEMS, U, I, isolated_self_loops=isolated_self_loops)
    blocks = BlockAdjacency(tg.norm_adj.double(), U)
    g = torch.Generator().manual_seed(num_layers)
    x0 = torch.randn(U + I, 3, generator=g, dtype=torch.float64)
    rows = torch.tensor([0, U - 1, U, U + 2, U + I - 1])  # users and items, sorted unique
    weight = torch.randn(rows.numel(), 3, generator=g, dtype=torch.float64)
    xr, xf = x0.clone().requires_grad_(True), x0.clone().requires_grad_(True)
    restricted = propagate_layer_mean(blocks, xr, num_layers, include_ego, rows=rows)
    full = propagate_layer_mean(blocks, xf, num_layers, include_ego)[rows]
    assert restricted.shape == (rows.numel(), 3)
    assert torch.allclose(restricted, full, atol=1e-12)
    (restricted * weight).sum().backward()
    (full * weight).sum().backward()
    assert torch.allclose(xr.grad, xf.grad, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda x: propagate_layer_mean(blocks, x, num_layers, include_ego, rows=rows), (x0.clone().requires_grad_(True),)
    )


def test_block_row_and_column_selection_match_dense() -> None:
    tg = TrainGraph.from_edges(USERS, ITEMS, U, I)
    blocks = block_adjacency(tg)
    dense = blocks.user_item.to_dense()
    rows, cols = torch.tensor([0, U - 1]), torch.tensor([0, 2, I - 1])
    assert torch.equal(BlockAdjacency._select_rows(blocks.user_item, rows).to_dense(), dense[rows])
    assert torch.equal(BlockAdjacency._select_cols(blocks.user_item, cols).to_dense(), dense[:, cols])
    nodes = torch.cat([rows, U + cols])
    share = blocks.row_share(nodes)
    expected = (tg.norm_adj.to_dense()[nodes] != 0).sum() / tg.norm_adj._nnz()
    assert abs(share - float(expected)) < 1e-6
