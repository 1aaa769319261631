"""Notebooks are executed on a small budget so they never rot."""

from __future__ import annotations

import os

import nbformat
from nbclient import NotebookClient

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
