"""load_run, recommend (exact, fold-in, ANN index), export and the CLI verbs on tiny trained runs."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from graphrec_lab.config import compose
from graphrec_lab.experiment import run_experiment
from graphrec_lab.inference import (
    FoldInError,
    RunLoadError,
    UnknownIdError,
    fold_in,
    load_run,
    recommend,
    recommend_new_user,
)
from graphrec_lab.inference.export import export_run, faiss_available
from graphrec_lab.inference.foldin import propagated_user
from tests.conftest import tiny_overrides

REPO = Path(__file__).resolve().parents[1]


def _train(root: Path, *extra: str) -> Path:
    run_experiment(compose(tiny_overrides(root, "trainer.check_val_every_n_epoch=2", *extra)))
    record = json.loads((root / "results.jsonl").read_text().splitlines()[-1])
    return Path(record["paths"]["run_dir"])


@pytest.fixture(scope="module")
def lightgcn_dir(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("lightgcn"))


@pytest.fixture(scope="module")
def run(lightgcn_dir):
    return load_run(lightgcn_dir)


@pytest.fixture(scope="module")
def mf_run(tmp_path_factory):
    return load_run(_train(tmp_path_factory.mktemp("mf"), "model=bprmf"))


# ---------------------------------------------------------------------- load_run
def test_load_run_restores_the_checkpoint_in_eval_mode(run, lightgcn_dir):
    assert run.checkpoint == lightgcn_dir / "checkpoints" / "best.ckpt"
    assert run.config_source == "checkpoint['graphrec_lab']['config']"  # every checkpoint carries it
    assert OmegaConf.to_container(run.config) == OmegaConf.to_container(OmegaConf.load(lightgcn_dir / "config.yaml"))
    assert not run.model.training
    state = torch.load(run.checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    for name, value in run.model.state_dict().items():
        torch.testing.assert_close(value, state[f"model.{name}"])
    assert run.user_ids[:2] == ["u0", "u1"] and run.item_ids[:2] == ["i0", "i1"]
    assert run.item_text is not None and len(run.item_text) == len(run.item_ids)


def test_recommendations_reproduce_the_recorded_validation_recall(run, lightgcn_dir):
    """The lists are the evaluator's: same exclusions, same tie rule, so they give the same recall@20."""
    record = json.loads((lightgcn_dir.parents[2] / "results.jsonl").read_text().splitlines()[-1])
    val = run.data.val
    users = sorted(set(val.users.tolist()))
    lists = recommend(run, [run.user_ids[u] for u in users], k=20)
    recalls = []
    for u, recs in zip(users, lists):
        held = {run.item_ids[i] for i in val.items[val.users == u].tolist()}
        recalls.append(len(held & {r.item for r in recs}) / len(held))
    assert np.mean(recalls) == pytest.approx(record["metrics"]["val/recall@20"], abs=1e-6)  # logged as float32


def test_config_from_the_checkpoint_is_preferred_then_the_run_dir_then_the_result_record(run, lightgcn_dir, tmp_path):
    ckpt = torch.load(run.checkpoint, map_location="cpu", weights_only=False)
    copy = tmp_path / "best.ckpt"
    torch.save(ckpt, copy)
    assert load_run(copy).config_source == "checkpoint['graphrec_lab']['config']"
    ckpt["graphrec_lab"]["config"] = None  # a checkpoint saved without a config (older runs)
    torch.save(ckpt, copy)
    with pytest.raises(RunLoadError, match="no run config"):  # this copy sits outside any run dir
        load_run(copy)

    # In the run directory, a checkpoint without a config falls back to config.yaml, then the record.
    original = run.checkpoint.with_name("best.ckpt.original")
    run.checkpoint.rename(original)
    saved = lightgcn_dir / "config.yaml"
    hidden = saved.with_name("config.yaml.hidden")
    try:
        torch.save(ckpt, run.checkpoint)
        assert load_run(lightgcn_dir).config_source == str(saved)
        saved.rename(hidden)
        assert load_run(lightgcn_dir).config_source == "result record"
    finally:
        if hidden.exists():
            hidden.rename(saved)
        original.replace(run.checkpoint)


def test_bad_paths_are_named(lightgcn_dir, tmp_path):
    with pytest.raises(RunLoadError, match="no such run directory"):
        load_run(tmp_path / "missing")
    empty = tmp_path / "runs" / "x" / "run"
    empty.mkdir(parents=True)
    (empty / "config.yaml").write_text((lightgcn_dir / "config.yaml").read_text())
    with pytest.raises(RunLoadError, match="no checkpoint"):
        load_run(empty)
    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(RunLoadError, match="no run config"):
        load_run(bare)


# ---------------------------------------------------------------------- recommend
def test_recommend_excludes_known_items_and_ranks_by_score(run):
    (recs,) = recommend(run, ["u3"], k=15)
    train = {run.item_ids[i] for i in run.train_items(3).tolist()}
    assert len(recs) == 15 and not train & {r.item for r in recs}
    scores = [r.score for r in recs]
    assert scores == sorted(scores, reverse=True)
    user_emb, item_emb = run.embeddings()
    assert recs[0].score == pytest.approx(float(user_emb[3] @ item_emb[run.item_ids.index(recs[0].item)]), rel=1e-6)
    (with_val,) = recommend(run, ["u3"], k=15, exclude_val=True)
    val = {run.item_ids[i] for i in run.val_items(3).tolist()}
    assert val and not val & {r.item for r in with_val}
    assert recs[0].text == run.item_text[run.item_ids.index(recs[0].item)]


def test_unknown_ids_are_named(run):
    with pytest.raises(UnknownIdError, match="'nobody'"):
        recommend(run, ["u1", "nobody"])
    with pytest.raises(UnknownIdError, match="'i-missing'"):
        recommend_new_user(run, ["i1", "i-missing"])


def test_lightgcn_fold_in_is_the_model_propagation(run):
    """With the user's trained layer-0 row and the graph's own degrees, the fold-in formula gives
    exactly the model's embedding of an existing user."""
    model, graph = run.model, run.train_graph
    with torch.no_grad():
        layers = model.propagate(graph)
        users, _ = model(graph)
        for u in (0, 7):
            items = run.train_items(u)
            w = (graph.item_degree[items] * items.numel()).rsqrt()
            rows = propagated_user(layers, items + model.num_users, w, layers[0][u])
            torch.testing.assert_close(model.readout([r.unsqueeze(0) for r in rows])[0], users[u], atol=1e-6, rtol=1e-5)


def test_new_user_fold_in_excludes_the_history_and_follows_it(run):
    history = [run.item_ids[i] for i in run.train_items(5).tolist()]
    recs = recommend_new_user(run, history, k=20)
    assert len(recs) == 20 and not set(history) & {r.item for r in recs}
    # A new user with user 5's history ranks like user 5 far more than like an unrelated user.
    (own,) = recommend(run, ["u5"], k=20)
    overlap = len({r.item for r in recs} & {r.item for r in own})
    assert overlap >= 5


def test_mf_fold_in_solves_the_regularised_least_squares(mf_run):
    history = ["i1", "i4", "i9"]
    e = fold_in(mf_run, history, l2=0.5).double()
    q = mf_run.embeddings()[1].double()
    r = torch.zeros(q.size(0), dtype=torch.float64)
    r[[1, 4, 9]] = 1.0
    residual = (q.T @ q + 0.5 * torch.eye(q.size(1), dtype=torch.float64)) @ e - q.T @ r
    assert residual.abs().max() < 1e-4


def test_models_that_cannot_fold_in_say_so(run):
    from graphrec_lab.models.gnn.gat import GAT

    gat_run = dataclasses.replace(run, model=GAT(run.model.num_users, run.model.num_items, 16, 2, heads=2))
    with pytest.raises(FoldInError, match="GAT cannot fold in a new user"):
        fold_in(gat_run, ["i1"])


# ---------------------------------------------------------------------- export
def test_export_writes_embeddings_with_raw_ids(run, tmp_path):
    out, report = export_run(run, tmp_path / "export", index=None)
    assert report is None
    users = np.load(out / "user_embeddings.npy")
    items = np.load(out / "item_embeddings.npy")
    user_emb, item_emb = run.embeddings()
    np.testing.assert_array_equal(users, user_emb.numpy())
    np.testing.assert_array_equal(items, item_emb.numpy())
    with (out / "items.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == run.item_ids and rows[2]["text"] == run.item_text[2]
    with (out / "user_embeddings.csv").open() as f:
        first = next(iter(csv.reader(f, delimiter=",")))
        second = next(csv.reader(f))
    assert first[0] == "id" and len(first) == users.shape[1] + 1
    assert second[0] == "u0" and np.allclose([float(v) for v in second[1:]], users[0])


@pytest.mark.skipif(not faiss_available(), reason="faiss-cpu is not installed (extra: serve)")
def test_faiss_index_recall_and_recommend_through_it(run, tmp_path):
    from graphrec_lab.inference.export import load_index
    from graphrec_lab.inference.recommend import recommend_with_index

    out, flat = export_run(run, tmp_path / "flat", index="flat", k=20, queries=50)
    assert flat.recall_at_k == pytest.approx(1.0) and flat.latency_ms > 0
    users = ["u0", "u3", "u11"]
    via_index = recommend_with_index(run, users, load_index(out), k=10)
    exact = recommend(run, users, k=10)
    assert [[r.item for r in x] for x in via_index] == [[r.item for r in x] for x in exact]
    _, hnsw = export_run(run, tmp_path / "hnsw", index="hnsw", k=20, queries=50)
    assert hnsw.recall_at_k >= 0.9
    assert json.loads((tmp_path / "hnsw" / "index.json").read_text())["report"]["recall_at_k"] == hnsw.recall_at_k


# ---------------------------------------------------------------------- CLI
def test_cli_recommend_users_file_history_and_errors(lightgcn_dir, tmp_path, capsys):
    from graphrec_lab.cli import main

    main(["recommend", str(lightgcn_dir), "--user", "u2", "-k", "5"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("top-5 for u2") and len(lines) == 2 + 5
    users = tmp_path / "users.txt"
    users.write_text("user\nu0\nu1\n")
    main(["recommend", str(lightgcn_dir), "--users-file", str(users), "-k", "4", "--out", str(tmp_path / "recs.jsonl")])
    rows = [json.loads(x) for x in (tmp_path / "recs.jsonl").read_text().splitlines()]
    assert [(r["user"], r["rank"]) for r in rows] == [(u, k) for u in ("u0", "u1") for k in range(1, 5)]
    main(["recommend", str(lightgcn_dir), "--history", "i1", "i2", "-k", "3"])
    assert "new-user" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="UnknownIdError: unknown user id.*'zz'"):
        main(["recommend", str(lightgcn_dir), "--user", "zz"])
    with pytest.raises(SystemExit, match="RunLoadError: .*no such run directory"):
        main(["recommend", str(tmp_path / "nope"), "--user", "u1"])


def test_cli_export_without_an_index(lightgcn_dir, tmp_path, capsys):
    from graphrec_lab.cli import main

    main(["export", str(lightgcn_dir), "--out", str(tmp_path / "e"), "--index", "none"])
    assert "embeddings of 120 users and 150 items" in capsys.readouterr().out
    assert (tmp_path / "e" / "item_embeddings.npy").is_file() and not (tmp_path / "e" / "items.faiss").exists()


# ---------------------------------------------------------------------- layering
def test_nothing_below_imports_inference_or_explain():
    below = [p for p in (REPO / "graphrec_lab").rglob("*.py") if p.parent.name not in ("inference", "explain") and p.name != "cli.py"]
    offenders = [
        str(p.relative_to(REPO)) for p in below
        if "graphrec_lab.inference" in p.read_text() or "graphrec_lab.explain" in p.read_text()
    ]  # fmt: skip
    # The package's lazy load_run wrapper is the one allowed reference.
    assert offenders == ["graphrec_lab/__init__.py"]


def test_import_graphrec_lab_stays_light():
    # load_run is public but loads torch only when it is first used (PEP 562 module __getattr__).
    code = (
        "import sys, graphrec_lab; before = 'torch' in sys.modules; graphrec_lab.load_run; "
        "print('load_run' in graphrec_lab.__all__, before, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False", "True"]
