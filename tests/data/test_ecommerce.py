"""The UniSRec reader, item-text assembly and missing-text policy, and EcommerceDataModule.

Tiny fixture ``tests/fixtures/amazon/Mini.*`` (4 users, 7 items), written by hand in the release's
format. Its sequences (chronological; the last two are the valid and test targets):
    u0: 0 1 2 | 3 | 4       plain
    u1: 2 5 2 | 1 | 5       item 2 bought twice in training; test 5 is a repeat purchase
    u2: 1 3 6 | 0 | 0       test target equal to the valid target
    u3: 4 6 3 6 | 4 | 5     item 6 twice in training; valid 4 is a repeat purchase
Item 6 (B000000007) has no text row; one text row is for an ASIN not in item2index.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import time
from pathlib import Path

import pytest
import torch

from graphrec_lab.data.ecommerce import EcommerceDataModule, ItemTextDataModule, co_purchase_edges
from graphrec_lab.data.graph import SPLIT_TEST, SPLIT_TRAIN, SPLIT_VAL, DataValidationError, EdgeSet
from graphrec_lab.data.sources import (
    SOURCES,
    DataFormatError,
    DatasetNotFoundError,
    ensure_files,
    get_source,
    read_movielens_100k,
    read_unisrec,
    read_unisrec_sequences,
    resolve_source,
    split_unisrec_text,
)
from graphrec_lab.data.sources.unisrec import detect_category_root
from graphrec_lab.data.text import ItemTextConfig, assemble_text, read_text_lines

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
AMAZON = FIXTURES / "amazon"
REPO = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("GRAPHREC_DATA_DIR", REPO.parent / "shared" / "datasets"))

MINI_SEQUENCES = {0: [0, 1, 2, 3, 4], 1: [2, 5, 2, 1, 5], 2: [1, 3, 6, 0, 0], 3: [4, 6, 3, 6, 4, 5]}


def _data_dir(tmp_path: Path) -> Path:
    """A data dir holding the fixture as ``<data_dir>/Mini`` (the ``unisrec:Mini`` layout)."""
    shutil.copytree(AMAZON, tmp_path / "data" / "Mini")
    return tmp_path / "data"


def _module(tmp_path: Path, cls=EcommerceDataModule, **kwargs):
    data_dir = tmp_path / "data" if (tmp_path / "data" / "Mini").is_dir() else _data_dir(tmp_path)
    kwargs.setdefault("cache_dir", str(tmp_path / "cache"))
    return cls(dataset="unisrec:Mini", data_dir=str(data_dir), split="given", **kwargs)


def _expect_error(call, path: Path, line: int | None, exc=DataFormatError) -> str:
    with pytest.raises(exc) as info:
        call()
    msg = str(info.value)
    prefix = f"{path}:{line}: " if line is not None else f"{path}: "
    assert msg.startswith(prefix), msg
    return msg


# ---------------------------------------------------------------- reader on the fixture


def test_reader_fixture_pairs_splits_and_repeats(caplog) -> None:
    stats: dict = {}
    with caplog.at_level(logging.WARNING):
        raw = read_unisrec(AMAZON, dataset="Mini", stats=stats)
    assert (raw.num_users, raw.num_items) == (4, 7)
    # One row per distinct (user, item): training items in first-purchase order, then valid, test.
    assert raw.user.tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
    assert raw.item.tolist() == [0, 1, 2, 3, 4, 2, 5, 1, 1, 3, 6, 0, 4, 6, 3, 5]
    T, V, X = SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST
    assert raw.split.tolist() == [T, T, T, V, X, T, T, V, T, T, T, V, T, T, T, X]
    assert stats["sequence_interactions"] == 21  # the release's interaction count (repeats included)
    assert stats["train_repeat_interactions"] == 2
    assert stats["val_repeats_dropped"] == 1  # u3's valid 4
    assert stats["test_repeats_dropped"] == 1  # u1's test 5
    assert stats["test_equal_to_val_dropped"] == 1  # u2's test 0
    assert "1 valid and 1 test targets" in caplog.text
    assert raw.item_tokens == [f"B00000000{i}" for i in range(1, 8)]
    assert raw.user_tokens == ["A1USERXYZ", "A2USERXYZ", "A3USERXYZ", "A4USERXYZ"]
    assert raw.timestamp is None and raw.rating is None


def test_reader_fixture_text_fields() -> None:
    stats: dict = {}
    raw = read_unisrec(AMAZON, dataset="Mini", stats=stats)
    assert raw.item_text == [
        "Acme 4.5 in. x 10 yd. Sanding Roll, 80 Grit. Industrial & Scientific Abrasive & Finishing Products Sanding Rolls. ACME",
        "Gorilla Glue, 8 oz. Industrial & Scientific Tapes, Adhesives & Sealants. Gorilla",
        "Bench Grinder Wheel. Industrial & Scientific Abrasive & Finishing Products. Norton Abrasives - St. Gobain",
        "Exhaust Fan, 24 Diameter. TPI",  # empty category list skipped
        "Safety Glasses, Clear",  # neither category nor brand
        "Lab Beaker 250 mL, 200°C. Industrial & Scientific Lab & Scientific Products Glassware & Labware. Pyrex",
        None,  # no text row
    ]
    assert stats["category_root"] == "Industrial & Scientific"
    assert stats["text_rows_unknown_item"] == 1 and stats["items_without_text_row"] == 1
    assert stats["text_rows_parsed_by_position"] == 0
    brands = read_unisrec(AMAZON, dataset="Mini", text_fields=("brand",)).item_text
    assert brands == ["ACME", "Gorilla", "Norton Abrasives - St. Gobain", "TPI", None, "Pyrex", None]
    templ = read_unisrec(AMAZON, dataset="Mini", text_template="{title} | by {brand}").item_text
    assert templ[0] == "Acme 4.5 in. x 10 yd. Sanding Roll, 80 Grit | by ACME"
    assert templ[4] == "Safety Glasses, Clear | by"  # an empty field formats as ""
    whole = read_unisrec(AMAZON, dataset="Mini", text_fields=("text",)).item_text
    assert whole[3] == "Exhaust Fan, 24 Diameter. . TPI."


@pytest.mark.parametrize(
    ("text", "root", "expected", "anchored"),
    [
        # ". " inside the title and inside the brand: the category anchor decides.
        ("Tape 2 in. x 18 yds. (Red). Industrial & Scientific Safety Tape. J.V. Converting. ",
         "Industrial & Scientific", ("Tape 2 in. x 18 yds. (Red)", "Industrial & Scientific Safety Tape", "J.V. Converting"), True),
        ("Mr. Heater Kit. Industrial & Scientific Fittings. Mr. Heater. ",
         "Industrial & Scientific", ("Mr. Heater Kit", "Industrial & Scientific Fittings", "Mr. Heater"), True),
        # an absent category list is written as ". ."
        ("Eyewear, Clear. . . ", "Industrial & Scientific", ("Eyewear, Clear", "", ""), True),
        ("Fan. . TPI. ", "Industrial & Scientific", ("Fan", "", "TPI"), True),
        # the root must match whole words ("Industrial & Scientifically" is not the root)
        ("A. Industrial & Scientifically Tested. Brand. ", "Industrial & Scientific", ("A", "Industrial & Scientifically Tested", "Brand"), False),
        # no anchor: by position (title = all but the last two segments)
        ("One. Two. Three. Four. ", "Office Products", ("One. Two", "Three", "Four"), False),
        ("Title only. ", "Office Products", ("Title only", "", ""), False),
        ("Title. Brand. ", "", ("Title", "", "Brand"), False),
    ],
)
def test_split_unisrec_text(text, root, expected, anchored) -> None:
    fields, got_anchored = split_unisrec_text(text, root)
    assert (fields["title"], fields["categories"], fields["brand"]) == expected
    assert got_anchored is anchored
    assert fields["text"] == text.strip()


def test_detect_category_root() -> None:
    texts = [f"T{i}. Office Products Office & School Supplies Paper {i}. B. " for i in range(7)]
    texts += ["T. Office Products Furniture. B. ", "T. Office Products Desk Lamps. B. ", "T. Office Products Pens. B. "]
    texts += ["Odd. . B. "]  # an empty category does not vote
    assert detect_category_root(texts) == "Office Products"  # 'Office & School' is only 7 of 10
    assert detect_category_root(texts, share=0.7) == "Office Products Office & School Supplies Paper"
    assert detect_category_root(["A. B. ", "no segments"]) == ""


def test_reader_text_spec_errors() -> None:
    with pytest.raises(ValueError, match=r"data.text.fields: unknown item text field 'colour'.*'brand'"):
        read_unisrec(AMAZON, dataset="Mini", text_fields=("title", "colour"))
    with pytest.raises(ValueError, match=r"data.text.template: unknown item text field 'price'"):
        read_unisrec(AMAZON, dataset="Mini", text_template="{title} {price}")
    with pytest.raises(ValueError, match="named fields"):
        read_unisrec(AMAZON, dataset="Mini", text_template="{} and {}")


# ---------------------------------------------------------------- format errors (file:line)


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "Mini"
    shutil.copytree(AMAZON, folder)
    return folder


def _edit(path: Path, line: int, new: str) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[line - 1] = new
    path.write_text("\n".join(lines), encoding="utf-8")


def test_rows_that_are_not_prefixes_are_rejected(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    path = folder / "Mini.train.inter"
    _edit(path, 8, "3\t4 5\t3")  # the history of u3's second row no longer matches its sequence
    msg = _expect_error(lambda: read_unisrec(folder, dataset="Mini"), path, 8)
    assert "does not match" in msg
    folder = _copy(tmp_path / "b")
    path = folder / "Mini.train.inter"
    lines = path.read_text().split("\n")
    lines[7], lines[9] = lines[9], lines[7]  # u3's rows in ascending instead of descending order
    path.write_text("\n".join(lines))
    msg = _expect_error(lambda: read_unisrec(folder, dataset="Mini"), path, 10)
    assert "one-item history" in msg
    folder = _copy(tmp_path / "c")
    path = folder / "Mini.test.inter"
    _edit(path, 3, "1\t2 5 4 1\t5")
    _expect_error(lambda: read_unisrec(folder, dataset="Mini"), path, 3)


@pytest.mark.parametrize(
    ("name", "line", "content", "needle"),
    [
        ("Mini.train.inter", 1, "user_id:token\titem_id:token", "header"),
        ("Mini.train.inter", 3, "0\t0\tx", "integer"),
        ("Mini.train.inter", 3, "0\t0", "3 tab-separated columns"),
        ("Mini.valid.inter", 2, "0\t0 1 2\t7", "out of range [0, 7)"),
        ("Mini.valid.inter", 3, "9\t2 5 2\t1", "user index 9"),
        ("Mini.item2index", 3, "B000000003\tthree", "not an integer"),
        ("Mini.item2index", 4, "B000000003\t3", "appears twice"),
        ("Mini.text", 1, "asin:token\ttext:token_seq", "header"),
        ("Mini.text", 4, "B000000002 no tab here", "item_id<TAB>text"),
    ],
)
def test_format_errors_name_file_and_line(tmp_path: Path, name: str, line: int, content: str, needle: str) -> None:
    folder = _copy(tmp_path)
    _edit(folder / name, line, content)
    msg = _expect_error(lambda: read_unisrec(folder, dataset="Mini"), folder / name, line)
    assert needle in msg


def test_second_valid_row_for_a_user(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    with open(folder / "Mini.valid.inter", "a") as f:
        f.write("0\t0 1 2\t3\n")
    msg = _expect_error(lambda: read_unisrec(folder, dataset="Mini"), folder / "Mini.valid.inter", 6)
    assert "more than one valid row" in msg


def test_index_gap_is_rejected(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    _edit(folder / "Mini.item2index", 7, "B000000007\t9")
    msg = _expect_error(lambda: read_unisrec(folder, dataset="Mini"), folder / "Mini.item2index", None)
    assert "not 0..6" in msg


def test_non_utf8_text_error_and_replace(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    path = folder / "Mini.text"
    with open(path, "ab") as f:
        f.write(b"B000000007\tCaf\xe9 Thermometer. Industrial & Scientific Test. Acme. \n")
    msg = _expect_error(lambda: read_unisrec(folder, dataset="Mini"), path, 9)
    assert "not valid utf-8" in msg and "decode_errors=replace" in msg and "column 15" in msg
    stats: dict = {}
    raw = read_unisrec(folder, dataset="Mini", decode_errors="replace", stats=stats)
    assert stats["text_lines_replaced"] == 1
    assert raw.item_text[6] == "Caf\ufffd Thermometer. Industrial & Scientific Test. Acme"
    lines, replaced = read_text_lines(path, errors="replace")
    assert replaced == 1 and len(lines) == 9


def test_read_text_lines_splits_only_on_newlines(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes("a\u2028b\r\nc\n".encode())
    assert read_text_lines(path) == (["a\u2028b", "c"], 0)


def test_missing_files_offline(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"Mini.train.inter.*drive.google.com"):
        read_unisrec(tmp_path, dataset="Mini")
    source = resolve_source("unisrec:Office")
    assert source.dirname == "Office" and "Office.text" in source.files
    with pytest.raises(DatasetNotFoundError, match=r"Office.train.inter.*no automatic download"):
        source.load(tmp_path, download=True)
    with pytest.raises(DatasetNotFoundError, match=r"Scientific.text.*amazon-scientific"):
        get_source("amazon-scientific").load(tmp_path, download=True)


def test_registered_source_checks_checksums(tmp_path: Path) -> None:
    source = SOURCES["amazon-scientific"]
    assert set(source.checksums) == set(source.files) and len(source.files) == 6
    folder = tmp_path / "amazon-scientific"
    shutil.copytree(AMAZON, folder)
    for p in folder.iterdir():
        p.rename(folder / p.name.replace("Mini", "Scientific"))
    with pytest.raises(DataFormatError, match="sha256 mismatch"):
        source.load(tmp_path, download=False)


# ---------------------------------------------------------------- generated releases (round trip)


def write_release(folder: Path, prefix: str, sequences: dict[int, list[int]], num_items: int, max_len: int = 50) -> None:
    """Files as UniSRec's ``convert_to_atomic_files`` writes them (train rows longest prefix first)."""
    folder.mkdir(parents=True, exist_ok=True)
    hdr = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    train, valid, test = [hdr], [hdr], [hdr]
    for uid in sorted(sequences):
        seq = sequences[uid]
        t = seq[:-2]
        for target_idx in range(1, len(t)):
            hist = t[:-target_idx][-max_len:]
            train.append(f"{uid}\t{' '.join(map(str, hist))}\t{t[-target_idx]}\n")
        valid.append(f"{uid}\t{' '.join(map(str, t[-max_len:]))}\t{seq[-2]}\n")
        test.append(f"{uid}\t{' '.join(map(str, (t + [seq[-2]])[-max_len:]))}\t{seq[-1]}\n")
    for name, rows in (("train", train), ("valid", valid), ("test", test)):
        (folder / f"{prefix}.{name}.inter").write_text("".join(rows))
    (folder / f"{prefix}.item2index").write_text("".join(f"I{i:05d}\t{i}\n" for i in range(num_items)))
    (folder / f"{prefix}.user2index").write_text("".join(f"U{u}\t{u}\n" for u in sorted(sequences)))
    (folder / f"{prefix}.text").write_text(
        "item_id:token\ttext:token_seq\n" + "".join(f"I{i:05d}\tItem {i}. Root Cat {i % 3}. Brand {i % 5}. \n" for i in range(num_items))
    )


def test_round_trip_of_generated_release_with_long_histories(tmp_path: Path) -> None:
    rng = random.Random(0)
    num_items = 40
    # Lengths around the 50-item history cap, a 3-item user (its training item is only in histories),
    # and repeats everywhere.
    lengths = [3, 4, 5, 51, 52, 53, 60, 120] + [rng.randint(3, 30) for _ in range(20)]
    sequences = {u: [rng.randrange(num_items) for _ in range(n)] for u, n in enumerate(lengths)}
    write_release(tmp_path / "Gen", "Gen", sequences, num_items)
    got = read_unisrec_sequences(tmp_path / "Gen", dataset="Gen")
    assert got == {u: (s[:-2], s[-2], s[-1]) for u, s in sequences.items()}
    stats: dict = {}
    raw = read_unisrec(tmp_path / "Gen", dataset="Gen", stats=stats)
    assert stats["sequence_interactions"] == sum(lengths)
    # Brute force: distinct training items, held-out targets only when new to the user.
    expected = set()
    for u, s in sequences.items():
        train = set(s[:-2])
        expected |= {(u, i, SPLIT_TRAIN) for i in train}
        if s[-2] not in train:
            expected.add((u, s[-2], SPLIT_VAL))
        if s[-1] not in train and s[-1] != s[-2]:
            expected.add((u, s[-1], SPLIT_TEST))
    got_rows = set(zip(raw.user.tolist(), raw.item.tolist(), raw.split.tolist()))
    assert got_rows == expected and len(raw) == len(expected)
    assert stats["text_rows_parsed_by_position"] == 0 and stats["category_root"] == "Root Cat"


# ---------------------------------------------------------------- text assembly and policy


def test_assemble_text() -> None:
    record = {"title": "T", "brand": " B ", "categories": ""}
    assert assemble_text(record, ["title", "categories", "brand"]) == "T. B"
    assert assemble_text(record, ["categories"]) is None
    assert assemble_text(record, [], template="{brand}: {title}") == "B: T"
    assert assemble_text(record, [], template="[{categories}]") is None  # every field used is empty
    assert assemble_text(None, ["title"]) is None


def test_item_text_config_validation() -> None:
    with pytest.raises(ValueError, match="data.text.missing"):
        ItemTextConfig(missing="skip")
    with pytest.raises(ValueError, match="data.text.decode_errors"):
        ItemTextConfig(decode_errors="ignore")
    with pytest.raises(ValueError, match="data.text.placeholder"):
        ItemTextConfig(placeholder="{asin}")
    with pytest.raises(ValueError, match="data.text.fields is empty"):
        ItemTextConfig(fields=())


def test_datamodule_missing_text_empty_and_meta(tmp_path: Path, caplog) -> None:
    dm = _module(tmp_path)
    with caplog.at_level(logging.WARNING):
        graph = dm.load_graph()
    assert "1 of 7 items have no text" in caplog.text and "B000000007" in caplog.text
    texts = dm.item_texts()
    assert len(texts) == 7 and texts[6] == "" and texts[1].startswith("Gorilla Glue")
    assert graph.meta["items_without_text"] == 1 and graph.meta["missing_text_policy"] == "empty"
    assert graph.meta["reader/val_repeats_dropped"] == 1 and graph.meta["reader/test_repeats_dropped"] == 1
    # split=given keeps the files' split exactly (repeat purchases dropped from val/test)
    assert (len(graph.train), len(graph.val), len(graph.test)) == (11, 3, 2)
    assert sorted(zip(graph.val.users.tolist(), graph.val.items.tolist())) == [(0, 3), (1, 1), (2, 0)]
    assert sorted(zip(graph.test.users.tolist(), graph.test.items.tolist())) == [(0, 4), (3, 5)]
    assert dm.skipped_users("val") == 1 and dm.skipped_users("test") == 2


def test_datamodule_placeholder_error_and_drop(tmp_path: Path) -> None:
    dm = _module(tmp_path, text={"missing": "placeholder", "placeholder": "item {token} ({index})"})
    assert dm.item_texts()[6] == "item B000000007 (6)"
    with pytest.raises(DataValidationError, match=r"1 of 7 items have no text \(first: B000000007\)"):
        _module(tmp_path, text={"missing": "error"}, cache_dir="none").load_graph()
    dm = _module(tmp_path, text={"missing": "drop_items"})
    graph = dm.load_graph()
    assert graph.num_items == 6 and "B000000007" not in graph.item_tokens
    assert graph.meta["dropped_items"] == 1 and graph.meta["dropped_interactions"] == 2  # u2 and u3 bought it
    assert all(t for t in dm.item_texts())
    assert len(graph.train) == 9 and graph.item_tokens[:6] == [f"B00000000{i}" for i in range(1, 7)]


def test_datamodule_text_config_changes_cache_key(tmp_path: Path) -> None:
    a = _module(tmp_path, text={"fields": ["title"]})
    b = _module(tmp_path, text={"fields": ["brand", "title"], "separator": " - "})
    assert a._cache_parts() != b._cache_parts()
    assert a.item_texts()[1] == "Gorilla Glue, 8 oz"
    assert b.item_texts()[1] == "Gorilla - Gorilla Glue, 8 oz"
    c = _module(tmp_path, text={"fields": ["brand", "title"], "separator": " - "})  # from the cache
    assert c.item_texts() == b.item_texts()
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_datamodule_rejects_bad_text_keys(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown config key 'data.text.feilds'"):
        _module(tmp_path, text={"feilds": ["title"]})
    dm = ItemTextDataModule(dataset="synthetic", cache_dir="none", text={"fields": ["title"]})
    with pytest.raises(ValueError, match="synthetic"):
        dm.load_graph()


def test_synthetic_text_datamodule() -> None:
    dm = ItemTextDataModule(dataset="synthetic", cache_dir="none", synthetic={"num_users": 30, "num_items": 40, "interactions_per_user": 5})
    texts = dm.item_texts()
    assert len(texts) == dm.num_items and all(isinstance(t, str) and t for t in texts)
    assert dm.load_graph().meta["items_without_text"] == 0


def test_movielens_text_fields() -> None:
    raw = read_movielens_100k(FIXTURES / "ml100k", text_fields=("name", "year", "genres"))
    assert raw.item_text[0] == "Toy Story. 1995. Animation, Children's, Comedy"
    assert raw.item_text[1] == "Misérables, Les. 1995. Drama, Musical"  # Latin-1 decoded
    raw = read_movielens_100k(FIXTURES / "ml100k", text_template="{name} ({year}): {genres}")
    assert raw.item_text[2] == "GoldenEye (1995): Action, Adventure, Thriller"
    assert raw.item_text[3] == "unknown (): unknown"  # the real file's item 267: no date, no year
    raw = read_movielens_100k(FIXTURES / "ml100k", text_fields=("release_date",))
    assert raw.item_text == ["01-Jan-1995", "01-Jan-1995", "01-Jan-1995", None]
    with pytest.raises(ValueError, match="unknown item text field 'plot'"):
        read_movielens_100k(FIXTURES / "ml100k", text_fields=("plot",))


# ---------------------------------------------------------------- co-purchase edges


def _brute_co_purchase(graph, min_count: int, window: int | None) -> dict[tuple[int, int], int]:
    """Per user, the training items in time order (edge order breaks ties), every pair within window."""
    ts = graph.train.timestamps.tolist() if graph.train.timestamps is not None else [0] * len(graph.train)
    rows: dict[int, list[tuple[int, int, int]]] = {}
    for k, (u, i, t) in enumerate(zip(graph.train.users.tolist(), graph.train.items.tolist(), ts)):
        rows.setdefault(u, []).append((t, k, i))
    per_user = {u: [i for _, _, i in sorted(r)] for u, r in rows.items()}
    votes: dict[tuple[int, int], int] = {}
    for u, items in per_user.items():
        pairs = set()
        for a in range(len(items)):
            for b in range(len(items)):
                if items[a] != items[b] and (window is None or abs(a - b) <= window):
                    pairs.add((items[a], items[b]))
        for p in pairs:
            votes[p] = votes.get(p, 0) + 1
    return {p: c for p, c in votes.items() if c >= min_count}


@pytest.mark.parametrize(("min_count", "window"), [(1, None), (2, None), (1, 1), (1, 2), (2, 3)])
def test_co_purchase_matches_brute_force(tmp_path: Path, min_count: int, window: int | None) -> None:
    from graphrec_lab.data.datamodule import InteractionDataModule

    graph = InteractionDataModule(
        dataset="synthetic", cache_dir="none", synthetic={"num_users": 60, "num_items": 30, "interactions_per_user": 6}
    ).load_graph()
    edges, counts = co_purchase_edges(graph, min_count=min_count, window=window)
    got = {(a, b): c for (a, b), c in zip(edges.t().tolist(), counts.tolist())}
    assert got == _brute_co_purchase(graph, min_count, window)
    assert edges.shape[0] == 2 and bool((edges[0] != edges[1]).all())
    keys = edges[0] * graph.num_items + edges[1]
    assert bool((keys[1:] > keys[:-1]).all())  # sorted, no duplicates


def test_co_purchase_ignores_held_out_edges(tmp_path: Path) -> None:
    dm = _module(tmp_path, co_purchase_min_count=1)
    graph = dm.load_graph()
    edges = dm.co_purchase_edges()
    pairs = set(map(tuple, edges.t().tolist()))
    # u0 trains on 0,1,2; its valid 3 and test 4 must not create edges with them.
    assert (0, 1) in pairs and (2, 0) in pairs
    assert not ({(0, 3), (3, 0), (0, 4), (2, 4)} & pairs)
    # Changing validation/test cannot change the edges.
    graph.val = EdgeSet(graph.val.users, torch.zeros_like(graph.val.items))
    graph.test = EdgeSet(graph.test.users, torch.ones_like(graph.test.items))
    assert torch.equal(co_purchase_edges(graph)[0], edges)
    # the window follows purchase order: u3 bought 4, 6, 3 -> (4, 3) are two apart
    near = set(map(tuple, dm.co_purchase_edges(window=1).t().tolist()))
    assert (4, 6) in near and (6, 3) in near and (4, 3) not in near
    e, c = dm.co_purchase_edges(min_count=2, return_counts=True)
    assert e.t().tolist() == [[3, 6], [6, 3]] and c.tolist() == [2, 2]  # u2 and u3 bought both


def test_co_purchase_bad_args(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="data.co_purchase_min_count=0"):
        _module(tmp_path, co_purchase_min_count=0)
    with pytest.raises(ValueError, match="window=0"):
        _module(tmp_path).co_purchase_edges(window=0)


# ---------------------------------------------------------------- config


def test_amazon_config_composes_and_builds(tmp_path: Path) -> None:
    from hydra.utils import instantiate

    from graphrec_lab.config import compose, validate_config

    data_dir = _data_dir(tmp_path)
    cfg = compose(["data=amazon_scientific", "data.dataset=unisrec:Mini", f"data.data_dir={data_dir}", "data.cache_dir=none"])
    validate_config(cfg)
    assert cfg.data.split == "given" and list(cfg.data.text.fields) == ["title", "categories", "brand"]
    dm = instantiate(cfg.data, _convert_="all")
    assert isinstance(dm, EcommerceDataModule)
    assert len(dm.item_texts()) == 7 and dm.load_graph().meta["reader/sequence_interactions"] == 21
    cfg = compose(["data=ml100k_text"])
    validate_config(cfg)
    assert cfg.data._target_.endswith("ItemTextDataModule")


# ---------------------------------------------------------------- real data (slow)

needs_data = pytest.mark.skipif(not (DATA_DIR / "amazon-scientific").is_dir(), reason=f"no amazon-scientific in {DATA_DIR}")


@pytest.mark.slow
@needs_data
def test_real_amazon_scientific() -> None:
    source = get_source("amazon-scientific")
    assert ensure_files(source, DATA_DIR, download=False) == source.path(DATA_DIR)  # checksums verified
    stats: dict = {}
    start = time.perf_counter()
    raw = source.load(DATA_DIR, download=False, stats=stats)
    elapsed = time.perf_counter() - start
    assert (raw.num_users, raw.num_items) == (8_442, 4_385)
    # The release's 59,427 interactions count repeats; distinct (user, item) pairs are fewer.
    assert stats["sequence_interactions"] == 59_427
    assert stats["train_repeat_interactions"] == 187
    assert (stats["val_repeats_dropped"], stats["test_repeats_dropped"], stats["test_equal_to_val_dropped"]) == (54, 37, 13)
    assert len(raw) == 59_427 - 187 - 54 - 37 - 13 == 59_136
    counts = [int((raw.split == s).sum()) for s in (SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST)]
    assert counts == [42_356, 8_388, 8_392]
    assert stats["category_root"] == "Industrial & Scientific"
    assert stats["text_rows_parsed_by_position"] == 0 and stats["items_without_text_row"] == 0
    assert all(t for t in raw.item_text)
    assert raw.item_tokens[0] == "B00TNNWMXI"
    assert elapsed < 20.0  # ~1.5 s here


@pytest.mark.slow
@needs_data
def test_real_amazon_datamodule(tmp_path: Path) -> None:
    dm = EcommerceDataModule(dataset="amazon-scientific", data_dir=str(DATA_DIR), cache_dir=str(tmp_path), download=False)
    graph = dm.load_graph()
    assert (graph.num_users, graph.num_items) == (8_442, 4_385)
    assert (len(graph.train), len(graph.val), len(graph.test)) == (42_356, 8_388, 8_392)
    assert graph.meta["items_without_text"] == 0
    texts = dm.item_texts()
    assert len(texts) == 4_385 and texts[0].startswith("eSUN Bronze filament")
    edges, counts = dm.co_purchase_edges(return_counts=True)
    assert edges.size(1) > 0 and edges.size(1) % 2 == 0 and int(counts.min()) >= 1
    users = dm.eval_users("test")
    assert len(users) == 8_392


@pytest.mark.slow
@pytest.mark.skipif(not (DATA_DIR / "ml-100k").is_dir(), reason=f"no ml-100k in {DATA_DIR}")
def test_real_ml100k_text(tmp_path: Path) -> None:
    dm = ItemTextDataModule(dataset="ml-100k", data_dir=str(DATA_DIR), cache_dir=str(tmp_path), download=False,
                            text={"template": "{name} ({year}). {genres}"})
    texts = dm.item_texts()
    assert len(texts) == 1_682
    assert texts[0] == "Toy Story (1995). Animation, Children's, Comedy"
    assert dm.load_graph().meta["items_without_text"] == 0


def test_co_purchase_edges_join_the_propagation_graph() -> None:
    from graphrec_lab.data.ecommerce import EcommerceDataModule
    from graphrec_lab.models.gnn import LightGCN

    kw = {"dataset": "synthetic", "split": "ratio", "cache_dir": "none",
          "synthetic": {"num_users": 40, "num_items": 30, "interactions_per_user": 6}}  # fmt: skip
    plain = EcommerceDataModule(**kw)
    joined = EcommerceDataModule(**kw, join_co_purchase=True)
    pairs = joined.co_purchase_edges()
    n_ui = plain.train_graph.edge_index.shape[1]
    assert joined.train_graph.edge_index.shape[1] == n_ui + pairs.shape[1]  # both directions, each pair once
    assert torch.equal(joined.train_graph.edge_index[:, :n_ui], plain.train_graph.edge_index)
    adj = joined.train_graph.norm_adj.to_dense()
    torch.testing.assert_close(adj, adj.T)
    assert float(adj[40 + pairs[0, 0], 40 + pairs[1, 0]]) > 0  # an item-item entry
    users, items = LightGCN(40, 30, 8, 2)(joined.train_graph)
    assert users.shape == (40, 8) and items.shape == (30, 8)
    with pytest.raises(ValueError, match="join_co_purchase and data.isolated_self_loops"):
        EcommerceDataModule(**kw, join_co_purchase=True, isolated_self_loops=True)
    with pytest.raises(ValueError, match="join_co_purchase and data.edge_weight"):
        EcommerceDataModule(**kw, join_co_purchase=True, edge_weight="rating")
