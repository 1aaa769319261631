"""Training batches for pairwise (BPR) learning and user batches for full-ranking evaluation.

Both are plain tensor operations: an epoch's permutation and negatives are drawn in one vectorised
pass (no per-sample Python, no collate of 2048 tiny tuples), and evaluation batches carry the
exclusion and ground-truth items of their users in COO form, sliced from CSR tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler, IterableDataset


@dataclass
class TrainBatch:
    """One BPR batch: ``users``, ``pos_items``, ``neg_items`` are [B] int64."""

    users: Tensor
    pos_items: Tensor
    neg_items: Tensor

    def to(self, device: torch.device | str) -> TrainBatch:
        return TrainBatch(self.users.to(device), self.pos_items.to(device), self.neg_items.to(device))

    def __len__(self) -> int:
        return self.users.numel()


@dataclass
class EvalBatch:
    """A batch of users to rank against all items.

    ``users``: [B]. ``exclude``: [2, X] (row in batch, item) pairs masked out of the ranking (the
    users' training items, plus validation items at test time). ``target``: [2, T] (row, item) pairs
    of held-out ground truth.
    """

    users: Tensor
    exclude: Tensor
    target: Tensor

    def to(self, device: torch.device | str) -> EvalBatch:
        return EvalBatch(self.users.to(device), self.exclude.to(device), self.target.to(device))

    def __len__(self) -> int:
        return self.users.numel()


class CSR:
    """Items per user as a compressed row table: ``rowptr`` [U+1], ``cols`` [E] sorted within rows."""

    def __init__(self, users: Tensor, items: Tensor, num_users: int) -> None:
        order = torch.argsort(users * (int(items.max()) + 1 if items.numel() else 1) + items)
        self.cols = items[order].contiguous()
        counts = torch.bincount(users, minlength=num_users)
        self.rowptr = torch.zeros(num_users + 1, dtype=torch.long)
        self.rowptr[1:] = torch.cumsum(counts, 0)

    @property
    def degree(self) -> Tensor:
        return self.rowptr[1:] - self.rowptr[:-1]

    def rows(self, users: Tensor) -> Tensor:
        """COO pairs (position of the user in ``users``, item) for the given users: [2, nnz]."""
        start = self.rowptr[users]
        length = self.rowptr[users + 1] - start
        row = torch.repeat_interleave(torch.arange(users.numel()), length)
        offset = torch.arange(row.numel()) - torch.repeat_interleave(torch.cumsum(length, 0) - length, length)
        return torch.stack([row, self.cols[start[row] + offset]])

    @staticmethod
    def merge(a: CSR, b: CSR) -> CSR:
        """Union of two tables over the same users (used to exclude train + validation at test)."""
        num_users = a.rowptr.numel() - 1
        users = torch.cat([
            torch.repeat_interleave(torch.arange(num_users), a.degree),
            torch.repeat_interleave(torch.arange(num_users), b.degree),
        ])
        return CSR(users, torch.cat([a.cols, b.cols]), num_users)


class NegativeSampler:
    """Uniform negatives that are never one of the user's training positives.

    Rejection sampling, vectorised: draw for all, look the (user, item) keys up in the sorted key
    table of training edges with ``searchsorted``, redraw only the rejected ones.
    """

    def __init__(self, users: Tensor, items: Tensor, num_users: int, num_items: int) -> None:
        self.num_items = num_items
        self.keys = torch.unique(users * num_items + items)  # sorted, duplicates dropped
        degree = torch.bincount(self.keys // num_items, minlength=num_users)
        full = (degree >= num_items).nonzero().flatten()
        if full.numel():
            raise ValueError(f"user {int(full[0])} interacted with every item: no negative exists for it")

    def is_positive(self, users: Tensor, items: Tensor) -> Tensor:
        """[N] bool: whether (users[n], items[n]) is a training edge."""
        q = users * self.num_items + items
        if self.keys.numel() == 0:
            return torch.zeros_like(q, dtype=torch.bool)
        pos = torch.searchsorted(self.keys, q).clamp(max=self.keys.numel() - 1)
        return self.keys[pos] == q

    def sample(self, users: Tensor, generator: torch.Generator) -> Tensor:
        """One negative item per entry of ``users`` ([N] -> [N])."""
        neg = torch.randint(0, self.num_items, users.shape, generator=generator)
        todo = self.is_positive(users, neg).nonzero().flatten()
        while todo.numel():
            neg[todo] = torch.randint(0, self.num_items, todo.shape, generator=generator)
            todo = todo[self.is_positive(users[todo], neg[todo])]
        return neg


class BPRTrainBatches(IterableDataset):
    """An epoch of shuffled (user, positive, negative) batches, drawn afresh each epoch.

    Epoch ``e`` uses a generator seeded with ``(seed, e, rank)`` so a run is reproducible and each
    distributed rank gets its own disjoint shard of the permutation (equal sizes, so all ranks run
    the same number of steps).
    """

    def __init__(self, users: Tensor, items: Tensor, num_users: int, num_items: int, batch_size: int, seed: int = 0) -> None:
        super().__init__()
        self.users, self.items = users, items
        self.batch_size = batch_size
        self.seed = seed
        self.sampler = NegativeSampler(users, items, num_users, num_items)
        self.epoch = 0

    def _shard(self) -> tuple[int, int]:
        return distributed_rank_and_world()

    def __len__(self) -> int:
        _, world = self._shard()
        return math.ceil((self.users.numel() // world) / self.batch_size)

    def __iter__(self):
        rank, world = self._shard()
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        perm = torch.randperm(self.users.numel(), generator=gen)
        per_rank = perm.numel() // world
        perm = perm[rank * per_rank : (rank + 1) * per_rank] if world > 1 else perm
        users, pos = self.users[perm], self.items[perm]
        rank_gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)) + rank)
        neg = self.sampler.sample(users, rank_gen)
        for start in range(0, users.numel(), self.batch_size):
            sl = slice(start, start + self.batch_size)
            yield TrainBatch(users[sl], pos[sl], neg[sl])


def distributed_rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised process group, ``(0, 1)`` without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ShardedEvalSampler(DistributedSampler):
    """Evaluation indices split across ranks with no padding: rank ``r`` of ``w`` gets ``r, r+w, ...``.

    ``torch``'s ``DistributedSampler`` (which Lightning installs for map-style loaders under DDP)
    pads the last shard with repeated samples so every rank has as many; a repeated user is then
    counted twice and the metrics shift (RecBole's DDP bug). Each sample here is seen exactly once
    over all ranks; ranks may get one batch more or less, which evaluation allows (the metric states
    are summed once, in ``compute``). Being a ``DistributedSampler``, Lightning leaves it in place.
    The rank and world size are read when iterating, when the process group exists.
    """

    def __init__(self, dataset: Dataset) -> None:
        super().__init__(dataset, num_replicas=1, rank=0, shuffle=False, drop_last=False)

    def _indices(self) -> range:
        rank, world = distributed_rank_and_world()
        return range(rank, len(self.dataset), world)  # type: ignore[arg-type]

    def __iter__(self):
        return iter(self._indices())

    def __len__(self) -> int:
        return len(self._indices())


class EvalUsers(Dataset):
    """Users that have held-out items in one split; collate builds an ``EvalBatch``."""

    def __init__(self, target: CSR, exclude: CSR) -> None:
        self.target, self.exclude = target, exclude
        self.user_ids = (target.degree > 0).nonzero().flatten()

    def __len__(self) -> int:
        return self.user_ids.numel()

    def __getitem__(self, idx: int) -> int:
        return int(self.user_ids[idx])

    def collate(self, users: list[int]) -> EvalBatch:
        u = torch.tensor(users, dtype=torch.long)
        return EvalBatch(users=u, exclude=self.exclude.rows(u), target=self.target.rows(u))
