"""News data: MIND reader, splits, missing-article policies, training samples, graphs, generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from graphrec_lab.data.graph import DataValidationError
from graphrec_lab.data.news import (
    ImpressionTrainBatches,
    NewsDataModule,
    SplitConfig,
    build_news_data,
    sample_without_replacement,
)
from graphrec_lab.data.sources import DataFormatError, DatasetNotFoundError
from graphrec_lab.data.sources.mind import MIND_RELEASE_URL, read_behaviors, read_mind_clicks, read_news
from graphrec_lab.data.synthetic_news import generate_synthetic_news, write_mind_folder
from graphrec_lab.data.text import ItemTextConfig
from tests.conftest import real_data_dir

NEWS = [
    "N1\tsports\tfootball\tTeam wins the title\tA late goal.\turl1\t[]\t[]",
    "N2\tfinance\tmarkets\tStocks rally\tInvestors cheer.\turl2\t[]\t[]",
    "N3\thealth\tmedical\tNew vaccine study\t\turl3\t[]\t[]",
    "N4\tfood\trecipes\tEasy pasta dinner\tTen minutes.\turl4\t[]\t[]",
    "N5\ttravel\thotels\tBest beach resorts\tOur picks.\turl5\t[]\t[]",
    "N6\tautos\tcars\t\t\turl6\t[]\t[]",  # a row without text, never referenced
]
# Three days; N7 is referenced but has no row in news.tsv.
BEHAVIORS = [
    "1\tU1\t11/11/2019 9:00:00 AM\tN1 N2\tN3-1 N4-0 N7-0",
    "2\tU2\t11/11/2019 10:00:00 AM\tN7\tN4-1 N5-0",
    "3\tU1\t11/12/2019 9:00:00 AM\tN1 N2\tN5-1 N3-0",
    "4\tU3\t11/13/2019 9:00:00 AM\t\tN4-0 N1-1 N7-1",
    "5\tU2\t11/13/2019 1:00:00 PM\tN7\tN7-1",
]


def _write(folder: Path, news: list[str] = NEWS, behaviors: list[str] = BEHAVIORS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "news.tsv").write_text("\n".join(news) + "\n", encoding="utf-8")
    (folder / "behaviors.tsv").write_text("\n".join(behaviors) + "\n", encoding="utf-8")
    return folder


def _build(folder: Path, missing: str = "drop_items", **split):
    text = ItemTextConfig(fields=("title", "abstract"), missing=missing)
    return build_news_data([read_news(folder / "news.tsv")], read_behaviors(folder / "behaviors.tsv"), None, text, SplitConfig(**split))


# ------------------------------------------------------------------ reader
def test_reader_parses_mind_lines(tmp_path: Path) -> None:
    folder = _write(tmp_path / "mind")
    news = read_news(folder / "news.tsv")
    assert news.ids == ["N1", "N2", "N3", "N4", "N5", "N6"]
    assert news.fields["title"][0] == "Team wins the title" and news.fields["abstract"][2] == ""
    beh = read_behaviors(folder / "behaviors.tsv")
    assert len(beh) == 5 and beh.users[1] == "U2"
    assert beh.history[3] == [] and beh.candidates[0] == ["N3", "N4", "N7"] and beh.labels[0] == [1, 0, 0]
    assert int(beh.time[1] - beh.time[0]) == 3600
    assert int(beh.time[4] - beh.time[3]) == 4 * 3600  # 1 PM is 13:00


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("1\tU1\t11/11/2019 9:00:00 AM\tN1", r"behaviors.tsv:2: expected 5 tab-separated columns"),
        ("1\tU1\t2019-11-11 09:00\tN1\tN2-1", r"behaviors.tsv:2: time '2019-11-11 09:00'"),
        ("1\tU1\t11/11/2019 9:00:00 AM\tN1\tN2-1 N3", r"behaviors.tsv:2: impression 'N3'.*not a mix"),
        ("1\t\t11/11/2019 9:00:00 AM\tN1\tN2-1", r"behaviors.tsv:2: empty user id"),
    ],
)
def test_bad_behaviors_lines_name_file_and_line(tmp_path: Path, line: str, match: str) -> None:
    folder = _write(tmp_path / "mind", behaviors=[BEHAVIORS[0], line])
    with pytest.raises(DataFormatError, match=match):
        read_behaviors(folder / "behaviors.tsv")


def test_bad_news_line_and_unlabelled_file(tmp_path: Path) -> None:
    folder = _write(tmp_path / "mind", news=[NEWS[0], "N9\tsports\tonly three"])
    with pytest.raises(DataFormatError, match=r"news.tsv:2: expected at least 6"):
        read_news(folder / "news.tsv")
    folder = _write(tmp_path / "test", behaviors=["1\tU1\t11/11/2019 9:00:00 AM\tN1\tN2 N3"])
    beh = read_behaviors(folder / "behaviors.tsv")
    assert beh.labels is None and beh.candidates == [["N2", "N3"]]
    with pytest.raises(DataValidationError, match="no click labels"):
        build_news_data([read_news(folder / "news.tsv")], beh)


def test_click_reader_gives_raw_interactions(tmp_path: Path) -> None:
    raw = read_mind_clicks(_write(tmp_path / "mind"))
    pairs = {(raw.user_tokens[u], raw.item_tokens[i]) for u, i in zip(raw.user.tolist(), raw.item.tolist())}
    assert ("U1", "N1") in pairs and ("U1", "N3") in pairs and ("U1", "N4") not in pairs  # skipped is no edge
    assert len(pairs) == len(raw)  # de-duplicated (U1's history appears twice)


# ------------------------------------------------------------------ splits and missing articles
def test_time_split_and_drop_policy_counts(tmp_path: Path) -> None:
    data = _build(_write(tmp_path / "mind"))
    meta = data.meta
    assert meta["news_referenced"] == 6 and meta["news_referenced_without_row"] == 1
    assert meta["news_referenced_without_text"] == 1 and meta["references_without_text"] == 5
    assert "N7" not in data.news_tokens and "N6" not in data.news_tokens  # both have no text
    assert (len(data.train), len(data.val), len(data.test)) == (2, 1, 1)
    assert meta["test_dropped_impressions"] == 1 and meta["test_dropped_clicks"] == 2
    assert meta["train_dropped_history_refs"] == 1 and meta["train_dropped_candidates"] == 1
    test = data.test
    tokens = [data.news_tokens[i] for i in test.cand.tolist()]
    assert tokens == ["N4", "N1"] and test.labels.tolist() == [0, 1]
    assert meta["val_days"] == [int(read_behaviors(tmp_path / "mind" / "behaviors.tsv").time[2] // 86400)]


def test_placeholder_and_error_policies(tmp_path: Path) -> None:
    folder = _write(tmp_path / "mind")
    data = _build(folder, missing="placeholder")
    k = data.news_tokens.index("N7")
    assert data.news_text[k] == "N7" and len(data.test) == 2  # nothing dropped
    assert data.news_text[data.news_tokens.index("N3")] == "New vaccine study"  # empty abstract skipped
    with pytest.raises(DataValidationError, match=r"1 referenced articles have no text.*N7"):
        _build(folder, missing="error")


def test_files_split_carves_validation_from_the_training_files_last_day(tmp_path: Path) -> None:
    train = _write(tmp_path / "train", behaviors=BEHAVIORS[:3])
    dev = _write(tmp_path / "dev", behaviors=BEHAVIORS[3:4])
    text = ItemTextConfig(fields=("title",), missing="empty")
    data = build_news_data(
        [read_news(train / "news.tsv"), read_news(dev / "news.tsv")],
        read_behaviors(train / "behaviors.tsv"), read_behaviors(dev / "behaviors.tsv"), text,
    )
    assert data.meta["split"] == "files"
    assert data.train.ids == ["1", "2"] and data.val.ids == ["3"] and data.test.ids == ["4"]
    assert data.news_text[data.news_tokens.index("N7")] == ""
    with pytest.raises(DataValidationError, match="span 1 day"):
        build_news_data([read_news(train / "news.tsv")], read_behaviors(dev / "behaviors.tsv"), read_behaviors(dev / "behaviors.tsv"))


def test_graph_holds_histories_and_training_clicks_only(tmp_path: Path) -> None:
    data = _build(_write(tmp_path / "mind"), missing="placeholder")
    n = data.num_news
    keys = set(data.edge_keys().tolist())
    uid = {u: k for k, u in enumerate(data.user_tokens)}
    nid = {t: k for k, t in enumerate(data.news_tokens)}

    def key(u: str, i: str) -> int:
        return uid[u] * n + nid[i]

    assert key("U1", "N1") in keys and key("U2", "N7") in keys  # histories
    assert key("U1", "N3") in keys and key("U2", "N4") in keys  # training clicks
    assert key("U1", "N5") not in keys  # a validation click
    assert key("U3", "N1") not in keys  # a test click
    graph = data.to_graph()
    assert len(graph.val) == 1 and len(graph.test) == 2  # U1-N5; U3-N1, U3-N7 (U2-N7 is a history edge)


# ------------------------------------------------------------------ sampling and batches
def test_sampling_without_replacement_is_distinct_and_uniform() -> None:
    g = torch.Generator().manual_seed(0)
    counts = torch.tensor([4, 7, 2, 10] * 5000)
    picks = sample_without_replacement(counts, 4, g)
    assert bool((picks >= 0).all()) and bool((picks < counts.unsqueeze(1)).all())
    enough = counts >= 4
    sorted_picks = picks[enough].sort(1).values
    assert bool((sorted_picks[:, 1:] != sorted_picks[:, :-1]).all())  # distinct when possible
    freq = torch.bincount(picks[counts == 10].flatten(), minlength=10).double()
    assert float(freq.std() / freq.mean()) < 0.05  # each of 10 positions about equally often


def test_training_batches_pair_each_click_with_skips_of_its_impression() -> None:
    news, beh = generate_synthetic_news(num_users=60, days=4, new_per_day=30, history_news_per_day=10, seed=1)
    data = build_news_data([news], beh)
    batches = ImpressionTrainBatches(data.train, negatives=4, max_history=5, batch_size=16, seed=3, graph_protocol="none")
    imps = data.train
    seen = 0
    for batch in batches:
        assert batch.candidates.shape[1] == 5 and batch.history.shape[1] <= 5 and batch.fold == -1
        for r in range(len(batch)):
            row = int(batch.rows[r])
            lo, hi = int(imps.cand_ptr[row]), int(imps.cand_ptr[row + 1])
            labels = dict(zip(imps.cand[lo:hi].tolist(), imps.labels[lo:hi].tolist()))
            cands = batch.candidates[r].tolist()
            assert labels[cands[0]] == 1 and all(labels[c] == 0 for c in cands[1:])
            skipped = sum(1 for v in labels.values() if v == 0)
            if skipped >= 4:
                assert len(set(cands[1:])) == 4
            # the history is the impression's last 5 entries
            hist = imps.hist[int(imps.hist_ptr[row]) : int(imps.hist_ptr[row + 1])].tolist()[-5:]
            assert batch.history[r][batch.history_mask[r]].tolist() == hist
            assert int(batch.users[r]) == int(imps.users[row])
            seen += 1
    assert seen == batches.pos_rows.numel() and batches.pos_rows.numel() > 50


def test_time_protocol_fold_graphs_never_contain_their_targets() -> None:
    dm = NewsDataModule(cache_dir="none", synthetic=dict(num_users=80, days=5, new_per_day=30, history_news_per_day=10, seed=2))
    data = dm.load_data()
    batches = dm._batches()
    graphs = dm.fold_graphs()
    assert batches.folds == len(graphs) == len(data.meta["train_days"])
    n = data.num_news
    history = set(data.edge_keys(("train", "val"), ()).tolist())
    for f, graph in enumerate(graphs):
        keys = set((graph.edge_index[0] * n + graph.edge_index[1] - graph.num_users).tolist())
        earlier = set(batches.clicks_before(f, n).tolist())
        assert earlier <= keys
        targets = batches.fold_click_keys(f, n).tolist()
        # A target could be in its graph only if the user had clicked it before (history, earlier day).
        assert all(k not in keys or k in history or k in earlier for k in targets)
        assert sum(k in keys for k in targets) == 0  # the generator never shows a user an article they clicked
    # Every batch is pure in its fold, and a fold is the day of its impressions.
    day = data.train.time // 86400
    for batch in batches:
        assert len(set((day[batch.rows]).tolist())) == 1
    full = dm.train_graph.edge_index.size(1)
    assert graphs[-1].edge_index.size(1) < full and dm.test_graph.edge_index.size(1) > full  # + validation clicks


def test_random_protocol_fold_graphs_drop_their_folds_clicks() -> None:
    dm = NewsDataModule(cache_dir="none", graph_protocol="random", graph_folds=3, synthetic=dict(num_users=80, days=4, seed=2))
    batches = dm._batches()
    graphs = dm.fold_graphs()
    n = dm.num_items
    history = set(dm.load_data().edge_keys(("train", "val"), ()).tolist())
    assert len(graphs) == 3
    for f, graph in enumerate(graphs):
        keys = set((graph.edge_index[0] * n + graph.edge_index[1] - graph.num_users).tolist())
        assert all(k not in keys or k in history for k in batches.fold_click_keys(f, n).tolist())
    assert {b.fold for b in batches} == {0, 1, 2}


def test_eval_batches_hold_whole_impressions() -> None:
    dm = NewsDataModule(cache_dir="none", eval_batch_size=7, synthetic=dict(num_users=50, days=4, candidates=6, seed=4))
    data = dm.load_data()
    total = 0
    for batch in dm.val_dataloader():
        assert batch.candidates.shape == batch.labels.shape == batch.candidate_mask.shape
        assert bool((batch.labels[~batch.candidate_mask] == 0).all())
        total += int(batch.labels.sum())
    assert total == int(data.val.labels.long().sum())
    assert dm.skipped_users("val") == int(data.val.single_class().sum())


# ------------------------------------------------------------------ data module, cache, sources
def test_cache_round_trip_and_key(tmp_path: Path) -> None:
    kwargs = dict(cache_dir=str(tmp_path / "cache"), synthetic=dict(num_users=40, days=4, seed=5))
    first = NewsDataModule(**kwargs).load_data()
    entries = list((tmp_path / "cache").iterdir())
    assert len(entries) == 1 and (entries[0] / "news.pt").is_file()
    again = NewsDataModule(**kwargs).load_data()
    assert again.digest() == first.digest() and again.news_text == first.news_text
    NewsDataModule(**kwargs, text={"fields": ["title"]}).load_data()
    assert len(list((tmp_path / "cache").iterdir())) == 2  # the text config is part of the key


def test_mind_folders_from_the_data_dir(tmp_path: Path) -> None:
    _write(tmp_path / "MINDx_train", behaviors=BEHAVIORS[:3])
    _write(tmp_path / "MINDx_dev", behaviors=BEHAVIORS[3:4])
    dm = NewsDataModule(dataset="mind", data_dir=str(tmp_path), cache_dir="none", train_dir="MINDx_train", test_dir="MINDx_dev")
    data = dm.load_data()
    assert (len(data.train), len(data.val), len(data.test)) == (2, 1, 1)
    assert dm.missing_news_report()["news_referenced_without_row"] == 1
    assert dm.item_texts()[data.news_tokens.index("N1")] == "Team wins the title. A late goal."


def test_missing_mind_small_names_the_release_url(tmp_path: Path) -> None:
    dm = NewsDataModule(dataset="mind-small", data_dir=str(tmp_path), cache_dir="none", download=False)
    with pytest.raises(DatasetNotFoundError, match=rf"{MIND_RELEASE_URL}/MINDsmall_train.zip"):
        dm.load_data()


def test_bad_config_values_are_named() -> None:
    with pytest.raises(ValueError, match="data.dataset"):
        NewsDataModule(dataset="mind-large")
    with pytest.raises(ValueError, match="data.graph_protocol"):
        NewsDataModule(graph_protocol="later")
    with pytest.raises(ValueError, match="data.text.missing"):
        NewsDataModule(text={"missing": "ignore"})
    with pytest.raises(ValueError, match="data.text.colour"):
        NewsDataModule(text={"colour": "red"})


# ------------------------------------------------------------------ generator
def test_generator_is_deterministic_and_round_trips_through_files(tmp_path: Path) -> None:
    a = generate_synthetic_news(num_users=30, days=3, seed=7)
    b = generate_synthetic_news(num_users=30, days=3, seed=7)
    assert a[0].fields == b[0].fields and a[1].candidates == b[1].candidates and a[1].labels == b[1].labels
    news, beh = a
    assert all(sum(labels) >= 1 for labels in beh.labels)  # every impression has a click
    assert bool(np.all(np.diff(beh.time) >= 0))
    folder = write_mind_folder(news, beh, tmp_path / "syn")
    news2, beh2 = read_news(folder / "news.tsv"), read_behaviors(folder / "behaviors.tsv")
    assert news2.ids == news.ids and news2.fields["title"] == news.fields["title"]
    assert beh2.history == beh.history and beh2.candidates == beh.candidates and beh2.labels == beh.labels
    assert np.array_equal(beh2.time, beh.time)


def test_generated_clicks_follow_topic_preferences() -> None:
    news, beh, latent = generate_synthetic_news(num_users=200, days=3, seed=0, return_latents=True)
    topic = {nid: latent["topic"][k] for k, nid in enumerate(news.ids)}
    theta = latent["theta"]
    clicked, skipped = [], []
    for user, cands, labels in zip(beh.users, beh.candidates, beh.labels):
        u = int(user[1:]) - 1
        for c, label in zip(cands, labels):
            (clicked if label else skipped).append(theta[u, topic[c]])
    assert np.mean(clicked) > 2 * np.mean(skipped)


# ------------------------------------------------------------------ the real sample
@pytest.mark.slow
def test_mind_small_sample_end_to_end_counts_articles_without_text() -> None:
    dm = NewsDataModule(dataset="mind-small-sample", data_dir=str(real_data_dir()), cache_dir="none")
    data = dm.load_data()
    report = dm.missing_news_report()
    assert data.meta["news_rows"] == 2000 and data.meta["news_referenced"] == 22592
    assert report["news_referenced_without_row"] == 21754  # ~96%: the sample is poorly aligned
    assert report["missing_text_policy"] == "drop_items"
    assert len(data.train) > 0 and len(data.val) > 0 and len(data.test) > 0
    batch = next(iter(dm.train_dataloader()))
    assert batch.candidates.shape[1] == 5
