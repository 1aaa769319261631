"""Neighbour-sampled computation graphs for mini-batch training on graphs too large to propagate whole.

For a BPR batch the seed nodes are its users, positive and negative items. Hop ``h`` keeps at most
``fanouts[h]`` neighbours of every frontier node: all of them when it has that few, otherwise
``fanouts[h]`` uniform draws (with replacement, duplicates merged, so a hub may keep fewer). The
sampled edges of all hops form the batch's computation graph, a ``TrainGraph`` over its own nodes
(users first, then items, relabelled) normalised with its own degrees, as GraphSAGE and PinSAGE
do. A model's layers run on it unchanged; its size depends on the batch size and the fanouts, not on
the graph. Evaluation stays full-graph (the same evaluator as every run).

Written with torch operations: PyG's ``NeighborLoader``/``LinkNeighborLoader`` need ``pyg-lib`` or
``torch-sparse``, compiled companions the default install leaves out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from graphrec_lab.data.train_graph import TrainGraph


@dataclass
class SampledBatch:
    """One batch's computation graph.

    ``graph``: the sampled ``TrainGraph`` over U_s users and I_s items (local ids). ``user_ids`` [U_s]
    and ``item_ids`` [I_s]: the global id of each local user / item (sorted). ``users``,
    ``pos_items``, ``neg_items`` [B]: the batch in local ids.
    """

    graph: TrainGraph
    user_ids: Tensor
    item_ids: Tensor
    users: Tensor
    pos_items: Tensor
    neg_items: Tensor

    def to(self, device: torch.device | str) -> SampledBatch:
        return SampledBatch(
            self.graph.to(device), *(t.to(device) for t in (self.user_ids, self.item_ids, self.users, self.pos_items, self.neg_items))
        )


class NeighborSampler:
    """Samples computation graphs from a full training graph (kept on the CPU).

    Args:
        graph: the full training graph (only its ``edge_index`` is used: a CSR of neighbours is built).
        fanouts: neighbours kept per node at each hop, one entry per hop (= the model's layers).
    """

    def __init__(self, graph: TrainGraph, fanouts: Sequence[int]) -> None:
        if not fanouts or min(fanouts) < 1:
            raise ValueError(f"fanouts={list(fanouts)}: need one positive count per hop")
        self.fanouts = [int(k) for k in fanouts]
        self.num_users, self.num_items = graph.num_users, graph.num_items
        n = graph.num_nodes
        src, dst = graph.edge_index.cpu()
        order = torch.argsort(src, stable=True)
        self.cols = dst[order].contiguous()  # [2E] neighbours, grouped by node
        self.rowptr = torch.zeros(n + 1, dtype=torch.long)
        self.rowptr[1:] = torch.cumsum(torch.bincount(src, minlength=n), 0)

    def _hop(self, frontier: Tensor, k: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """Sampled edges (frontier node, neighbour) of one hop: two [M] tensors, M <= k * |frontier|."""
        start = self.rowptr[frontier]
        deg = self.rowptr[frontier + 1] - start
        small = deg <= k
        # Every neighbour of a node with at most k of them.
        d_small = deg[small]
        src_all = torch.repeat_interleave(frontier[small], d_small)
        first = torch.repeat_interleave(start[small], d_small)
        offset = torch.arange(src_all.numel()) - torch.repeat_interleave(torch.cumsum(d_small, 0) - d_small, d_small)
        nbr_all = self.cols[first + offset]
        # k uniform draws for the others.
        big = ~small
        draws = (torch.rand(int(big.sum()), k, generator=generator) * deg[big].unsqueeze(1)).long()
        nbr_big = self.cols[(start[big].unsqueeze(1) + draws).flatten()]
        src_big = frontier[big].repeat_interleave(k)
        return torch.cat([src_all, src_big]), torch.cat([nbr_all, nbr_big])

    def sample(self, users: Tensor, pos_items: Tensor, neg_items: Tensor, generator: torch.Generator | None = None) -> SampledBatch:
        """The computation graph of one BPR batch (all [B] int64, global ids, CPU)."""
        u_count, i_count = self.num_users, self.num_items
        frontier = torch.unique(torch.cat([users, pos_items + u_count, neg_items + u_count]))
        seen = torch.zeros(u_count + i_count, dtype=torch.bool)
        seen[frontier] = True
        a_parts, b_parts = [], []
        for k in self.fanouts:
            if frontier.numel() == 0:
                break
            a, b = self._hop(frontier, k, generator)
            a_parts.append(a)
            b_parts.append(b)
            new = torch.unique(b)
            frontier = new[~seen[new]]
            seen[frontier] = True
        a, b = torch.cat(a_parts), torch.cat(b_parts)
        # Undirected user-item pairs, each once (users have the smaller node ids).
        key = torch.unique(torch.minimum(a, b) * i_count + (torch.maximum(a, b) - u_count))
        edge_users, edge_items = key // i_count, key % i_count
        user_ids = torch.unique(torch.cat([users, edge_users]))
        item_ids = torch.unique(torch.cat([pos_items, neg_items, edge_items]))
        local_u = torch.searchsorted(user_ids, edge_users)
        local_i = torch.searchsorted(item_ids, edge_items)
        graph = TrainGraph.from_edges(local_u, local_i, user_ids.numel(), item_ids.numel())
        return SampledBatch(
            graph, user_ids, item_ids,
            torch.searchsorted(user_ids, users), torch.searchsorted(item_ids, pos_items), torch.searchsorted(item_ids, neg_items),
        )  # fmt: skip
