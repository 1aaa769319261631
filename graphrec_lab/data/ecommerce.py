"""DataModules for interaction data with item text: the text side of every run that fuses a text
encoder into a graph model, and the e-commerce extras (item-item co-purchase edges).

``ItemTextDataModule`` is an ``InteractionDataModule`` whose graph carries one text per item, built
from the reader's named fields as ``data.text`` says (fields or template, see
``graphrec_lab.data.text.ItemTextConfig``), with the missing-text policy applied before the split
(so ``drop_items`` changes the graph, and the cache key covers the text config). ``item_texts()``
is what a text encoder consumes. ``EcommerceDataModule`` adds ``co_purchase_edges()``.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from typing import Any

import torch
from torch import Tensor

from graphrec_lab.data.datamodule import InteractionDataModule
from graphrec_lab.data.graph import InteractionGraph
from graphrec_lab.data.preprocess import build_graph, check_nonempty
from graphrec_lab.data.social.graph import joined_train_graph
from graphrec_lab.data.synthetic import generate_synthetic
from graphrec_lab.data.text import ItemTextConfig, apply_missing_text_policy, item_text_config
from graphrec_lab.data.train_graph import TrainGraph

log = logging.getLogger(__name__)

# Reader keyword arguments fed from data.text (readers that parse named text fields accept them).
_TEXT_READER_ARGS = {
    "fields": "text_fields",
    "template": "text_template",
    "separator": "text_separator",
    "decode_errors": "decode_errors",
}




class ItemTextDataModule(InteractionDataModule):
    """Interaction data plus one text per item.

    Args (besides those of ``InteractionDataModule``):
        text: ``ItemTextConfig`` fields as a mapping (``fields``, ``template``, ``separator``,
            ``missing``, ``placeholder``, ``decode_errors``). ``fields``/``template`` need a reader
            with named fields (``amazon-scientific`` / ``unisrec:<P>``: title, categories, brand,
            text; ``ml-100k``: title, name, year, genres, release_date); other datasets (synthetic,
            RecBole ``.item`` text) keep their reader's text and only the missing-text policy applies.
    """

    def __init__(self, text: dict[str, Any] | ItemTextConfig | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # every argument of InteractionDataModule (config keys: checked through the MRO)
        self.text = item_text_config(text)

    # ------------------------------------------------------------------ building the graph
    def _cache_parts(self) -> dict:
        return super()._cache_parts() | {"text": dataclasses.asdict(self.text)}

    def _reader_kwargs(self, stats: dict) -> dict[str, Any]:
        """The reader's kwargs: ``data.reader`` plus the text options it accepts, and ``stats``."""
        params = inspect.signature(self._source().reader).parameters
        kwargs = dict(self.reader_kwargs)
        for option, arg in _TEXT_READER_ARGS.items():
            value = getattr(self.text, option)
            if arg in params:
                kwargs.setdefault(arg, value)
            elif option in ("fields", "template") and value is not None:
                raise ValueError(
                    f"data.text.{option}={value!r}: the reader of dataset {self.dataset!r} has no named "
                    "item text fields (supported: amazon-scientific, unisrec:<Prefix>, ml-100k); set it to null"
                )
        if "stats" in params:
            kwargs["stats"] = stats
        return kwargs

    def _build(self) -> InteractionGraph:
        stats: dict[str, Any] = {}
        if self.dataset == "synthetic":
            if self.text.fields is not None or self.text.template is not None:
                raise ValueError("data.text.fields/template: the synthetic dataset's item text has no named fields")
            raw = generate_synthetic(**self.synthetic)
        else:
            raw = self._source().load(self.data_dir, download=self.download, **self._reader_kwargs(stats))
        raw, report = apply_missing_text_policy(raw, self.text, name=self.dataset)
        graph = build_graph(raw, self.preprocess, name=self.dataset)
        check_nonempty(graph)
        graph.meta.update({f"reader/{k}": v for k, v in stats.items()})
        graph.meta.update(report)
        return graph

    # ------------------------------------------------------------------ what text models need
    def item_texts(self) -> list[str]:
        """One text per dense item id (``[num_items]``), the missing-text policy applied."""
        graph = self.load_graph()
        if graph.item_text is None:  # only a graph cached by a plain InteractionDataModule
            return [""] * graph.num_items
        return [t if t is not None else "" for t in graph.item_text]


class EcommerceDataModule(ItemTextDataModule):
    """E-commerce interaction data (e.g. ``amazon-scientific``): item text and co-purchase edges.

    Args (besides those of ``ItemTextDataModule``):
        co_purchase_min_count, co_purchase_window: defaults of ``co_purchase_edges``.
        join_co_purchase: ``train_graph`` is the user-item graph joined with the co-purchase
            item-item edges (undirected, one normalisation over both), so every zoo model propagates
            over them, as ``join_social`` does with ties. The degrees then count them too.
    """

    def __init__(
        self,
        dataset: str = "amazon-scientific",
        split: str = "given",
        co_purchase_min_count: int = 1,
        co_purchase_window: int | None = None,
        join_co_purchase: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(dataset=dataset, split=split, **kwargs)
        if join_co_purchase and self.isolated_self_loops:
            raise ValueError("data.join_co_purchase and data.isolated_self_loops: the joined graph has no self-loop option")
        if join_co_purchase and self.edge_weight != "none":
            raise ValueError("data.join_co_purchase and data.edge_weight: the joined graph takes no edge weights")
        self.join_co_purchase = join_co_purchase
        _check_co_purchase_args(co_purchase_min_count, co_purchase_window, "data.co_purchase_")
        self.co_purchase_min_count = co_purchase_min_count
        self.co_purchase_window = co_purchase_window

    def _propagation_graph(self, graph: InteractionGraph) -> TrainGraph:
        if not self.join_co_purchase:
            return super()._propagation_graph(graph)
        users, items = self._fit_edges()
        return joined_train_graph(users, items, self.co_purchase_edges() + graph.num_users, graph.num_users, graph.num_items)

    def co_purchase_edges(
        self, min_count: int | None = None, window: int | None = None, return_counts: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Item-item edges between items bought by the same user, from training interactions only.

        Returns ``edge_index`` [2, E] (both directions, no self-loops, sorted by source then target)
        and, with ``return_counts``, ``counts`` [E]: the number of users who bought both. A pair is an
        edge when at least ``min_count`` users bought both within ``window`` positions of each other
        in their training history (``None``: anywhere in it). Defaults come from the config.
        """
        graph = self.load_graph()
        min_count = self.co_purchase_min_count if min_count is None else min_count
        window = self.co_purchase_window if window is None else window
        edges, counts = co_purchase_edges(graph, min_count=min_count, window=window)
        return (edges, counts) if return_counts else edges


def _check_co_purchase_args(min_count: int, window: int | None, prefix: str = "") -> None:
    if int(min_count) < 1:
        raise ValueError(f"{prefix}min_count={min_count}: expected >= 1")
    if window is not None and int(window) < 1:
        raise ValueError(f"{prefix}window={window}: expected >= 1 or null")


def co_purchase_edges(graph: InteractionGraph, min_count: int = 1, window: int | None = None) -> tuple[Tensor, Tensor]:
    """Co-purchase item-item edges of ``graph.train`` (never validation or test): ([2, E], [E]).

    With ``window``, a user's training items are ordered by timestamp when the graph has them, else
    by their order in the training edge list, which is chronological for readers that write rows in
    time order (UniSRec: purchase order); a pair counts when the two are at most ``window`` apart.
    Without it, every pair of a user's training items counts (``A^T A`` of the binary user-item
    matrix; memory grows with the sum of squared user degrees, fine for Amazon-size data).
    """
    _check_co_purchase_args(min_count, window)
    users, items = graph.train.users, graph.train.items
    num_items = graph.num_items
    if window is None:
        keys = torch.unique(users * num_items + items)  # binary matrix: a repeat counts once
        u, i = keys // num_items, keys % num_items
        adj = torch.sparse_coo_tensor(torch.stack([u, i]), torch.ones(keys.numel()), (graph.num_users, num_items))
        co = torch.sparse.mm(adj.t().coalesce(), adj.coalesce()).coalesce()
        src, dst = co.indices()
        counts = co.values().round().long()
    else:
        order = torch.arange(users.numel())
        if graph.train.timestamps is not None:
            order = torch.argsort(graph.train.timestamps, stable=True)
        order = order[torch.argsort(users[order], stable=True)]
        u, i = users[order], items[order]
        pairs = []
        for d in range(1, int(window) + 1):
            same = u[d:] == u[:-d]
            a, b, who = i[:-d][same], i[d:][same], u[:-d][same]
            pairs += [torch.stack([who, a, b]), torch.stack([who, b, a])]
        if pairs:
            trip = torch.cat(pairs, dim=1)
        else:
            trip = torch.zeros((3, 0), dtype=torch.long)
        # One vote per user and pair, however often they co-occur in the user's history.
        key = torch.unique((trip[0] * num_items + trip[1]) * num_items + trip[2])
        pair_key, counts = torch.unique(key % (num_items * num_items), return_counts=True)
        src, dst = pair_key // num_items, pair_key % num_items
    keep = (src != dst) & (counts >= min_count)
    edge_index = torch.stack([src[keep], dst[keep]])
    counts = counts[keep]
    order = torch.argsort(edge_index[0] * num_items + edge_index[1])
    return edge_index[:, order].contiguous(), counts[order]
