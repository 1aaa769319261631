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
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset


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
    """Negatives that are never one of the user's training positives: uniform over the items, or
    proportional to ``weights`` (e.g. ``popularity_weights``).

    Rejection sampling, vectorised: draw for all, look the (user, item) keys up in the sorted key
    table of training edges with ``searchsorted``, redraw only the rejected ones. With weights the
    draw is ``weights`` restricted to the user's non-positives, renormalised.
    """

    def __init__(self, users: Tensor, items: Tensor, num_users: int, num_items: int, weights: Tensor | None = None) -> None:
        self.num_items = num_items
        self.keys = torch.unique(users * num_items + items)  # sorted, duplicates dropped
        degree = torch.bincount(self.keys // num_items, minlength=num_users)
        full = (degree >= num_items).nonzero().flatten()
        if full.numel():
            raise ValueError(f"user {int(full[0])} interacted with every item: no negative exists for it")
        self.weights: Tensor | None = None
        if weights is not None:
            self.weights = self._checked_weights(weights, num_users)

    def _checked_weights(self, weights: Tensor, num_users: int) -> Tensor:
        """``weights`` [I] as float64, after checking every user can draw a non-positive item."""
        weights = weights.detach().to(torch.float64).cpu()
        if weights.shape != (self.num_items,):
            raise ValueError(f"negative weights: expected shape [{self.num_items}] (one per item), got {list(weights.shape)}")
        if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()) or float(weights.sum()) <= 0:
            raise ValueError("negative weights must be finite, >= 0 and not all 0")
        # A user whose positives hold every item of nonzero weight would be redrawn forever.
        drawable = weights > 0
        pos_drawable = torch.bincount(self.keys // self.num_items, weights=drawable[self.keys % self.num_items].double(), minlength=num_users)
        stuck = (pos_drawable >= int(drawable.sum())).nonzero().flatten()
        if stuck.numel():
            raise ValueError(f"user {int(stuck[0])} has every item of nonzero sampling weight as a positive: no negative can be drawn")
        return weights

    def is_positive(self, users: Tensor, items: Tensor) -> Tensor:
        """[N] bool: whether (users[n], items[n]) is a training edge."""
        q = users * self.num_items + items
        if self.keys.numel() == 0:
            return torch.zeros_like(q, dtype=torch.bool)
        pos = torch.searchsorted(self.keys, q).clamp(max=self.keys.numel() - 1)
        return self.keys[pos] == q

    def _draw(self, n: int, generator: torch.Generator) -> Tensor:
        if self.weights is None:
            return torch.randint(0, self.num_items, (n,), generator=generator)
        return torch.multinomial(self.weights, n, replacement=True, generator=generator)

    def sample(self, users: Tensor, generator: torch.Generator) -> Tensor:
        """One negative item per entry of ``users`` ([N] -> [N])."""
        if self.weights is None:  # uniform: the draw the datamodule's epochs have always used
            neg = torch.randint(0, self.num_items, users.shape, generator=generator)
            todo = self.is_positive(users, neg).nonzero().flatten()
            while todo.numel():
                neg[todo] = torch.randint(0, self.num_items, todo.shape, generator=generator)
                todo = todo[self.is_positive(users[todo], neg[todo])]
            return neg
        neg = self._draw(users.numel(), generator)
        todo = self.is_positive(users, neg).nonzero().flatten()
        while todo.numel():
            neg[todo] = self._draw(todo.numel(), generator)
            todo = todo[self.is_positive(users[todo], neg[todo])]
        return neg

    def sample_k(self, users: Tensor, k: int, generator: torch.Generator) -> Tensor:
        """``k`` independent negatives per user: [B] -> [B, k]."""
        return self.sample(users.repeat_interleave(k), generator).view(-1, k)

    def sample_in_batch(self, users: Tensor, pos_items: Tensor, k: int, generator: torch.Generator, max_rounds: int = 50) -> Tensor:
        """In-batch negatives: for row b, ``k`` draws (with replacement) of the positive item of a
        uniformly chosen other row of the batch, redrawn while it is a positive of ``users[b]``.
        Rows still rejected after ``max_rounds`` (e.g. a batch of one, or whose other positives are
        all the user's) take a draw of this sampler instead. [B], [B] -> [B, k]."""
        batch = users.numel()
        rows = users.repeat_interleave(k)
        neg = torch.empty_like(rows)
        todo = torch.arange(rows.numel())
        if batch > 1:
            own = todo // k  # each draw's row
            for _ in range(max_rounds):
                other = torch.randint(0, batch - 1, todo.shape, generator=generator)
                other += other >= own[todo]  # uniform over the other rows
                neg[todo] = pos_items[other]
                todo = todo[self.is_positive(rows[todo], neg[todo])]
                if not todo.numel():
                    break
        if todo.numel():
            neg[todo] = self.sample(rows[todo], generator)
        return neg.view(batch, k)


def popularity_weights(items: Tensor, num_items: int, alpha: float) -> Tensor:
    """Popularity^alpha sampling weights [I]: each item's training-interaction count to the power
    ``alpha`` (0: uniform; 1: proportional to popularity; 0.75: word2vec's choice). Items never
    interacted with get weight 0 for ``alpha > 0``."""
    if alpha < 0:
        raise ValueError(f"popularity alpha must be >= 0, got {alpha}")
    return torch.bincount(items, minlength=num_items).to(torch.float64).pow(alpha)


def hardest_negatives(candidates: Tensor, scores: Tensor) -> Tensor:
    """Dynamic negative sampling's pick: per row and negative slot, the candidate the current model
    scores highest. ``candidates``, ``scores``: [B, K, M] (M candidates per slot) -> [B, K]."""
    return candidates.gather(-1, scores.argmax(-1, keepdim=True)).squeeze(-1)


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


def sharded_eval_loader(dataset: Dataset, batch_size: int, num_workers: int = 0) -> DataLoader:
    """An evaluation loader over ``dataset`` (which has ``collate``): under DDP every sample is scored
    on exactly one rank (``ShardedEvalSampler``: no padding duplicates)."""
    return DataLoader(
        dataset, batch_size=batch_size, sampler=ShardedEvalSampler(dataset), collate_fn=dataset.collate,  # type: ignore[attr-defined]
        num_workers=num_workers,
    )


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
