"""The in-memory news dataset: ``Impressions`` (one split's page views in CSR form) and ``NewsData``
(every split, the articles' text and ids, and the click graph they define); the package docstring
describes the splits and the graph."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from graphrec_lab.data.graph import DataValidationError, EdgeSet, InteractionGraph
from graphrec_lab.data.sources.mind import NEWS_FIELDS

SPLITS = ("train", "val", "test")
GRAPH_PROTOCOLS = ("time", "random", "none")
SECONDS_PER_DAY = 86400
DEFAULT_TEXT_FIELDS = ("title", "abstract")
TEXT_FIELDS = (*NEWS_FIELDS,)
# Bump when the processed format or its meaning changes (invalidates cached entries).
NEWS_CACHE_FORMAT = 1


def _ragged_gather(ptr: Tensor, values: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
    """Rows ``rows`` of a CSR table: new ``ptr`` [len(rows)+1] and concatenated values."""
    counts = ptr[rows + 1] - ptr[rows]
    new_ptr = torch.zeros(rows.numel() + 1, dtype=torch.long)
    torch.cumsum(counts, 0, out=new_ptr[1:])
    total = int(new_ptr[-1])
    if total == 0:
        return new_ptr, values[:0]
    row_of = torch.repeat_interleave(torch.arange(rows.numel()), counts)
    offset = torch.arange(total) - new_ptr[:-1][row_of]
    return new_ptr, values[ptr[rows][row_of] + offset]


def counts_to_ptr(counts: list[int] | np.ndarray | Tensor) -> Tensor:
    counts_t = torch.as_tensor(np.asarray(counts, dtype=np.int64))
    ptr = torch.zeros(counts_t.numel() + 1, dtype=torch.long)
    torch.cumsum(counts_t, 0, out=ptr[1:])
    return ptr


@dataclass
class Impressions:
    """One split's impressions, CSR-packed.

    Shapes: ``users``/``time`` [M]; ``hist_ptr``/``cand_ptr`` [M+1]; ``hist`` [H] article ids (file
    order, oldest first); ``cand`` [C] article ids and ``labels`` [C] int8 (1 clicked).
    """

    users: Tensor
    time: Tensor
    ids: list[str]
    hist_ptr: Tensor
    hist: Tensor
    cand_ptr: Tensor
    cand: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return self.users.numel()

    @property
    def num_candidates(self) -> Tensor:
        """[M] candidates per impression."""
        return self.cand_ptr[1:] - self.cand_ptr[:-1]

    @property
    def num_clicks(self) -> Tensor:
        """[M] clicked candidates per impression."""
        row = self.candidate_rows()
        return torch.bincount(row, weights=self.labels.double(), minlength=len(self)).long()

    def candidate_rows(self) -> Tensor:
        """[C] the impression of every candidate."""
        return torch.repeat_interleave(torch.arange(len(self)), self.num_candidates)

    def history_rows(self) -> Tensor:
        """[H] the impression of every history entry."""
        return torch.repeat_interleave(torch.arange(len(self)), self.hist_ptr[1:] - self.hist_ptr[:-1])

    def single_class(self) -> Tensor:
        """[M] bool: impressions whose candidates are all clicked or all skipped (not scorable)."""
        clicks = self.num_clicks
        return (clicks == 0) | (clicks == self.num_candidates)

    def select(self, rows: Tensor) -> Impressions:
        """The impressions ``rows`` ([K] int64 indices), in that order."""
        rows = rows.long()
        hist_ptr, hist = _ragged_gather(self.hist_ptr, self.hist, rows)
        cand_ptr, cand = _ragged_gather(self.cand_ptr, self.cand, rows)
        _, labels = _ragged_gather(self.cand_ptr, self.labels, rows)
        return Impressions(self.users[rows], self.time[rows], [self.ids[i] for i in rows.tolist()], hist_ptr, hist, cand_ptr, cand, labels)

    def clicks(self) -> tuple[Tensor, Tensor]:
        """Clicked (user, article) pairs: two [E] tensors (with repeats)."""
        row = self.candidate_rows()
        hit = self.labels == 1
        return self.users[row[hit]], self.cand[hit]

    def history_pairs(self) -> tuple[Tensor, Tensor]:
        """(user, article) pairs of every history entry: two [H] tensors (with repeats)."""
        return self.users[self.history_rows()], self.hist

    def digest(self) -> str:
        h = hashlib.sha256()
        for t in (self.users, self.time, self.hist_ptr, self.hist, self.cand_ptr, self.cand, self.labels):
            h.update(t.contiguous().numpy().tobytes())
        return h.hexdigest()[:16]


@dataclass
class NewsData:
    """A news dataset ready for training: articles, users and impressions per split.

    ``news_text`` [I] is the text each article is encoded from (``data.text`` fields or template);
    ``news_fields`` keeps the raw fields (title, abstract, category, ...). ``meta``: counts of how it
    was built (missing articles and what the policy did, split days, sizes).
    """

    name: str
    news_tokens: list[str]
    news_text: list[str]
    news_fields: dict[str, list[str]]
    user_tokens: list[str]
    train: Impressions
    val: Impressions
    test: Impressions
    meta: dict = field(default_factory=dict)

    @property
    def num_news(self) -> int:
        return len(self.news_tokens)

    @property
    def num_users(self) -> int:
        return len(self.user_tokens)

    def split(self, name: str) -> Impressions:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return getattr(self, name)

    def validate(self) -> None:
        """Ids in range and CSR tables consistent (raises ``DataValidationError``)."""
        for name in SPLITS:
            imp = self.split(name)
            for what, ids, upper in (("user", imp.users, self.num_users), ("history article", imp.hist, self.num_news), ("candidate article", imp.cand, self.num_news)):
                if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= upper):
                    raise DataValidationError(f"{self.name}: {name} {what} id out of range [0, {upper})")
            if int(imp.cand_ptr[-1]) != imp.cand.numel() or imp.labels.numel() != imp.cand.numel() or int(imp.hist_ptr[-1]) != imp.hist.numel():
                raise DataValidationError(f"{self.name}: {name} impressions are inconsistent (CSR pointers vs values)")
        if len(self.news_text) != self.num_news:
            raise DataValidationError(f"{self.name}: {len(self.news_text)} texts for {self.num_news} articles")

    def edge_keys(self, history_splits: tuple[str, ...] = ("train", "val"), click_splits: tuple[str, ...] = ("train",)) -> Tensor:
        """Unique ``user * num_news + article`` keys of the histories of ``history_splits`` and the
        clicks of ``click_splits``: [E] int64, sorted."""
        parts = [self.split(s).history_pairs() for s in history_splits] + [self.split(s).clicks() for s in click_splits]
        users = torch.cat([p[0] for p in parts])
        items = torch.cat([p[1] for p in parts])
        return torch.unique(users * self.num_news + items)

    def to_graph(self, test_histories: bool = False) -> InteractionGraph:
        """The click graph as an ``InteractionGraph``: ``train`` = the histories of training and
        validation impressions (and of test impressions with ``test_histories``) plus the clicks of
        training impressions; ``val``/``test`` = the splits' clicked pairs that are not training
        edges (unique)."""
        n = self.num_news
        train_keys = self.edge_keys(("train", "val", "test") if test_histories else ("train", "val"))

        def held_out(imp: Impressions) -> EdgeSet:
            u, i = imp.clicks()
            keys = torch.unique(u * n + i)
            keys = keys[~torch.isin(keys, train_keys)]
            return EdgeSet(keys // n, keys % n)

        return InteractionGraph(
            num_users=self.num_users,
            num_items=n,
            train=EdgeSet(train_keys // n, train_keys % n),
            val=held_out(self.val),
            test=held_out(self.test),
            name=self.name,
            item_text=list(self.news_text),
            user_tokens=self.user_tokens,
            item_tokens=self.news_tokens,
            meta={**self.meta, "impressions_hash": self.digest()},
        )

    def digest(self) -> str:
        h = hashlib.sha256(self.name.encode())
        for name in SPLITS:
            h.update(self.split(name).digest().encode())
        return h.hexdigest()[:16]

    def save(self, path: str | Path) -> None:
        state = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in SPLITS:
            state[name] = dataclasses.asdict(state[name])
        torch.save(state, path)

    @classmethod
    def load(cls, path: str | Path) -> NewsData:
        state = torch.load(path, weights_only=False)
        for name in SPLITS:
            state[name] = Impressions(**state[name])
        data = cls(**state)
        data.validate()
        return data
