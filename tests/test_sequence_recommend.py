"""recommend for sequential runs: the list after a user's whole sequence equals the model's top-K
over that padded history (ranked like the evaluator); a new user's raw history gives the same list
for the same items; flags that do not apply are refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="module")
def sequential_run(tmp_path_factory) -> Path:
    from graphrec_lab.config import compose
    from graphrec_lab.experiment import run_experiment

    root = tmp_path_factory.mktemp("seqrun")
    run_experiment(compose([
        f"paths.root={root}", "data=sequential_synthetic", "task=sequential", "model=sasrec", "model.dim=8",
        "optimized_metric=val/ndcg@10", "trainer.max_epochs=2", "trainer.check_val_every_n_epoch=1",
        "trainer.accelerator=cpu", "logger=csv", "data.synthetic.num_users=40", "data.synthetic.num_items=30",
    ]))  # fmt: skip
    return Path(json.loads((root / "results.jsonl").read_text().splitlines()[-1])["paths"]["run_dir"])


def test_next_items_after_a_users_sequence_match_the_model(sequential_run):
    from graphrec_lab.data.sequential import pad_sequences
    from graphrec_lab.evaluation.ranking import topk_stable
    from graphrec_lab.inference import load_run
    from graphrec_lab.inference.sequence_recommend import recommend_next, recommend_next_for_history, user_history

    run = load_run(sequential_run)
    user = run.user_ids[3]
    history = user_history(run, 3)
    seq, valid, test = run.datamodule.sequences()[3]
    assert history == [*seq, valid, test]
    with torch.no_grad():
        scores = run.model.full_scores(pad_sequences([history], run.model.max_length))
    expected = topk_stable(scores, 5)[0].tolist()
    recs = recommend_next(run, [user], k=5)[0]
    assert [r.item for r in recs] == [run.item_ids[i] for i in expected]
    assert [r.rank for r in recs] == [1, 2, 3, 4, 5] and recs[0].score >= recs[-1].score
    same = recommend_next_for_history(run, [run.item_ids[i] for i in history], k=5)
    assert [r.item for r in same] == [r.item for r in recs]
    excluded = recommend_next(run, [user], k=30, exclude_history=True)[0]
    assert not {r.item for r in excluded} & {run.item_ids[i] for i in history}


def test_recommend_cli_on_a_sequential_run(sequential_run, capsys):
    from graphrec_lab.inference.cli import recommend_main
    from graphrec_lab.inference.run import InferenceError, UnknownIdError

    recommend_main([str(sequential_run), "--user", "u0", "-k", "3"])
    out = capsys.readouterr().out
    assert "top-3 for u0 (SASRec" in out and len(out.strip().splitlines()) == 5  # title, header, 3 rows
    with pytest.raises(InferenceError, match="--exclude-val: not for a sequential run"):
        recommend_main([str(sequential_run), "--user", "u0", "--exclude-val"])
    with pytest.raises(UnknownIdError):
        recommend_main([str(sequential_run), "--history", "no-such-item"])
