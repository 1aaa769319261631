"""Generalisation groups: items by popularity (head / mid / tail) and users by activity.

Both are read off the training graph only, so they never see a held-out interaction.

Popularity (``popularity``): items are sorted by training degree, most popular first (ties: lower
item id first), and cut where the running share of training interactions reaches ``cuts``. With the
default ``cuts=(0.2, 0.8)`` the ``head`` is the short head of popular items that together hold the
first 20% of training interactions, the ``tail`` the long tail that holds the last 20% (plus every
item without a training interaction) and ``mid`` the items in between. Cutting by interaction mass
rather than by item count keeps the groups comparable across catalogues of very different skew
(Abdollahpouri et al.'s short-head / long-tail split); an item belongs to the group in which its own
interactions start.

Activity (``activity``): users are binned by training-interaction count at the edges ``bins``
(absolute counts, ascending): ``bins=(5, 20)`` gives ``active_lt5`` (fewer than 5), ``active_5to19``
and ``active_ge20``. Absolute counts, not quantiles, so a bin means the same on every dataset.

``task.group_metrics`` selects them: a list of names (defaults), or a mapping
``{popularity: {cuts: [0.2, 0.8]}, activity: {bins: [5, 20]}}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from graphrec_lab.config import ConfigError

GROUP_KINDS = ("popularity", "activity")
POPULARITY_GROUPS = ("head", "mid", "tail")
DEFAULT_CUTS = (0.2, 0.8)
DEFAULT_BINS = (5, 20)


@dataclass(frozen=True)
class GroupSpec:
    """Which generalisation groups to report. ``cuts``/``bins``: None when the kind is off."""

    cuts: tuple[float, float] | None = None
    bins: tuple[int, ...] | None = None

    @classmethod
    def parse(cls, value: Sequence[str] | Mapping[str, Any] | None, key: str = "task.group_metrics") -> GroupSpec:
        """From the config value: None / [] (off), a list of kinds, or ``{kind: {options}}``."""
        if value is None:
            return cls()
        if isinstance(value, str):
            value = [value]
        options: Mapping[str, Any]
        if isinstance(value, Mapping):
            options = value
        elif isinstance(value, Sequence):
            options = {str(name): {} for name in value}
        else:
            raise ConfigError(f"{key}={value!r}: expected a list of {list(GROUP_KINDS)} or a mapping kind -> options")
        unknown = sorted(set(options) - set(GROUP_KINDS))
        if unknown:
            raise ConfigError(f"{key}: unknown group kinds {unknown}; known: {list(GROUP_KINDS)}")
        cuts = bins = None
        if "popularity" in options:
            opts = dict(options["popularity"] or {})
            _no_extra(opts, {"cuts"}, f"{key}.popularity")
            cuts = tuple(float(c) for c in opts.get("cuts", DEFAULT_CUTS))
            if len(cuts) != 2 or not 0.0 < cuts[0] < cuts[1] < 1.0:
                raise ConfigError(f"{key}.popularity.cuts={list(cuts)}: expected two shares 0 < head < mid < 1")
        if "activity" in options:
            opts = dict(options["activity"] or {})
            _no_extra(opts, {"bins"}, f"{key}.activity")
            bins = tuple(int(b) for b in opts.get("bins", DEFAULT_BINS))
            if not bins or bins[0] < 1 or any(a >= b for a, b in zip(bins, bins[1:])):
                raise ConfigError(f"{key}.activity.bins={list(bins)}: expected ascending interaction counts >= 1")
        return cls(cuts=cuts, bins=bins)  # type: ignore[arg-type]

    @property
    def enabled(self) -> bool:
        return self.cuts is not None or self.bins is not None


def _no_extra(opts: Mapping[str, Any], allowed: set[str], key: str) -> None:
    extra = sorted(set(opts) - allowed)
    if extra:
        raise ConfigError(f"{key}: unknown options {extra}; accepted: {sorted(allowed)}")


def popularity_groups(item_degree: Tensor, cuts: Sequence[float] = DEFAULT_CUTS) -> dict[str, Tensor]:
    """``{"head", "mid", "tail"}`` -> [I] bool masks from training degrees ``item_degree`` [I].

    An item goes to the first group whose cumulative interaction share exceeds the share of the
    interactions ranked before it (module docstring); the masks partition all items.
    """
    degree = item_degree.detach().double().cpu()
    num_items = degree.numel()
    # Stable sort of -degree: most popular first, equal degrees by ascending item id.
    order = torch.sort(-degree, stable=True).indices
    total = float(degree.sum())
    before = torch.cumsum(degree[order], 0) - degree[order]  # interactions ranked before each item
    share = before / total if total > 0 else torch.ones(num_items, dtype=torch.float64)
    group_sorted = torch.full((num_items,), 2, dtype=torch.long)
    group_sorted[share < cuts[1]] = 1
    group_sorted[share < cuts[0]] = 0
    group_sorted[degree[order] == 0] = 2  # never seen in training: always the tail
    group = torch.empty_like(group_sorted)
    group[order] = group_sorted
    return {name: group == g for g, name in enumerate(POPULARITY_GROUPS)}


def activity_group_names(bins: Sequence[int]) -> list[str]:
    """``bins=(5, 20)`` -> ``["active_lt5", "active_5to19", "active_ge20"]``."""
    names = [f"active_lt{bins[0]}"]
    names += [f"active_{lo}to{hi - 1}" for lo, hi in zip(bins, bins[1:])]
    return names + [f"active_ge{bins[-1]}"]


def activity_groups(user_degree: Tensor, bins: Sequence[int] = DEFAULT_BINS) -> dict[str, Tensor]:
    """``activity_group_names(bins)`` -> [U] bool masks from training degrees ``user_degree`` [U]."""
    degree = user_degree.detach().round().long().cpu()
    index = torch.bucketize(degree, torch.tensor(list(bins), dtype=torch.long), right=True)  # [U] in 0..len(bins)
    return {name: index == b for b, name in enumerate(activity_group_names(bins))}


def build_groups(spec: GroupSpec, item_degree: Tensor, user_degree: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """``(item_groups, user_groups)`` for ``FullRankingEvaluator`` from the training degrees."""
    items = popularity_groups(item_degree, spec.cuts) if spec.cuts is not None else {}
    users = activity_groups(user_degree, spec.bins) if spec.bins is not None else {}
    return items, users
