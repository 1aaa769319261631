"""Batches of impressions: ``ImpressionTrainBatches`` (training samples, one click plus sampled
skips, with the graph fold each batch is scored on) and ``ImpressionEvalSet`` (whole impressions)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor
from torch.utils.data import Dataset, IterableDataset

from graphrec_lab.data.graph import DataValidationError
from graphrec_lab.data.news.types import GRAPH_PROTOCOLS, SECONDS_PER_DAY, Impressions, counts_to_ptr
from graphrec_lab.data.sampling import distributed_rank_and_world


@dataclass
class ImpressionBatch:
    """A batch of impressions (or of training samples cut from impressions).

    ``users`` [B]; ``history`` [B, L] article ids (0 where ``history_mask`` is False; most recent
    ``L`` clicks, oldest first); ``candidates`` [B, C] with ``candidate_mask`` [B, C] and
    ``labels`` [B, C] (float 0/1; in training batches column 0 is the clicked article and the rest
    are sampled skips); ``rows`` [B]: the impressions' indices in their split; ``fold``: see
    ``ImpressionTrainBatches``.
    """

    users: Tensor
    history: Tensor
    history_mask: Tensor
    candidates: Tensor
    candidate_mask: Tensor
    labels: Tensor
    rows: Tensor
    fold: int = -1  # training: the graph fold whose clicks are this batch's targets (-1: none)

    def to(self, device: torch.device | str) -> ImpressionBatch:
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        return ImpressionBatch(**{k: v.to(device) if isinstance(v, Tensor) else v for k, v in moved.items()})

    def __len__(self) -> int:
        return self.users.numel()

    def articles(self) -> Tensor:
        """Distinct article ids the batch touches (histories and candidates): [A]."""
        return torch.unique(torch.cat([self.history[self.history_mask], self.candidates[self.candidate_mask]]))


def _pad_rows(ptr: Tensor, values: Tensor, rows: Tensor, max_len: int | None, keep: str = "last") -> tuple[Tensor, Tensor]:
    """Rows of a CSR table as a right-padded [B, W] block and its mask; with ``max_len`` only the
    ``keep``="last" (or "first") ``max_len`` entries of each row."""
    start, end = ptr[rows], ptr[rows + 1]
    if max_len is not None:
        if keep == "last":
            start = torch.maximum(start, end - max_len)
        else:
            end = torch.minimum(end, start + max_len)
    lengths = end - start
    width = max(int(lengths.max()) if lengths.numel() else 0, 1)
    pos = torch.arange(width)
    mask = pos.unsqueeze(0) < lengths.unsqueeze(1)
    idx = (start.unsqueeze(1) + pos.unsqueeze(0)).clamp(max=max(values.numel() - 1, 0))
    block = values[idx] if values.numel() else torch.zeros_like(idx, dtype=values.dtype)
    block = torch.where(mask, block, torch.zeros_like(block))
    return block, mask


def sample_without_replacement(counts: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """For each row, ``k`` positions in ``[0, counts[row])``: distinct when ``counts >= k``, drawn
    with replacement otherwise (as NRMS's ``newsample`` repeats the list). [N, k] int64.

    Vectorised index shifting: the j-th draw is uniform over the ``n - j`` positions not drawn yet,
    mapped past the earlier draws in increasing order."""
    n = counts.long()
    out = torch.empty(n.numel(), k, dtype=torch.long)
    taken: list[Tensor] = []
    for j in range(k):
        r = (torch.rand(n.numel(), generator=generator) * (n - j).clamp(min=1)).long()
        if taken:
            for prev in torch.sort(torch.stack(taken, 1), dim=1).values.unbind(1):
                r = r + (r >= prev).long()
        taken.append(r)
        out[:, j] = r
    small = n < k
    if bool(small.any()):
        rep = (torch.rand(int(small.sum()), k, generator=generator) * n[small].clamp(min=1).unsqueeze(1)).long()
        out[small] = rep
    return out


class ImpressionTrainBatches(IterableDataset):
    """MIND training samples: every click of a training impression with ``negatives`` skipped
    articles of the same impression (distinct when it has that many), shuffled per epoch, in batches
    of ``batch_size``. Impressions without a skipped article give no samples (counted in
    ``skipped_clicks``).

    Graph folds (for graph models; ``NewsDataModule.fold_graphs`` builds one graph per fold): every
    batch holds clicks of one fold (``batch.fold``), and a graph model scores it on that fold's graph,
    which never contains the batch's target clicks, as at evaluation time.

    * ``graph_protocol="time"``: a click's fold is the day of its impression; fold ``d``'s graph has
      the histories and the clicks of earlier days only, so articles published that day are as new
      to the graph as the test day's articles are to the test graph.
    * ``graph_protocol="random"``: ``folds`` random folds; fold ``f``'s graph has every training
      click but fold ``f``'s (PyG's ``disjoint_train_ratio`` idea).
    * ``graph_protocol="none"``: one fold; batches are scored on the full training graph.

    Batches of the folds are interleaved in random order.
    """

    def __init__(
        self,
        imps: Impressions,
        negatives: int,
        max_history: int,
        batch_size: int,
        seed: int = 0,
        folds: int = 1,
        graph_protocol: str = "random",
    ) -> None:
        if negatives < 1:
            raise ValueError(f"data.negatives={negatives}: the softmax loss needs at least one skipped article per click")
        if folds < 1:
            raise ValueError(f"data.graph_folds={folds}: must be >= 1")
        if graph_protocol not in GRAPH_PROTOCOLS:
            raise ValueError(f"data.graph_protocol={graph_protocol!r}: expected one of {GRAPH_PROTOCOLS}")
        self.imps = imps
        self.negatives = negatives
        self.max_history = max_history
        self.batch_size = batch_size
        self.seed = seed
        self.folds = folds
        self.epoch = 0
        rows = imps.candidate_rows()
        clicked = imps.labels == 1
        n_neg = imps.num_candidates - imps.num_clicks
        usable = clicked & (n_neg[rows] > 0)
        self.pos_rows = rows[usable]  # [P] impression of each training click
        self.pos_items = imps.cand[usable]  # [P]
        self.skipped_clicks = int((clicked & ~usable).sum())
        # Skipped articles per impression, CSR.
        neg = ~clicked
        self.neg_ptr = counts_to_ptr(torch.bincount(rows[neg], minlength=len(imps)))
        self.neg_items = imps.cand[neg]
        if self.pos_rows.numel() == 0:
            raise DataValidationError("no training impression has both a clicked and a skipped article; nothing to train on")
        self.graph_protocol = graph_protocol
        if graph_protocol == "time":
            day = imps.time // SECONDS_PER_DAY
            day_index = torch.searchsorted(torch.unique(day), day)  # [M] 0 = first training day
            self.impression_fold = day_index
            self.fold_of = day_index[self.pos_rows]
            self.folds = int(day_index.max()) + 1 if day_index.numel() else 1
        elif graph_protocol == "random" and folds > 1:
            g = torch.Generator().manual_seed(seed * 7919 + 17)
            self.fold_of = torch.randint(0, folds, (self.pos_rows.numel(),), generator=g)
        else:
            self.folds = 1
            self.fold_of = torch.zeros(self.pos_rows.numel(), dtype=torch.long)

    def fold_click_keys(self, fold: int, num_news: int) -> Tensor:
        """``user * num_news + article`` keys of the target clicks of one fold: [P_f]."""
        pick = self.fold_of == fold
        return self.imps.users[self.pos_rows[pick]] * num_news + self.pos_items[pick]

    def clicks_before(self, fold: int, num_news: int) -> Tensor:
        """``graph_protocol="time"``: keys of every click of the training impressions of days
        before ``fold`` (the day index): [E]."""
        earlier = (self.impression_fold < fold).nonzero().flatten()
        u, i = self.imps.select(earlier).clicks()
        return u * num_news + i

    def _num_chunks(self) -> int:
        return sum(-(-int((self.fold_of == f).sum()) // self.batch_size) for f in range(self.folds))

    def __len__(self) -> int:
        _, world = distributed_rank_and_world()
        return self._num_chunks() // world if world > 1 else self._num_chunks()

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        chunks: list[tuple[int, Tensor]] = []
        for f in range(self.folds):
            members = (self.fold_of == f).nonzero().flatten()
            members = members[torch.randperm(members.numel(), generator=g)]
            chunks += [(f, members[s : s + self.batch_size]) for s in range(0, members.numel(), self.batch_size)]
        order = torch.randperm(len(chunks), generator=g).tolist()
        rank, world = distributed_rank_and_world()
        if world > 1:  # DDP: disjoint, equal shards of the epoch's batches (every rank steps alike)
            per_rank = len(order) // world
            order = order[rank * per_rank : (rank + 1) * per_rank]
        for j in order:
            fold, take = chunks[j]
            rows = self.pos_rows[take]
            n_neg = self.neg_ptr[rows + 1] - self.neg_ptr[rows]
            picks = sample_without_replacement(n_neg, self.negatives, g)  # [B, K]
            negs = self.neg_items[self.neg_ptr[rows].unsqueeze(1) + picks]
            cands = torch.cat([self.pos_items[take].unsqueeze(1), negs], 1)  # [B, 1+K], click first
            hist, hmask = _pad_rows(self.imps.hist_ptr, self.imps.hist, rows, self.max_history)
            labels = torch.zeros(cands.shape)
            labels[:, 0] = 1.0
            yield ImpressionBatch(
                self.imps.users[rows], hist, hmask, cands, torch.ones_like(cands, dtype=torch.bool), labels, rows,
                fold if self.folds > 1 else -1,
            )


class ImpressionEvalSet(Dataset):
    """Whole impressions for evaluation; ``collate`` pads candidates and histories per batch."""

    def __init__(self, imps: Impressions, max_history: int) -> None:
        self.imps = imps
        self.max_history = max_history

    def __len__(self) -> int:
        return len(self.imps)

    def __getitem__(self, idx: int) -> int:
        return idx

    def collate(self, rows_list: list[int]) -> ImpressionBatch:
        rows = torch.tensor(rows_list, dtype=torch.long)
        hist, hmask = _pad_rows(self.imps.hist_ptr, self.imps.hist, rows, self.max_history)
        cands, cmask = _pad_rows(self.imps.cand_ptr, self.imps.cand, rows, None)
        labels, _ = _pad_rows(self.imps.cand_ptr, self.imps.labels, rows, None)
        return ImpressionBatch(self.imps.users[rows], hist, hmask, cands, cmask, labels.float(), rows)
