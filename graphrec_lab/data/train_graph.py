"""The training graph in the forms graph models consume.

Users and items share one node index space: user ``u`` is node ``u``, item ``i`` is node
``num_users + i``. ``edge_index`` [2, 2E] holds both directions (PyG convention, messages flow
``edge_index[0] -> edge_index[1]``); ``norm_adj`` is the symmetrically normalised adjacency
``D^-1/2 A D^-1/2`` [(U+I), (U+I)] as a sparse CSR tensor, built once per run.

``isolated_self_loops``: a node without training edges (a cold item) propagates to zero, so a layer
mean such as LightGCN's gives it ``E^(0) / (K+1)`` and every cold item scores near zero, below every
warm item, whatever its input features say. With the switch on, such nodes get a self-loop of weight 1
in ``norm_adj`` (``E^(k) = E^(0)``), so the mean is ``E^(0)``: the projected text of a cold item
enters at full scale. Nodes with edges are untouched; ``edge_index`` never has the loops.

The sparse products over ``norm_adj`` (``symmetric_spmm``, ``propagate_layer_mean``) are in
``graphrec_lab.ops.sparse``: the data layer holds the graph, not the kernels that models run on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class TrainGraph:
    num_users: int
    num_items: int
    edge_index: Tensor  # [2, 2E] int64
    norm_adj: Tensor  # sparse CSR [(U+I), (U+I)] float32, symmetric
    user_degree: Tensor  # [U] float32
    item_degree: Tensor  # [I] float32

    @property
    def num_nodes(self) -> int:
        return self.num_users + self.num_items

    @classmethod
    def from_edges(
        cls, users: Tensor, items: Tensor, num_users: int, num_items: int, isolated_self_loops: bool = False,
        weights: Tensor | None = None,
    ) -> TrainGraph:
        """``users``/``items`` [E]; ``weights`` [E] > 0 (optional): ``norm_adj`` is then
        ``D_w^-1/2 W D_w^-1/2`` with weighted degrees (invariant to scaling all weights). Only
        ``norm_adj`` carries the weights: ``user_degree``/``item_degree`` stay interaction counts."""
        n = num_users + num_items
        src = torch.cat([users, items + num_users])
        dst = torch.cat([items + num_users, users])
        edge_index = torch.stack([src, dst])
        deg = torch.bincount(src, minlength=n).float()
        w = torch.ones(src.numel()) if weights is None else torch.cat([weights, weights]).float()
        wdeg = deg if weights is None else torch.zeros(n).index_add_(0, src, w)
        inv_sqrt = wdeg.pow(-0.5)
        inv_sqrt[wdeg == 0] = 0.0
        values = w * inv_sqrt[src] * inv_sqrt[dst]
        rows, cols = dst, src
        if isolated_self_loops:
            loops = torch.nonzero(deg == 0).flatten()
            rows, cols = torch.cat([rows, loops]), torch.cat([cols, loops])
            values = torch.cat([values, torch.ones(loops.numel())])
        adj = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n, n)).coalesce().to_sparse_csr()
        return cls(num_users, num_items, edge_index, adj, deg[:num_users], deg[num_users:])

    def to(self, device: torch.device | str) -> TrainGraph:
        if self.edge_index.device == torch.device(device):
            return self
        return TrainGraph(
            self.num_users,
            self.num_items,
            self.edge_index.to(device),
            self.norm_adj.to(device),
            self.user_degree.to(device),
            self.item_degree.to(device),
        )
