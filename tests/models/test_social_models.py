"""Social models (DiffNet, SocialLGN) and zoo models on the joined graph: shapes, the propagation rules
against dense references, gradients to every parameter, determinism, directed ties, clear errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from graphrec_lab.data.social import SocialTrainGraph, clean_social_edges, social_train_graph
from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.models import DiffNet, LightGCN, SocialLGN

U, I, D = 7, 9, 8


def graph(symmetric: bool = True, join: bool = False, seed: int = 0) -> SocialTrainGraph:
    g = torch.Generator().manual_seed(seed)
    keys = torch.unique(torch.randint(0, U * I, (30,), generator=g))
    users, items = keys // I, keys % I
    ties = torch.randint(0, U, (2, 14), generator=g)
    ties[:, 0] = torch.tensor([5, 6])  # user 6 has one incoming tie only (directed case)
    edges, _ = clean_social_edges(ties, U, symmetrize=symmetric)
    return social_train_graph(U, I, users, items, edges, join=join)


def dense_social(g: SocialTrainGraph) -> torch.Tensor:
    s = torch.zeros(U, U)
    s[g.social_edge_index[1], g.social_edge_index[0]] = 1.0  # row = receiver, column = sender
    return s


def dense_interactions(g: SocialTrainGraph) -> torch.Tensor:
    r = torch.zeros(U, I)
    src, dst = g.edge_index
    sel = (src < U) & (dst >= U)
    r[src[sel], dst[sel] - U] = 1.0
    return r


def inv(x: torch.Tensor, p: float) -> torch.Tensor:
    return torch.where(x > 0, x.clamp(min=1e-12).pow(-p), torch.zeros_like(x))


MODELS = {
    "diffnet": lambda **kw: DiffNet(U, I, embedding_dim=D, num_layers=2, **kw),
    "diffnet-paper": lambda **kw: DiffNet(U, I, embedding_dim=D, num_layers=2, diffusion="mlp", readout="last", social_norm="mean", **kw),
    "sociallgn": lambda **kw: SocialLGN(U, I, embedding_dim=D, num_layers=2, **kw),
    "sociallgn-matrix": lambda **kw: SocialLGN(U, I, embedding_dim=D, num_layers=2, fusion_norm="matrix", **kw),
}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("symmetric", [True, False])
def test_shapes_gradients_determinism(name, symmetric):
    g = graph(symmetric)
    torch.manual_seed(0)
    model = MODELS[name]()
    users, items = model(g)
    assert users.shape == (U, D) and items.shape == (I, D)
    # a BPR-like loss over all pairs reaches every parameter
    loss = F.softplus(-(users @ items.t())).mean() + users.pow(2).mean()
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), pname
    torch.manual_seed(0)
    again = MODELS[name]()
    assert all(torch.equal(a, b) for a, b in zip(model(g), again(g)))
    # task path (propagate -> readout -> split) equals forward
    a, b = model.split(model.readout(model.propagate(g)))
    assert torch.equal(a, users.detach()) or torch.allclose(a, users)
    assert torch.allclose(b, items)


def test_diffnet_recbole_variant_matches_dense_rule():
    g = graph(symmetric=True)
    torch.manual_seed(1)
    model = DiffNet(U, I, embedding_dim=D, num_layers=2)
    p, q = model.input.users(), model.input.items()
    s = dense_social(g)
    s_src = s * inv(s.sum(0), 1.0)[None, :]  # weight 1 / out-degree of the sender
    r = dense_interactions(g)
    r_mean = r * inv(r.sum(1), 1.0)[:, None]
    expected_u = p + s_src @ p + s_src @ (s_src @ p) + r_mean @ q
    users, items = model(g)
    assert torch.allclose(users, expected_u, atol=1e-6) and torch.allclose(items, q)


def test_diffnet_paper_variant_matches_dense_rule():
    g = graph(symmetric=False)
    torch.manual_seed(2)
    model = DiffNet(U, I, embedding_dim=D, num_layers=2, diffusion="mlp", readout="last", social_norm="mean")
    p, q = model.input.users(), model.input.items()
    s = dense_social(g)
    s_mean = s * inv(s.sum(1), 1.0)[:, None]  # mean over the users a user receives from
    h = p
    for lin in model.fuse:
        h = torch.sigmoid(lin(torch.cat([s_mean @ h, h], dim=-1)))
    r = dense_interactions(g)
    expected = h + (r * inv(r.sum(1), 1.0)[:, None]) @ q
    assert torch.allclose(model(g)[0], expected, atol=1e-6)


@pytest.mark.parametrize("symmetric", [True, False])
def test_sociallgn_matches_dense_rule_and_directed_gradients(symmetric):
    g = graph(symmetric)
    torch.manual_seed(3)
    model = SocialLGN(U, I, embedding_dim=D, num_layers=2)
    s = dense_social(g)
    s_hat = inv(s.sum(0), 0.5)[None, :] * s * inv(s.sum(1), 0.5)[:, None]  # d_out(src)^-1/2 d_in(dst)^-1/2
    a_hat = g.norm_adj.to_dense()

    def dense_forward():
        x = torch.cat([model.input.users(), model.input.items()])
        layers = [x]
        for _ in range(2):
            u = x[:U]
            prop = a_hat @ x
            x = torch.cat([model.fusion(s_hat @ u, prop[:U]), prop[U:]])
            layers.append(x)
        return torch.stack(layers).mean(0)

    expected = dense_forward()
    got = torch.cat(model(g))
    assert torch.allclose(got, expected, atol=1e-6)
    # the sparse path's gradients (custom backward with the transposed operator) equal the dense ones
    w = torch.randn_like(got)
    (gs,) = torch.autograd.grad((torch.cat(model(g)) * w).sum(), model.input.user_embedding.weight)
    (gd,) = torch.autograd.grad((dense_forward() * w).sum(), model.input.user_embedding.weight)
    assert torch.allclose(gs, gd, atol=1e-6)


def test_social_models_accept_features():
    g = graph()
    uf, itf = torch.randn(U, 5), torch.randn(I, 6)
    for make in (DiffNet, SocialLGN):
        model = make(U, I, embedding_dim=D, num_layers=1, user_features=uf, item_features=itf, feature_mode="sum")
        users, items = model(g)
        assert users.shape == (U, D) and model.input.user_proj is not None
        rows = model.ego_embeddings(torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5]))
        assert [r.shape for r in rows] == [(2, D)] * 3


def test_social_models_need_ties():
    plain = TrainGraph.from_edges(torch.tensor([0, 1]), torch.tensor([1, 2]), U, I)
    for model in (DiffNet(U, I, embedding_dim=D), SocialLGN(U, I, embedding_dim=D)):
        with pytest.raises(TypeError, match="SocialDataModule"):
            model(plain)
    with pytest.raises(ValueError, match="social_norm"):
        DiffNet(U, I, social_norm="median")
    with pytest.raises(ValueError, match="fusion_norm"):
        SocialLGN(U, I, fusion_norm="layer")


def test_lightgcn_on_joined_graph_propagates_over_ties():
    g = graph(symmetric=False, join=True)
    # joined adjacency: user-item edges plus each tie as one undirected user-user edge
    n = U + I
    a = torch.zeros(n, n)
    r = dense_interactions(g)
    a[:U, U:] = r
    a[U:, :U] = r.t()
    s = dense_social(g)
    uu = ((s + s.t()) > 0).float()
    a[:U, :U] = uu
    d = a.sum(1)
    norm = inv(d, 0.5)[:, None] * a * inv(d, 0.5)[None, :]
    assert torch.allclose(g.norm_adj.to_dense(), norm, atol=1e-6)
    torch.manual_seed(4)
    model = LightGCN(U, I, embedding_dim=D, num_layers=2)
    e0 = model.embedding.weight
    expected = (e0 + norm @ e0 + norm @ (norm @ e0)) / 3
    assert torch.allclose(torch.cat(model(g)), expected, atol=1e-6)
    # and the plain graph differs: ties matter
    assert not torch.allclose(torch.cat(model(graph(symmetric=False))), expected)


# ============================================================================ MHCN


def test_mhcn_motif_matrices_on_a_hand_made_graph():
    import scipy.sparse as sp

    from graphrec_lab.models.gnn.mhcn import motif_matrices

    # undirected triangle 0-1-2 plus the tie 2-3; users 0 and 1 share items 0 and 1, user 3 shares item 1
    ties = [(0, 1), (1, 2), (0, 2), (2, 3)]
    rows, cols = zip(*(ties + [(b, a) for a, b in ties]))
    s = sp.csr_matrix(([1.0] * len(rows), (rows, cols)), shape=(4, 4))
    y = sp.csr_matrix(([1.0] * 5, ([0, 0, 1, 1, 3], [0, 1, 0, 1, 1])), shape=(4, 3))
    h = {k: v.toarray() for k, v in motif_matrices(s, y).items()}
    # social channel: pairs closing a mutual triangle; 2-3 closes none
    assert h["social"][0].tolist() == [0, 0.5, 0.5, 0] and h["social"][3].tolist() == [0, 0, 0, 0]
    # joint channel: friends who share items (0-1: 2 items)
    assert h["joint"][0].tolist() == [0, 1, 0, 0] and h["joint"][2].sum() == 0
    # purchase channel: co-interactions > 1 that are not ties (0-0 self: 2 items; 0-3 share 1 item only)
    assert h["purchase"][0].tolist() == [1, 0, 0, 0] and h["purchase"][3].sum() == 0


def test_mhcn_shapes_gradients_objective_determinism():
    from graphrec_lab.data.sampling import TrainBatch
    from graphrec_lab.models.gnn.mhcn import MHCN
    from graphrec_lab.training.objectives import MHCNSelfSupervision, StepContext

    g = graph(symmetric=False)
    torch.manual_seed(5)
    model = MHCN(U, I, embedding_dim=D, num_layers=2, dense_threshold=0.3)
    users, items = model(g)
    assert users.shape == (U, D) and items.shape == (I, D)
    batch = TrainBatch(torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5]))
    ssl = MHCNSelfSupervision(weight=0.1)
    loss_ssl = ssl(StepContext(model, g, batch, None, users, items))
    assert loss_ssl.dim() == 0 and torch.isfinite(loss_ssl) and loss_ssl > 0
    (F.softplus(-(users @ items.t())).mean() + loss_ssl).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
    torch.manual_seed(5)
    again = MHCN(U, I, embedding_dim=D, num_layers=2, dense_threshold=0.3)
    assert all(torch.allclose(a, b) for a, b in zip(model(g), again(g)))
    # dense and sparse channel operators give the same embeddings
    sparse = MHCN(U, I, embedding_dim=D, num_layers=2, dense_threshold=1.1)
    sparse.load_state_dict(model.state_dict())
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(model(g), sparse(graph(symmetric=False))))
