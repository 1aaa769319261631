"""DP-SGD for MF-BPR: per-example clipping, Opacus accounting, and the settings' errors."""

from __future__ import annotations

import json
import math

import pytest
import torch

pytest.importorskip("opacus", reason="DP-SGD needs the privacy extra (pip install graphrec-lab[privacy])")

from opacus.accountants import RDPAccountant  # noqa: E402
from opacus.accountants.utils import get_noise_multiplier  # noqa: E402

from graphrec_lab.config import compose  # noqa: E402
from graphrec_lab.experiment import run_experiment  # noqa: E402
from graphrec_lab.privacy.dp_sgd import DPConfigError, DPSGDConfig, per_example_clipped_grads  # noqa: E402
from tests.conftest import tiny_overrides  # noqa: E402

DP = ["model=bprmf", "task=dp_bpr", "task.lr=0.01", "print_table=false"]


def _steps_per_epoch(cfg) -> tuple[int, int]:
    from hydra.utils import instantiate

    dm = instantiate(cfg.data, _convert_="all")
    edges = len(dm.load_graph().train)
    return edges, math.ceil(edges / int(cfg.data.train_batch_size))


def test_per_example_gradients_are_autograd_gradients_clipped():
    gen = torch.Generator().manual_seed(0)
    user_w, item_w = torch.randn(5, 4, generator=gen), torch.randn(6, 4, generator=gen)
    users, pos, neg = torch.tensor([0, 1, 1, 4]), torch.tensor([2, 3, 5, 0]), torch.tensor([1, 3, 4, 5])  # one i == j
    l2, clip = 0.1, 0.5
    grad_u, grad_i, loss, norm = per_example_clipped_grads(user_w, item_w, users, pos, neg, l2, clip)
    want_u, want_i = torch.zeros_like(user_w), torch.zeros_like(item_w)
    for b in range(4):
        u = user_w.clone().requires_grad_(True)
        it = item_w.clone().requires_grad_(True)
        eu, ei, ej = u[users[b]], it[pos[b]], it[neg[b]]
        lb = torch.nn.functional.softplus(-(eu * (ei - ej)).sum()) + 0.5 * l2 * (eu.pow(2).sum() + ei.pow(2).sum() + ej.pow(2).sum())
        lb.backward()
        assert float(lb) == pytest.approx(float(loss[b]), rel=1e-5)
        n = math.sqrt(float(u.grad.pow(2).sum() + it.grad.pow(2).sum()))
        assert n == pytest.approx(float(norm[b]), rel=1e-5)
        scale = min(1.0, clip / (n + 1e-6))
        want_u += scale * u.grad
        want_i += scale * it.grad
    assert torch.allclose(grad_u, want_u, atol=1e-6) and torch.allclose(grad_i, want_i, atol=1e-6)


def test_clipped_gradients_stay_finite_when_the_negative_is_the_positive():
    gen = torch.Generator().manual_seed(1)
    user_w, item_w = torch.randn(50, 64, generator=gen) * 0.1, torch.randn(40, 64, generator=gen) * 0.1
    users, items = torch.randint(0, 50, (2000,), generator=gen), torch.randint(0, 40, (2000,), generator=gen)
    grad_u, grad_i, _, norm = per_example_clipped_grads(user_w, item_w, users, items, items, 1e-4, 1.0)
    assert torch.isfinite(norm).all() and torch.isfinite(grad_u).all() and torch.isfinite(grad_i).all()
    # i == j: the BPR terms cancel on the shared row, only the L2 term (2 * l2 * e_i) remains.
    assert torch.allclose(grad_i, torch.zeros_like(item_w).index_add_(0, items, 2e-4 * item_w[items]), atol=1e-6)


def test_reported_epsilon_is_opacus_accountant_epsilon(out_dir):
    overrides = tiny_overrides(out_dir, *DP, "task.dp.noise_multiplier=1.3", "task.dp.max_grad_norm=0.5", "task.dp.delta=1e-4")
    cfg = compose(overrides)
    metrics = run_experiment(cfg, overrides)
    edges, steps_per_epoch = _steps_per_epoch(cfg)
    q = 1.0 / steps_per_epoch
    steps = (int(metrics["best_epoch"]) + 1) * steps_per_epoch  # the selected checkpoint's training steps
    assert metrics["privacy/sample_rate"] == pytest.approx(q)
    assert metrics["privacy/steps"] == steps
    accountant = RDPAccountant()
    accountant.history = [(1.3, q, steps)]
    assert metrics["privacy/epsilon"] == pytest.approx(accountant.get_epsilon(delta=1e-4), rel=1e-9)
    assert metrics["privacy/noise_multiplier"] == 1.3 and metrics["privacy/max_grad_norm"] == 0.5
    # The trained model is usable: the audit scores it (finite scores) and reports the same epsilon.
    from graphrec_lab.privacy.audit import audit_run

    record = json.loads((out_dir / "results.jsonl").read_text().splitlines()[-1])
    report = audit_run(record["paths"]["run_dir"], write=False)
    assert report["privacy"]["dp_sgd"] == metrics["privacy/epsilon"]
    assert 0.0 <= report["threshold"]["score"]["auc"] <= 1.0


def test_target_epsilon_solves_the_noise_multiplier(out_dir):
    overrides = tiny_overrides(
        out_dir, *DP, "task.dp.noise_multiplier=null", "task.dp.target_epsilon=3.0", "callbacks.model_checkpoint=null",
    )  # fmt: skip  no checkpoint: the final model (every step) is evaluated
    cfg = compose(overrides)
    metrics = run_experiment(cfg, overrides)
    _, steps_per_epoch = _steps_per_epoch(cfg)
    sigma = get_noise_multiplier(
        target_epsilon=3.0, target_delta=1e-5, sample_rate=1.0 / steps_per_epoch, steps=4 * steps_per_epoch, accountant="rdp"
    )
    assert metrics["privacy/noise_multiplier"] == pytest.approx(sigma)
    assert metrics["privacy/steps"] == 4 * steps_per_epoch
    assert 2.9 <= metrics["privacy/epsilon"] <= 3.0


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"noise_multiplier": 1.0, "delta": 1.0}, r"task\.dp\.delta"),
        ({"noise_multiplier": 1.0, "delta": 0.0}, r"task\.dp\.delta"),
        ({"noise_multiplier": -1.0}, r"task\.dp\.noise_multiplier"),
        ({"noise_multiplier": 1.0, "max_grad_norm": 0}, r"task\.dp\.max_grad_norm"),
        ({"target_epsilon": 0.0}, r"task\.dp\.target_epsilon"),
        ({}, r"task\.dp: set exactly one"),
        ({"noise_multiplier": 1.0, "clip": 1.0}, r"task\.dp\.clip"),
    ],
)
def test_bad_dp_settings_name_the_key(settings, key):
    with pytest.raises(DPConfigError, match=key):
        DPSGDConfig.from_mapping(settings)


def test_dp_sgd_refuses_a_graph_model(out_dir):
    overrides = tiny_overrides(out_dir, *DP, "model=lightgcn")
    with pytest.raises(Exception, match=r"task\.dp: DP-SGD supports model=bprmf.*LightGCN"):
        run_experiment(compose(overrides), overrides)
