"""training.optim.adam: the fused kernel, with the default implementation's arithmetic."""

from __future__ import annotations

import torch

from graphrec_lab.training.optim import adam


def test_adam_is_fused_on_cpu_and_matches_default_adam():
    g = torch.Generator().manual_seed(0)
    init = [torch.randn(50, 8, generator=g), torch.randn(8, generator=g)]
    fused_params = [torch.nn.Parameter(t.clone()) for t in init]
    plain_params = [torch.nn.Parameter(t.clone()) for t in init]
    fused = adam([{"params": fused_params}], lr=1e-2, weight_decay=1e-3)
    plain = torch.optim.Adam([{"params": plain_params}], lr=1e-2, weight_decay=1e-3, foreach=False)
    assert fused.defaults["fused"] is True
    for _ in range(30):
        grads = [torch.randn(t.shape, generator=g) for t in init]
        for params, opt in ((fused_params, fused), (plain_params, plain)):
            for p, grad in zip(params, grads):
                p.grad = grad.clone()
            opt.step()
    for a, b in zip(fused_params, plain_params):
        assert not torch.equal(a, torch.zeros_like(a))
        assert torch.allclose(a, b, atol=1e-6), (a - b).abs().max()
