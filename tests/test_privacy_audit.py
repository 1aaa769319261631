"""Membership-inference audit: attack metrics, and the audit of finished (tiny, synthetic) runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from graphrec_lab.config import compose
from graphrec_lab.experiment import run_experiment
from graphrec_lab.privacy.audit import AuditError, attack_metrics, audit_run
from tests.conftest import tiny_overrides

# MF-BPR trained far past generalisation on 120 users: it memorises its training interactions.
OVERFIT = [
    "model=bprmf", "task.lr=0.05", "task.l2_reg=0", "trainer.max_epochs=60", "trainer.check_val_every_n_epoch=60",
    "callbacks.early_stopping=null", "print_table=false",
]  # fmt: skip


def _run(root: Path, *extra: str) -> str:
    overrides = tiny_overrides(root, *OVERFIT, *extra)
    run_experiment(compose(overrides), overrides)
    record = json.loads((root / "results.jsonl").read_text().splitlines()[-1])
    return record["paths"]["run_dir"]


@pytest.fixture(scope="module")
def overfit_run(tmp_path_factory) -> str:
    return _run(tmp_path_factory.mktemp("overfit") / "outputs")


def test_random_scores_give_chance_auc():
    n = 5000
    labels = np.concatenate([np.ones(n), np.zeros(n)])
    for seed in range(3):
        scores = np.random.default_rng(seed).normal(size=2 * n)
        m = attack_metrics(labels, scores)
        # Null distribution of the AUC (Mann-Whitney): std sqrt((n1 + n2 + 1) / (12 n1 n2)).
        assert abs(m["auc"] - 0.5) < 4 * math.sqrt((2 * n + 1) / (12 * n * n))
        assert m["tpr@0.01fpr"] < 0.03


def test_tpr_at_low_fpr_reads_the_roc_curve():
    nonmember = np.arange(1000, dtype=float)  # FPR 1% = the 10 highest non-members (990..999) above threshold
    member = np.concatenate([np.full(50, 5000.0), np.full(950, -1.0)])
    labels = np.concatenate([np.ones(1000), np.zeros(1000)])
    m = attack_metrics(labels, np.concatenate([member, nonmember]))
    assert m["tpr@0.01fpr"] == pytest.approx(0.05)
    assert m["tpr@0.001fpr"] == pytest.approx(0.05)
    assert m["auc"] == pytest.approx(0.05)  # 50 members outrank every non-member, 950 none


def test_audit_of_an_overfit_model_is_far_above_chance(overfit_run):
    report = audit_run(overfit_run, shadow=1)
    threshold = report["threshold"]
    assert threshold["n_members"] == threshold["n_nonmembers"] > 50
    assert threshold["fpr_resolution"] == 1.0 / threshold["n_nonmembers"]
    assert threshold["score"]["auc"] > 0.9
    assert threshold["score"]["tpr@0.01fpr"] > 0.5
    assert report["shadow"]["auc"] > 0.9
    assert json.loads((Path(overfit_run) / "audit.json").read_text())["threshold"]["score"]["auc"] == threshold["score"]["auc"]
    random = audit_run(overfit_run, nonmembers="random", write=False)["threshold"]
    assert random["score"]["auc"] > 0.9


def test_edge_dp_release_protects_the_training_interactions(overfit_run, tmp_path):
    private = _run(tmp_path / "outputs", "data.privacy.edge_dp.mechanism=lapgraph", "data.privacy.edge_dp.epsilon=0.5")
    plain_auc = audit_run(overfit_run, write=False)["threshold"]["score"]["auc"]
    report = audit_run(private, write=False)
    assert report["privacy"]["data"]["edge_dp"] == {"mechanism": "lapgraph", "epsilon": 0.5}
    assert report["threshold"]["score"]["auc"] < plain_auc - 0.2


def test_audit_cli_prints_the_table(overfit_run, capsys):
    from graphrec_lab.cli import main

    main(["audit", overfit_run, "--max-pairs", "40"])
    out = capsys.readouterr().out
    assert "threshold/score" in out and "40 + 40 pairs" in out


def test_audit_of_a_missing_run_is_a_clear_error(tmp_path):
    with pytest.raises(AuditError, match="no such run directory"):
        audit_run(tmp_path / "nothing")
    run_dir = tmp_path / "runs" / "x" / "1"
    run_dir.mkdir(parents=True)
    with pytest.raises(AuditError, match="no result store"):
        audit_run(run_dir)
    with pytest.raises(SystemExit, match="AuditError"):
        from graphrec_lab.privacy.audit import cli_main

        cli_main([str(tmp_path / "nothing")])
