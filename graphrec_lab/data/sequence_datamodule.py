"""The sequential DataModule: per-user item sequences in time order, leave-one-out, full ranking.

Sequences come from
- the UniSRec release (``amazon-scientific``, ``unisrec:<Prefix>``): the release's own sequences and
  leave-one-out targets, repeats kept, exactly as UniSRec/RecBole read them;
- any other source with timestamps (``ml-100k``, ``recbole:<name>`` with a time field, ``synthetic``):
  interactions ordered by time (ties keep file order), then leave-one-out by time
  (``data.sequential.leave_one_out``: last item test, second-last validation);
- ``synthetic_domain``: one domain of the transfer generator (``data.synthetic_domains``).

``train_user_fraction < 1`` keeps the training samples of a seeded share of the users only (the
few-shot setting of the transfer protocol); every user is still evaluated.

Training samples are every prefix of a user's training sequence and the item that follows it (the
RecBole/UniSRec augmentation), so no sample ever sees an item later than its target. Validation
predicts the validation item from the training sequence; test predicts the test item from the
training sequence plus the validation item. Histories keep the latest ``max_length`` items.

``exclude_history=false`` (the UniSRec/RecBole sequential protocol) ranks every item, history
included (repeat purchases are legitimate targets); ``true`` masks the user's known items as the
top-K task does, for comparisons with the graph models on the same split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from graphrec_lab.data.datamodule import resolve_data_dir
from graphrec_lab.data.graph import DataValidationError, EdgeSet, InteractionGraph, RawInteractions
from graphrec_lab.data.multi_domain import union_domains
from graphrec_lab.data.sampling import EvalBatch, sharded_eval_loader
from graphrec_lab.data.sequential import keep_items_with_text, leave_one_out, pad_sequences, user_sequences
from graphrec_lab.data.sources import resolve_source
from graphrec_lab.data.sources.unisrec import read_unisrec_sequences, unisrec_prefix
from graphrec_lab.data.synthetic import generate_synthetic
from graphrec_lab.data.synthetic_domains import generate_domain
from graphrec_lab.data.train_graph import TrainGraph


@dataclass
class SequenceBatch:
    """``users`` [B]; ``history`` [B, L] right-aligned 1-based items (0 pads; L is the batch's longest
    history, at most ``max_length``: the models' states do not depend on the padding); ``target`` [B] 0-based
    next items; ``exclude`` [2, X] (row, item) pairs masked out of the ranking (empty unless
    ``exclude_history``)."""

    users: Tensor
    history: Tensor
    target: Tensor
    exclude: Tensor

    def to(self, device: torch.device | str) -> SequenceBatch:
        return SequenceBatch(self.users.to(device), self.history.to(device), self.target.to(device), self.exclude.to(device))

    def eval_batch(self) -> EvalBatch:
        """The evaluator's view: one held-out item per row."""
        rows = torch.arange(self.users.numel(), device=self.users.device)
        return EvalBatch(self.users, self.exclude, torch.stack([rows, self.target]))

    def __len__(self) -> int:
        return self.users.numel()


class _Rows(Dataset):
    """Indexable rows of (user, padded history, target, known items) for one split."""

    def __init__(self, users: Tensor, history: Tensor, target: Tensor, known: list[list[int]] | None) -> None:
        self.users, self.history, self.target, self.known = users, history, target, known

    def __len__(self) -> int:
        return self.users.numel()

    def __getitem__(self, i: int) -> int:
        return i

    def collate(self, index: list[int]) -> SequenceBatch:
        idx = torch.as_tensor(index, dtype=torch.long)
        history = self.history[idx]
        width = max(1, int(history.gt(0).sum(1).max())) if len(index) else 1
        history = history[:, history.shape[1] - width:]  # right-aligned: drop the columns that pad every row
        if self.known is None:
            exclude = torch.empty(2, 0, dtype=torch.long)
        else:
            pairs = [(r, item) for r, i in enumerate(index) for item in sorted(set(self.known[i]))]
            exclude = torch.tensor(pairs, dtype=torch.long).T.reshape(2, -1)
        return SequenceBatch(self.users[idx], history, self.target[idx], exclude)


class LengthBatches(Sampler[list[int]]):
    """Training batches of similar history length, in random order: samples are shuffled, stably sorted
    by length, cut into batches, and the batches shuffled (seeded, a new order each epoch). A batch is
    padded to its longest history only, so short histories (most of them) stop paying for the longest.
    Every sample is used once per epoch."""

    def __init__(self, lengths: Tensor, batch_size: int, seed: int) -> None:
        self.lengths, self.batch_size, self.seed, self.epoch = lengths, batch_size, seed, 0

    def __len__(self) -> int:
        return (self.lengths.numel() + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        perm = torch.randperm(self.lengths.numel(), generator=gen)
        order = perm[torch.argsort(self.lengths[perm], stable=True)]
        batches = list(torch.split(order, self.batch_size))
        for b in torch.randperm(len(batches), generator=gen).tolist():
            yield batches[b].tolist()


class SequentialDataModule(pl.LightningDataModule):
    """Args:
        dataset: ``amazon-scientific`` / ``unisrec:<Prefix>`` (given sequences), a registered source
            with timestamps (``ml-100k``), ``recbole:<name>``, or ``synthetic``.
        data_dir: where raw files live (``$GRAPHREC_DATA_DIR`` when unset).
        download: fetch missing files (registered sources only; fails clearly offline).
        max_length: history length kept (the latest items).
        min_length: users with fewer interactions are left out (timestamped sources; at least 3).
        exclude_history: mask each user's known items out of the ranking (module docstring).
        reader: keyword arguments for the dataset's reader (e.g. ``text_fields`` of the UniSRec release).
        synthetic: keyword arguments of ``generate_synthetic`` (``dataset=synthetic``) or of
            ``generate_domain`` (``dataset=synthetic_domain``).
        train_user_fraction: share of users whose training samples are kept (seeded by ``split_seed``).
        train_batch_size, eval_batch_size: samples per batch.
        sampler_seed: seed of the training shuffle.
        length_batches: training batches of similar history length (``LengthBatches``); false: uniform shuffle.
        text_items_only: keep only the items with a non-empty text (timestamped sources; ids compacted),
            for transfer through text from a source where many items have none (the MIND sample).
        domains: with ``dataset="multi"``, the domains of a multi-domain dataset: each a mapping of
            this class's data arguments (``dataset``, ``reader``, ``synthetic``, ``min_length``,
            ``text_items_only``); each keeps its own split, ids are made disjoint
            (``data.multi_domain``). The other arguments apply to the union.
    """

    def __init__(
        self,
        dataset: str = "amazon-scientific",
        data_dir: str | None = None,
        download: bool = False,
        max_length: int = 50,
        min_length: int = 3,
        exclude_history: bool = False,
        reader: dict[str, Any] | None = None,
        synthetic: dict[str, Any] | None = None,
        train_batch_size: int = 2048,
        eval_batch_size: int = 1024,
        sampler_seed: int = 0,
        length_batches: bool = True,
        train_user_fraction: float = 1.0,
        split_seed: int = 0,
        text_items_only: bool = False,
        domains: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        if (dataset == "multi") != bool(domains):
            raise ValueError("data.domains: give the domains with data.dataset=multi (and only then)")
        self.domains = [dict(d) for d in domains or []]
        self.domain_blocks: list[dict[str, int]] = []
        if max_length < 1:
            raise ValueError(f"data.max_length={max_length}: must be positive")
        if not 0.0 < train_user_fraction <= 1.0:
            raise ValueError(f"data.train_user_fraction={train_user_fraction}: must be in (0, 1]")
        self.train_user_fraction = train_user_fraction
        self.text_items_only = text_items_only
        self.split_seed = split_seed
        self.dataset = dataset
        self.data_dir = resolve_data_dir(data_dir)
        self.download = download
        self.max_length = max_length
        self.min_length = min_length
        self.exclude_history = exclude_history
        self.reader_kwargs = dict(reader or {})
        self.synthetic = dict(synthetic or {})
        self.train_batch_size = train_batch_size
        self.eval_batch_size = eval_batch_size
        self.sampler_seed = sampler_seed
        self.length_batches = length_batches
        self._length_sampler: LengthBatches | None = None
        self._raw: RawInteractions | None = None
        self._split: dict[int, tuple[list[int], int | None, int | None]] | None = None
        self._graph: InteractionGraph | None = None
        self._train_graph: TrainGraph | None = None
        self._rows: dict[str, _Rows] = {}

    # ------------------------------------------------------------------ sequences
    def _unisrec_prefix(self) -> str | None:
        if self.dataset in ("synthetic", "synthetic_domain", "multi"):
            return None
        return unisrec_prefix(resolve_source(self.dataset))

    def _load(self) -> None:
        if self._split is not None:
            return
        if self.domains:
            self._raw, self._split, self.domain_blocks = self._load_domains()
            return
        prefix = self._unisrec_prefix()
        if self.dataset == "synthetic":
            raw = generate_synthetic(**self.synthetic)
        elif self.dataset == "synthetic_domain":
            raw = generate_domain(**self.synthetic)
        else:
            raw = resolve_source(self.dataset).load(self.data_dir, download=self.download, **self.reader_kwargs)
        if self.text_items_only and prefix is not None:
            raise ValueError("data.text_items_only: the UniSRec release's given sequences index every item; it needs a timestamped source")
        if self.text_items_only:
            raw = keep_items_with_text(raw)
        if prefix is not None:
            folder = resolve_source(self.dataset).path(self.data_dir)
            split = read_unisrec_sequences(folder, prefix, raw.num_users, raw.num_items)
        else:
            if raw.timestamp is None:
                raise DataValidationError(
                    f"data.dataset={self.dataset!r}: the sequential DataModule orders interactions by time, and "
                    f"{raw.source} has no timestamps"
                )
            loo = leave_one_out(user_sequences(raw.user, raw.item, raw.timestamp), self.min_length)
            split = {u: (tr, v, t) for u, tr, v, t in zip(loo.users, loo.train, loo.valid, loo.test)}
        self._raw, self._split = raw, split

    def _load_domains(self) -> tuple[RawInteractions, dict, list[dict[str, int]]]:
        allowed = {"dataset", "reader", "synthetic", "min_length", "text_items_only"}
        parts = []
        for i, domain in enumerate(self.domains):
            unknown = sorted(set(domain) - allowed)
            if unknown or "dataset" not in domain:
                raise ValueError(f"data.domains[{i}]: {'unknown keys ' + str(unknown) if unknown else 'no dataset'}; "
                                 f"a domain takes {sorted(allowed)}")  # fmt: skip
            child = SequentialDataModule(data_dir=str(self.data_dir), download=self.download, max_length=self.max_length, **domain)
            child._load()
            assert child._raw is not None and child._split is not None
            name = str(domain["dataset"]) + (f"/{domain['synthetic'].get('name', i)}" if domain.get("synthetic") else "")
            parts.append((name, child._raw, child._split))
        return union_domains(parts)

    def _build_rows(self) -> None:
        assert self._split is not None
        train_users, train_hist, train_target = [], [], []
        evals: dict[str, tuple[list[int], list[list[int]], list[int]]] = {"val": ([], [], []), "test": ([], [], [])}
        users = sorted(self._split)
        gen = torch.Generator().manual_seed(self.split_seed)
        keep = int(round(self.train_user_fraction * len(users)))
        trained = {users[i] for i in torch.randperm(len(users), generator=gen)[:keep].tolist()}
        for user, (seq, valid, test) in self._split.items():
            for t in range(1, len(seq) if user in trained else 0):  # every prefix predicts the item after it
                train_users.append(user)
                train_hist.append(seq[max(0, t - self.max_length):t])
                train_target.append(seq[t])
            if valid is not None and seq:
                evals["val"][0].append(user), evals["val"][1].append(seq), evals["val"][2].append(valid)
            full = seq + ([valid] if valid is not None else [])
            if test is not None and full:
                evals["test"][0].append(user), evals["test"][1].append(full), evals["test"][2].append(test)
        if not train_target:
            raise DataValidationError(f"data.dataset={self.dataset!r}: no training sequence has two items")
        self._rows["train"] = _Rows(
            torch.tensor(train_users), pad_sequences(train_hist, self.max_length), torch.tensor(train_target), None
        )
        for split, (users, hist, target) in evals.items():
            if not users:
                raise DataValidationError(f"data.dataset={self.dataset!r}: no user has a {split} item")
            self._rows[split] = _Rows(
                torch.tensor(users), pad_sequences(hist, self.max_length), torch.tensor(target),
                hist if self.exclude_history else None,
            )  # fmt: skip

    def setup(self, stage: str | None = None) -> None:
        self._load()
        if not self._rows:
            self._build_rows()

    def sequences(self) -> dict[int, tuple[list[int], int | None, int | None]]:
        """``{user: (training sequence, validation item or None, test item or None)}`` (0-based ids)."""
        self.setup()
        assert self._split is not None
        return self._split

    # ------------------------------------------------------------------ DataModule protocol
    def load_graph(self) -> InteractionGraph:
        """The split as a graph (for sizes, the record and graph models): training edges are the
        distinct (user, item) pairs of the training sequences; a held-out item the user already had
        is kept only in the sequences (the graph cannot hold a repeat)."""
        if self._graph is None:
            self.setup()
            assert self._raw is not None and self._split is not None
            pairs = {split: [] for split in ("train", "val", "test")}
            for user, (seq, valid, test) in self._split.items():
                seen = set(seq)
                pairs["train"] += [(user, i) for i in dict.fromkeys(seq)]
                if valid is not None and valid not in seen:
                    pairs["val"].append((user, valid))
                if test is not None and test not in seen and test != valid:
                    pairs["test"].append((user, test))

            def edges(p: list[tuple[int, int]]) -> EdgeSet:
                t = torch.tensor(p, dtype=torch.long).reshape(-1, 2)
                return EdgeSet(t[:, 0].contiguous(), t[:, 1].contiguous())

            raw = self._raw
            self._graph = InteractionGraph(
                raw.num_users, raw.num_items, edges(pairs["train"]), edges(pairs["val"]), edges(pairs["test"]),
                name=self.dataset, item_text=raw.item_text, user_tokens=raw.user_tokens, item_tokens=raw.item_tokens,
                meta={"protocol": "sequential leave-one-out", "max_length": self.max_length,
                      "exclude_history": self.exclude_history, "train_samples": len(self._rows["train"]),
                      "sequence_users": len(self._split),
                      **({"domains": self.domain_blocks} if self.domain_blocks else {})},
            )  # fmt: skip
        return self._graph

    @property
    def train_graph(self) -> TrainGraph:
        if self._train_graph is None:
            g = self.load_graph()
            self._train_graph = TrainGraph.from_edges(g.train.users, g.train.items, g.num_users, g.num_items)
        return self._train_graph

    def item_texts(self) -> list[str]:
        """One text per item (``""`` where the release has none), for ``text=frozen``."""
        self.setup()
        assert self._raw is not None
        if self._raw.item_text is None:
            raise DataValidationError(f"data.dataset={self.dataset!r} has no item text")
        return [t or "" for t in self._raw.item_text]

    def skipped_users(self, split: str) -> int:
        """Users of the data without a ``split`` item (short sequences), not evaluated."""
        self.setup()
        assert self._raw is not None
        return self._raw.num_users - len(self._rows[split])

    # ------------------------------------------------------------------ loaders
    def train_dataloader(self) -> DataLoader:
        self.setup()
        rows = self._rows["train"]
        if self.length_batches:
            if self._length_sampler is None:
                self._length_sampler = LengthBatches(rows.history.gt(0).sum(1), self.train_batch_size, self.sampler_seed)
            return DataLoader(rows, batch_sampler=self._length_sampler, collate_fn=rows.collate)
        gen = torch.Generator().manual_seed(self.sampler_seed)
        return DataLoader(rows, batch_size=self.train_batch_size, shuffle=True, generator=gen, collate_fn=rows.collate)

    def _eval_loader(self, split: str) -> DataLoader:
        self.setup()
        rows = self._rows[split]
        return sharded_eval_loader(rows, self.eval_batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")
