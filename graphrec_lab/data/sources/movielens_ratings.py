"""Explicit ratings of MovieLens-100K on the canonical GroupLens split (``u1.base`` / ``u1.test`` ...
``u5``), for rating prediction. The ranking pipeline turns ``u.data`` into implicit feedback; this
reader keeps the 1..5 ratings. Validation is carved out of the ``.base`` file only (seeded), so the
``.test`` file is never seen during model selection.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from graphrec_lab.data.sources.movielens import _read_ratings

RATING_LEVELS = (1.0, 2.0, 3.0, 4.0, 5.0)


@dataclass(frozen=True)
class RatingTriples:
    """Zero-based ``user`` [N] long, ``item`` [N] long and ``rating`` [N] float32."""

    user: torch.Tensor
    item: torch.Tensor
    rating: torch.Tensor

    def __len__(self) -> int:
        return int(self.user.numel())


@dataclass(frozen=True)
class RatingSplit:
    """Train / validation / test rating triples over ``num_users`` x ``num_items`` ids."""

    train: RatingTriples
    val: RatingTriples
    test: RatingTriples
    num_users: int
    num_items: int
    levels: tuple[float, ...] = RATING_LEVELS


def _triples(user: np.ndarray, item: np.ndarray, rating: np.ndarray) -> RatingTriples:
    return RatingTriples(torch.from_numpy(user - 1).long(), torch.from_numpy(item - 1).long(), torch.from_numpy(rating).float())


def read_canonical_split(root: str | Path, fold: int = 1, val_fraction: float = 0.05, seed: int = 0) -> RatingSplit:
    """Read ``u{fold}.base`` / ``u{fold}.test`` under ``root``; ``val_fraction`` of the base ratings
    (a seeded permutation) become validation. Ids span every user and item of both files."""
    root = Path(root)
    if fold not in range(1, 6):
        raise ValueError(f"data.fold must be 1..5 (the u1..u5 files), got {fold}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
    base_path, test_path = root / f"u{fold}.base", root / f"u{fold}.test"
    for path in (base_path, test_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: the canonical MovieLens-100K split needs u{fold}.base and u{fold}.test")
    bu, bi, br, _ = _read_ratings(base_path)
    tu, ti, tr, _ = _read_ratings(test_path)
    perm = np.random.default_rng(seed).permutation(bu.size)
    n_val = max(1, int(round(val_fraction * bu.size)))
    val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    return RatingSplit(
        train=_triples(bu[train_idx], bi[train_idx], br[train_idx]),
        val=_triples(bu[val_idx], bi[val_idx], br[val_idx]),
        test=_triples(tu, ti, tr),
        num_users=int(max(bu.max(), tu.max())),
        num_items=int(max(bi.max(), ti.max())),
    )
