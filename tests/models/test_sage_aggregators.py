"""GraphSAGE's aggregators (``model.aggr``): each layer equals PyG's ``SAGEConv`` with that aggregator,
and each trains end to end."""

from __future__ import annotations

import pytest
import torch

from graphrec_lab.config import ConfigError, compose
from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.experiment import build, run_experiment
from graphrec_lab.models import GraphSAGE
from tests.conftest import tiny_overrides
from tests.models.test_zoo import D, I, U, tiny_graph


@pytest.mark.parametrize("aggr", ["mean", "max", "sum"])
def test_sage_layer_equals_pyg_sageconv(aggr: str) -> None:
    torch.manual_seed(0)
    # an isolated node (user U) checks the empty-neighbourhood value too
    model = GraphSAGE(U + 1, I, D, 1, aggr=aggr).eval()
    base = tiny_graph()
    src, dst = base.edge_index[:, : base.edge_index.shape[1] // 2]  # user->item half
    graph = TrainGraph.from_edges(src, dst - U, U + 1, I)  # user U has no edge
    assert graph.user_degree[U] == 0
    conv = model.convs[0]
    assert conv.aggr == aggr
    with torch.no_grad():
        for p in model.parameters():  # PyG zero-inits biases; make them matter
            p.add_(0.1 * torch.randn_like(p))
        x = torch.randn(graph.num_nodes, D)
        ours = model.layer(0, x, graph, model.prepare(graph))
    torch.testing.assert_close(ours, conv(x, graph.edge_index), atol=1e-5, rtol=1e-5)


def test_aggregators_differ() -> None:
    graph = tiny_graph()
    x = torch.randn(graph.num_nodes, D)
    outs = [GraphSAGE(U, I, D, 1, aggr=a)._aggregate(x, graph) for a in ("mean", "max", "sum")]
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[0], outs[2])


@pytest.mark.parametrize("aggr", ["max", "sum"])
def test_sage_aggregator_trains(out_dir, aggr: str) -> None:
    metrics = run_experiment(compose(tiny_overrides(out_dir, "model=sage", f"model.aggr={aggr}", "trainer.max_epochs=2", "trainer.check_val_every_n_epoch=1")))
    assert 0.0 < metrics["val/ndcg@20"] <= 1.0


def test_unknown_aggregator_names_the_key(out_dir) -> None:
    with pytest.raises(ConfigError, match=r"model\.aggr"):
        build(compose(tiny_overrides(out_dir, "model=sage", "model.aggr=median")))
