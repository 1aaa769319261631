"""From raw interactions to a split ``InteractionGraph``: filtering, id compaction and splitting.

Every random choice takes an explicit ``torch.Generator`` seeded from the run's split seed, so the
same parameters always give the same split (and the cache key in ``cache.py`` covers them all).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from torch import Tensor

from graphrec_lab.data.graph import (
    SPLIT_TEST,
    SPLIT_TRAIN,
    SPLIT_VAL,
    DataValidationError,
    EdgeSet,
    InteractionGraph,
    RawInteractions,
)

log = logging.getLogger(__name__)

SPLIT_STRATEGIES = ("given", "ratio", "loo", "temporal")
COLD_HOLDOUTS = ("interactions", "items")


@dataclass
class PreprocessConfig:
    """Every parameter that changes the processed graph (all of them go into the cache key).

    Attributes:
        rating_threshold: keep interactions with ``rating >= threshold`` (implicit feedback); None keeps all.
        user_core / item_core: iterative k-core: drop users (items) with fewer interactions, repeat.
        dedup: keep one row per (user, item) pair (the latest by timestamp when there is one).
        split: "given" (the files' own split), "ratio" (per-user random, RecBole's 8:1:1),
            "loo" (per-user leave-one-out by time), "temporal" (global time cut-offs).
        ratios: train/val/test fractions for "ratio" and "temporal".
        val_fraction: for "given" splits without validation rows: the share of each user's training
            interactions moved to validation (at least one training interaction is kept per user).
        seed: seed of every random choice in the split.
        cold_item_fraction: the item cold-start protocol (``hold_out_cold_items``): this share of the
            items with at least one interaction is removed from training entirely; 0 disables it.
        cold_item_seed: seed of the choice of cold items (None: derived from ``seed``).
        cold_holdout: where cold items' interactions go. "interactions": each user's cold training
            interactions are divided between validation and test in the ratio ``ratios[1]:ratios[2]``
            (held-out ones keep their split), so a cold item can be in both. "items": the cold items
            themselves are divided in that ratio, and all interactions of a validation-cold item go
            to validation, of a test-cold item to test (test cold items are unseen until test time).
    """

    rating_threshold: float | None = None
    user_core: int = 0
    item_core: int = 0
    dedup: bool = True
    split: str = "ratio"
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    val_fraction: float = 0.1
    seed: int = 2020
    cold_item_fraction: float = 0.0
    cold_item_seed: int | None = None
    cold_holdout: str = "interactions"
    cold_user_fraction: float = 0.0
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.split not in SPLIT_STRATEGIES:
            raise ValueError(f"data.split={self.split!r}: expected one of {SPLIT_STRATEGIES}")
        self.ratios = tuple(float(r) for r in self.ratios)  # type: ignore[assignment]
        if len(self.ratios) != 3 or any(r < 0 for r in self.ratios) or sum(self.ratios) <= 0:
            raise ValueError(f"data.ratios={list(self.ratios)}: expected three non-negative fractions")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"data.val_fraction={self.val_fraction}: expected a value in [0, 1)")
        if not 0.0 <= self.cold_user_fraction < 1.0:
            raise ValueError(f"data.cold_user_fraction={self.cold_user_fraction}: expected a value in [0, 1)")
        if self.cold_user_fraction > 0 and self.ratios[1] + self.ratios[2] <= 0:
            raise ValueError(f"data.cold_user_fraction={self.cold_user_fraction} needs validation or test shares in data.ratios")
        if not 0.0 <= self.cold_item_fraction < 1.0:
            raise ValueError(f"data.cold_item_fraction={self.cold_item_fraction}: expected a value in [0, 1)")
        if self.cold_holdout not in COLD_HOLDOUTS:
            raise ValueError(f"data.cold_holdout={self.cold_holdout!r}: expected one of {COLD_HOLDOUTS}")
        if self.cold_item_fraction > 0 and self.ratios[1] + self.ratios[2] <= 0:
            raise ValueError(
                f"data.cold_item_fraction={self.cold_item_fraction} needs somewhere to put cold items' "
                f"interactions, but data.ratios={list(self.ratios)} gives validation and test no share"
            )


def build_graph(raw: RawInteractions, cfg: PreprocessConfig, name: str) -> InteractionGraph:
    """Filter, compact ids and split ``raw`` as ``cfg`` says; returns a validated graph."""
    n_raw = len(raw)
    if cfg.dedup:  # first, so that a pair's latest rating decides whether it passes the threshold
        raw = deduplicate(raw)
    if cfg.rating_threshold is not None:
        if raw.rating is None:
            raise ValueError(f"{name}: data.rating_threshold is set but {raw.source} has no ratings")
        raw = raw.select(raw.rating >= cfg.rating_threshold)
    if cfg.user_core > 1 or cfg.item_core > 1:
        raw = k_core(raw, cfg.user_core, cfg.item_core)
    raw = compact_ids(raw)
    gen = torch.Generator().manual_seed(cfg.seed)
    split = assign_split(raw, cfg, gen)
    meta = {"source": raw.source, "raw_interactions": n_raw, "kept_interactions": len(raw)}
    if cfg.cold_item_fraction > 0:
        split, cold_meta = hold_out_cold_items(raw, split, cfg)
        meta.update(cold_meta)
    if cfg.cold_user_fraction > 0:
        split, cold_meta = hold_out_cold_users(raw, split, cfg)
        meta.update(cold_meta)
    graph = InteractionGraph(
        num_users=raw.num_users,
        num_items=raw.num_items,
        train=_edges(raw, split == SPLIT_TRAIN),
        val=_edges(raw, split == SPLIT_VAL),
        test=_edges(raw, split == SPLIT_TEST),
        name=name,
        item_text=raw.item_text,
        user_text=raw.user_text,
        item_features=raw.item_features,
        user_features=raw.user_features,
        social_edges=raw.social_edges,
        user_tokens=raw.user_tokens,
        item_tokens=raw.item_tokens,
        meta=meta,
    )
    log.info("%s: %s (split %s, hash %s)", name, graph.stats(), cfg.split, graph.content_hash())
    return graph


def deduplicate(raw: RawInteractions) -> RawInteractions:
    """One row per (user, item): the last one in time order (file order breaks ties)."""
    order = _stable_order(raw)
    keys = (raw.user * raw.num_items + raw.item)[order]
    # Keep the last occurrence of each key in time order.
    rev_keys = keys.flip(0)
    _, first_in_rev = _first_occurrence(rev_keys)
    keep_sorted = torch.zeros(len(raw), dtype=torch.bool)
    keep_sorted[len(raw) - 1 - first_in_rev] = True
    mask = torch.zeros(len(raw), dtype=torch.bool)
    mask[order[keep_sorted]] = True
    return raw.select(mask)


def k_core(raw: RawInteractions, user_core: int, item_core: int) -> RawInteractions:
    """Iteratively drop users with < user_core and items with < item_core interactions."""
    mask = torch.ones(len(raw), dtype=torch.bool)
    while True:
        u_deg = torch.bincount(raw.user[mask], minlength=raw.num_users)
        i_deg = torch.bincount(raw.item[mask], minlength=raw.num_items)
        bad = (u_deg[raw.user] < user_core) | (i_deg[raw.item] < item_core)
        new_mask = mask & ~bad
        if bool((new_mask == mask).all()):
            return raw.select(mask)
        mask = new_mask


def compact_ids(raw: RawInteractions) -> RawInteractions:
    """Renumber users and items that still occur to 0..n-1 (keeps all ids when none was dropped).

    Ids declared by the reader but never interacted with are kept when nothing was filtered, so a
    paper split like Gowalla's keeps its published item count.
    """
    used_u = torch.zeros(raw.num_users, dtype=torch.bool)
    used_u[raw.user] = True
    used_i = torch.zeros(raw.num_items, dtype=torch.bool)
    used_i[raw.item] = True
    if bool(used_u.all()) and bool(used_i.all()):
        return raw
    u_map = torch.cumsum(used_u.long(), 0) - 1
    i_map = torch.cumsum(used_i.long(), 0) - 1
    keep_u = used_u.nonzero().flatten().tolist()
    keep_i = used_i.nonzero().flatten().tolist()

    def pick(values, keep):
        return None if values is None else [values[k] for k in keep]

    social = raw.social_edges
    if social is not None:
        ok = used_u[social[0]] & used_u[social[1]]
        social = u_map[social[:, ok]]
    return RawInteractions(
        user=u_map[raw.user],
        item=i_map[raw.item],
        num_users=len(keep_u),
        num_items=len(keep_i),
        rating=raw.rating,
        timestamp=raw.timestamp,
        split=raw.split,
        user_tokens=pick(raw.user_tokens, keep_u),
        item_tokens=pick(raw.item_tokens, keep_i),
        item_text=pick(raw.item_text, keep_i),
        user_text=pick(raw.user_text, keep_u),
        item_features=None if raw.item_features is None else raw.item_features[used_i],
        user_features=None if raw.user_features is None else raw.user_features[used_u],
        social_edges=social,
        source=raw.source,
    )


def assign_split(raw: RawInteractions, cfg: PreprocessConfig, gen: torch.Generator) -> Tensor:
    """A split label (SPLIT_TRAIN/VAL/TEST) per interaction: [N] int8."""
    if cfg.split == "given":
        if raw.split is None:
            raise ValueError(f"data.split='given' but {raw.source} carries no split of its own")
        split = raw.split.clone().to(torch.int8)
        if not bool((split == SPLIT_VAL).any()) and cfg.val_fraction > 0:
            split = _carve_validation(raw.user, split, cfg.val_fraction, gen)
        return split
    if cfg.split == "ratio":
        return per_user_ratio_split(raw.user, cfg.ratios, gen)
    if cfg.split == "loo":
        return leave_one_out_split(raw, gen)
    if cfg.split == "temporal":
        return temporal_split(raw, cfg.ratios)
    raise AssertionError(cfg.split)


def _draw_cold(ids: Tensor, size: int, fraction: float, gen: torch.Generator, source: str, what: str) -> tuple[Tensor, Tensor, int]:
    """``round(fraction * n)`` of the ``n`` ids occurring in ``ids`` [N] (at least one, never all):
    (sorted cold ids, a [size] bool mask of them, n)."""
    candidates = (torch.bincount(ids, minlength=size) > 0).nonzero().flatten()
    n = candidates.numel()
    if n < 2:
        raise DataValidationError(f"{source}: data.cold_{what}_fraction needs at least 2 {what}s with interactions, got {n}")
    n_cold = min(n - 1, max(1, round(fraction * n)))
    cold = candidates[torch.randperm(n, generator=gen)[:n_cold]].sort().values
    mask = torch.zeros(size, dtype=torch.bool)
    mask[cold] = True
    return cold, mask, n


def _divide_per_user(raw: RawInteractions, idx: Tensor, p_val: float, gen: torch.Generator, labels: Tensor) -> None:
    """Relabel rows ``idx`` in place: per user, a random floor(c * p_val + U) of its c rows go to
    validation, the rest to test (unbiased for every c: rounding would send a user's single row
    always the same way)."""
    idx = idx[torch.randperm(idx.numel(), generator=gen)]
    idx = idx[torch.argsort(raw.user[idx], stable=True)]
    u = raw.user[idx]
    per_user = torch.bincount(u, minlength=raw.num_users)
    rank = torch.arange(u.numel()) - (torch.cumsum(per_user, 0) - per_user)[u]
    n_val = torch.floor(per_user.double() * p_val + torch.rand(raw.num_users, generator=gen, dtype=torch.float64)).long()
    to_val = rank < n_val[u]
    labels[idx[to_val]] = SPLIT_VAL
    labels[idx[~to_val]] = SPLIT_TEST


def hold_out_cold_items(raw: RawInteractions, split: Tensor, cfg: PreprocessConfig) -> tuple[Tensor, dict]:
    """The item cold-start protocol on top of any split: returns the new labels [N] int8 and a report.

    ``round(cfg.cold_item_fraction * n)`` of the ``n`` items with at least one interaction (at least
    one, and never all) are drawn with a generator of their own (seeded by ``cfg.cold_item_seed``, or
    derived from ``cfg.seed``), so the split of every warm interaction is exactly the split without
    the protocol. No interaction of a cold item stays in training; where the others go is
    ``cfg.cold_holdout`` (see ``PreprocessConfig``). On a file's own split (``split="given"``, e.g.
    UniSRec's leave-one-out) warm users keep their next-item targets and additionally get their
    cold purchases as held-out items, so overall metrics mix the two; evaluate with item groups
    (``FullRankingEvaluator(item_groups=...)``) to read cold and warm items apart.

    The report, stored in ``graph.meta``: ``cold_items`` (sorted dense ids), ``num_cold_items``,
    ``cold_holdout``, ``cold_interactions``, ``cold_moved_from_train``, ``cold_val_interactions``,
    ``cold_test_interactions``, ``users_without_train`` (users left with held-out items only) and,
    for "items", ``cold_val_items``/``cold_test_items``.
    """
    seed = cfg.cold_item_seed if cfg.cold_item_seed is not None else (cfg.seed * 1_000_003 + 0xC01D) % (1 << 62)
    gen = torch.Generator().manual_seed(seed)
    cold, is_cold, n = _draw_cold(raw.item, raw.num_items, cfg.cold_item_fraction, gen, raw.source, "item")
    n_cold = cold.numel()
    row_cold = is_cold[raw.item]
    p_val = cfg.ratios[1] / (cfg.ratios[1] + cfg.ratios[2])
    new = split.clone()
    meta: dict = {}
    if cfg.cold_holdout == "items":
        perm = torch.randperm(n_cold, generator=gen)
        n_val_items = round(p_val * n_cold)
        label = torch.full((raw.num_items,), SPLIT_TEST, dtype=torch.int8)
        label[cold[perm[:n_val_items]]] = SPLIT_VAL
        new[row_cold] = label[raw.item[row_cold]]
        meta["cold_val_items"] = cold[perm[:n_val_items]].sort().values.tolist()
        meta["cold_test_items"] = cold[perm[n_val_items:]].sort().values.tolist()
    else:
        _divide_per_user(raw, (row_cold & (split == SPLIT_TRAIN)).nonzero().flatten(), p_val, gen, new)
    has_any = torch.bincount(raw.user, minlength=raw.num_users) > 0
    has_train = torch.bincount(raw.user[new == SPLIT_TRAIN], minlength=raw.num_users) > 0
    meta.update(
        cold_items=cold.tolist(),
        num_cold_items=n_cold,
        cold_holdout=cfg.cold_holdout,
        cold_interactions=int(row_cold.sum()),
        cold_moved_from_train=int((row_cold & (split == SPLIT_TRAIN)).sum()),
        cold_val_interactions=int((row_cold & (new == SPLIT_VAL)).sum()),
        cold_test_interactions=int((row_cold & (new == SPLIT_TEST)).sum()),
        users_without_train=int((has_any & ~has_train).sum()),
    )
    log.info(
        "%s: %d cold items (%.1f%% of %d), %d interactions held out (%d val, %d test); %d users left without training items",
        raw.source, n_cold, 100.0 * n_cold / n, n, meta["cold_interactions"], meta["cold_val_interactions"],
        meta["cold_test_interactions"], meta["users_without_train"],
    )
    return new, meta


def hold_out_cold_users(raw: RawInteractions, split: Tensor, cfg: PreprocessConfig) -> tuple[Tensor, dict]:
    """The user cold-start protocol: ``round(cfg.cold_user_fraction * n)`` of the ``n`` users with
    interactions (at least one, never all; a generator of their own, seeded from ``cfg.seed``) keep
    no training interaction: each of their training rows goes to validation with probability
    val / (val + test) of ``cfg.ratios`` (per user, floor(c * p + U) of c rows), else to test. Models
    see them only through their features. Report in ``graph.meta``: ``cold_users``,
    ``num_cold_users``, ``cold_user_interactions_moved``."""
    gen = torch.Generator().manual_seed((cfg.seed * 1_000_003 + 0xC01D5E) % (1 << 62))
    cold, is_cold, n = _draw_cold(raw.user, raw.num_users, cfg.cold_user_fraction, gen, raw.source, "user")
    n_cold = cold.numel()
    p_val = cfg.ratios[1] / (cfg.ratios[1] + cfg.ratios[2])
    idx = (is_cold[raw.user] & (split == SPLIT_TRAIN)).nonzero().flatten()
    new = split.clone()
    _divide_per_user(raw, idx, p_val, gen, new)
    log.info("%s: %d cold users (%.1f%% of %d), %d training interactions held out", raw.source, n_cold, 100.0 * n_cold / n, n, idx.numel())
    return new, {"cold_users": cold.tolist(), "num_cold_users": n_cold, "cold_user_interactions_moved": int(idx.numel())}


def cold_item_mask(graph: InteractionGraph) -> Tensor:
    """[num_items] bool: the graph's cold-start items (all False without the protocol)."""
    mask = torch.zeros(graph.num_items, dtype=torch.bool)
    mask[torch.as_tensor(graph.meta.get("cold_items", []), dtype=torch.long)] = True
    return mask


def recbole_split_counts(total: int, ratios: tuple[float, ...]) -> list[int]:
    """Per-group part sizes exactly as RecBole's ``Dataset._calcu_split_ids`` computes them.

    Parts after the first are rounded down, the first takes the rest, and a part whose share is
    between 0 and 1 interaction takes one from the first part while that keeps more than one.
    """
    s = sum(ratios)
    ratios = tuple(r / s for r in ratios)
    cnt = [int(r * total) for r in ratios]
    cnt[0] = total - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * total < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


def per_user_ratio_split(user: Tensor, ratios: tuple[float, ...], gen: torch.Generator) -> Tensor:
    """RecBole's default: shuffle each user's interactions, cut them by ``ratios`` (RS, group_by user)."""
    n = user.numel()
    perm = torch.randperm(n, generator=gen)
    order = perm[torch.argsort(user[perm], stable=True)]  # grouped by user, random within a user
    counts = torch.bincount(user, minlength=int(user.max()) + 1 if n else 0)
    split_sorted = torch.empty(n, dtype=torch.int8)
    start = 0
    # A Python loop over users with a memoised count table: users share few distinct sizes.
    table: dict[int, Tensor] = {}
    for c in counts.tolist():
        if c == 0:
            continue
        labels = table.get(c)
        if labels is None:
            parts = recbole_split_counts(c, ratios)
            labels = torch.repeat_interleave(torch.arange(3, dtype=torch.int8), torch.tensor(parts))
            table[c] = labels
        split_sorted[start : start + c] = labels
        start += c
    split = torch.empty(n, dtype=torch.int8)
    split[order] = split_sorted
    return split


def leave_one_out_split(raw: RawInteractions, gen: torch.Generator) -> Tensor:
    """Per user, the latest interaction is test and the one before is validation.

    Users with one interaction keep it in training; with two, the latest is test. Without timestamps,
    file order stands for time.
    """
    order = _stable_order(raw)
    user_sorted = raw.user[order]
    order = order[torch.argsort(user_sorted, stable=True)]
    user_sorted = raw.user[order]
    counts = torch.bincount(user_sorted, minlength=raw.num_users)
    ends = torch.cumsum(counts, 0)
    split_sorted = torch.full((len(raw),), SPLIT_TRAIN, dtype=torch.int8)
    has2 = counts >= 2
    split_sorted[ends[has2] - 1] = SPLIT_TEST
    has3 = counts >= 3
    split_sorted[ends[has3] - 2] = SPLIT_VAL
    split = torch.empty_like(split_sorted)
    split[order] = split_sorted
    return split


def temporal_split(raw: RawInteractions, ratios: tuple[float, ...]) -> Tensor:
    """Global time split: the earliest ``ratios[0]`` of all interactions train, then val, then test.

    Held-out interactions of (user, item) pairs are kept even for users unseen in training; the
    evaluator skips users without training history only if the model cannot score them.
    """
    if raw.timestamp is None:
        raise ValueError(f"data.split='temporal' needs timestamps; {raw.source} has none")
    order = _stable_order(raw)
    n = len(raw)
    n_train, n_val, _ = recbole_split_counts(n, ratios)  # a zero ratio gets zero rows
    split_sorted = torch.full((n,), SPLIT_TEST, dtype=torch.int8)
    split_sorted[:n_train] = SPLIT_TRAIN
    split_sorted[n_train : n_train + n_val] = SPLIT_VAL
    split = torch.empty_like(split_sorted)
    split[order] = split_sorted
    return split


def _carve_validation(user: Tensor, split: Tensor, fraction: float, gen: torch.Generator) -> Tensor:
    """Move ``fraction`` of each user's training rows (rounded down, >= 1 row kept) to validation."""
    train_idx = (split == SPLIT_TRAIN).nonzero().flatten()
    tu = user[train_idx]
    perm = torch.randperm(train_idx.numel(), generator=gen)
    order = perm[torch.argsort(tu[perm], stable=True)]
    tu_sorted = tu[order]
    counts = torch.bincount(tu_sorted, minlength=int(user.max()) + 1 if user.numel() else 0)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(tu_sorted.numel()) - starts[tu_sorted]
    n_val = torch.clamp((counts.double() * fraction).floor().long(), max=torch.clamp(counts - 1, min=0))
    to_val = rank < n_val[tu_sorted]
    split = split.clone()
    split[train_idx[order[to_val]]] = SPLIT_VAL
    return split


def _stable_order(raw: RawInteractions) -> Tensor:
    """Row order by time (file order breaks ties; file order alone without timestamps)."""
    if raw.timestamp is None:
        return torch.arange(len(raw))
    return torch.argsort(raw.timestamp, stable=True)


def _first_occurrence(keys: Tensor) -> tuple[Tensor, Tensor]:
    """Unique keys and the index of each key's first occurrence in ``keys``."""
    uniq, inverse = torch.unique(keys, return_inverse=True)
    first = torch.full((uniq.numel(),), keys.numel(), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(keys.numel()), reduce="amin")
    return uniq, first


def _edges(raw: RawInteractions, mask: Tensor) -> EdgeSet:
    return EdgeSet(
        users=raw.user[mask].clone(),
        items=raw.item[mask].clone(),
        timestamps=None if raw.timestamp is None else raw.timestamp[mask].clone(),
        ratings=None if raw.rating is None else raw.rating[mask].clone(),
    )


def check_nonempty(graph: InteractionGraph) -> None:
    if len(graph.train) == 0:
        raise DataValidationError(f"{graph.name}: the training split is empty")
