"""MHCN's self-supervised objective: hierarchical mutual information between users and their motif
hypergraph neighbourhoods (the maths: ``models.gnn.mhcn``'s module docstring)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from graphrec_lab.models.gnn.mhcn import CHANNELS, MHCN, matmul
from graphrec_lab.training.objectives.base import Objective, StepContext


class MHCNSelfSupervision(Objective):
    """MHCN's hierarchical mutual-information maximisation (module docstring), summed over users and
    channels, times ``weight`` (RecBole-GNN's best ``ssl_reg`` on LastFM: 1e-5; the paper: 0.01-0.02)."""

    def __init__(self, weight: float = 1e-5) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, ctx: StepContext) -> Tensor:
        model = ctx.model
        if not isinstance(model, MHCN):
            raise TypeError(f"MHCNSelfSupervision needs an MHCN model, got {type(model).__name__}")
        ops_ = model.operators(ctx.graph)
        total = ctx.user_emb.new_zeros(())
        for c in CHANNELS:
            z = model.ss_gates[c](ctx.user_emb)  # [U, d]
            e = matmul(ops_[c], z)  # [U, d]
            z_shuf = z[torch.randperm(z.size(0), device=z.device)]
            e_shuf = e[:, torch.randperm(e.size(1), device=e.device)][torch.randperm(e.size(0), device=e.device)]
            pos, neg1, neg2 = (z * e).sum(-1), (z_shuf * e).sum(-1), (e_shuf * z).sum(-1)
            local = -F.logsigmoid(pos - neg1) - F.logsigmoid(neg1 - neg2)
            summary = e.mean(0, keepdim=True)
            global_ = -F.logsigmoid((e * summary).sum(-1) - (e_shuf * summary).sum(-1))
            total = total + local.sum() + global_.sum()
        return self.weight * total
