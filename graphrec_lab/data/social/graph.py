"""The social graph: cleaning and k-core of the ties, their split for friend recommendation, and
``SocialTrainGraph`` (the training graph plus normalised social adjacencies); the package docstring
describes the protocol."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import torch
from torch import Tensor

from graphrec_lab.data.graph import DataValidationError, InteractionGraph, RawInteractions
from graphrec_lab.data.preprocess import PreprocessConfig, build_graph, check_nonempty, deduplicate, per_user_ratio_split
from graphrec_lab.data.train_graph import TrainGraph

log = logging.getLogger(__name__)

SOCIAL_ONLY_POLICIES = ("keep", "drop")
TARGETS = ("items", "friends")
SOCIAL_NORMS = ("sym", "mean", "source")


@dataclass
class SocialTrainGraph(TrainGraph):
    """A ``TrainGraph`` plus the training user-user ties.

    ``social_edge_index`` [2, S]: directed ties (messages flow ``[0] -> [1]``), user ids in [0, U).
    ``social_adj``: sparse CSR [U, U], ``out = social_adj @ X`` aggregates at each user over the users
    that point to it with weight ``d_out(src)^-1/2 d_in(dst)^-1/2`` (``D^-1/2 S D^-1/2`` for an undirected
    graph: SocialLGN's and LightGCN's normalisation). ``social_symmetric``: whether every tie has its
    reverse (then ``social_adj`` is symmetric and its transpose is itself). ``joined``: ``edge_index`` /
    ``norm_adj`` also hold the ties (``data.join_social``). Other normalisations: ``social_operator``.
    """

    social_adj: Tensor | None = None
    social_edge_index: Tensor | None = None
    social_symmetric: bool = True
    joined: bool = False

    def to(self, device: torch.device | str) -> SocialTrainGraph:
        if self.edge_index.device == torch.device(device):
            return self
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return SocialTrainGraph(
            self.num_users, self.num_items, self.edge_index.to(device), self.norm_adj.to(device),
            self.user_degree.to(device), self.item_degree.to(device), move(self.social_adj),
            move(self.social_edge_index), self.social_symmetric, self.joined,
        )  # fmt: skip

    def social_operator(self, kind: str = "sym") -> tuple[Tensor, Tensor | None]:
        """A normalised social operator [U, U] (sparse CSR) and its transpose (None when symmetric),
        the form ``models.gnn.ops.spmm`` takes. ``out = op @ X``: each user aggregates over the users
        that point to it, with weights

        - ``sym``: ``d_out(src)^-1/2 d_in(dst)^-1/2`` (``social_adj``; SocialLGN);
        - ``mean``: ``1 / d_in(dst)``, the mean over a user's neighbours (DiffNet's paper);
        - ``source``: ``1 / d_out(src)`` (RecBole-GNN's DiffNet: ``get_norm_net_adj_mat(row_norm=True)``).

        Built once per graph object and device."""
        if kind not in SOCIAL_NORMS:
            raise ValueError(f"social normalisation {kind!r}: expected one of {SOCIAL_NORMS}")
        if self.social_edge_index is None:
            raise ValueError(
                "this training graph has no user-user ties; social models need a SocialDataModule "
                "(data=lastfm, hetrec_lastfm, yelp_social, ...)"
            )
        cache = self.__dict__.setdefault("_social_operators", {})
        if kind not in cache:
            src, dst = self.social_edge_index
            n = self.num_users
            d_out = torch.bincount(src, minlength=n).float()
            d_in = torch.bincount(dst, minlength=n).float()
            if kind == "sym":
                w = _inv(d_out, 0.5)[src] * _inv(d_in, 0.5)[dst]
            elif kind == "mean":
                w = _inv(d_in, 1.0)[dst]
            else:
                w = _inv(d_out, 1.0)[src]
            op = _csr(dst, src, w, n)
            symmetric = self.social_symmetric and kind == "sym"
            cache[kind] = (op, None if symmetric else _csr(src, dst, w, n))
        return cache[kind]


def _inv(deg: Tensor, power: float) -> Tensor:
    out = deg.clamp(min=1).pow(-power)
    out[deg == 0] = 0.0
    return out


def _csr(rows: Tensor, cols: Tensor, values: Tensor, n: int) -> Tensor:
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n, n)).coalesce().to_sparse_csr()


def is_symmetric(edges: Tensor, num_users: int) -> bool:
    """Whether every directed edge of ``edges`` [2, S] has its reverse."""
    if edges.numel() == 0:
        return True
    keys = torch.unique(edges[0] * num_users + edges[1])
    rev = torch.unique(edges[1] * num_users + edges[0])
    return keys.numel() == rev.numel() and bool((keys == rev).all())


def social_train_graph(
    num_users: int,
    num_items: int,
    users: Tensor,
    items: Tensor,
    social_edges: Tensor | None,
    join: bool = False,
    side_edges: Tensor | None = None,
) -> SocialTrainGraph:
    """The ``SocialTrainGraph`` of training edges ``users``/``items`` [E] and ties ``social_edges`` [2, S].

    ``join``: the ties also enter ``edge_index``/``norm_adj`` as undirected user-user edges.
    ``side_edges`` [2, X]: further undirected user-side edges for the joined adjacency (friend target
    with ``join_interactions``: person - item node), independent of ``social_edge_index``.
    Without ``join`` and ``side_edges`` the propagation graph is exactly ``TrainGraph.from_edges``.
    """
    extra = [e for e in ((social_edges if join else None), side_edges) if e is not None and e.numel()]
    if extra:
        base = joined_train_graph(users, items, torch.cat(extra, dim=1), num_users, num_items)
    else:
        base = TrainGraph.from_edges(users, items, num_users, num_items)
    social = social_edges
    symmetric = True
    adj = None
    if social is not None:
        symmetric = is_symmetric(social, num_users)
        src, dst = social
        d_out = torch.bincount(src, minlength=num_users).float()
        d_in = torch.bincount(dst, minlength=num_users).float()
        adj = _csr(dst, src, _inv(d_out, 0.5)[src] * _inv(d_in, 0.5)[dst], num_users)
    return SocialTrainGraph(
        base.num_users, base.num_items, base.edge_index, base.norm_adj, base.user_degree, base.item_degree,
        social_adj=adj, social_edge_index=social, social_symmetric=symmetric, joined=bool(extra),
    )  # fmt: skip


def joined_train_graph(users: Tensor, items: Tensor, pairs: Tensor, num_users: int, num_items: int) -> TrainGraph:
    """``D^-1/2 A D^-1/2`` over user-item edges plus undirected node pairs ``pairs`` [2, X] in node ids
    (users ``0..U-1``, items ``U..U+I-1``: user-user ties, item-item co-purchases; each unordered pair
    once, self-loops dropped). ``edge_index`` lists user->item, item->user, then the extra edges in
    both directions (so ``edge_index[:, :E]`` are still the E user->item edges). The degrees count
    the extra edges too."""
    n = num_users + num_items
    a, b = pairs[0], pairs[1]
    keep = a != b
    lo, hi = torch.minimum(a[keep], b[keep]), torch.maximum(a[keep], b[keep])
    key = torch.unique(lo * n + hi)
    lo, hi = key // n, key % n
    src = torch.cat([users, items + num_users, lo, hi])
    dst = torch.cat([items + num_users, users, hi, lo])
    deg = torch.bincount(src, minlength=n).float()
    inv = _inv(deg, 0.5)
    adj = _csr(dst, src, inv[src] * inv[dst], n)
    return TrainGraph(num_users, num_items, torch.stack([src, dst]), adj, deg[:num_users], deg[num_users:])


@dataclass
class SocialConfig:
    """How the ties are cleaned and filtered (every field goes into the cache key).

    Attributes:
        symmetrize: add the reverse of every tie (undirected social graph).
        social_only_users: ``keep`` or ``drop`` users that have ties but no interactions.
        social_core: iterative k-core on ties (see the module docstring); 0 disables.
    """

    symmetrize: bool = True
    social_only_users: str = "drop"
    social_core: int = 0

    def __post_init__(self) -> None:
        if self.social_only_users not in SOCIAL_ONLY_POLICIES:
            raise ValueError(f"data.social_only_users={self.social_only_users!r}: expected one of {SOCIAL_ONLY_POLICIES}")
        if self.social_core < 0:
            raise ValueError(f"data.social_core={self.social_core}: expected >= 0")


def clean_social_edges(edges: Tensor, num_users: int, symmetrize: bool) -> tuple[Tensor, dict[str, int]]:
    """Drop self-loops and duplicates, optionally add reverses; returns ([2, S'] sorted by (src, dst), counts)."""
    edges = edges.long()
    loops = edges[0] == edges[1]
    kept = edges[:, ~loops]
    keys = kept[0] * num_users + kept[1]
    uniq = torch.unique(keys)
    report = {"raw_rows": int(edges.size(1)), "self_loops": int(loops.sum()), "duplicate_rows": int(keys.numel() - uniq.numel())}
    if symmetrize:
        rev = (uniq % num_users) * num_users + uniq // num_users
        both = torch.unique(torch.cat([uniq, rev]))
        report["reverse_added"] = int(both.numel() - uniq.numel())
        uniq = both
    out = torch.stack([uniq // num_users, uniq % num_users])
    report["edges"] = int(out.size(1))
    return out, report


def tie_counts(edges: Tensor, num_users: int) -> Tensor:
    """[U] number of distinct neighbours of each user, in either direction."""
    if edges.numel() == 0:
        return torch.zeros(num_users, dtype=torch.long)
    lo, hi = torch.minimum(edges[0], edges[1]), torch.maximum(edges[0], edges[1])
    key = torch.unique(lo * num_users + hi)
    return torch.bincount(torch.cat([key // num_users, key % num_users]), minlength=num_users)


def joint_k_core(
    raw: RawInteractions, social: Tensor, user_core: int, item_core: int, social_core: int, extra_users: Tensor
) -> tuple[RawInteractions, Tensor, int]:
    """The joint iterative k-core of the module docstring. ``extra_users`` [U] bool: social-only users
    that count as present. Returns (interactions, ties [2, S'], iterations)."""
    n_users = raw.num_users
    imask = torch.ones(len(raw), dtype=torch.bool)
    smask = torch.ones(social.size(1), dtype=torch.bool)
    for it in range(1, 10_000):
        u_deg = torch.bincount(raw.user[imask], minlength=n_users)
        i_deg = torch.bincount(raw.item[imask], minlength=raw.num_items)
        s_ok = tie_counts(social[:, smask], n_users) >= social_core
        i_keep = imask & (u_deg[raw.user] >= user_core) & (i_deg[raw.item] >= item_core) & s_ok[raw.user]
        present = ((torch.bincount(raw.user[i_keep], minlength=n_users) > 0) | extra_users) & s_ok
        s_keep = smask & present[social[0]] & present[social[1]]
        if bool((i_keep == imask).all()) and bool((s_keep == smask).all()):
            return raw.select(imask), social[:, smask], it
        imask, smask = i_keep, s_keep
    raise AssertionError("k-core did not converge")


def build_social_graph(raw: RawInteractions, cfg: PreprocessConfig, social_cfg: SocialConfig, name: str) -> InteractionGraph:
    """Filter, split and attach the ties of ``raw`` (see the module docstring); returns a validated graph
    whose ``social_edges`` [2, S] are in its own user ids and whose ``meta["social"]`` holds the counts."""
    if raw.social_edges is None:
        raise DataValidationError(
            f"{name}: {raw.source} has no user-user ties; the social DataModule needs a social dataset "
            "(lastfm, hetrec2011-lastfm-2k, yelp-social, diffnet:<prefix>)"
        )
    n_raw = len(raw)
    social, report = clean_social_edges(raw.social_edges, raw.num_users, social_cfg.symmetrize)
    inter = dataclasses.replace(raw, social_edges=None)
    if cfg.dedup:
        inter = deduplicate(inter)
    if cfg.rating_threshold is not None:
        if inter.rating is None:
            raise ValueError(f"{name}: data.rating_threshold is set but {raw.source} has no ratings")
        inter = inter.select(inter.rating >= cfg.rating_threshold)
    has_inter = torch.bincount(inter.user, minlength=raw.num_users) > 0
    has_ties = tie_counts(social, raw.num_users) > 0
    social_only = has_ties & ~has_inter
    keep_extra = social_only if social_cfg.social_only_users == "keep" else torch.zeros_like(social_only)
    n_before = (len(inter), social.size(1))
    inter, social, iterations = joint_k_core(
        inter, social, max(cfg.user_core, 0), max(cfg.item_core, 0), social_cfg.social_core, keep_extra
    )
    # build_graph does the split and compaction; the tokens tell us which raw user became which id.
    tokens = raw.user_tokens
    inter = dataclasses.replace(inter, user_tokens=[str(u) for u in range(raw.num_users)])
    graph = build_graph(inter, dataclasses.replace(cfg, user_core=0, item_core=0), name=name)
    check_nonempty(graph)
    orig = torch.tensor([int(t) for t in graph.user_tokens or []], dtype=torch.long)
    present = torch.bincount(social.reshape(-1), minlength=raw.num_users) > 0
    extra = (keep_extra & present).nonzero().flatten()
    n_inter_users = graph.num_users
    new_id = torch.full((raw.num_users,), -1, dtype=torch.long)
    new_id[orig] = torch.arange(n_inter_users)
    new_id[extra] = n_inter_users + torch.arange(extra.numel())
    mapped = new_id[social]
    ok = (mapped >= 0).all(0)
    mapped = mapped[:, ok]
    order = torch.argsort(mapped[0] * (n_inter_users + extra.numel()) + mapped[1])
    all_orig = torch.cat([orig, extra])
    n_users = n_inter_users + extra.numel()
    report.update(
        social_only_users=int(social_only.sum()),
        social_only_policy=social_cfg.social_only_users,
        social_only_kept=int(extra.numel()),
        users_without_ties=int((tie_counts(mapped, n_users)[:n_inter_users] == 0).sum()),
        core_iterations=iterations,
        core_removed_interactions=n_before[0] - len(inter),
        core_removed_edges=n_before[1] - social.size(1),
        edges_dropped_no_endpoint=int((~ok).sum()),
        edges=int(mapped.size(1)),
        symmetric=is_symmetric(mapped, n_users),
    )
    log.info(
        "%s social graph: %d raw tie rows -> %d edges (%d self-loops, %d duplicates dropped, %d reverses added); "
        "%d social-only users (%s: %d kept); %d users without ties; k-core removed %d interactions and %d edges; "
        "%d edges dropped for a missing endpoint",
        name, report["raw_rows"], report["edges"], report["self_loops"], report["duplicate_rows"],
        report.get("reverse_added", 0), report["social_only_users"], social_cfg.social_only_users,
        report["social_only_kept"], report["users_without_ties"], report["core_removed_interactions"],
        report["core_removed_edges"], report["edges_dropped_no_endpoint"],
    )  # fmt: skip
    pad = extra.numel()
    user_features = graph.user_features
    if user_features is not None and pad:
        user_features = torch.cat([user_features, user_features.new_zeros(pad, user_features.size(1))])
    meta = dict(graph.meta, raw_interactions=n_raw, social=report)
    return dataclasses.replace(
        graph,
        num_users=n_users,
        social_edges=mapped[:, order].contiguous(),
        user_tokens=None if tokens is None else [tokens[int(u)] for u in all_orig],
        user_text=None if graph.user_text is None else graph.user_text + [None] * pad,
        user_features=user_features,
        meta=meta,
    )


def split_ties(edges: Tensor, num_users: int, ratios: tuple[float, float, float], seed: int) -> Tensor:
    """A split label (SPLIT_TRAIN/VAL/TEST) per directed tie of ``edges`` [2, S]: [S] int8.

    Each unordered pair gets one label, shared by both directions: a reciprocal pair is owned by a
    random endpoint, a one-way tie by its source; pairs are then split per owner like interactions
    (``per_user_ratio_split``, RecBole's counts). Deterministic given ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    a, b = edges[0], edges[1]
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    pair_key, inverse = torch.unique(lo * num_users + hi, return_inverse=True)
    n_pairs = pair_key.numel()
    count = torch.bincount(inverse, minlength=n_pairs)
    # one-way ties: owner = source; reciprocal pairs: a random endpoint
    source = torch.zeros(n_pairs, dtype=torch.long)
    source[inverse] = a
    p_lo, p_hi = pair_key // num_users, pair_key % num_users
    coin = torch.rand(n_pairs, generator=gen) < 0.5
    owner = torch.where(count > 1, torch.where(coin, p_lo, p_hi), source)
    labels = per_user_ratio_split(owner, ratios, gen)
    return labels[inverse]
