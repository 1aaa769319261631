"""``SocialDataModule``: interactions plus user-user ties, for item or friend recommendation (the
package docstring describes both targets)."""

from __future__ import annotations

import dataclasses
import inspect
import logging
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from graphrec_lab.data.cache import load_or_build
from graphrec_lab.data.datamodule import InteractionDataModule
from graphrec_lab.data.graph import SPLIT_TEST, SPLIT_TRAIN, SPLIT_VAL, EdgeSet, InteractionGraph
from graphrec_lab.data.preprocess import check_nonempty
from graphrec_lab.data.sampling import CSR, BPRTrainBatches, EvalUsers, NegativeSampler
from graphrec_lab.data.sources import DatasetSource, resolve_social_source

from graphrec_lab.data.social.graph import (
    SocialConfig,
    SocialTrainGraph,
    TARGETS,
    build_social_graph,
    is_symmetric,
    social_train_graph,
    split_ties,
)
from graphrec_lab.privacy.edge_dp import release_ties

log = logging.getLogger(__name__)


class SocialDataModule(InteractionDataModule):
    """Interactions plus user-user ties, for item recommendation or friend recommendation.

    With ``privacy.edge_dp`` (``target=items`` only) both relations are released before any model
    sees them: the interactions as in ``InteractionDataModule``, the ties by ``release_ties``.

    Args (besides those of ``InteractionDataModule``; see the module docstring for the semantics):
        symmetrize_social: add the reverse of every tie.
        social_only_users: ``keep`` | ``drop`` users with ties but no interactions.
        social_core: k-core on ties (joint with ``user_core``/``item_core``); 0 disables.
        target: ``items`` | ``friends``.
        join_social: (``items``) ``train_graph`` is the joined user-item + user-user graph.
        join_interactions: (``friends``) interactions as side edges, items as extra user-side nodes.
    """

    _EDGE_DP_READY = (*InteractionDataModule._EDGE_DP_READY, "SocialDataModule")

    def __init__(
        self,
        dataset: str = "lastfm",
        split: str = "ratio",
        symmetrize_social: bool = True,
        social_only_users: str = "drop",
        social_core: int = 0,
        target: str = "items",
        join_social: bool = False,
        join_interactions: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(dataset=dataset, split=split, **kwargs)  # the rest: InteractionDataModule's arguments
        if dataset == "synthetic":
            raise ValueError("data.dataset='synthetic' has no user-user ties; use a social dataset (lastfm, hetrec2011-lastfm-2k, yelp-social)")
        if target not in TARGETS:
            raise ValueError(f"data.target={target!r}: expected one of {TARGETS}")
        if join_social and target != "items":
            raise ValueError("data.join_social applies to data.target=items; for friends use data.join_interactions")
        if join_interactions and target != "friends":
            raise ValueError("data.join_interactions applies to data.target=friends; for items use data.join_social")
        if self.edge_dp.enabled and target != "items":
            raise ValueError("data.privacy.edge_dp applies to data.target=items (the ties are the labels of data.target=friends)")
        if target == "friends" and split != "ratio":
            raise ValueError(f"data.target=friends splits the ties per user (data.split=ratio); got data.split={split!r}")
        self.social = SocialConfig(symmetrize_social, social_only_users, social_core)
        self.target = target
        self.join_social = join_social
        self.join_interactions = join_interactions
        self.social_graph: InteractionGraph | None = None  # the item graph with ties (cached)
        self._friend_batches: BPRTrainBatches | None = None

    # ------------------------------------------------------------------ building the graphs
    def _source(self) -> DatasetSource:
        return resolve_social_source(self.dataset)

    def _cache_parts(self) -> dict:
        # The item graph with ties: the target and the join flags do not change it (shared cache entry).
        return super()._cache_parts() | {"social": dataclasses.asdict(self.social), "module": "social-v1"}

    def _build(self) -> InteractionGraph:
        stats: dict[str, Any] = {}
        kwargs = dict(self.reader_kwargs)
        if "stats" in inspect.signature(self._source().reader).parameters:
            kwargs["stats"] = stats
        raw = self._source().load(self.data_dir, download=self.download, **kwargs)
        graph = build_social_graph(raw, self.preprocess, self.social, name=self.dataset)
        graph.meta.update({f"reader/{k}": v for k, v in stats.items()})
        return graph

    def load_social_graph(self) -> InteractionGraph:
        """The item-recommendation graph with its ties (cached on disk)."""
        if self.social_graph is None:
            name = self.dataset.replace(":", "-").replace("/", "-")
            self.social_graph = load_or_build(self.cache_dir, name, self._cache_parts(), self._build)
        return self.social_graph

    def load_graph(self) -> InteractionGraph:
        """The task's interaction graph: the item graph, or for ``target=friends`` the tie graph."""
        if self.graph is None:
            base = self.load_social_graph()
            self.graph = base if self.target == "items" else self._friend_graph(base)
        return self.graph

    @property
    def num_people(self) -> int:
        """Users that are people (``num_users`` less the item nodes of ``join_interactions``)."""
        return self.load_social_graph().num_users

    def _friend_graph(self, base: InteractionGraph) -> InteractionGraph:
        ties = base.social_edges
        assert ties is not None
        people = base.num_users
        labels = split_ties(ties, people, self.preprocess.ratios, self.preprocess.seed)
        extra = base.num_items if self.join_interactions else 0
        tokens = base.user_tokens or [str(u) for u in range(people)]
        item_tokens = base.item_tokens or [str(i) for i in range(base.num_items)]

        def edges(split: int) -> EdgeSet:
            sel = labels == split
            return EdgeSet(users=ties[0, sel].clone(), items=ties[1, sel].clone())

        graph = InteractionGraph(
            num_users=people + extra,
            num_items=people,
            train=edges(SPLIT_TRAIN),
            val=edges(SPLIT_VAL),
            test=edges(SPLIT_TEST),
            name=f"{base.name}-friends" + ("-joined" if extra else ""),
            user_text=None,
            user_tokens=tokens + [f"item:{t}" for t in item_tokens] if extra else tokens,
            item_tokens=tokens,
            meta={
                "base": base.name, "base_split_hash": base.content_hash(), "people": people,
                "item_nodes": extra, "social": base.meta.get("social"),
                "tie_split": {name: int((labels == s).sum()) for name, s in (("train", SPLIT_TRAIN), ("val", SPLIT_VAL), ("test", SPLIT_TEST))},
            },
        )  # fmt: skip
        check_nonempty(graph)
        log.info("%s: friend recommendation graph %s (hash %s)", graph.name, graph.stats(), graph.content_hash())
        return graph

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        if not isinstance(self._train_graph, SocialTrainGraph):
            self._train_graph = self._make_train_graph()

    def _make_train_graph(self) -> SocialTrainGraph:
        graph = self.load_graph()
        if self.target == "items":
            users, items = self._fit_edges()  # the edge-DP release of the interactions, when configured
            return social_train_graph(graph.num_users, graph.num_items, users, items, self._released_ties(graph), join=self.join_social)
        train_ties = torch.stack([graph.train.users, graph.train.items])
        side = None
        users, items = graph.train.users, graph.train.items
        if self.join_interactions:
            base = self.load_social_graph()
            people = base.num_users
            iu = torch.cat([base.train.users, base.val.users, base.test.users])
            ii = torch.cat([base.train.items, base.val.items, base.test.items]) + people
            # item node -> candidate node (bipartite) and person - item node (user side)
            users, items = torch.cat([users, ii]), torch.cat([items, iu])
            side = torch.stack([iu, ii])
        return social_train_graph(graph.num_users, graph.num_items, users, items, train_ties, join=False, side_edges=side)

    def _released_ties(self, graph: InteractionGraph) -> Tensor:
        """The ties models may see, [2, S]: ``graph.social_edges``, or their edge-DP release (same
        mechanism and epsilon as the interactions, an independent noise stream)."""
        ties = graph.social_edges
        assert ties is not None
        if not self.edge_dp.enabled:
            return ties
        released, report = release_ties(ties, graph.num_users, self.edge_dp, symmetric=is_symmetric(ties, graph.num_users))
        self.edge_dp_report = {**(self.edge_dp_report or {}), "ties": report}
        log.info("data.privacy.edge_dp: released ties %s", report)
        return released

    # ------------------------------------------------------------------ friend-specific evaluation
    def _self_csr(self) -> CSR:
        people = torch.arange(self.num_people)
        return CSR(people, people, self.load_graph().num_users)

    def eval_users(self, split: str) -> EvalUsers:
        """As ``InteractionDataModule.eval_users``; for ``target=friends`` the user herself is excluded too."""
        users = super().eval_users(split)
        if self.target == "friends":
            users = EvalUsers(target=users.target, exclude=CSR.merge(users.exclude, self._self_csr()))
        return users

    def train_dataloader(self) -> DataLoader:
        if self.target != "friends":
            return super().train_dataloader()
        graph = self.load_graph()
        self.setup()
        if self._friend_batches is None:
            batches = BPRTrainBatches(
                graph.train.users, graph.train.items, graph.num_users, graph.num_items, self.train_batch_size, self.sampler_seed
            )
            # A person is never her own negative (nor her own positive: she is excluded at evaluation).
            people = torch.arange(self.num_people)
            batches.sampler = NegativeSampler(
                torch.cat([graph.train.users, people]), torch.cat([graph.train.items, people]), graph.num_users, graph.num_items
            )
            self._friend_batches = batches
        return DataLoader(self._friend_batches, batch_size=None, num_workers=0)

    # ------------------------------------------------------------------ what models and encoders need
    def social_edges(self) -> Tensor:
        """The ties the models may see, [2, S]: all ties (``items``) or the training ties (``friends``)."""
        return self.train_graph.social_edge_index  # type: ignore[attr-defined,return-value]

    def item_texts(self) -> list[str]:
        """One text per item (HetRec LastFM: the artist name; "" where absent), for text encoders."""
        if self.target != "items":
            raise ValueError("data.target=friends ranks people, who have no text; item text needs data.target=items")
        graph = self.load_graph()
        if graph.item_text is None:
            raise ValueError(f"{self.dataset}: this dataset has no item text (hetrec2011-lastfm-2k has artist names)")
        return [t if t is not None else "" for t in graph.item_text]
