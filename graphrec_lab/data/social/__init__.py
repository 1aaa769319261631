"""The social domain: user-item interactions and user-user ties in one DataModule.

Modules: ``graph`` (building and splitting the ties, ``SocialTrainGraph``), ``datamodule``
(``SocialDataModule``).

``SocialDataModule`` reads a social dataset (``lastfm``, ``hetrec2011-lastfm-2k``, ``yelp-social``,
``diffnet:<prefix>``), builds the usual split interaction graph plus a cleaned, typed user-user edge
set (``InteractionGraph.social_edges`` [2, S], in the graph's user ids), and hands models a
``SocialTrainGraph``: the ``TrainGraph`` of the training interactions plus the normalised social
adjacency ``social_adj`` [U, U] (and other normalisations on demand, ``social_operator``).

Preprocessing of the ties (``build_social_graph``, all of it in the cache key):

1. self-loops and duplicate rows are dropped; ``symmetrize_social`` adds every missing reverse edge
   (RecBole-GNN's ``undirected_net``);
2. users that only occur in the social file (never in an interaction, after dedup and the rating
   threshold) are kept or dropped (``social_only_users``; RecBole-GNN's ``filter_net_by_inter`` is
   ``drop``); kept ones get the user ids after the interaction users, have no interactions and are
   never evaluated, but take part in social propagation;
3. one joint iterative k-core: an interaction stays while its user has >= ``user_core`` interactions,
   its item >= ``item_core`` and (``social_core`` > 0) its user >= ``social_core`` ties; a tie stays
   while both ends are present (a user with interactions, or a kept social-only user) and have
   >= ``social_core`` ties. "Ties" of a user: distinct neighbours in either direction.
4. the interactions are split by the existing preprocessing (``build_graph``: ratio / given / loo /
   temporal, id compaction); ties are never split for item recommendation (they are side data).

Every count is logged and kept in ``graph.meta["social"]``.

Two targets on the same data (``target``):

- ``items`` (default): recommend items. ``join_social: true`` makes ``train_graph`` the joined
  heterogeneous graph: ``edge_index``/``norm_adj`` hold the user-item edges and the user-user ties
  (undirected, each pair once), normalised together, so any zoo model (LightGCN, GCN, ...) propagates
  over both. Evaluation exclusion masks still come from the user-item training edges only.
- ``friends``: recommend people. The ties become the interaction graph (``items`` = users): each tie
  is held out or not as a unit (both directions of a reciprocal pair share one label; the pair is
  assigned to a random endpoint, a one-way tie to its source, then split per user exactly like
  interactions with ``split=ratio`` and ``ratios``), so a held-out friendship never leaks through its
  reverse. Known friends (training ties, plus validation ties at test time) and the user herself are
  excluded from the ranking and from BPR negatives. LightGCN on this graph is plain LightGCN on the
  user-user graph (the bipartite double cover: a "user" node and a "candidate" node per person).
  ``join_interactions: true`` adds the user-item interactions as side edges, with the items as extra
  nodes on the user side: user ids ``0..P-1`` are people, ``P..P+I-1`` the items (so
  ``num_users = P + I`` while ``num_items = P``); an item node links to the people who interacted with
  it on both sides (their "user" and their "candidate" node). Item nodes have no held-out edges and are
  never evaluated. All interactions are used (the held-out targets are ties, not interactions).
"""

from graphrec_lab.data.social.datamodule import SocialDataModule
from graphrec_lab.data.social.graph import (
    SOCIAL_NORMS,
    SOCIAL_ONLY_POLICIES,
    TARGETS,
    SocialConfig,
    SocialTrainGraph,
    build_social_graph,
    clean_social_edges,
    is_symmetric,
    joint_k_core,
    social_train_graph,
    split_ties,
    tie_counts,
)

__all__ = [
    "SOCIAL_NORMS",
    "SOCIAL_ONLY_POLICIES",
    "TARGETS",
    "SocialConfig",
    "SocialDataModule",
    "SocialTrainGraph",
    "build_social_graph",
    "clean_social_edges",
    "is_symmetric",
    "joint_k_core",
    "social_train_graph",
    "split_ties",
    "tie_counts",
]
