"""The LightningDataModule for generic user-item interaction datasets.

It turns a dataset name (``synthetic``, ``ml-100k``, ``gowalla``, ``recbole:<name>``) and the
preprocessing parameters into a cached, validated ``InteractionGraph``, then serves BPR training
batches and full-ranking evaluation batches. Domain DataModules (e-commerce, social, news) extend it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from graphrec_lab.data.cache import load_or_build, load_or_build_entry
from graphrec_lab.data.graph import DataValidationError, InteractionGraph
from graphrec_lab.data.preprocess import PreprocessConfig, build_graph, check_nonempty, cold_item_mask
from graphrec_lab.data.sampling import CSR, BPRTrainBatches, EvalUsers, sharded_eval_loader
from graphrec_lab.data.side_features import BuiltFeatures, feature_tables, side_features
from graphrec_lab.data.sources import DatasetSource, ensure_files, file_sha256, resolve_source
from graphrec_lab.data.synthetic import generate_synthetic
from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.privacy.edge_dp import parse_privacy, release_bipartite

FEATURES_FORMAT = 1  # bump when side_features changes what a spec builds

log = logging.getLogger(__name__)

EDGE_WEIGHTS = ("none", "rating", "time_decay")


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """``data_dir`` if given, else ``$GRAPHREC_DATA_DIR``, else ``./data``."""
    if data_dir not in (None, ""):
        return Path(data_dir).expanduser()
    return Path(os.environ.get("GRAPHREC_DATA_DIR", "data")).expanduser()


def resolve_cache_dir(cache_dir: str | Path | None) -> Path | None:
    """``cache_dir`` if given ("none" disables), else ``$GRAPHREC_CACHE_DIR``, else ``./.cache/graphrec_lab``.

    Separate from the data dir on purpose: the raw files may sit on a read-only share.
    """
    if isinstance(cache_dir, str) and cache_dir.lower() == "none":
        return None
    if cache_dir not in (None, ""):
        return Path(cache_dir).expanduser()
    return Path(os.environ.get("GRAPHREC_CACHE_DIR", ".cache/graphrec_lab")).expanduser() / "processed"


class InteractionDataModule(pl.LightningDataModule):
    """Interaction data for top-K recommendation.

    Args:
        dataset: ``synthetic``, a registered source (``ml-100k``, ``gowalla``) or ``recbole:<name>``
            for RecBole atomic files in ``<data_dir>/<name>/``.
        data_dir: where raw files live (``$GRAPHREC_DATA_DIR`` when unset).
        cache_dir: where processed graphs are cached (``"none"`` disables the cache).
        download: fetch missing files from the canonical source (fails clearly when offline).
        split, ratios, val_fraction, rating_threshold, user_core, item_core, dedup, split_seed,
        cold_item_fraction, cold_item_seed, cold_holdout, cold_user_fraction: see ``PreprocessConfig``.
        synthetic: keyword arguments of ``generate_synthetic`` for ``dataset=synthetic``.
        reader: keyword arguments for the dataset's reader.
        train_batch_size: BPR batch size. eval_batch_size: users per evaluation batch.
        sampler_seed: seed of the epoch permutations and negatives (the run's seed by default).
        isolated_self_loops: give nodes without training edges (cold items) a self-loop in the
            propagation graph (``TrainGraph``), so layer means keep their input features at full scale.
        privacy: ``{edge_dp: {mechanism, epsilon, ...}}``: the training graph that propagation, BPR
            triples and negatives use is released through an edge-DP mechanism
            (``graphrec_lab.privacy.edge_dp``); evaluation still excludes each user's true training
            items (a measurement of the model, not part of what is released).
        features: user / item side features per column (``data.side_features``; ml-100k), fitted on
            the users and items with training interactions only.
        edge_weight: ``none`` | ``rating`` (the interaction's rating) | ``time_decay``
            (``0.5 ** (age / half-life)``, age from the latest training interaction): weights of the
            propagation graph's ``norm_adj`` (models propagating over it: the LightGCN family, NGCF).
        edge_weight_half_life_days: the half-life of ``time_decay`` (timestamps in seconds).
    """

    feature_report: dict[str, Any] | None = None  # set by side_features(): output columns, unseen categories
    _parts_memo: dict | None = None  # see _parts

    # The data modules whose every use of the training edges goes through ``_fit_edges``.
    _EDGE_DP_READY = ("InteractionDataModule", "ItemTextDataModule")

    def __init__(
        self,
        dataset: str = "synthetic",
        data_dir: str | None = None,
        cache_dir: str | None = None,
        download: bool = True,
        split: str = "ratio",
        ratios: tuple[float, float, float] | list[float] = (0.8, 0.1, 0.1),
        val_fraction: float = 0.1,
        rating_threshold: float | None = None,
        user_core: int = 0,
        item_core: int = 0,
        dedup: bool = True,
        split_seed: int = 2020,
        cold_item_fraction: float = 0.0,
        cold_item_seed: int | None = None,
        cold_holdout: str = "interactions",
        cold_user_fraction: float = 0.0,
        synthetic: dict[str, Any] | None = None,
        reader: dict[str, Any] | None = None,
        train_batch_size: int = 2048,
        eval_batch_size: int = 1024,
        sampler_seed: int = 0,
        num_workers: int = 0,
        isolated_self_loops: bool = False,
        privacy: dict[str, Any] | None = None,
        features: dict[str, Any] | None = None,
        edge_weight: str = "none",
        edge_weight_half_life_days: float = 180.0,
    ) -> None:
        super().__init__()
        if edge_weight not in EDGE_WEIGHTS:
            raise ValueError(f"data.edge_weight={edge_weight!r}: expected one of {EDGE_WEIGHTS}")
        if edge_weight_half_life_days <= 0:
            raise ValueError(f"data.edge_weight_half_life_days={edge_weight_half_life_days}: must be positive")
        self.edge_weight, self.edge_weight_half_life_days = edge_weight, edge_weight_half_life_days
        self.features = dict(features or {})
        self.edge_dp = parse_privacy(privacy, default_seed=sampler_seed)
        if self.edge_dp.enabled and type(self).__name__ not in self._EDGE_DP_READY:
            raise ValueError(
                f"data.privacy.edge_dp: {type(self).__name__} is not supported (it reads the training edges "
                f"outside the released graph); supported: {list(self._EDGE_DP_READY)}"
            )
        self.edge_dp_report: dict[str, Any] | None = None
        self.dataset = dataset
        self.data_dir = resolve_data_dir(data_dir)
        self.cache_dir = resolve_cache_dir(cache_dir)
        self.download = download
        self.preprocess = PreprocessConfig(
            rating_threshold=rating_threshold,
            user_core=user_core,
            item_core=item_core,
            dedup=dedup,
            split=split,
            ratios=tuple(ratios),  # type: ignore[arg-type]
            val_fraction=val_fraction,
            seed=split_seed,
            cold_item_fraction=cold_item_fraction,
            cold_item_seed=cold_item_seed,
            cold_holdout=cold_holdout,
            cold_user_fraction=cold_user_fraction,
        )
        self.synthetic = dict(synthetic or {})
        self.reader_kwargs = dict(reader or {})
        self.train_batch_size = train_batch_size
        self.eval_batch_size = eval_batch_size
        self.sampler_seed = sampler_seed
        self.num_workers = num_workers
        self.isolated_self_loops = isolated_self_loops
        self.graph: InteractionGraph | None = None
        self._train_graph: TrainGraph | None = None

    # ------------------------------------------------------------------ building the graph
    def _cache_parts(self) -> dict:
        parts: dict[str, Any] = {"dataset": self.dataset, "preprocess": asdict(self.preprocess)}
        if self.dataset == "synthetic":
            parts["synthetic"] = self.synthetic
        else:
            source = self._source()
            source_dir = source.path(self.data_dir)
            ensure_files(source, self.data_dir, download=self.download)
            parts["files"] = source.fingerprint(self.data_dir) if source.files else _folder_fingerprint(source_dir)
            parts["reader"] = self.reader_kwargs
        return parts

    def _source(self) -> DatasetSource:
        return resolve_source(self.dataset)  # registered, recbole:<name> or unisrec:<Prefix>

    def _build(self) -> InteractionGraph:
        if self.dataset == "synthetic":
            raw = generate_synthetic(**self.synthetic)
        else:
            raw = self._source().load(self.data_dir, download=self.download, **self.reader_kwargs)
        graph = build_graph(raw, self.preprocess, name=self.dataset)
        check_nonempty(graph)
        return graph

    def prepare_data(self) -> None:
        self.load_graph()

    def _parts(self) -> dict:
        """``_cache_parts()``, computed once (it checks and fingerprints the source files)."""
        if self._parts_memo is None:
            self._parts_memo = self._cache_parts()
        return self._parts_memo

    def load_graph(self) -> InteractionGraph:
        if self.graph is None:
            name = self.dataset.replace(":", "-").replace("/", "-")
            self.graph = load_or_build(self.cache_dir, name, self._parts(), self._build)
        return self.graph

    def setup(self, stage: str | None = None) -> None:
        graph = self.load_graph()
        if self._train_graph is None:
            self._train_graph = self._propagation_graph(graph)
            self._train_csr = CSR(graph.train.users, graph.train.items, graph.num_users)
            self._val_csr = CSR(graph.val.users, graph.val.items, graph.num_users)
            self._test_csr = CSR(graph.test.users, graph.test.items, graph.num_users)

    def _propagation_graph(self, graph: InteractionGraph) -> TrainGraph:
        """The graph models propagate over: the training edges a model may see (``_fit_edges``),
        weighted by ``data.edge_weight``. Subclasses join further edges here."""
        fit_users, fit_items = self._fit_edges()
        return TrainGraph.from_edges(
            fit_users, fit_items, graph.num_users, graph.num_items, self.isolated_self_loops, self._edge_weights(graph)
        )

    def _edge_weights(self, graph: InteractionGraph) -> torch.Tensor | None:
        """[E] weights of the training edges for ``data.edge_weight``, or None."""
        if self.edge_weight == "none":
            return None
        if self.edge_dp.enabled:
            raise ValueError("data.edge_weight with data.privacy.edge_dp: the released graph has no ratings or times")
        column = graph.train.ratings if self.edge_weight == "rating" else graph.train.timestamps
        if column is None:
            what = "ratings" if self.edge_weight == "rating" else "timestamps"
            raise ValueError(f"data.edge_weight={self.edge_weight!r}: dataset {self.dataset!r} has no {what}")
        if self.edge_weight == "rating":
            if bool((column <= 0).any()):
                raise ValueError(f"data.edge_weight='rating': ratings must be positive, {self.dataset!r} has {float(column.min())}")
            return column.float()
        age_days = (column.max() - column).double() / 86400.0
        return (0.5 ** (age_days / self.edge_weight_half_life_days)).float()

    def _fit_edges(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The training edges a model may see, users/items [E']: the true ones, or their edge-DP release."""
        graph = self.load_graph()
        if not hasattr(self, "_released"):
            self._released = release_bipartite(graph.train.users, graph.train.items, graph.num_users, graph.num_items, self.edge_dp)
            self.edge_dp_report = self._released.report
            if self.edge_dp.enabled:
                log.info("data.privacy.edge_dp: released training graph %s", self.edge_dp_report)
        return self._released.users, self._released.items

    # ------------------------------------------------------------------ what the task needs
    @property
    def num_users(self) -> int:
        return self.load_graph().num_users

    @property
    def num_items(self) -> int:
        return self.load_graph().num_items

    @property
    def train_graph(self) -> TrainGraph:
        self.setup()
        assert self._train_graph is not None
        return self._train_graph

    def eval_users(self, split: str) -> EvalUsers:
        """Users with held-out items in ``split`` ("val" or "test") and what to exclude for them.

        Validation ranks exclude training items; test ranks exclude training and validation items.
        """
        self.setup()
        if split == "val":
            users = EvalUsers(target=self._val_csr, exclude=self._train_csr)
        elif split == "test":
            users = EvalUsers(target=self._test_csr, exclude=CSR.merge(self._train_csr, self._val_csr))
        else:
            raise ValueError(f"unknown evaluation split {split!r}")
        if len(users) == 0:
            raise DataValidationError(
                f"{self.dataset}: no user has {split} interactions after preprocessing "
                f"(data.split={self.preprocess.split!r}, ratios={list(self.preprocess.ratios)}, "
                f"val_fraction={self.preprocess.val_fraction}); nothing can be evaluated"
            )
        return users

    def item_groups(self) -> dict[str, torch.Tensor]:
        """Item groups for ``FullRankingEvaluator(item_groups=...)``: ``{"cold": [I] bool, "warm": [I]
        bool}`` under the cold-start protocol (``cold_item_fraction > 0``), else ``{}``."""
        graph = self.load_graph()
        if not graph.meta.get("cold_items"):
            return {}
        cold = cold_item_mask(graph)
        return {"cold": cold, "warm": ~cold}

    def side_features(self) -> dict[str, torch.Tensor]:
        """``{"user": [U, F_u], "item": [I, F_i]}`` for the configured sides (``data.features``); the
        output column names and the per-column counts of categories unseen in training are kept in
        ``feature_report``."""
        if not self.features:
            return {}
        graph = self.load_graph()

        def build() -> BuiltFeatures:
            tables = feature_tables(self._source(), self._source().path(self.data_dir))
            tokens = {"user": list(graph.user_tokens or []), "item": list(graph.item_tokens or [])}
            train_rows = {"user": graph.train.users.numpy(), "item": graph.train.items.numpy()}
            return BuiltFeatures(side_features(self.features, tables, tokens, train_rows))

        # Cached beside the processed graph, keyed by it (source files, preprocessing, split) and the spec.
        parts = {**self._parts(), "split_hash": graph.content_hash(), "features": self.features, "format": FEATURES_FORMAT}
        name = "features-" + self.dataset.replace(":", "-").replace("/", "-")
        built = load_or_build_entry(self.cache_dir, name, parts, build, filename="features.pt", load=BuiltFeatures.load,
                                    meta=lambda b: {side: f.names for side, f in b.items()})  # fmt: skip
        self.feature_report = {side: {"columns": f.names, "unseen": f.unseen} for side, f in built.items()}
        return {side: f.values for side, f in built.items()}

    def user_groups(self) -> dict[str, torch.Tensor]:
        """``{"cold_users": [U] bool, "warm_users": [U] bool}`` under the user cold-start protocol
        (``cold_user_fraction > 0``), else ``{}``: metrics per group (``test/cold_users/recall@20``)."""
        graph = self.load_graph()
        if not graph.meta.get("cold_users"):
            return {}
        cold = torch.zeros(graph.num_users, dtype=torch.bool)
        cold[torch.as_tensor(graph.meta["cold_users"], dtype=torch.long)] = True
        return {"cold_users": cold, "warm_users": ~cold}

    def skipped_users(self, split: str) -> int:
        """Users with training history but no held-out items in ``split`` (not evaluated)."""
        self.setup()
        target = self._val_csr if split == "val" else self._test_csr
        return int(((self._train_csr.degree > 0) & (target.degree == 0)).sum())

    # ------------------------------------------------------------------ loaders
    def train_dataloader(self) -> DataLoader:
        graph = self.load_graph()
        self.setup()
        if not hasattr(self, "_train_batches"):
            fit_users, fit_items = self._fit_edges()
            self._train_batches = BPRTrainBatches(
                fit_users, fit_items, graph.num_users, graph.num_items, self.train_batch_size, self.sampler_seed
            )
        return DataLoader(self._train_batches, batch_size=None, num_workers=0)

    def _eval_loader(self, split: str) -> DataLoader:
        users = self.eval_users(split)
        return sharded_eval_loader(users, self.eval_batch_size, self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")


def _folder_fingerprint(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        return {}
    return {p.name: file_sha256(p) for p in sorted(folder.iterdir()) if p.is_file()}
