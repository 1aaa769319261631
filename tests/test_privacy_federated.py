"""Federated training: FedAvg is Flower's weighted mean, one client is centralised training, user rows
stay on their clients, local DP clips and noises the update, bad settings name their key."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("flwr")

from graphrec_lab.config import ConfigError, compose  # noqa: E402
from graphrec_lab.experiment import build, run_experiment  # noqa: E402
from graphrec_lab.privacy.federated import (  # noqa: E402
    FederatedConfig,
    FederatedTask,
    SharedParameters,
    fedavg,
    partition_users,
    private_update,
)
from tests.conftest import tiny_overrides  # noqa: E402


def _fit(out_dir, *extra: str):
    built = build(compose(tiny_overrides(out_dir, "callbacks=none", "trainer.check_val_every_n_epoch=100", *extra)))
    built.trainer.fit(built.task, datamodule=built.datamodule)
    return built


def test_fedavg_is_the_example_weighted_mean():
    a, b = [np.array([1.0, 2.0]), np.array([[0.0]])], [np.array([3.0, 6.0]), np.array([[4.0]])]
    out = fedavg([(a, 1), (b, 3)])
    np.testing.assert_allclose(out[0], [2.5, 5.0])
    np.testing.assert_allclose(out[1], [[3.0]])


def test_partition_covers_every_user_once_in_near_equal_groups():
    owner = partition_users(103, 10, seed=4)
    counts = torch.bincount(owner, minlength=10)
    assert owner.numel() == 103 and int(counts.sum()) == 103
    assert int(counts.max() - counts.min()) <= 1
    assert torch.equal(owner, partition_users(103, 10, seed=4))


@pytest.mark.parametrize("model", ["bprmf", "lightgcn"])
def test_one_client_one_round_equals_one_centralised_epoch(out_dir, model):
    common = (f"model={model}", "trainer.max_epochs=1", "task.lr=0.01")
    central = _fit(out_dir / "c", *common)
    fed = _fit(out_dir / "f", *common, "task=federated", "task.federated.clients=1")
    assert isinstance(fed.task, FederatedTask)
    init = build(compose(tiny_overrides(out_dir / "i", *common))).model
    for (name, p), (_, q), (_, p0) in zip(central.model.named_parameters(), fed.model.named_parameters(), init.named_parameters()):
        assert not torch.allclose(p, p0)  # the epoch trained
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)


def test_user_rows_never_reach_the_server_and_only_sampled_clients_move_them(out_dir):
    built = _fit(out_dir, "model=bprmf", "trainer.max_epochs=1", "task=federated", "task.federated.clients=4",
                 "task.federated.fraction_fit=0.5")  # fmt: skip
    task, model = built.task, built.model
    shared = SharedParameters(model, model.num_users)
    assert [name for name, _, _ in shared.views] == ["input.item_embedding.weight"]
    lgcn = build(compose(tiny_overrides(out_dir / "l", "model=lightgcn"))).model
    views = SharedParameters(lgcn, lgcn.num_users).views
    assert len(views) == 1 and views[0][2] == slice(lgcn.num_users, None)  # item rows of the [U + I, D] table
    # One more round by hand: users of clients that were not sampled keep their rows exactly.
    before = model.input.user_embedding.weight.detach().clone()
    task.training_step(None, 0)
    after = model.input.user_embedding.weight.detach()
    moved = (after != before).any(dim=1)
    owners = torch.zeros(model.num_users, dtype=torch.long)
    for c, (_, _, own, _) in enumerate(task._clients):
        owners[own] = c
    moved_clients = set(owners[moved].tolist())
    assert len(moved_clients) == 2  # fraction_fit 0.5 of 4 clients
    assert not moved[torch.isin(owners, torch.tensor(sorted(set(range(4)) - moved_clients)))].any()


def test_private_update_clips_to_the_norm_and_adds_the_configured_noise():
    rng = np.random.default_rng(0)
    update = [np.full(400, 1.0, dtype=np.float32), np.full((10, 10), 1.0, dtype=np.float32)]
    clipped = private_update(update, clip=2.0, noise=0.0, gen=rng)
    assert np.sqrt(sum((u.astype(np.float64) ** 2).sum() for u in clipped)) == pytest.approx(2.0, rel=1e-5)
    noisy = private_update([np.zeros(200_000, dtype=np.float32)], clip=0.5, noise=2.0, gen=rng)[0]
    assert noisy.std() == pytest.approx(1.0, rel=0.02)  # std = noise x clip
    assert private_update(update, clip=None, noise=0.0, gen=rng) is update


def test_federated_run_writes_a_record_and_learns(out_dir):
    metrics = run_experiment(compose(tiny_overrides(out_dir, "task=federated", "task.federated.clients=5", "trainer.max_epochs=6")))
    assert metrics["federated/clients_per_round"] == 5
    assert metrics["federated/uploaded_floats"] > 0
    assert metrics["test/ndcg@20"] > 0
    record = json.loads((out_dir / "results.jsonl").read_text().splitlines()[-1])
    assert record["paths"]["checkpoint"] is not None  # the validation-selected round was saved and tested


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"clients": 0}, "task.federated.clients"),
        ({"fraction_fit": 0.0}, "task.federated.fraction_fit"),
        ({"fraction_fit": 1.5}, "task.federated.fraction_fit"),
        ({"local_epochs": 0}, "task.federated.local_epochs"),
        ({"update_noise": 1.0}, "task.federated.update_noise"),
        ({"rounds": 3}, "task.federated.rounds"),
    ],
)
def test_bad_settings_name_the_key(settings, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        FederatedConfig.from_mapping(settings)


def test_more_clients_than_users_and_unsupported_models_are_refused(out_dir):
    with pytest.raises(ConfigError, match=r"task\.federated\.clients=500: more clients than users \(120\)"):
        build(compose(tiny_overrides(out_dir, "task=federated", "task.federated.clients=500")))
    with pytest.raises(ConfigError, match=r"task\.federated: .*supports model=bprmf and model=lightgcn.*NGCF"):
        build(compose(tiny_overrides(out_dir, "task=federated", "model=ngcf")))
