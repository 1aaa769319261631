"""The social domain: readers of the three formats, SocialDataModule (ties, social-only users,
symmetrisation, k-core, joined graph, friend recommendation without leakage), on tiny fixtures; slow
tests check the counts of the real files."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
import torch

from graphrec_lab.data.graph import SPLIT_TEST, SPLIT_TRAIN, SPLIT_VAL
from graphrec_lab.data.sources import SOURCES, DataFormatError, DatasetNotFoundError, get_source
from graphrec_lab.data.sources.social_formats import (
    diffnet_source,
    read_diffnet,
    read_hetrec_lastfm,
    read_lastfm_lightgcn,
)
from graphrec_lab.data.social import (
    SocialDataModule,
    SocialTrainGraph,
    clean_social_edges,
    is_symmetric,
    split_ties,
    tie_counts,
)
from tests.conftest import real_data_dir

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "social"


@pytest.fixture()
def fixture_sources(monkeypatch):
    """The registered lastfm / hetrec sources without the real files' checksums (fixtures differ)."""
    for name in ("lastfm", "hetrec2011-lastfm-2k"):
        monkeypatch.setitem(SOURCES, name, dataclasses.replace(get_source(name), checksums={}))


def dm(dataset: str, **kwargs) -> SocialDataModule:
    kwargs.setdefault("split", "given" if dataset in ("lastfm", "diffnet:tiny") else "ratio")
    return SocialDataModule(dataset=dataset, data_dir=str(FIXTURES), cache_dir="none", download=False, **kwargs)


def pairs(edges: torch.Tensor) -> set[tuple[int, int]]:
    return set(map(tuple, edges.t().tolist()))


# ============================================================================ readers


def test_lastfm_reader_shifts_one_based_ids_and_parses_exponent_weights():
    raw = read_lastfm_lightgcn(FIXTURES / "lastfm")
    assert (raw.num_users, raw.num_items, len(raw)) == (6, 8, 17)
    assert int((raw.split == SPLIT_TRAIN).sum()) == 12 and int((raw.split == SPLIT_TEST).sum()) == 5
    assert (raw.user[0].item(), raw.item[0].item()) == (0, 0)  # raw "1 1"
    assert raw.rating[2].item() == pytest.approx(320.0)  # "3.2e+02"
    assert raw.user_tokens[0] == "1" and raw.item_tokens[-1] == "8"
    assert (0, 5) in pairs(raw.social_edges) and raw.social_edges.shape == (2, 8)  # user 6 -> dense 5


def test_lastfm_reader_rejects_zero_based_copy_with_file_and_line(tmp_path):
    folder = tmp_path / "lastfm"
    folder.mkdir()
    for f in ("data1.txt", "test1.txt", "trustnetwork.txt"):
        (folder / f).write_bytes((FIXTURES / "lastfm" / f).read_bytes())
    (folder / "test1.txt").write_text("1\t4\t1\n0\t2\t1\n")
    with pytest.raises(DataFormatError, match=r"test1\.txt:2: user id 0 is below 1"):
        read_lastfm_lightgcn(folder)
    raw = read_lastfm_lightgcn(folder, id_base=0)  # a 0-based copy reads with id_base=0
    assert raw.num_users == 7


def test_lastfm_reader_names_bad_token(tmp_path):
    folder = tmp_path / "lastfm"
    folder.mkdir()
    for f in ("data1.txt", "test1.txt", "trustnetwork.txt"):
        (folder / f).write_bytes((FIXTURES / "lastfm" / f).read_bytes())
    (folder / "trustnetwork.txt").write_text("1\t2\n2\tx\n")
    with pytest.raises(DataFormatError, match=r"trustnetwork\.txt:2: friend 'x' is not an integer"):
        read_lastfm_lightgcn(folder)


def test_hetrec_reader_drops_foreign_user_and_keeps_names():
    stats: dict = {}
    raw = read_hetrec_lastfm(FIXTURES / "hetrec2011-lastfm-2k", stats=stats)
    assert raw.user_tokens == ["2", "3", "5", "7", "9"]  # user 1 gone, user 9 (friends only) kept
    assert raw.item_tokens == ["10", "20", "30", "40", "55", "60"]
    assert len(raw) == 9 and stats["dropped_interaction_rows"] == 1 and stats["dropped_friend_rows"] == 1
    assert raw.item_text[:4] == ["MALICE MIZER", "Röyksopp", "Sigur Rós", "Björk"]
    assert raw.rating[0].item() == 100.0  # user 2, artist 10
    assert pairs(raw.social_edges) == {(0, 1), (1, 0), (0, 2), (2, 0), (3, 4), (4, 3)}


def test_hetrec_reader_falls_back_to_latin1(tmp_path):
    folder = tmp_path / "het"
    folder.mkdir()
    for f in ("user_artists.dat", "user_friends.dat"):
        (folder / f).write_bytes((FIXTURES / "hetrec2011-lastfm-2k" / f).read_bytes())
    text = (FIXTURES / "hetrec2011-lastfm-2k" / "artists.dat").read_text(encoding="utf-8")
    (folder / "artists.dat").write_bytes(text.encode("latin-1"))  # Björk as b"Bj\xf6rk"
    raw = read_hetrec_lastfm(folder)
    assert raw.item_text[3] == "Björk"


def test_hetrec_reader_checks_header(tmp_path):
    folder = tmp_path / "het"
    folder.mkdir()
    for f in ("user_friends.dat", "artists.dat"):
        (folder / f).write_bytes((FIXTURES / "hetrec2011-lastfm-2k" / f).read_bytes())
    (folder / "user_artists.dat").write_text("2\t10\t100\n")
    with pytest.raises(DataFormatError, match=r"user_artists\.dat:1: expected the header"):
        read_hetrec_lastfm(folder)


def test_diffnet_reader_is_generic_in_the_prefix():
    stats: dict = {}
    raw = read_diffnet(FIXTURES / "tiny", prefix="tiny", stats=stats)
    assert (raw.num_users, raw.num_items) == (5, 7)  # user 4 only in links; item 5 never occurs
    assert stats["declared_items"] == 7 and stats["occurring_items"] == 6
    assert [int((raw.split == s).sum()) for s in (SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST)] == [12, 2, 3]
    assert raw.social_edges.shape == (2, 8)  # raw rows, self-loop and duplicate included


def test_missing_files_offline_raise_with_url(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="drive.google.com"):
        diffnet_source("flickr").load(tmp_path, download=False)
    with pytest.raises(DatasetNotFoundError, match="LightGCN-PyTorch"):
        get_source("lastfm").load(tmp_path, download=False)
    with pytest.raises(DatasetNotFoundError, match="hetrec2011-lastfm-2k.zip"):
        get_source("hetrec2011-lastfm-2k").load(tmp_path, download=False)


# ============================================================================ tie preprocessing


def test_clean_social_edges_counts():
    edges = torch.tensor([[0, 1, 1, 2, 0, 0], [1, 0, 2, 2, 1, 3]])
    out, report = clean_social_edges(edges, 4, symmetrize=False)
    assert pairs(out) == {(0, 1), (1, 0), (1, 2), (0, 3)}
    assert report == {"raw_rows": 6, "self_loops": 1, "duplicate_rows": 1, "edges": 4}
    out, report = clean_social_edges(edges, 4, symmetrize=True)
    assert is_symmetric(out, 4) and report["reverse_added"] == 2 and out.size(1) == 6
    assert tie_counts(out, 4).tolist() == [2, 2, 1, 1]


@pytest.mark.parametrize("policy, users, kept", [("keep", 5, 1), ("drop", 4, 0)])
def test_social_only_users_kept_or_dropped_and_logged(policy, users, kept, caplog):
    caplog.set_level(logging.INFO)
    graph = dm("diffnet:tiny", social_only_users=policy, symmetrize_social=False).load_graph()
    social = graph.meta["social"]
    assert graph.num_users == users and social["social_only_users"] == 1 and social["social_only_kept"] == kept
    assert "1 social-only users" in caplog.text and f"{policy}: {kept} kept" in caplog.text
    assert social["self_loops"] == 1 and social["duplicate_rows"] == 1
    if policy == "keep":
        # the social-only user gets the id after the interaction users and keeps its ties
        assert pairs(graph.social_edges) == {(0, 1), (1, 0), (1, 2), (2, 3), (3, 4), (4, 0)}
        assert graph.user_features is None and len(graph.train) == 12
    else:
        assert pairs(graph.social_edges) == {(0, 1), (1, 0), (1, 2), (2, 3)}
    assert graph.num_items == 6  # unused item id compacted away


def test_symmetrisation_is_configurable():
    directed = dm("diffnet:tiny", social_only_users="keep", symmetrize_social=False)
    undirected = dm("diffnet:tiny", social_only_users="keep", symmetrize_social=True)
    d, u = directed.load_graph(), undirected.load_graph()
    assert not is_symmetric(d.social_edges, d.num_users) and is_symmetric(u.social_edges, u.num_users)
    assert pairs(u.social_edges) == pairs(d.social_edges) | {(b, a) for a, b in pairs(d.social_edges)}
    assert not directed.train_graph.social_symmetric and undirected.train_graph.social_symmetric


def test_lastfm_fixture_module_keeps_social_only_user(fixture_sources):
    module = dm("lastfm", social_only_users="keep", val_fraction=0.0)
    graph = module.load_graph()
    assert graph.num_users == 6 and graph.user_tokens[-1] == "6" and graph.meta["social"]["social_only_kept"] == 1
    assert (5, 0) in pairs(graph.social_edges)
    assert len(graph.test) == 5


def test_hetrec_module_item_texts(fixture_sources):
    module = dm("hetrec2011-lastfm-2k", ratios=[0.6, 0.2, 0.2])
    graph = module.load_graph()
    assert graph.num_users == 4  # user 9 only has a friend: dropped by default (RecBole-GNN)
    assert module.item_texts() == ["MALICE MIZER", "Röyksopp", "Sigur Rós", "Björk", "Diary of Dreams"]


def test_social_core_is_joint_with_interactions():
    # social_core=2: users need two distinct neighbours; a user losing them loses its interactions too
    graph = dm("diffnet:tiny", social_only_users="keep", symmetrize_social=True, social_core=2).load_graph()
    counts = tie_counts(graph.social_edges, graph.num_users)
    assert bool((counts[counts > 0] >= 2).all())
    kept_users = set(graph.train.users.tolist()) | set(graph.val.users.tolist()) | set(graph.test.users.tolist())
    assert all(counts[u] >= 2 for u in kept_users)
    assert graph.meta["social"]["core_iterations"] >= 1


def test_cache_roundtrip(tmp_path):
    a = SocialDataModule(dataset="diffnet:tiny", data_dir=str(FIXTURES), cache_dir=str(tmp_path), download=False, split="given", social_only_users="keep")
    b = SocialDataModule(dataset="diffnet:tiny", data_dir=str(FIXTURES), cache_dir=str(tmp_path), download=False, split="given", social_only_users="keep")
    ga, gb = a.load_graph(), b.load_graph()
    assert len(list(tmp_path.iterdir())) == 1
    assert ga.content_hash() == gb.content_hash() and torch.equal(ga.social_edges, gb.social_edges)
    c = SocialDataModule(dataset="diffnet:tiny", data_dir=str(FIXTURES), cache_dir=str(tmp_path), download=False, split="given", social_only_users="drop")
    assert c.load_graph().num_users == 4 and len(list(tmp_path.iterdir())) == 2  # the policy is in the key


def test_bad_config_values_are_named():
    with pytest.raises(ValueError, match="data.social_only_users"):
        dm("diffnet:tiny", social_only_users="maybe")
    with pytest.raises(ValueError, match="data.target"):
        dm("diffnet:tiny", target="groups")
    with pytest.raises(ValueError, match="data.join_social applies to data.target=items"):
        dm("diffnet:tiny", target="friends", split="ratio", join_social=True)
    with pytest.raises(ValueError, match="data.split=ratio"):
        dm("diffnet:tiny", target="friends", split="given")


# ============================================================================ training graphs


def test_train_graph_carries_normalised_social_adjacency():
    module = dm("diffnet:tiny", social_only_users="keep", symmetrize_social=True)
    tg = module.train_graph
    assert isinstance(tg, SocialTrainGraph) and not tg.joined
    graph = module.load_graph()
    u = graph.num_users
    s = torch.zeros(u, u)
    s[graph.social_edges[1], graph.social_edges[0]] = 1.0  # row = receiver
    d = s.sum(0)  # symmetric: in = out degree
    inv = torch.where(d > 0, d.pow(-0.5), torch.zeros_like(d))
    assert torch.allclose(tg.social_adj.to_dense(), inv[:, None] * s * inv[None, :])
    mean, mean_t = tg.social_operator("mean")
    assert torch.allclose(mean.to_dense().sum(1)[d > 0], torch.ones(int((d > 0).sum())))
    assert torch.allclose(mean_t.to_dense(), mean.to_dense().t())
    moved = tg.to("meta")
    assert isinstance(moved, SocialTrainGraph) and moved.social_adj.device.type == "meta"
    assert moved.social_edge_index.device.type == "meta" and moved.social_symmetric


def test_joined_graph_adds_ties_but_exclusion_masks_do_not():
    plain = dm("diffnet:tiny", social_only_users="keep")
    joined = dm("diffnet:tiny", social_only_users="keep", join_social=True)
    tp, tj = plain.train_graph, joined.train_graph
    graph = joined.load_graph()
    assert tj.joined and tj.edge_index.size(1) == tp.edge_index.size(1) + graph.social_edges.size(1)
    uu = tj.edge_index[:, (tj.edge_index[0] < tj.num_users) & (tj.edge_index[1] < tj.num_users)]
    assert pairs(uu) == pairs(graph.social_edges)
    dense = tj.norm_adj.to_dense()
    assert torch.allclose(dense, dense.t())
    deg = torch.zeros(tj.num_nodes)
    deg.index_add_(0, tj.edge_index[0], torch.ones(tj.edge_index.size(1)))
    assert torch.allclose(tj.user_degree, deg[: tj.num_users])
    # evaluation excludes training items only, never friends
    batch = joined.eval_users("test").collate(list(range(graph.num_users)))
    excluded = {(int(batch.users[r]), int(i)) for r, i in batch.exclude.t().tolist()}
    train_val = pairs(torch.stack([graph.train.users, graph.train.items])) | pairs(torch.stack([graph.val.users, graph.val.items]))
    assert excluded == {p for p in train_val if p[0] in set(batch.users.tolist())}


# ============================================================================ friend recommendation


def test_split_ties_keeps_pairs_together_and_is_seeded():
    g = torch.Generator().manual_seed(0)
    n = 60
    a = torch.randint(0, n, (400,), generator=g)
    b = torch.randint(0, n, (400,), generator=g)
    edges, _ = clean_social_edges(torch.stack([a, b]), n, symmetrize=False)
    labels = split_ties(edges, n, (0.8, 0.1, 0.1), seed=3)
    label_of = {p: int(lab) for p, lab in zip(map(tuple, edges.t().tolist()), labels.tolist())}
    for (x, y), lab in label_of.items():
        if (y, x) in label_of:
            assert label_of[(y, x)] == lab
    assert torch.equal(labels, split_ties(edges, n, (0.8, 0.1, 0.1), seed=3))
    assert not torch.equal(labels, split_ties(edges, n, (0.8, 0.1, 0.1), seed=4))
    share = (labels == SPLIT_TRAIN).float().mean().item()
    assert 0.65 < share < 0.9


@pytest.mark.parametrize("join", [False, True])
def test_friend_target_has_no_leakage(join):
    module = dm("diffnet:tiny", target="friends", split="ratio", ratios=[0.5, 0.25, 0.25], social_only_users="keep", join_interactions=join)
    graph = module.load_graph()
    base = module.load_social_graph()
    people = base.num_users
    assert graph.num_items == people and graph.num_users == people + (base.num_items if join else 0)
    train = pairs(torch.stack([graph.train.users, graph.train.items]))
    held = pairs(torch.stack([graph.val.users, graph.val.items])) | pairs(torch.stack([graph.test.users, graph.test.items]))
    assert held and not (held & train) and not ({(b, a) for a, b in held} & train)
    assert train | held == pairs(base.social_edges)
    tg = module.train_graph
    # neither direction of a held-out tie is an edge of the propagation graph or of the social operator
    u_count = tg.num_users
    prop = {(s, d - u_count) for s, d in tg.edge_index.t().tolist() if s < people and d >= u_count}
    assert prop == train and not ({(b, a) for a, b in held} & prop)
    assert pairs(tg.social_edge_index) == train
    if join:
        # item nodes link to people on both sides; they are never evaluated
        side = {(s, d) for s, d in tg.edge_index.t().tolist() if s < people and people <= d < u_count}
        assert len(side) == len(base.train) + len(base.val) + len(base.test)
        assert int(module.eval_users("test").user_ids.max()) < people


def test_friend_ranking_excludes_self_and_known_friends_and_negatives_are_never_self():
    module = dm("diffnet:tiny", target="friends", split="ratio", ratios=[0.5, 0.25, 0.25], social_only_users="keep")
    graph = module.load_graph()
    users = module.eval_users("test")
    batch = users.collate(users.user_ids.tolist())
    excluded = {(int(batch.users[r]), int(i)) for r, i in batch.exclude.t().tolist()}
    for u in batch.users.tolist():
        assert (u, u) in excluded
    train_val = pairs(torch.stack([graph.train.users, graph.train.items])) | pairs(torch.stack([graph.val.users, graph.val.items]))
    assert {p for p in train_val if p[0] in set(batch.users.tolist())} <= excluded
    batches = list(module.train_dataloader())
    module._friend_batches.epoch = 0
    for _ in range(20):
        for b in module.train_dataloader():
            assert not bool((b.users == b.neg_items).any())
    assert sum(len(b) for b in batches) == len(graph.train)


def write_random_diffnet(folder: Path, prefix: str, users: int = 40, items: int = 30, seed: int = 0) -> None:
    """A random dataset in DiffNet's layout: ~8 items and ~6 undirected ties per user."""
    g = torch.Generator().manual_seed(seed)
    d = folder / prefix
    d.mkdir(parents=True)
    rows = {(u, int(i)) for u in range(users) for i in torch.randint(0, items, (8,), generator=g)}
    rows = sorted(rows)
    split = torch.rand(len(rows), generator=g)
    for name, lo, hi in (("train", 0.0, 0.8), ("val", 0.8, 0.9), ("test", 0.9, 1.01)):
        sel = [f"{u}\t{i}\t1" for (u, i), r in zip(rows, split.tolist()) if lo <= r < hi]
        (d / f"{prefix}.{name}.rating").write_text("\n".join(sel) + "\n")
    a = torch.randint(0, users, (users * 3,), generator=g)
    b = torch.randint(0, users, (users * 3,), generator=g)
    (d / f"{prefix}.links").write_text("".join(f"{x}\t{y}\t1\n{y}\t{x}\t1\n" for x, y in zip(a.tolist(), b.tolist())))


def test_run_experiment_end_to_end(out_dir, tmp_path):
    from graphrec_lab.config import compose
    from graphrec_lab.experiment import run_experiment

    write_random_diffnet(tmp_path, "rand")
    common = [
        f"paths.root={out_dir}", "data=yelp_social", "data.dataset=diffnet:rand", f"data.data_dir={tmp_path}",
        "data.cache_dir=none", "data.download=false", "trainer.max_epochs=2", "trainer.check_val_every_n_epoch=1",
        "trainer.accelerator=cpu", "logger=csv", "print_table=false", "task.ks=[2,5]", "optimized_metric=val/ndcg@5",
    ]  # fmt: skip
    for extra in (["model=diffnet"], ["model=sociallgn"], ["model=mhcn"], ["model=lightgcn", "data.join_social=true"],
                  ["model=lightgcn", "data.target=friends", "data.split=ratio", "data.join_interactions=true"],
                  ["model=lightgcn", "data.target=friends", "data.split=ratio"]):  # fmt: skip
        metrics = run_experiment(compose([*common, *extra]))
        assert 0.0 <= metrics["test/ndcg@5"] <= 1.0 and metrics["epochs"] == 2


# ============================================================================ real files (slow)


@pytest.mark.slow
def test_real_lastfm_counts():
    data = real_data_dir()
    module = SocialDataModule(dataset="lastfm", data_dir=str(data), cache_dir="none", download=False, split="given", social_only_users="keep")
    graph = module.load_graph()
    # LightGCN-PyTorch: 1,892 users, 4,489 items, 42,135 train + 10,533 test rows, 25,434 trust rows
    assert (graph.num_users, graph.num_items) == (1892, 4489)
    assert len(graph.train) + len(graph.val) == 42135 and len(graph.test) == 10533
    social = graph.meta["social"]
    assert social["edges"] == 25434 and social["symmetric"] and social["social_only_users"] == 12
    assert graph.meta["social"]["reverse_added"] == 0


@pytest.mark.slow
def test_real_hetrec_counts():
    data = real_data_dir()
    module = SocialDataModule(dataset="hetrec2011-lastfm-2k", data_dir=str(data), cache_dir="none", download=False, split="ratio")
    graph = module.load_graph()
    # HetRec readme: 1,892 users, 17,632 artists, 92,834 rows, 12,717 friendships (25,434 directed);
    # this copy: 92,836 rows once the foreign user 1 (10 rows, 1 friend row) is dropped
    assert (graph.num_users, graph.num_items) == (1892, 17632)
    assert len(graph.train) + len(graph.val) + len(graph.test) == 92836
    assert graph.meta["reader/dropped_interaction_rows"] == 10 and graph.meta["reader/dropped_friend_rows"] == 1
    assert graph.meta["social"]["edges"] == 25434 and graph.meta["social"]["social_only_users"] == 0
    assert sum(t is not None for t in graph.item_text) == 17632


@pytest.mark.slow
def test_real_yelp_counts():
    data = real_data_dir()
    directed = SocialDataModule(
        dataset="yelp-social", data_dir=str(data), cache_dir="none", download=False, split="given",
        symmetrize_social=False, social_only_users="keep",
    ).load_graph()  # fmt: skip
    # DiffNet's Yelp: 17,237 users, 185,869 / 3,497 / 18,579 ratings, 143,765 links; item ids up to
    # 38,341 of which 37,378 occur (compacted); 2 users only in the links (kept)
    assert (directed.num_users, directed.num_items) == (17237, 37378)
    assert (len(directed.train), len(directed.val), len(directed.test)) == (185869, 3497, 18579)
    assert directed.meta["social"]["edges"] == 143765 and directed.meta["social"]["social_only_kept"] == 2
    assert directed.meta["reader/declared_items"] == 38342
    reciprocal = 28516  # directed links whose reverse is also a link
    undirected = SocialDataModule(
        dataset="yelp-social", data_dir=str(data), cache_dir="none", download=False, split="given",
        social_only_users="keep",
    ).load_graph()  # fmt: skip
    assert undirected.meta["social"]["edges"] == 2 * 143765 - reciprocal
