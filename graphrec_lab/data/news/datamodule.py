"""``NewsDataModule``: the LightningDataModule of news recommendation (sources, cache, graphs per
protocol, loaders)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from graphrec_lab.data.cache import load_or_build_entry
from graphrec_lab.data.datamodule import resolve_cache_dir, resolve_data_dir
from graphrec_lab.data.graph import InteractionGraph
from graphrec_lab.data.news.batching import ImpressionEvalSet, ImpressionTrainBatches
from graphrec_lab.data.news.build import SplitConfig, build_news_data
from graphrec_lab.data.news.types import DEFAULT_TEXT_FIELDS, GRAPH_PROTOCOLS, NEWS_CACHE_FORMAT, NewsData
from graphrec_lab.data.sampling import sharded_eval_loader
from graphrec_lab.data.sources import SOURCES, DatasetSource, ensure_files
from graphrec_lab.data.sources.mind import mind_source, read_behaviors, read_news
from graphrec_lab.data.synthetic_news import GENERATOR_VERSION, generate_synthetic_news
from graphrec_lab.data.text import item_text_config
from graphrec_lab.data.train_graph import TrainGraph

log = logging.getLogger(__name__)


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
        split, val_days, test_days: the split protocol (``SplitConfig``; package docstring).
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
        return sharded_eval_loader(ds, self.eval_batch_size, self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")
