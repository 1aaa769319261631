"""SR-GNN (Wu et al., 2019): a gated GNN over each sequence's item-transition graph and a soft-attention readout."""

from __future__ import annotations

import torch
from torch import nn

from graphrec_lab.data.sequential import session_graphs
from graphrec_lab.models.sequential.base import SequentialBase


class SRGNN(SequentialBase):
    """``steps``: gated GNN iterations; ``num_users`` is accepted for ``run_experiment``'s interface;
    ``item_features`` ... ``adaptor_dropout``: the text options of ``SequentialBase``."""

    def __init__(self, num_items: int, dim: int = 64, steps: int = 1, num_users: int | None = None,
                 item_features: torch.Tensor | None = None, feature_mode: str = "id", experts: int = 8, adaptor_dropout: float = 0.2) -> None:
        super().__init__(num_items, dim, num_users=num_users, item_features=item_features, feature_mode=feature_mode, experts=experts, adaptor_dropout=adaptor_dropout)
        self.steps = steps
        self.edge_in = nn.Linear(dim, dim)
        self.edge_out = nn.Linear(dim, dim)
        self.gru = nn.GRUCell(2 * dim, dim)
        self.w1 = nn.Linear(dim, dim)
        self.w2 = nn.Linear(dim, dim)
        self.q = nn.Linear(dim, 1, bias=False)
        self.w3 = nn.Linear(2 * dim, dim, bias=False)

    def forward(self, items: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, L]`` 1-based items (0 pads) → ``[B, D]`` session state."""
        g = session_graphs(items)
        h = self.embed(g.nodes, table)  # [B, N, D]
        b, n, d = h.shape
        for _ in range(self.steps):
            msg = torch.cat([g.adj_in @ self.edge_in(h), g.adj_out @ self.edge_out(h)], dim=-1)
            h = self.gru(msg.reshape(b * n, 2 * d), h.reshape(b * n, d)).reshape(b, n, d)
        seq_h = h.gather(1, g.alias.unsqueeze(-1).expand(-1, -1, d))  # [B, L, D]
        mask = items.gt(0)
        last_pos = torch.where(mask, torch.arange(items.shape[1], device=items.device), -1).max(dim=1).values
        last = seq_h[torch.arange(b, device=items.device), last_pos]
        alpha = self.q(torch.sigmoid(self.w1(last).unsqueeze(1) + self.w2(seq_h)))  # [B, L, 1]
        global_h = (alpha * mask.unsqueeze(-1)).mul(seq_h).sum(dim=1)
        return self.w3(torch.cat([global_h, last], dim=-1))
