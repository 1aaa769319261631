"""News recommendation data: MIND-format impressions, their splits, batches and the click graph.

An *impression* is one page view: a user (with the click history logged before the period), a time,
and the articles shown, each labelled clicked (1) or skipped (0). ``NewsData`` holds every
impression of a dataset in CSR form per split, the articles' text and the ids, built from MIND files
(``graphrec_lab.data.sources.mind``) or from the synthetic generator
(``graphrec_lab.data.synthetic_news``) by one function, ``build_news_data``.

Splits (the MIND protocol):

* ``split="files"`` (MIND-small, MIND-large with its dev set): the training file's impressions are
  training data except those on its last ``val_days`` day(s), which are the validation set (as the
  MIND paper carves its development set out of the training week); the second file (MIND's dev
  set) is the test set.
* ``split="time"`` (one file: the sample, synthetic data): the last ``test_days`` day(s) are the
  test set, the ``val_days`` day(s) before them the validation set, the rest training data.

Articles referenced in ``behaviors.tsv`` but absent from ``news.tsv`` (or present with empty text)
are counted (``meta["news_referenced_without_row"]``, ``meta["news_referenced_without_text"]``,
logged as a warning) and handled by ``data.text.missing``: ``drop_items`` removes them from every
history and impression (impressions left without candidates go too, all counted); ``empty`` /
``placeholder`` keep them with an empty / placeholder text; ``error`` stops.

The click graph (what graph models propagate over, and what ``load_graph`` returns for the rest of
the framework) has an edge for every (user, article) in a training or validation impression's
history, and every click of a training impression. Validation clicks are held out (they select the
model) and test-file histories are left out by default: in MIND they cover the training week, and so
the validation labels.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset

from graphrec_lab.data.cache import load_or_build_entry
from graphrec_lab.data.datamodule import resolve_cache_dir, resolve_data_dir
from graphrec_lab.data.graph import DataValidationError, EdgeSet, InteractionGraph
from graphrec_lab.data.sampling import ShardedEvalSampler, distributed_rank_and_world
from graphrec_lab.data.sources import SOURCES, DatasetSource, ensure_files
from graphrec_lab.data.sources.mind import NEWS_FIELDS, BehaviorsTable, NewsTable, mind_source, read_behaviors, read_news
from graphrec_lab.data.text import ItemTextConfig, assemble_texts, item_text_config
from graphrec_lab.data.train_graph import TrainGraph

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
GRAPH_PROTOCOLS = ("time", "random", "none")
SECONDS_PER_DAY = 86400
DEFAULT_TEXT_FIELDS = ("title", "abstract")
TEXT_FIELDS = (*NEWS_FIELDS,)
# Bump when the processed format or its meaning changes (invalidates cached entries).
NEWS_CACHE_FORMAT = 1


# ============================================================================== impressions


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


def _ptr(counts: list[int] | np.ndarray | Tensor) -> Tensor:
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


# ============================================================================== building


@dataclass
class SplitConfig:
    """How impressions are split (see the module docstring)."""

    split: str = "auto"  # files | time | auto (files when a test file is given)
    val_days: int = 1
    test_days: int = 1

    def __post_init__(self) -> None:
        if self.split not in ("auto", "files", "time"):
            raise ValueError(f"data.split={self.split!r}: expected files, time or auto")
        if self.val_days < 1 or self.test_days < 1:
            raise ValueError(f"data.val_days={self.val_days}, data.test_days={self.test_days}: both must be >= 1")


def _day(t: np.ndarray) -> np.ndarray:
    return t // SECONDS_PER_DAY


def _split_by_days(behaviors: BehaviorsTable, cfg: SplitConfig, with_test: bool) -> dict[str, np.ndarray]:
    """Indices of ``behaviors`` impressions per split ("train", "val" and, when ``with_test``, "test")."""
    if len(behaviors) == 0:
        raise DataValidationError(f"{behaviors.source}: no impressions")
    days = _day(behaviors.time)
    distinct = np.unique(days)
    needed = cfg.val_days + (cfg.test_days if with_test else 0) + 1
    if distinct.size < needed:
        raise DataValidationError(
            f"{behaviors.source}: impressions span {distinct.size} day(s); the time split needs at least {needed} "
            f"(data.val_days={cfg.val_days}" + (f", data.test_days={cfg.test_days}" if with_test else "") + ")"
        )
    out: dict[str, np.ndarray] = {}
    cut = distinct.size
    if with_test:
        test_first = distinct[cut - cfg.test_days]
        out["test"] = np.flatnonzero(days >= test_first)
        cut -= cfg.test_days
    val_first = distinct[cut - cfg.val_days]
    val_last = distinct[cut - 1]
    out["val"] = np.flatnonzero((days >= val_first) & (days <= val_last))
    out["train"] = np.flatnonzero(days < val_first)
    return out


def build_news_data(
    news: list[NewsTable],
    train_behaviors: BehaviorsTable,
    test_behaviors: BehaviorsTable | None = None,
    text: ItemTextConfig | None = None,
    split: SplitConfig | None = None,
    name: str = "news",
) -> NewsData:
    """Index, split and clean MIND tables into ``NewsData``.

    Args:
        news: one or more ``news.tsv`` tables (MIND's train and dev files overlap; first row wins).
        train_behaviors: the training file's impressions (also the validation source).
        test_behaviors: the test file's impressions (``split="files"``), or None (``split="time"``).
        text: which fields make an article's text and the policy for articles without text.
        split: split protocol (``SplitConfig``).
    """
    text = text or ItemTextConfig(fields=DEFAULT_TEXT_FIELDS, missing="drop_items")
    split = split or SplitConfig()
    mode = split.split if split.split != "auto" else ("files" if test_behaviors is not None else "time")
    if mode == "files" and test_behaviors is None:
        raise ValueError("data.split=files needs a test file (data.test_dir / a dataset with a dev set)")
    if mode == "time" and test_behaviors is not None:
        raise ValueError("data.split=time uses one behaviors file; drop the test file or use data.split=files")
    for table in (train_behaviors, test_behaviors):
        if table is not None and table.labels is None:
            raise DataValidationError(f"{table.source}: impressions have no click labels (an unlabelled test file?); it cannot be used for training or evaluation")

    # ---- articles: every row of news.tsv plus every id referenced in the behaviours
    records: dict[str, dict[str, str]] = {}
    for table in news:
        for nid, rec in table.records().items():
            records.setdefault(nid, rec)
    tables = [train_behaviors] + ([test_behaviors] if test_behaviors is not None else [])
    referenced: dict[str, None] = {}
    for table in tables:
        for hist, cand in zip(table.history, table.candidates):
            referenced.update(dict.fromkeys(hist))
            referenced.update(dict.fromkeys(cand))
    tokens = list(records) + [nid for nid in referenced if nid not in records]
    index = {nid: k for k, nid in enumerate(tokens)}
    texts = assemble_texts(
        [records.get(nid) for nid in tokens], TEXT_FIELDS, text.fields, text.template, text.separator, DEFAULT_TEXT_FIELDS, name
    )
    no_row = np.array([nid not in records for nid in tokens], dtype=bool)
    no_text = np.array([t is None or not t.strip() for t in texts], dtype=bool)
    is_ref = np.array([nid in referenced for nid in tokens], dtype=bool)

    # ---- users and raw impressions per split, as id arrays
    users: dict[str, int] = {}

    def to_impressions(table: BehaviorsTable, rows: np.ndarray) -> Impressions:
        assert table.labels is not None
        u, hist_n, hist, cand_n, cand, lab = [], [], [], [], [], []
        for r in rows.tolist():
            u.append(users.setdefault(table.users[r], len(users)))
            h = table.history[r]
            hist_n.append(len(h))
            hist.extend(index[x] for x in h)
            c = table.candidates[r]
            cand_n.append(len(c))
            cand.extend(index[x] for x in c)
            lab.extend(table.labels[r])
        return Impressions(
            users=torch.tensor(u, dtype=torch.long),
            time=torch.from_numpy(table.time[rows].copy()),
            ids=[table.impression_ids[r] for r in rows.tolist()],
            hist_ptr=_ptr(hist_n), hist=torch.tensor(hist, dtype=torch.long),
            cand_ptr=_ptr(cand_n), cand=torch.tensor(cand, dtype=torch.long),
            labels=torch.tensor(lab, dtype=torch.int8),
        )

    if mode == "files":
        assert test_behaviors is not None
        parts = _split_by_days(train_behaviors, split, with_test=False)
        split_imps = {
            "train": to_impressions(train_behaviors, parts["train"]),
            "val": to_impressions(train_behaviors, parts["val"]),
            "test": to_impressions(test_behaviors, np.arange(len(test_behaviors))),
        }
        days_of = {"train": train_behaviors.time[parts["train"]], "val": train_behaviors.time[parts["val"]], "test": test_behaviors.time}
    else:
        parts = _split_by_days(train_behaviors, split, with_test=True)
        split_imps = {s: to_impressions(train_behaviors, parts[s]) for s in SPLITS}
        days_of = {s: train_behaviors.time[parts[s]] for s in SPLITS}

    # ---- articles without text
    missing = no_text & is_ref
    refs = 0
    for imp in split_imps.values():
        refs += int(torch.as_tensor(missing)[imp.hist].sum()) + int(torch.as_tensor(missing)[imp.cand].sum())
    meta: dict[str, Any] = {
        "split": mode,
        "val_days": split.val_days,
        "test_days": split.test_days if mode == "time" else None,
        "news_rows": len(records),
        "news_referenced": int(is_ref.sum()),
        "news_referenced_without_row": int((no_row & is_ref).sum()),
        "news_referenced_without_text": int(missing.sum()),
        "references_without_text": refs,
        "missing_text_policy": text.missing,
        "text_fields": list(text.fields) if text.fields else None,
        "text_template": text.template,
    }
    for s in SPLITS:
        t = days_of[s]
        meta[f"{s}_days"] = [int(d) for d in np.unique(_day(t))] if t.size else []
    if missing.any():
        first = [tokens[k] for k in np.flatnonzero(missing)[:5]]
        log.warning(
            "%s: %d of %d referenced articles have no text (%d have no row in news.tsv; %d references in "
            "histories and impressions; first: %s); data.text.missing=%s",
            name, int(missing.sum()), int(is_ref.sum()), meta["news_referenced_without_row"], refs, ", ".join(first), text.missing,
        )
    if text.missing == "error" and missing.any():
        first = [tokens[k] for k in np.flatnonzero(missing)[:10]]
        raise DataValidationError(
            f"{name}: {int(missing.sum())} referenced articles have no text ({meta['news_referenced_without_row']} have no row in "
            f"news.tsv; first: {', '.join(first)}) and data.text.missing='error'; choose drop_items, empty or placeholder"
        )
    final_text: list[str] = []
    for k, t in enumerate(texts):
        if t is not None and t.strip():
            final_text.append(t)
        elif text.missing == "placeholder":
            final_text.append(text.placeholder.format(token=tokens[k], index=k))
        else:
            final_text.append("")

    if text.missing == "drop_items" and no_text.any():
        keep = ~torch.from_numpy(no_text)
        new_id = torch.cumsum(keep.long(), 0) - 1
        for s in SPLITS:
            split_imps[s], dropped = _drop_articles(split_imps[s], keep, new_id)
            for key, value in dropped.items():
                meta[f"{s}_{key}"] = value
        kept = keep.nonzero().flatten().tolist()
        tokens = [tokens[k] for k in kept]
        final_text = [final_text[k] for k in kept]
        records_fields = {f: [records.get(tokens[j], {}).get(f, "") for j in range(len(tokens))] for f in NEWS_FIELDS}
        meta["dropped_articles"] = int(no_text.sum())
    else:
        records_fields = {f: [records.get(nid, {}).get(f, "") for nid in tokens] for f in NEWS_FIELDS}

    for s in SPLITS:
        imp = split_imps[s]
        meta[f"{s}_impressions"] = len(imp)
        meta[f"{s}_single_class"] = int(imp.single_class().sum()) if len(imp) else 0
        meta[f"{s}_clicks"] = int(imp.labels.long().sum())
    data = NewsData(name, tokens, final_text, records_fields, list(users), split_imps["train"], split_imps["val"], split_imps["test"], meta)
    data.validate()
    for s in ("train", "val", "test"):
        if len(data.split(s)) == 0:
            raise DataValidationError(
                f"{name}: the {s} split has no impressions after cleaning (split={mode}, data.text.missing={text.missing}); "
                f"counts: {json.dumps({k: v for k, v in meta.items() if k.startswith(s)})}"
            )
    return data


def _drop_articles(imp: Impressions, keep: Tensor, new_id: Tensor) -> tuple[Impressions, dict[str, int]]:
    """Remove the articles with ``keep`` False from histories and candidates, renumber the rest, and
    drop impressions left without candidates. Returns the new impressions and the counts removed."""
    if len(imp) == 0:
        return imp, {}
    h_keep = keep[imp.hist]
    c_keep = keep[imp.cand]
    h_rows = imp.history_rows()
    c_rows = imp.candidate_rows()
    m = len(imp)
    hist_n = torch.bincount(h_rows[h_keep], minlength=m)
    cand_n = torch.bincount(c_rows[c_keep], minlength=m)
    dropped_clicks = int((imp.labels[~c_keep] == 1).sum())
    trimmed = Impressions(
        imp.users, imp.time, imp.ids, _ptr(hist_n), new_id[imp.hist[h_keep]], _ptr(cand_n), new_id[imp.cand[c_keep]], imp.labels[c_keep]
    )
    alive = (cand_n > 0).nonzero().flatten()
    out = trimmed.select(alive) if alive.numel() < m else trimmed
    counts = {
        "dropped_history_refs": int((~h_keep).sum()),
        "dropped_candidates": int((~c_keep).sum()),
        "dropped_clicks": dropped_clicks,
        "dropped_impressions": m - alive.numel(),
    }
    return out, counts


# ============================================================================== batches


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
        self.neg_ptr = _ptr(torch.bincount(rows[neg], minlength=len(imps)))
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


# ============================================================================== the DataModule




def _load_or_build(cache_dir: Path | None, name: str, parts: dict, build) -> NewsData:
    """``NewsData`` from ``<cache_dir>/<name>-<key>/news.pt`` or built and saved atomically."""
    return load_or_build_entry(
        cache_dir, name, {"news_format": NEWS_CACHE_FORMAT, **parts}, build, filename="news.pt", load=NewsData.load,
        meta=lambda data: {"meta": data.meta},
    )  # fmt: skip


class NewsDataModule(pl.LightningDataModule):
    """MIND-format impressions for news recommendation (training samples and whole impressions).

    Args:
        dataset: ``mind-small`` (``MINDsmall_train`` + ``MINDsmall_dev`` under the data dir,
            downloaded when missing and allowed), ``mind-small-sample`` (one folder, time split),
            ``mind`` (any MIND folders: ``train_dir`` and optional ``test_dir``, e.g. MIND-large) or
            ``synthetic`` (``graphrec_lab.data.synthetic_news``, parameters in ``synthetic``).
        data_dir: where raw files live (``$GRAPHREC_DATA_DIR`` when unset).
        cache_dir: processed-data cache (``"none"`` disables).
        download: fetch missing MIND-small files from the MIND release.
        train_dir, test_dir: folders (relative to ``data_dir``) for ``dataset=mind``.
        split, val_days, test_days: the split protocol (``SplitConfig``; module docstring).
        text: ``ItemTextConfig`` keys: ``fields`` (of category, subcategory, title, abstract, url;
            default title + abstract), ``template``, ``separator``, ``missing`` (default
            ``drop_items``), ``placeholder``, ``decode_errors``.
        max_history: most recent history clicks a model sees (NRMS: 50).
        negatives: skipped articles sampled per click in training (MIND recipe: K=4).
        graph_protocol: which click graph a training batch of a graph model is scored on
            (``ImpressionTrainBatches``): ``time`` (the clicks of earlier days), ``random``
            (``graph_folds`` random folds, the graph without the batch's fold) or ``none``.
        graph_folds: number of folds of ``graph_protocol=random``.
        test_graph_val_clicks: the graph used at test time also holds the validation clicks (known
            before the test period); the validation graph never does.
        graph_test_histories: the test-time graph also holds the test impressions' histories (in
            MIND they cover the training week, so they must stay out of the validation graph).
        synthetic: keyword arguments of ``generate_synthetic_news``.
        train_batch_size: training samples per batch; eval_batch_size: impressions per batch.
        sampler_seed: seed of the epoch order and negative sampling.
    """

    def __init__(
        self,
        dataset: str = "synthetic",
        data_dir: str | None = None,
        cache_dir: str | None = None,
        download: bool = True,
        train_dir: str | None = None,
        test_dir: str | None = None,
        split: str = "auto",
        val_days: int = 1,
        test_days: int = 1,
        text: dict[str, Any] | None = None,
        max_history: int = 50,
        negatives: int = 4,
        graph_protocol: str = "time",
        graph_folds: int = 2,
        test_graph_val_clicks: bool = True,
        graph_test_histories: bool = False,
        synthetic: dict[str, Any] | None = None,
        train_batch_size: int = 64,
        eval_batch_size: int = 256,
        sampler_seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if dataset not in ("mind-small", "mind-small-sample", "mind", "synthetic"):
            raise ValueError(f"data.dataset={dataset!r}: expected mind-small, mind-small-sample, mind or synthetic")
        if dataset == "mind" and not train_dir:
            raise ValueError("data.dataset=mind needs data.train_dir (a MIND folder under the data dir)")
        if max_history < 1:
            raise ValueError(f"data.max_history={max_history}: must be >= 1")
        self.dataset = dataset
        self.data_dir = resolve_data_dir(data_dir)
        self.cache_dir = resolve_cache_dir(cache_dir)
        self.download = download
        self.train_dir, self.test_dir = train_dir, test_dir
        self.split_cfg = SplitConfig(split, val_days, test_days)
        self.text_cfg = item_text_config(text, fields=list(DEFAULT_TEXT_FIELDS), missing="drop_items")
        self.max_history = max_history
        self.negatives = negatives
        if graph_protocol not in GRAPH_PROTOCOLS:
            raise ValueError(f"data.graph_protocol={graph_protocol!r}: expected one of {GRAPH_PROTOCOLS}")
        self.graph_protocol = graph_protocol
        self.graph_folds = graph_folds
        self.test_graph_val_clicks = test_graph_val_clicks
        self.graph_test_histories = graph_test_histories
        self.synthetic = dict(synthetic or {})
        self.train_batch_size = train_batch_size
        self.eval_batch_size = eval_batch_size
        self.sampler_seed = sampler_seed
        self.num_workers = num_workers
        self.data: NewsData | None = None
        self.graph: InteractionGraph | None = None
        self._train_graph: TrainGraph | None = None
        self._test_graph: TrainGraph | None = None
        self._fold_graphs: list[TrainGraph] | None = None
        self._train_batches: ImpressionTrainBatches | None = None

    # ------------------------------------------------------------------ sources
    def sources(self) -> list[DatasetSource]:
        """The folders read: [train source] or [train source, test source]."""
        if self.dataset == "mind-small":
            return [SOURCES["mind-small-train"], SOURCES["mind-small-dev"]]
        if self.dataset == "mind-small-sample":
            return [SOURCES["mind-small-sample"]]
        if self.dataset == "mind":
            dirs = [self.train_dir] + ([self.test_dir] if self.test_dir else [])
            return [mind_source(f"mind:{d}", str(d)) for d in dirs]
        return []

    def _cache_parts(self) -> dict:
        parts: dict[str, Any] = {
            "dataset": self.dataset,
            "split": dataclasses.asdict(self.split_cfg),
            "text": dataclasses.asdict(self.text_cfg),
        }
        if self.dataset == "synthetic":
            from graphrec_lab.data.synthetic_news import GENERATOR_VERSION

            parts["synthetic"] = self.synthetic
            parts["generator_version"] = GENERATOR_VERSION
        else:
            parts["files"] = []
            for source in self.sources():
                ensure_files(source, self.data_dir, download=self.download)
                parts["files"].append(source.fingerprint(self.data_dir))
        return parts

    def _build(self) -> NewsData:
        if self.dataset == "synthetic":
            from graphrec_lab.data.synthetic_news import generate_synthetic_news

            news, behaviors = generate_synthetic_news(**self.synthetic)
            return build_news_data([news], behaviors, None, self.text_cfg, self.split_cfg, name="synthetic-news")
        folders = [s.path(self.data_dir) for s in self.sources()]
        errors = self.text_cfg.decode_errors
        news = [read_news(f / "news.tsv", errors) for f in folders]
        train = read_behaviors(folders[0] / "behaviors.tsv", errors)
        test = read_behaviors(folders[1] / "behaviors.tsv", errors) if len(folders) > 1 else None
        return build_news_data(news, train, test, self.text_cfg, self.split_cfg, name=self.dataset)

    # ------------------------------------------------------------------ building
    def load_data(self) -> NewsData:
        """The processed ``NewsData`` (cached)."""
        if self.data is None:
            name = self.dataset.replace(":", "-").replace("/", "-") + "-news"
            self.data = _load_or_build(self.cache_dir, name, self._cache_parts(), self._build)
            meta = self.data.meta
            log.info(
                "%s: %d articles, %d users; impressions train/val/test %d/%d/%d; %d referenced articles without text "
                "(%d without a news.tsv row), policy %s",
                self.dataset, self.data.num_news, self.data.num_users, len(self.data.train), len(self.data.val), len(self.data.test),
                meta["news_referenced_without_text"], meta["news_referenced_without_row"], meta["missing_text_policy"],
            )
        return self.data

    def prepare_data(self) -> None:
        self.load_data()

    def load_graph(self) -> InteractionGraph:
        """The click graph (``NewsData.to_graph``), for the parts of the framework that read graphs."""
        if self.graph is None:
            self.graph = self.load_data().to_graph()
        return self.graph

    def setup(self, stage: str | None = None) -> None:
        graph = self.load_graph()
        if self._train_graph is None:
            self._train_graph = TrainGraph.from_edges(graph.train.users, graph.train.items, graph.num_users, graph.num_items)

    # ------------------------------------------------------------------ what tasks and models need
    @property
    def num_users(self) -> int:
        return self.load_data().num_users

    @property
    def num_items(self) -> int:
        return self.load_data().num_news

    @property
    def train_graph(self) -> TrainGraph:
        """The user-article click graph of training and validation: the histories of training and
        validation impressions plus the clicks of training impressions."""
        self.setup()
        assert self._train_graph is not None
        return self._train_graph

    def _graph_from_keys(self, keys: Tensor) -> TrainGraph:
        n = self.num_items
        return TrainGraph.from_edges(keys // n, keys % n, self.num_users, n)

    @property
    def test_graph(self) -> TrainGraph:
        """The click graph at test time: ``train_graph`` plus the validation clicks
        (``test_graph_val_clicks``) and the test impressions' histories (``graph_test_histories``)."""
        if self._test_graph is None:
            if not self.test_graph_val_clicks and not self.graph_test_histories:
                self._test_graph = self.train_graph
            else:
                hist = ("train", "val", "test") if self.graph_test_histories else ("train", "val")
                clicks = ("train", "val") if self.test_graph_val_clicks else ("train",)
                self._test_graph = self._graph_from_keys(self.load_data().edge_keys(hist, clicks))
        return self._test_graph

    def fold_graphs(self) -> list[TrainGraph]:
        """One click graph per training fold (``graph_protocol``): ``time``: the histories plus the
        clicks of the days before the fold's day; ``random``: ``train_graph`` without the fold's
        clicks (edges that are also history entries stay). Empty for ``none``."""
        if self._fold_graphs is None:
            batches = self._batches()
            data = self.load_data()
            history = data.edge_keys(("train", "val"), ())
            self._fold_graphs = []
            if batches.graph_protocol == "time":
                for f in range(batches.folds):
                    keys = torch.unique(torch.cat([history, batches.clicks_before(f, data.num_news)]))
                    self._fold_graphs.append(self._graph_from_keys(keys))
            elif batches.folds > 1:
                full = data.edge_keys()
                for f in range(batches.folds):
                    drop = batches.fold_click_keys(f, data.num_news)
                    drop = drop[~torch.isin(drop, history)]
                    self._fold_graphs.append(self._graph_from_keys(full[~torch.isin(full, drop)]))
        return self._fold_graphs

    def item_texts(self) -> list[str]:
        """One text per article (what the text encoder reads)."""
        return list(self.load_data().news_text)

    def missing_news_report(self) -> dict[str, Any]:
        """How many referenced articles had no text and what the policy did (from ``meta``)."""
        meta = self.load_data().meta
        return {k: v for k, v in meta.items() if "without" in k or "dropped" in k or k == "missing_text_policy"}

    def skipped_users(self, split: str) -> int:
        """Impressions of ``split`` the metrics cannot score (all clicked or none clicked)."""
        imps = self.load_data().split(split)
        return int(imps.single_class().sum()) if len(imps) else 0

    # ------------------------------------------------------------------ loaders
    def _batches(self) -> ImpressionTrainBatches:
        if self._train_batches is None:
            self._train_batches = ImpressionTrainBatches(
                self.load_data().train, self.negatives, self.max_history, self.train_batch_size, self.sampler_seed,
                self.graph_folds, self.graph_protocol,
            )
        return self._train_batches

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self._batches(), batch_size=None, num_workers=0)

    def _eval_loader(self, split: str) -> DataLoader:
        imps = self.load_data().split(split)
        ds = ImpressionEvalSet(imps, self.max_history)
        # Under DDP each impression is scored on exactly one rank (no padding duplicates).
        return DataLoader(
            ds, batch_size=self.eval_batch_size, sampler=ShardedEvalSampler(ds), collate_fn=ds.collate,
            num_workers=self.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")


__all__ = [
    "ImpressionBatch", "ImpressionEvalSet", "ImpressionTrainBatches", "Impressions", "NewsData", "NewsDataModule",
    "SplitConfig", "build_news_data", "sample_without_replacement",
]
