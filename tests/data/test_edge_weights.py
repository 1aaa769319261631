"""Edge weights of the propagation graph: D_w^-1/2 W D_w^-1/2 against a dense reference, unit weights
equal the unweighted graph, time decay halves per half-life, and missing columns are named."""

from __future__ import annotations

import pytest
import torch

from graphrec_lab.data.datamodule import InteractionDataModule
from graphrec_lab.data.train_graph import TrainGraph

SYNTH = {"num_users": 30, "num_items": 20, "interactions_per_user": 5}


def test_weighted_adjacency_equals_a_dense_reference():
    users, items = torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 0])
    w = torch.tensor([5.0, 1.0, 2.0, 4.0])
    got = TrainGraph.from_edges(users, items, 3, 2, weights=w).norm_adj.to_dense()
    a = torch.zeros(5, 5)
    a[users, items + 3] = w
    a = a + a.T
    d = a.sum(1).pow(-0.5)
    torch.testing.assert_close(got, d[:, None] * a * d[None, :])
    plain = TrainGraph.from_edges(users, items, 3, 2)
    torch.testing.assert_close(TrainGraph.from_edges(users, items, 3, 2, weights=torch.full((4,), 3.0)).norm_adj.to_dense(),
                               plain.norm_adj.to_dense())  # fmt: skip
    assert TrainGraph.from_edges(users, items, 3, 2, weights=w).item_degree.tolist() == [2.0, 2.0]  # counts stay counts


def test_time_decay_halves_per_half_life():
    dm = InteractionDataModule(dataset="synthetic", cache_dir="none", synthetic=SYNTH, edge_weight="time_decay",
                               edge_weight_half_life_days=1.0)  # fmt: skip
    graph = dm.load_graph()
    w = dm._edge_weights(graph)
    t = graph.train.timestamps
    expected = 0.5 ** ((t.max() - t).double() / 86400.0)
    torch.testing.assert_close(w.double(), expected, rtol=1e-6, atol=1e-9)
    assert float(w.max()) == 1.0


def test_missing_columns_and_unknown_kinds_are_named(tmp_path):
    with pytest.raises(ValueError, match="data.edge_weight='degree'"):
        InteractionDataModule(dataset="synthetic", edge_weight="degree")
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "plain.inter").write_text("user_id:token\titem_id:token\n" + "".join(f"u{u}\ti{i}\n" for u in range(6) for i in range(5)))
    dm = InteractionDataModule(dataset="recbole:plain", data_dir=str(tmp_path), cache_dir="none", edge_weight="rating")
    with pytest.raises(ValueError, match="data.edge_weight='rating': dataset 'recbole:plain' has no ratings"):
        dm.setup()
