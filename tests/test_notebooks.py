"""Notebooks are executed on a small budget so they never rot."""

from __future__ import annotations

import os

import nbformat
import pytest
from nbclient import NotebookClient

from graphrec_lab.tracking.results import ResultStore
from tests.conftest import REPO


def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("QUICKSTART_EPOCHS", "4")
    monkeypatch.setenv("QUICKSTART_OUT", str(tmp_path))
    nb = nbformat.read(REPO / "notebooks" / "quickstart.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "ndcg@20" in outputs
    assert (tmp_path / "quickstart_curve.png").stat().st_size > 1000
    assert os.path.exists(tmp_path / "results.jsonl")


@pytest.mark.slow
def test_ablation_analysis_notebook_runs_a_tiny_ablation_and_reads_it_back(tmp_path, monkeypatch):
    """2 models x 2 seeds on tiny synthetic data, then the table, the charts and the W&B offline runs."""
    for var in ("ABLATION_RESULTS", "ABLATION_GROUP", "ABLATION_BASELINE", "ABLATION_METRIC", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ABLATION_OUT", str(tmp_path))
    monkeypatch.setenv("ABLATION_EPOCHS", "3")
    nb = nbformat.read(REPO / "notebooks" / "ablation_analysis.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))

    assert len(ResultStore(tmp_path / "results.jsonl").read()) == 4
    assert "| model | n | test/ndcg@20 | p (t-test) |" in outputs
    assert "| bprmf | 2 |" in outputs and "| lightgcn | 2 |" in outputs and "| baseline |" in outputs
    for png in ("ablation_bars.png", "ablation_curves.png"):
        data = (tmp_path / png).read_bytes()
        assert data[:4] == b"\x89PNG" and len(data) > 5000
    assert "curves of 4 runs" in outputs
    # Read back from the W&B offline run files: one run per cell, all in the ablation's group, their
    # summaries equal to the result store and their validation history equal to the CSV logs.
    assert "4 W&B offline runs read" in outputs
    assert "groups: ['ablation-demo']" in outputs
    assert "W&B summaries agree with the result store: True" in outputs
    assert "W&B validation history equals the CSV logs: True" in outputs
    assert outputs.count("model=lightgcn seed=") == 2
