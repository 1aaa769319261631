"""Slow: the whole pipeline on the real files in $GRAPHREC_DATA_DIR (CI runs these)."""

from __future__ import annotations

import pytest

from graphrec_lab.config import compose
from graphrec_lab.experiment import run_experiment
from tests.conftest import real_data_dir

pytestmark = pytest.mark.slow


def test_ml100k_recbole_protocol_end_to_end(tmp_path):
    data_dir = real_data_dir()
    overrides = [
        "experiment=ml100k_recbole",
        "model=bprmf",
        f"data.data_dir={data_dir}",
        f"data.cache_dir={tmp_path / 'cache'}",
        f"paths.root={tmp_path / 'out'}",
        "trainer.max_epochs=10",
        "trainer.accelerator=cpu",
        "logger=csv",
    ]
    metrics = run_experiment(compose(overrides), overrides)
    assert metrics["val/num_users"] == 943 and metrics["test/num_users"] == 943
    pop = run_experiment(compose(overrides + ["model=pop"]))
    # Popularity is a strong baseline on ml-100k; ten epochs of BPR-MF already beat it.
    assert metrics["val/ndcg@20"] > pop["val/ndcg@20"] > 0.05


def test_gowalla_paper_split_with_validation_carved_from_train(tmp_path):
    from hydra.utils import instantiate

    cfg = compose(["data=gowalla", f"data.data_dir={real_data_dir()}", f"data.cache_dir={tmp_path}"])
    graph = instantiate(cfg.data, _convert_="all").load_graph()
    assert (graph.num_users, graph.num_items) == (29_858, 40_981)
    assert len(graph.test) == 217_242  # the paper's test set is untouched
    assert len(graph.train) + len(graph.val) == 810_128
    assert 0.08 < len(graph.val) / 810_128 < 0.1
