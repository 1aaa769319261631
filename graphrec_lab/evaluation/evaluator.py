"""Full-ranking evaluation over all items with exclusion masks.

Each user's items are scored, the user's known items (training, plus validation at test time) are
masked out, the top ``max(K)`` are taken with a fixed tie rule, and PyG's link-prediction metrics
(torchmetrics ``Metric``s, so they sum correctly across DDP ranks) accumulate per-user values.
Users are independent, so results do not depend on the evaluation batch size.

Definitions (per user with ``n`` held-out items, ``rel_j`` = 1 if the j-th ranked item is held out):
    recall@K = hits/n, precision@K = hits/K, hit@K = [hits > 0], mrr@K = 1/rank of first hit,
    ndcg@K = sum_j rel_j / log2(j+1) / IDCG(min(n, K)),
    map@K = sum_j precision@j * rel_j / min(n, K)  (RecBole's definition),
    itemcoverage@K = share of all items that appear in some user's top K.

Item groups (``item_groups={"cold": mask, ...}``) add ``<group>/<metric>@K`` for every per-user
metric: the ranking is the same (over all items, same exclusions), but a user's held-out items are
restricted to the group's items, and users without a held-out item in the group are skipped for
that group. So ``cold/recall@20`` is the recall of cold items among each user's top 20 of all items.
Item coverage is not computed per group.

User groups (``user_groups={"active_lt5": mask, ...}``, masks over user ids) work the same way for
users: the group's metrics average over the group's users only, each with all of their held-out
items (``evaluation.groups`` builds popularity item groups and activity user groups).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch_geometric.metrics import (
    LinkPredCoverage,
    LinkPredHitRatio,
    LinkPredMAP,
    LinkPredMetricCollection,
    LinkPredMRR,
    LinkPredNDCG,
    LinkPredPrecision,
    LinkPredRecall,
)

from graphrec_lab.data.sampling import EvalBatch
from graphrec_lab.evaluation.groups import GroupSpec, build_groups
from graphrec_lab.evaluation.ranking import mask_scores, topk_stable

_PER_USER = {
    "recall": LinkPredRecall,
    "ndcg": LinkPredNDCG,
    "precision": LinkPredPrecision,
    "hit": LinkPredHitRatio,
    "mrr": LinkPredMRR,
    "map": LinkPredMAP,
}
METRICS = (*_PER_USER, "itemcoverage")
_GROUP_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")


@contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """PyG's metrics compute per-user values, batch sums and states in the default dtype. In float32
    the batch sums round differently for different batch sizes (~1e-9); in float64 the result does
    not depend on batching or on the DDP split (to ~1e-15)."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(default)


class FullRankingEvaluator(nn.Module):
    """Accumulates top-K metrics over batches of users.

    Args:
        num_items: size of the ranked catalogue.
        ks: cut-offs, e.g. (10, 20).
        metrics: names from ``METRICS``.
        item_groups: optional ``{name: items}``, each a ``[num_items]`` bool mask or a 1-D tensor of
            item ids; adds ``<name>/<metric>@<k>`` for every per-user metric (module docstring).
            Names: letters, digits, ``_`` and ``-``.
        user_groups: optional ``{name: [num_users] bool mask}``; adds ``<name>/<metric>@<k>`` over the
            group's users only. Names must differ from the item groups'.
    """

    def __init__(
        self,
        num_items: int,
        ks: Sequence[int] = (10, 20),
        metrics: Sequence[str] = METRICS,
        item_groups: Mapping[str, Tensor] | None = None,
        user_groups: Mapping[str, Tensor] | None = None,
    ) -> None:
        super().__init__()
        unknown = sorted(set(metrics) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; known: {list(METRICS)}")
        if not ks or min(ks) <= 0:
            raise ValueError(f"ks={list(ks)}: need positive cut-offs")
        self.num_items = num_items
        self.ks = tuple(sorted(set(int(k) for k in ks)))
        self.max_k = max(self.ks)
        self.metrics = self._collection(metrics, with_coverage=True)
        self._group_metric_names = [m for m in metrics if m in _PER_USER]
        self.group_names: tuple[str, ...] = ()
        self._group_kind: dict[str, str] = {}
        self.group_metrics = nn.ModuleDict()
        self.num_users = 0
        self.group_num_users: dict[str, int] = {}
        self._graph_groups: GroupSpec | None = None
        self.add_groups(item_groups=item_groups, user_groups=user_groups)

    def add_groups(self, item_groups: Mapping[str, Tensor] | None = None, user_groups: Mapping[str, Tensor] | None = None) -> None:
        """Register more groups (e.g. once the training graph that defines them is known)."""
        for kind, groups in (("item", item_groups), ("user", user_groups)):
            for name, members in (groups or {}).items():
                if not _GROUP_NAME.match(name):
                    raise ValueError(f"{kind} group name {name!r}: use letters, digits, '_' and '-' only")
                if name in self._group_kind:
                    raise ValueError(f"{kind} group {name!r}: a group of that name is already registered")
                if not self._group_metric_names:
                    raise ValueError(f"{kind} group {name!r}: no per-user metric to compute per group")
                mask = _as_mask(members, self.num_items, name) if kind == "item" else _as_user_mask(members, name)
                # Not persistent: groups are data (like the exclusion masks), not part of a checkpoint.
                self.register_buffer(f"_group_{name}", mask, persistent=False)
                self.group_metrics[name] = self._collection(self._group_metric_names, with_coverage=False)
                self.group_names += (name,)
                self._group_kind[name] = kind
                self.group_num_users[name] = 0

    def add_graph_groups(self, spec: GroupSpec, item_degree: Tensor, user_degree: Tensor) -> None:
        """Add the generalisation groups of ``spec`` from training degrees ``item_degree`` [I] and
        ``user_degree`` [U] (``evaluation.groups``); a second call with the same spec does nothing."""
        if self._graph_groups is not None:
            if self._graph_groups != spec:
                raise ValueError(f"generalisation groups already added with {self._graph_groups}, not {spec}")
            return
        items, users = build_groups(spec, item_degree, user_degree)
        self.add_groups(item_groups=items, user_groups=users)
        self._graph_groups = spec

    def _collection(self, metrics: Sequence[str], with_coverage: bool) -> LinkPredMetricCollection:
        collection: dict[str, nn.Module] = {}
        with _default_dtype(torch.float64):  # states and NDCG's discount table in float64
            for name in metrics:
                if name == "itemcoverage" and not with_coverage:
                    continue
                for k in self.ks:
                    metric = LinkPredCoverage(k, self.num_items) if name == "itemcoverage" else _PER_USER[name](k)
                    collection[f"{name}@{k}"] = metric
        return LinkPredMetricCollection(collection)

    @property
    def metric_names(self) -> list[str]:
        """Every key ``compute`` returns: ``<metric>@<k>`` and ``<group>/<metric>@<k>``."""
        names = list(self.metrics.keys())
        for group in self.group_names:
            names += [f"{group}/{key}" for key in self.group_metrics[group].keys()]
        return names

    def group_mask(self, name: str) -> Tensor:
        """The bool mask of group ``name``: ``[num_items]`` for an item group, ``[num_users]`` for a user group."""
        return getattr(self, f"_group_{name}")

    @torch.no_grad()
    def update(self, scores: Tensor, batch: EvalBatch) -> Tensor:
        """Rank one batch. ``scores``: [B, I] (modified in place by the mask). Returns top-k [B, maxK]."""
        mask_scores(scores, batch.exclude)
        top = topk_stable(scores, self.max_k)
        with _default_dtype(torch.float64):
            self.metrics.update(top, batch.target)
            for name in self.group_names:
                # The same ranking; only held-out items of the group count, and only users with one.
                # Updated even when empty (zero rows), so every rank calls the same updates.
                mask = self.group_mask(name).to(batch.target.device)  # no-op unless added after a device move
                if self._group_kind[name] == "item":
                    keep = mask[batch.target[1]]
                else:  # rows of the batch's users in the group; ids past the mask are in no group
                    users = batch.users
                    in_group = torch.zeros_like(users, dtype=torch.bool)
                    known = users < mask.numel()
                    in_group[known] = mask[users[known]]
                    keep = in_group[batch.target[0]]
                target = batch.target[:, keep]
                rows, row_of_target = torch.unique(target[0], return_inverse=True)
                self.group_metrics[name].update(top[rows], torch.stack([row_of_target, target[1]]))
                self.group_num_users[name] += rows.numel()
        self.num_users += batch.users.numel()
        return top

    def compute(self) -> dict[str, float]:
        """Means over all users seen since the last reset (synchronised across DDP ranks)."""
        with _default_dtype(torch.float64):
            out = {name: float(value) for name, value in self.metrics.compute().items()}
            for group in self.group_names:
                values = self.group_metrics[group].compute()
                out.update({f"{group}/{name}": float(value) for name, value in values.items()})
        return out

    def reset(self) -> None:
        self.metrics.reset()
        for group in self.group_names:
            self.group_metrics[group].reset()
            self.group_num_users[group] = 0
        self.num_users = 0


def _as_user_mask(users: Tensor, name: str) -> Tensor:
    """A 1-D bool mask over user ids (its length is the number of users the group was built for)."""
    users = torch.as_tensor(users)
    if users.dtype != torch.bool or users.dim() != 1:
        raise ValueError(f"user group {name!r}: expected a 1-D bool mask over user ids, got {users.dtype} {list(users.shape)}")
    return users.clone()


def _as_mask(items: Tensor, num_items: int, name: str) -> Tensor:
    """A ``[num_items]`` bool mask from a mask or an id tensor."""
    items = torch.as_tensor(items)
    if items.dtype == torch.bool:
        if items.shape != (num_items,):
            raise ValueError(f"item group {name!r}: a mask must have shape [{num_items}], got {list(items.shape)}")
        return items.clone()
    if items.dim() != 1 or items.is_floating_point():
        raise ValueError(f"item group {name!r}: expected a [num_items] bool mask or a 1-D tensor of item ids")
    if items.numel() and (int(items.min()) < 0 or int(items.max()) >= num_items):
        raise ValueError(f"item group {name!r}: item ids must be in [0, {num_items})")
    mask = torch.zeros(num_items, dtype=torch.bool)
    mask[items.long()] = True
    return mask
