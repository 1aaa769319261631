"""Edge-level differential privacy of the bipartite interaction graph.

The training adjacency ``A`` [U, I] (one bit per user-item pair) is released through a randomised
mechanism before any model sees it. Two graphs are neighbours when they differ in one bit; a
mechanism is epsilon-edge-DP when, for every pair of neighbours and every output, the output's
probability changes by at most a factor ``e^epsilon``. Everything a run derives from the released
graph (propagation, BPR triples, negatives) is post-processing, so the trained model and every
score it produces inherit the guarantee.

Mechanisms (``mechanism`` key):

``rr``
    Warner's randomised response on every cell of ``A``: a bit is kept with probability
    ``e^eps / (1 + e^eps)`` and flipped otherwise. This is the EdgeRand mechanism of LinkTeller
    (F. Wu, Y. Long, C. Zhang, B. Li, "LinkTeller: Recovering Private Edges from Graph Neural
    Networks via Influence Analysis", IEEE S&P 2022) as its public implementation runs it: each
    cell is resampled with probability ``s = 2 / (e^eps + 1)`` from Bernoulli(1/2), i.e. flipped with
    probability ``s / 2 = 1 / (1 + e^eps)``. On a sparse graph almost every released edge is noise
    (``U * I / (1 + e^eps)`` false edges).
``edgerand``
    The same resampling with a density-matched Bernoulli: a cell is resampled with probability
    ``s`` from Bernoulli(``p``), where ``p`` is the graph's density estimated from a Laplace-noised
    edge count (budget ``count_fraction * eps``) and ``s = 1 / (1 + p (e^eps2 - 1))`` is the smallest
    resampling rate whose likelihood ratio is ``e^eps2`` (``eps2 = eps - eps1``; valid for
    ``p <= 1/2``). The expected number of released edges equals the (noisy) true count, so the
    released graph keeps the sparsity and, on average, the degrees scaled by one common factor.
``lapgraph``
    LapGraph of LinkTeller: the edge count is released with Laplace noise of scale ``1 / eps1``
    (``eps1 = count_fraction * eps``, 0.01 in the paper), every cell gets Laplace noise of scale
    ``1 / eps2`` and the ``T~`` largest noisy cells become the released edges (Laplace mechanism on
    the adjacency plus post-processing).

All three run in O(E + released edges) time and memory: the dense [U, I] matrix is never built.
The flipped-on non-edges are counted by one binomial draw and placed uniformly without
replacement; for LapGraph, the largest noisy values among the ``U * I - E`` non-edges are drawn as
the top order statistics of that many Laplace variables (exponential spacings of uniform order
statistics), and the cells that hold them are again a uniform subset of the non-edges.

Only numpy is used, so the data layer can call this module without importing anything above it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

MECHANISMS = ("none", "rr", "edgerand", "lapgraph")
CONFIG_KEY = "data.privacy.edge_dp"
_KNOWN_KEYS = ("mechanism", "epsilon", "seed", "count_fraction", "max_edges")


class EdgeDPError(ValueError):
    """A bad ``data.privacy.edge_dp`` setting (the message names the key)."""


@dataclass(frozen=True)
class EdgeDPConfig:
    """Settings of the released training graph.

    Args:
        mechanism: ``rr``, ``edgerand``, ``lapgraph`` or ``none`` (release the graph unchanged).
        epsilon: the total edge-DP budget; ``inf`` releases the graph unchanged.
        seed: seed of the mechanism's randomness (the run's seed by default).
        count_fraction: share of ``epsilon`` spent on the edge count (``edgerand``, ``lapgraph``).
        max_edges: refuse a release whose expected size exceeds this (``rr`` with a small epsilon
            on a large graph would add ``U * I / (1 + e^eps)`` edges).
    """

    mechanism: str = "none"
    epsilon: float = math.inf
    seed: int = 0
    count_fraction: float = 0.01
    max_edges: int = 50_000_000

    def __post_init__(self) -> None:
        if self.mechanism not in MECHANISMS:
            raise EdgeDPError(f"{CONFIG_KEY}.mechanism={self.mechanism!r}: expected one of {list(MECHANISMS)}")
        if not isinstance(self.epsilon, (int, float)) or isinstance(self.epsilon, bool) or math.isnan(self.epsilon):
            raise EdgeDPError(f"{CONFIG_KEY}.epsilon={self.epsilon!r}: expected a positive number or .inf")
        if self.epsilon <= 0:
            raise EdgeDPError(f"{CONFIG_KEY}.epsilon={self.epsilon}: must be > 0 (use .inf to disable)")
        if not 0.0 < self.count_fraction < 1.0:
            raise EdgeDPError(f"{CONFIG_KEY}.count_fraction={self.count_fraction}: expected a share in (0, 1)")
        if self.max_edges <= 0:
            raise EdgeDPError(f"{CONFIG_KEY}.max_edges={self.max_edges}: expected > 0")

    @property
    def enabled(self) -> bool:
        """False when the released graph is the true graph (``none`` or ``epsilon = inf``)."""
        return self.mechanism != "none" and math.isfinite(self.epsilon)

    @classmethod
    def from_mapping(cls, value: Mapping[str, Any] | EdgeDPConfig | None, default_seed: int = 0) -> EdgeDPConfig:
        """Parse ``data.privacy.edge_dp`` (None: disabled), rejecting unknown keys by name."""
        if value is None:
            return cls(seed=default_seed)
        if isinstance(value, EdgeDPConfig):
            return value
        if not isinstance(value, Mapping):
            raise EdgeDPError(f"{CONFIG_KEY}={value!r}: expected a mapping {{mechanism: ..., epsilon: ...}}")
        unknown = sorted(set(value) - set(_KNOWN_KEYS))
        if unknown:
            raise EdgeDPError(f"{CONFIG_KEY}.{unknown[0]}: unknown key (known: {list(_KNOWN_KEYS)})")
        kwargs = dict(value)
        if kwargs.get("seed") is None:
            kwargs["seed"] = default_seed
        eps = kwargs.get("epsilon", math.inf)
        if isinstance(eps, str):
            try:  # YAML's ".inf" arrives as a string when passed programmatically
                eps = float(eps[1:] if eps.lower() in (".inf", "+.inf") else eps)
            except ValueError:
                raise EdgeDPError(f"{CONFIG_KEY}.epsilon={eps!r}: expected a positive number or .inf") from None
        if eps is None:
            eps = math.inf
        kwargs["epsilon"] = eps
        return cls(**kwargs)


@dataclass
class ReleasedEdges:
    """The released training edges: ``users``/``items`` [E'] int64, and what the release did."""

    users: Tensor
    items: Tensor
    report: dict[str, Any] = field(default_factory=dict)


def parse_privacy(privacy: Mapping[str, Any] | None, default_seed: int = 0) -> EdgeDPConfig:
    """The ``EdgeDPConfig`` of a ``data.privacy`` mapping (``{edge_dp: {...}}``; None: disabled)."""
    if privacy is None:
        return EdgeDPConfig(seed=default_seed)
    if not isinstance(privacy, Mapping):
        raise EdgeDPError(f"data.privacy={privacy!r}: expected a mapping with key edge_dp")
    unknown = sorted(set(privacy) - {"edge_dp"})
    if unknown:
        raise EdgeDPError(f"data.privacy.{unknown[0]}: unknown key (known: ['edge_dp'])")
    return EdgeDPConfig.from_mapping(privacy.get("edge_dp"), default_seed)


# ---------------------------------------------------------------------------------------- probabilities
def rr_probabilities(epsilon: float) -> tuple[float, float]:
    """``(keep, add)``: P(released edge | edge) and P(released edge | non-edge) of randomised response."""
    if math.isinf(epsilon):
        return 1.0, 0.0
    add = 1.0 / (1.0 + math.exp(epsilon))
    return 1.0 - add, add


def edgerand_probabilities(epsilon: float, density: float) -> tuple[float, float]:
    """``(keep, add)`` of density-matched resampling: resample with probability ``s`` from Bernoulli(p).

    ``s = 1 / (1 + p (e^eps - 1))`` makes ``keep / add = e^eps`` exactly, and for ``p <= 1/2`` the
    other ratio ``(1 - add) / (1 - keep)`` is no larger, so each cell is epsilon-DP. Then
    ``E * keep + (N - E) * add = E + s (N p - E)``: with ``p = E / N`` the expected count is ``E``.
    """
    if not 0.0 < density <= 0.5:
        raise EdgeDPError(f"edgerand: density {density} outside (0, 1/2]")
    if math.isinf(epsilon):
        return 1.0, 0.0
    s = 1.0 / (1.0 + density * math.expm1(epsilon))
    return 1.0 - s + s * density, s * density


# ---------------------------------------------------------------------------------------- sampling
def _unique_keys(users: Tensor, items: Tensor, num_items: int) -> np.ndarray:
    keys = users.to(torch.int64).cpu().numpy() * np.int64(num_items) + items.to(torch.int64).cpu().numpy()
    return np.unique(keys)  # sorted; the adjacency is binary


def sample_non_edges(sorted_keys: np.ndarray, total: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` distinct cells drawn uniformly among the ``total - len(sorted_keys)`` non-edges.

    A rank ``r`` among the non-edges maps to the cell ``r + #{j : f_j <= r}`` with
    ``f_j = key_j - j`` (the number of non-edges before edge ``j``), so only the edges are stored.
    """
    n_free = total - sorted_keys.size
    if k > n_free:
        raise EdgeDPError(f"cannot place {k} edges among {n_free} non-edges")
    if k == 0:
        return np.empty(0, dtype=np.int64)
    # Generator.choice without replacement is O(k) (Floyd's algorithm) when k << n_free.
    ranks = rng.choice(n_free, size=k, replace=False).astype(np.int64)
    before = sorted_keys - np.arange(sorted_keys.size, dtype=np.int64)
    return ranks + np.searchsorted(before, ranks, side="right").astype(np.int64)


def top_laplace_order_statistics(n: int, k: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """The ``k`` largest of ``n`` iid Laplace(0, ``scale``) draws, in descending order, in O(k).

    Uniform order statistics from the top: ``U_(n) = V_1^(1/n)``, ``U_(n-j) = U_(n-j+1) V_j^(1/(n-j))``
    (Rényi), kept in log space so that tails of ``n ~ 1e10`` cells stay exact; then the Laplace
    inverse CDF, written on the upper-tail probability ``q = 1 - U``.
    """
    k = min(k, n)
    if k <= 0:
        return np.empty(0, dtype=np.float64)
    v = 1.0 - rng.random(k)  # (0, 1]: log is finite
    log_u = np.cumsum(np.log(v) / (n - np.arange(k, dtype=np.float64)))
    q = -np.expm1(log_u)  # upper-tail probability, accurate when tiny
    upper = q <= 0.5
    out = np.empty(k, dtype=np.float64)
    out[upper] = -scale * np.log(2.0 * q[upper])
    out[~upper] = scale * (math.log(2.0) + log_u[~upper])
    return out


def _flip(
    keys: np.ndarray, total: int, keep: float, add: float, cfg: EdgeDPConfig, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, Any]]:
    """Keep each edge with probability ``keep``; turn on each non-edge with probability ``add``."""
    n_free = total - keys.size
    expected = keys.size * keep + n_free * add
    if expected > cfg.max_edges:
        raise EdgeDPError(
            f"{CONFIG_KEY}: mechanism={cfg.mechanism} with epsilon={cfg.epsilon} would release about "
            f"{expected:.3g} edges ({n_free} non-edges, each on with probability {add:.3g}), more than "
            f"max_edges={cfg.max_edges}; use mechanism=edgerand or lapgraph, which keep the edge count"
        )
    kept = keys[rng.random(keys.size) < keep]
    n_add = int(rng.binomial(n_free, add)) if add > 0 else 0
    added = sample_non_edges(keys, total, n_add, rng)
    report = {"keep_prob": keep, "add_prob": add, "edges_kept": int(kept.size), "edges_added": n_add}
    return np.sort(np.concatenate([kept, added])), report


def _lapgraph(keys: np.ndarray, total: int, cfg: EdgeDPConfig, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    eps1 = cfg.count_fraction * cfg.epsilon
    eps2 = cfg.epsilon - eps1
    m = keys.size
    noisy = int(np.clip(round(m + rng.laplace(0.0, 1.0 / eps1)), 0, total))
    if noisy > cfg.max_edges:
        raise EdgeDPError(f"{CONFIG_KEY}: lapgraph would release {noisy} edges, more than max_edges={cfg.max_edges}")
    edge_vals = 1.0 + rng.laplace(0.0, 1.0 / eps2, size=m)
    free_vals = top_laplace_order_statistics(total - m, noisy, 1.0 / eps2, rng)
    values = np.concatenate([edge_vals, free_vals])
    if noisy < values.size:
        top = np.argpartition(-values, noisy - 1)[:noisy] if noisy > 0 else np.empty(0, dtype=np.int64)
    else:
        top = np.arange(values.size)
    kept = keys[top[top < m]]
    n_add = int((top >= m).sum())
    # Which non-edge cells hold the n_add largest non-edge values is a uniform subset (exchangeable).
    added = sample_non_edges(keys, total, n_add, rng)
    report = {"noisy_edge_count": noisy, "edges_kept": int(kept.size), "edges_added": n_add}
    return np.sort(np.concatenate([kept, added])), report


def release_keys(keys: np.ndarray, total: int, cfg: EdgeDPConfig, tag: int = 0xED6E) -> tuple[np.ndarray, dict[str, Any]]:
    """Release a set of cells of a universe of ``total`` cells: ``keys`` [E] sorted, distinct, in
    ``[0, total)``. Returns the released cells (sorted) and what the release did. ``tag`` names the
    relation (interactions, ties), so that two releases of one run draw independent noise."""
    report: dict[str, Any] = {"mechanism": cfg.mechanism, "epsilon": cfg.epsilon, "seed": cfg.seed}
    # A stream of its own: seeding with (seed, tag) keeps it apart from splits and samplers.
    rng = np.random.default_rng([cfg.seed, tag])
    if cfg.mechanism == "rr":
        keep, add = rr_probabilities(cfg.epsilon)
        out, extra = _flip(keys, total, keep, add, cfg, rng)
    elif cfg.mechanism == "edgerand":
        eps1 = cfg.count_fraction * cfg.epsilon
        noisy = keys.size + rng.laplace(0.0, 1.0 / eps1)
        density = float(np.clip(noisy / total, 1.0 / total, 0.5))
        keep, add = edgerand_probabilities(cfg.epsilon - eps1, density)
        out, extra = _flip(keys, total, keep, add, cfg, rng)
        extra["noisy_density"] = density
    else:
        out, extra = _lapgraph(keys, total, cfg, rng)
    report.update(extra, edges_in=int(keys.size), edges_out=int(out.size))
    return out, report


def release_bipartite(
    users: Tensor, items: Tensor, num_users: int, num_items: int, cfg: EdgeDPConfig
) -> ReleasedEdges:
    """Release the training edges ``users``/``items`` [E] of a ``num_users x num_items`` graph.

    Disabled (``mechanism: none`` or ``epsilon: inf``): the input tensors are returned as they are.
    Otherwise the released edges come back sorted by (user, item), deduplicated, as int64 tensors.
    """
    if not cfg.enabled:
        report = {"mechanism": cfg.mechanism, "epsilon": cfg.epsilon, "seed": cfg.seed}
        report.update(edges_in=int(users.numel()), edges_out=int(users.numel()))
        return ReleasedEdges(users, items, report)
    if num_users <= 0 or num_items <= 0:
        raise EdgeDPError(f"{CONFIG_KEY}: empty graph ({num_users} users, {num_items} items)")
    out, report = release_keys(_unique_keys(users, items, num_items), num_users * num_items, cfg)
    out_t = torch.from_numpy(out)
    return ReleasedEdges(out_t // num_items, out_t % num_items, report)


TIES_TAG = 0x71E5  # the noise stream of user-user ties, apart from the interactions' (release_keys)


def release_ties(edges: Tensor, num_nodes: int, cfg: EdgeDPConfig, symmetric: bool = True) -> tuple[Tensor, dict[str, Any]]:
    """Release user-user ties ``edges`` [2, S] among ``num_nodes`` users (no self-ties).

    ``symmetric``: the ties are undirected and ``edges`` holds both directions; the mechanism runs
    on the ``n (n - 1) / 2`` unordered pairs (one tie, one bit) and the result holds both
    directions again. Otherwise each of the ``n (n - 1)`` ordered pairs is one bit. Disabled
    releases return ``edges`` itself.
    """
    report: dict[str, Any] = {"mechanism": cfg.mechanism, "epsilon": cfg.epsilon, "seed": cfg.seed}
    if not cfg.enabled:
        report.update(edges_in=int(edges.shape[1]), edges_out=int(edges.shape[1]))
        return edges, report
    n = int(num_nodes)
    src, dst = (t.to(torch.int64).cpu().numpy() for t in edges)
    if np.any(src == dst):
        raise EdgeDPError(f"{CONFIG_KEY}: the ties contain self-loops")
    if symmetric:
        i, j = np.minimum(src, dst), np.maximum(src, dst)
        keys = np.unique(_pair_index(i, j, n))
        out, report = release_keys(keys, n * (n - 1) // 2, cfg, TIES_TAG)
        a, b = _pair_from_index(out, n)
        result = torch.from_numpy(np.stack([np.concatenate([a, b]), np.concatenate([b, a])]))
    else:
        keys = np.unique(src * (n - 1) + np.where(dst < src, dst, dst - 1))  # the diagonal left out
        out, report = release_keys(keys, n * (n - 1), cfg, TIES_TAG)
        a, r = out // (n - 1), out % (n - 1)
        result = torch.from_numpy(np.stack([a, np.where(r < a, r, r + 1)]))
    return result, report


def _pair_index(i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    """Index of the unordered pair ``i < j`` among the ``n (n - 1) / 2`` pairs, row by row."""
    return i * n - i * (i + 1) // 2 + (j - i - 1)


def _pair_from_index(t: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of ``_pair_index``: the row from the quadratic formula, corrected for rounding."""
    t = t.astype(np.int64)
    b = 2 * n - 1
    i = np.floor((b - np.sqrt(np.maximum(b * b - 8.0 * t, 0.0))) / 2).astype(np.int64)
    i = np.clip(i, 0, n - 2)
    start = lambda r: r * n - r * (r + 1) // 2  # noqa: E731  first index of row r
    i = np.where(start(i) > t, i - 1, i)
    i = np.where(start(i + 1) <= t, i + 1, i)
    return i, t - start(i) + i + 1
