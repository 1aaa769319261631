"""Explicit ratings for ``task=rating``: (user, item, rating) triples, RMSE / MAE evaluation.

Splits: ``canonical`` reads MovieLens-100K's ``u{fold}.base`` / ``u{fold}.test`` (the GC-MC paper's
protocol; validation is a seeded ``val_fraction`` of the base file), ``ratio`` splits the ratings
of any source that has them at random by ``ratios``. Models train on the graph of the training
triples only. A source without ratings is refused, naming ``data.dataset``. ``features`` builds
user / item side features (``data.features``, as for the ranking DataModules; ml-100k's ``u.user`` /
``u.item``), fitted on the users and items of the training ratings only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from graphrec_lab.data.datamodule import resolve_data_dir
from graphrec_lab.data.graph import DataValidationError, EdgeSet, InteractionGraph
from graphrec_lab.data.sampling import sharded_eval_loader
from graphrec_lab.data.side_features import feature_tables, side_features
from graphrec_lab.data.sources import resolve_source
from graphrec_lab.data.sources.movielens_ratings import RatingSplit, RatingTriples, read_canonical_split
from graphrec_lab.data.train_graph import TrainGraph

SPLITS = ("canonical", "ratio")


@dataclass
class RatingBatch:
    """``user`` [B], ``item`` [B] (0-based), ``rating`` [B] float."""

    user: Tensor
    item: Tensor
    rating: Tensor

    def to(self, device: torch.device | str) -> RatingBatch:
        return RatingBatch(self.user.to(device), self.item.to(device), self.rating.to(device))

    def __len__(self) -> int:
        return self.user.numel()


class _Triples(Dataset):
    def __init__(self, triples: RatingTriples) -> None:
        self.t = triples

    def __len__(self) -> int:
        return len(self.t)

    def __getitem__(self, i: int) -> int:
        return i

    def collate(self, index: list[int]) -> RatingBatch:
        idx = torch.as_tensor(index, dtype=torch.long)
        return RatingBatch(self.t.user[idx], self.t.item[idx], self.t.rating[idx])


class RatingDataModule(pl.LightningDataModule):
    """Args:
        dataset: ``ml-100k`` (``split=canonical`` or ``ratio``) or any source with ratings (``ratio``).
        data_dir: where raw files live (``$GRAPHREC_DATA_DIR`` when unset).
        split: ``canonical`` (``u{fold}.base/.test``) or ``ratio``.
        fold: 1..5, the canonical file pair.
        val_fraction: canonical split: the share of the base ratings held out for validation.
        ratios: ratio split: train / validation / test shares.
        split_seed: seed of the validation hold-out / the ratio split.
        train_batch_size: triples per training step; None = the whole training set (full batch, GC-MC).
        eval_batch_size: triples per evaluation batch.
        features: user / item side features per column (``data.features``; ml-100k), fitted on the
            users / items of the training ratings.
    """

    feature_report: dict[str, Any] | None = None  # set by side_features(): output columns, unseen categories

    def __init__(
        self,
        dataset: str = "ml-100k",
        data_dir: str | None = None,
        split: str = "canonical",
        fold: int = 1,
        val_fraction: float = 0.05,
        ratios: tuple[float, float, float] | list[float] = (0.8, 0.1, 0.1),
        split_seed: int = 0,
        train_batch_size: int | None = None,
        eval_batch_size: int = 65536,
        download: bool = False,
        features: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if split not in SPLITS:
            raise ValueError(f"data.split={split!r}: expected one of {SPLITS}")
        if split == "canonical" and dataset != "ml-100k":
            raise ValueError(f"data.split='canonical' is MovieLens-100K's u1..u5 files; data.dataset={dataset!r} needs split=ratio")
        self.dataset, self.data_dir, self.split, self.fold = dataset, resolve_data_dir(data_dir), split, fold
        self.val_fraction, self.ratios, self.split_seed, self.download = val_fraction, tuple(ratios), split_seed, download
        self.train_batch_size, self.eval_batch_size = train_batch_size, eval_batch_size
        self.features = dict(features or {})
        self._tokens: dict[str, list[str]] | None = None  # raw ids of the dense ids, for side-feature rows
        self._split: RatingSplit | None = None
        self._graph: InteractionGraph | None = None
        self._train_graph: TrainGraph | None = None

    def _ratio_split(self) -> RatingSplit:
        raw = resolve_source(self.dataset).load(self.data_dir, download=self.download)
        if raw.rating is None:
            raise DataValidationError(f"data.dataset={self.dataset!r}: task=rating needs explicit ratings and {raw.source} has none")
        gen = torch.Generator().manual_seed(self.split_seed)
        perm = torch.randperm(len(raw), generator=gen)
        n_train = int(round(self.ratios[0] * len(raw)))
        n_val = int(round(self.ratios[1] * len(raw)))
        parts = perm[:n_train], perm[n_train:n_train + n_val], perm[n_train + n_val:]
        trip = [RatingTriples(raw.user[p], raw.item[p], raw.rating[p].float()) for p in parts]
        levels = tuple(float(v) for v in torch.unique(raw.rating).tolist())
        if raw.user_tokens is not None and raw.item_tokens is not None:
            self._tokens = {"user": list(raw.user_tokens), "item": list(raw.item_tokens)}
        return RatingSplit(trip[0], trip[1], trip[2], raw.num_users, raw.num_items, levels)

    def setup(self, stage: str | None = None) -> None:
        if self._split is None:
            if self.split == "canonical":
                folder = resolve_source(self.dataset).path(self.data_dir)
                self._split = read_canonical_split(folder, self.fold, self.val_fraction, self.split_seed)
                n_users, n_items = self._split.num_users, self._split.num_items  # the files' 1-based raw ids
                self._tokens = {"user": [str(i + 1) for i in range(n_users)], "item": [str(i + 1) for i in range(n_items)]}
            else:
                self._split = self._ratio_split()

    @property
    def ratings(self) -> RatingSplit:
        self.setup()
        assert self._split is not None
        return self._split

    def load_graph(self) -> InteractionGraph:
        """The split as an interaction graph (sizes, the record's split hash, the training graph)."""
        if self._graph is None:
            s = self.ratings

            def edges(t: RatingTriples) -> EdgeSet:
                return EdgeSet(t.user.clone(), t.item.clone(), ratings=t.rating.clone())

            self._graph = InteractionGraph(s.num_users, s.num_items, edges(s.train), edges(s.val), edges(s.test),
                                           name=self.dataset, meta={"protocol": f"rating {self.split}", "levels": list(s.levels)})  # fmt: skip
        return self._graph

    @property
    def train_graph(self) -> TrainGraph:
        if self._train_graph is None:
            g = self.load_graph()
            self._train_graph = TrainGraph.from_edges(g.train.users, g.train.items, g.num_users, g.num_items)
        return self._train_graph

    def side_features(self) -> dict[str, Tensor]:
        """``{"user": [U, F_u], "item": [I, F_i]}`` for the configured sides (``data.features``),
        fitted on the rows of the users / items with training ratings; ``feature_report`` keeps the
        output columns and the counts of categories unseen in training."""
        if not self.features:
            return {}
        source = resolve_source(self.dataset)
        tables = feature_tables(source, source.path(self.data_dir))  # refuses a dataset without tables first
        train = self.ratings.train
        if self._tokens is None:
            raise ValueError(f"data.features: the {self.dataset} reader gave no raw ids to match the feature tables' rows")
        train_rows = {"user": train.user.numpy(), "item": train.item.numpy()}
        built = side_features(self.features, tables, self._tokens, train_rows)
        self.feature_report = {side: {"columns": f.names, "unseen": f.unseen} for side, f in built.items()}
        return {side: f.values for side, f in built.items()}

    def skipped_users(self, split: str) -> int:
        return 0  # every held-out rating is scored

    def train_dataloader(self) -> DataLoader:
        rows = _Triples(self.ratings.train)
        size = self.train_batch_size or len(rows)
        gen = torch.Generator().manual_seed(self.split_seed)
        return DataLoader(rows, batch_size=size, shuffle=True, generator=gen, collate_fn=rows.collate)

    def _eval_loader(self, triples: RatingTriples) -> DataLoader:
        rows = _Triples(triples)
        return sharded_eval_loader(rows, self.eval_batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.ratings.val)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.ratings.test)
