"""The MLP scorer (NeuMF-style) beside the dot product: chunked full ranking equals pairwise
scoring, hard negatives follow the scorer, a run trains and ranks with it, and runs the dot-product
tools cannot serve are refused."""

from __future__ import annotations

import pytest
import torch

from graphrec_lab.config import ConfigError, compose
from graphrec_lab.data.sampling import TrainBatch
from graphrec_lab.experiment import build, run_experiment
from graphrec_lab.inference.run import RunLoadError, load_run
from graphrec_lab.models.scorers import DotScorer, MLPScorer, build_scorer
from graphrec_lab.training.knobs import pick_hard
from tests.conftest import tiny_overrides

MLP = "task.scorer={kind: mlp, hidden: [16, 8]}"


@pytest.mark.parametrize("gmf", [True, False])
def test_all_items_equals_scoring_every_pair(gmf: bool) -> None:
    torch.manual_seed(0)
    scorer = MLPScorer(6, hidden=(5, 4), gmf=gmf, chunk_pairs=7).eval()  # chunks of one user: 7 // 5 items
    users, items = torch.randn(4, 6), torch.randn(5, 6)
    full = scorer.all_items(users, items)
    brute = torch.tensor([[float(scorer.score(users[b], items[i]).detach()) for i in range(5)] for b in range(4)])
    assert full.shape == (4, 5) and torch.allclose(full, brute, atol=1e-6)
    dot = DotScorer()
    assert torch.allclose(dot.all_items(users, items), torch.stack([dot.score(users[b], items) for b in range(4)]))


def test_hard_negatives_are_the_scorers_highest() -> None:
    torch.manual_seed(1)
    scorer = MLPScorer(4, hidden=(8,)).eval()
    user_emb, item_emb = torch.randn(16, 4), torch.randn(40, 4)
    users = torch.arange(16)
    batch = TrainBatch(users, torch.zeros(16, dtype=torch.long), torch.zeros(16, dtype=torch.long))
    candidates = torch.randint(1, 40, (16, 1, 8))
    picked = pick_hard(batch, candidates, user_emb, item_emb, scorer).neg_items
    for u in range(16):
        scores = torch.stack([scorer.score(user_emb[u], item_emb[c]) for c in candidates[u, 0]])
        assert int(picked[u]) == int(candidates[u, 0, int(scores.argmax())])
    by_dot = pick_hard(batch, candidates, user_emb, item_emb).neg_items
    assert not torch.equal(picked, by_dot)  # the two scorers disagree here, so the check above can tell them apart


def test_bad_scorer_settings_name_the_key(out_dir) -> None:
    with pytest.raises(ConfigError, match=r"task\.scorer\.kind='cosine'"):
        build(compose(tiny_overrides(out_dir, "task.scorer.kind=cosine")))
    with pytest.raises(Exception, match=r"task\.scorer: unknown keys \['width'\]"):
        build(compose(tiny_overrides(out_dir, "++task.scorer.width=3", "task.scorer.kind=mlp")))
    with pytest.raises(Exception, match=r"task\.scorer\.kind=mlp: DPSGDTask trains with its own"):
        build(compose(tiny_overrides(out_dir, "task=dp_bpr", "model=bprmf", MLP)))
    with pytest.raises(ValueError, match="at least one layer"):
        build_scorer({"kind": "mlp", "hidden": []}, 4)


def test_a_run_trains_and_ranks_with_the_mlp_scorer(out_dir) -> None:
    """NGCF's concatenated readout is wider than embedding_dim: the scorer takes the real width.
    The trained scorer's ranking beats the same run's untrained one; the dot-product tools refuse it."""
    overrides = tiny_overrides(out_dir, "model=ngcf", "model.embedding_dim=8", MLP, "trainer.max_epochs=6", "task.lr=0.01")
    exp = build(compose(overrides))
    width = exp.task.model(exp.datamodule.train_graph)[0].shape[-1]
    assert width > 8 and isinstance(exp.task.scorer, MLPScorer)
    assert exp.task.scorer.out.in_features == width + 8  # the u * i branch (width) + the tower's last layer (8)
    calls = []
    real_all_items = exp.task.scorer.all_items
    exp.task.scorer.all_items = lambda u, i: calls.append(u.shape[0]) or real_all_items(u, i)
    untrained = exp.trainer.validate(exp.task, datamodule=exp.datamodule, verbose=False)[0]["val/ndcg@20"]
    assert sum(calls) == len(exp.datamodule.eval_users("val"))  # evaluation ranks every user with the MLP
    metrics = run_experiment(compose(overrides))
    assert metrics["val/ndcg@20"] > untrained
    run_dir = next((out_dir / "runs").glob("*/*/checkpoints")).parent
    with pytest.raises(RunLoadError, match="task.scorer.kind=mlp"):
        load_run(run_dir)
    from graphrec_lab.privacy.audit import AuditError, load_finished_run

    with pytest.raises(AuditError, match="task.scorer.kind=mlp"):
        load_finished_run(run_dir, out_dir / "results.jsonl")
