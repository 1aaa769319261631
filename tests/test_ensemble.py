"""Ensembles of finished runs: score and rank combination against hand-computed values, one-run
ensembles reproduce the run's own metrics, runs on another split are refused."""

from __future__ import annotations

import json

import pytest
import torch

from graphrec_lab.config import compose
from graphrec_lab.experiment import run_experiment
from graphrec_lab.inference import load_run
from graphrec_lab.inference.ensemble import RRF_K0, combine, evaluate_ensemble, ranks
from graphrec_lab.inference.run import InferenceError
from tests.conftest import tiny_overrides


def _run(out_dir, *extra: str):
    run_experiment(compose(tiny_overrides(out_dir, *extra)))
    record = json.loads((out_dir / "results.jsonl").read_text().splitlines()[-1])
    return load_run(record["paths"]["run_dir"]), record


def test_ranks_follow_the_evaluator_tie_rule():
    scores = torch.tensor([[0.5, 0.9, 0.5, 0.1]])
    assert ranks(scores).tolist() == [[2.0, 1.0, 3.0, 4.0]]


def test_rrf_and_borda_against_hand_computed_values():
    a = torch.tensor([[3.0, 2.0, 1.0]])  # ranks 1 2 3
    b = torch.tensor([[1.0, 3.0, 2.0]])  # ranks 3 1 2
    rrf = combine([a, b], "rrf", [1.0, 2.0])
    want = [1 / (RRF_K0 + 1) + 2 / (RRF_K0 + 3), 1 / (RRF_K0 + 2) + 2 / (RRF_K0 + 1), 1 / (RRF_K0 + 3) + 2 / (RRF_K0 + 2)]
    torch.testing.assert_close(rrf[0], torch.tensor(want, dtype=torch.float64))
    borda = combine([a, b], "borda", [1.0, 1.0])
    assert borda[0].tolist() == [(3 - 1) + (3 - 3), (3 - 2) + (3 - 1), (3 - 3) + (3 - 2)]
    z = combine([a, 10 * a + 5], "zscore", [1.0, 1.0])  # affine copies standardise to the same scores
    torch.testing.assert_close(z, 2 * combine([a], "zscore", [1.0]))
    with pytest.raises(InferenceError, match="--method 'mean'"):
        combine([a], "mean", [1.0])


def test_one_run_ensemble_reproduces_the_run_and_two_runs_differ(out_dir):
    run, record = _run(out_dir)
    for method in ("zscore", "minmax", "rrf", "borda"):
        result = evaluate_ensemble([run], method)
        for key in ("test/ndcg@20", "test/recall@10", "val/ndcg@20"):
            assert result.metrics[key] == pytest.approx(record["metrics"][key], abs=1e-6), (method, key)
    other, _ = _run(out_dir / "mf", "model=bprmf")
    both = evaluate_ensemble([run, other], "rrf")
    assert both.metrics["test/ndcg@20"] != pytest.approx(record["metrics"]["test/ndcg@20"], abs=1e-9)


def test_runs_on_another_split_or_bad_weights_are_refused(out_dir):
    run, _ = _run(out_dir)
    other, _ = _run(out_dir / "s", "seed=7")  # the split seed follows the run's seed
    with pytest.raises(InferenceError, match=r"split hash .* ensembles need the same data and split"):
        evaluate_ensemble([run, other])
    with pytest.raises(InferenceError, match=r"--weights"):
        evaluate_ensemble([run, run], weights=[1.0])
