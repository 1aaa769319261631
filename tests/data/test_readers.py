"""Readers on tiny hand-written fixtures (exact values) and, marked slow, on the real datasets."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import torch

from graphrec_lab.data.graph import SPLIT_TEST, SPLIT_TRAIN, SPLIT_VAL
from graphrec_lab.data.sources import (
    SOURCES,
    DataFormatError,
    DatasetNotFoundError,
    ensure_files,
    get_source,
    read_lightgcn_text,
    read_movielens_100k,
    read_recbole_atomic,
    recbole_source,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REPO = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("GRAPHREC_DATA_DIR", REPO.parent / "shared" / "datasets"))


def _copy(name: str, tmp_path: Path) -> Path:
    folder = tmp_path / Path(name).name
    shutil.copytree(FIXTURES / name, folder)
    return folder


def _expect_error(call, path: Path, line: int | None) -> str:
    with pytest.raises(DataFormatError) as info:
        call()
    msg = str(info.value)
    prefix = f"{path}:{line}: " if line is not None else f"{path}: "
    assert msg.startswith(prefix), msg
    return msg


# ---------------------------------------------------------------- LightGCN text


def test_lightgcn_text_fixture() -> None:
    raw = read_lightgcn_text(FIXTURES / "lightgcn")
    assert raw.user.tolist() == [0, 0, 0, 1, 1, 0, 1, 2, 2]
    assert raw.item.tolist() == [0, 1, 2, 2, 3, 3, 4, 0, 1]
    assert raw.split.tolist() == [SPLIT_TRAIN] * 5 + [SPLIT_TEST] * 4
    assert raw.user.dtype == raw.item.dtype == torch.int64
    assert raw.num_users == 3  # user 2 has an empty train line but test items
    assert raw.num_items == 6  # item_list.txt declares 6 items although max id is 4


def test_lightgcn_counts_from_ids_without_lists(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("0 1\n3\n")
    (tmp_path / "test.txt").write_text("")
    raw = read_lightgcn_text(tmp_path)
    assert (raw.num_users, raw.num_items, len(raw)) == (4, 2, 1)


@pytest.mark.parametrize(("content", "line"), [("0 1 2\n1 x 3\n", 2), ("0 1\n\n2 -5\n", 3), ("a 1\n", 1)])
def test_lightgcn_bad_token(tmp_path: Path, content: str, line: int) -> None:
    (tmp_path / "train.txt").write_text(content)
    (tmp_path / "test.txt").write_text("0 1\n")
    _expect_error(lambda: read_lightgcn_text(tmp_path), tmp_path / "train.txt", line)


# ---------------------------------------------------------------- MovieLens 100K


def test_movielens_fixture() -> None:
    raw = read_movielens_100k(FIXTURES / "ml100k")
    assert raw.user.tolist() == [0, 1, 2, 0]
    assert raw.item.tolist() == [1, 0, 2, 0]
    assert raw.rating.tolist() == [5.0, 3.0, 1.0, 4.0] and raw.rating.dtype == torch.float32
    assert raw.timestamp.tolist() == [881250949, 891717742, 878887116, 880000000]
    assert raw.timestamp.dtype == torch.int64 and raw.split is None
    assert (raw.num_users, raw.num_items) == (3, 4)  # item 4 has no rating but is in u.info/u.item
    assert raw.item_tokens == ["1", "2", "3", "4"] and raw.user_tokens == ["1", "2", "3"]
    assert raw.item_text == [
        "Toy Story (1995). Genres: Animation, Children's, Comedy",
        "Misérables, Les (1995). Genres: Drama, Musical",  # Latin-1 decoded
        "GoldenEye (1995). Genres: Action, Adventure, Thriller",
        "unknown. Genres: unknown",
    ]
    assert raw.user_text == ["age 24, male, technician", "age 53, female, other", "age 23, male, writer"]


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ("2\t3\t4\n", "columns"),
        ("2\t3\tfour\t881250949\n", "not an integer"),
        ("2\t3\t6\t881250949\n", "outside 1..5"),
        ("2\t3\t0\t881250949\n", "outside 1..5"),
        ("0\t3\t4\t881250949\n", ">= 1"),
    ],
)
def test_movielens_bad_row(tmp_path: Path, row: str, needle: str) -> None:
    folder = _copy("ml100k", tmp_path)
    path = folder / "u.data"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2]) + row + "".join(lines[2:]))
    msg = _expect_error(lambda: read_movielens_100k(folder), path, 3)
    assert needle in msg


def test_movielens_bad_item_line(tmp_path: Path) -> None:
    folder = _copy("ml100k", tmp_path)
    path = folder / "u.item"
    with open(path, "ab") as f:
        f.write("5|Broken Café (1999)|01-Jan-1999\n".encode("latin-1"))
    _expect_error(lambda: read_movielens_100k(folder), path, 5)


# ---------------------------------------------------------------- RecBole atomic


def test_recbole_atomic_fixture() -> None:
    raw = read_recbole_atomic(FIXTURES / "recbole" / "toy")
    assert raw.user_tokens == ["u1", "u2", "u3"]  # u3 only in toy.user
    assert raw.item_tokens == ["iA", "iB", "iC"]  # iC only in toy.item
    assert raw.user.tolist() == [0, 1, 0] and raw.item.tolist() == [0, 1, 1]
    assert raw.rating.tolist() == [4.0, 2.5, 5.0] and raw.timestamp.tolist() == [100, 200, 300]
    assert raw.split is None and (raw.num_users, raw.num_items) == (3, 3)
    assert raw.item_text == ["first movie", "the second movie. drama", "third only in item. comedy romance"]
    assert raw.user_text is None  # toy.user has no token_seq field


def test_recbole_text_fields_and_source(tmp_path: Path) -> None:
    raw = read_recbole_atomic(FIXTURES / "recbole" / "toy", text_fields=("genre", "year"))
    assert raw.item_text == ["1995", "drama. 1999", "comedy romance. 2001"]
    shutil.copytree(FIXTURES / "recbole" / "toy", tmp_path / "toy")
    source = recbole_source("toy")
    assert source.load(tmp_path, download=False).item_tokens == ["iA", "iB", "iC"]
    assert len(source.fingerprint(tmp_path)) == 64


def test_recbole_benchmark_split() -> None:
    raw = read_recbole_atomic(FIXTURES / "recbole" / "bench")
    assert raw.user_tokens == ["0", "1"]
    assert raw.item_tokens == ["6", "8", "9", "7", "5"]  # item_id_list is ignored
    assert raw.user.tolist() == [0, 1, 0, 0, 1]
    assert raw.item.tolist() == [0, 1, 2, 3, 4]
    assert raw.split.tolist() == [SPLIT_TRAIN, SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST, SPLIT_TEST]
    assert raw.rating is None and raw.timestamp is None and raw.item_text is None


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        ("user_id:token\titem_id\n", "no ':type'"),
        ("user_id:token\titem_id:str\n", "unknown type"),
        ("uid:token\titem_id:token\n", "'user_id'"),
    ],
)
def test_recbole_bad_header(tmp_path: Path, header: str, needle: str) -> None:
    (tmp_path / "x.inter").write_text(header + "u\ti\n")
    msg = _expect_error(lambda: read_recbole_atomic(tmp_path, dataset="x"), tmp_path / "x.inter", 1)
    assert needle in msg


@pytest.mark.parametrize(
    ("body", "line"),
    [("u1\ti1\t3\nu2\ti2\n", 3), ("u1\ti1\tgood\n", 2)],
)
def test_recbole_bad_row(tmp_path: Path, body: str, line: int) -> None:
    (tmp_path / "x.inter").write_text("user_id:token\titem_id:token\trating:float\n" + body)
    _expect_error(lambda: read_recbole_atomic(tmp_path, dataset="x"), tmp_path / "x.inter", line)


def test_recbole_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="x.inter"):
        read_recbole_atomic(tmp_path, dataset="x")


# ---------------------------------------------------------------- registry


def test_registry() -> None:
    assert {"gowalla", "ml-100k"} <= set(SOURCES)
    assert get_source("gowalla").reader is read_lightgcn_text
    with pytest.raises(KeyError, match="ml-100k"):
        get_source("no-such-dataset")


# ---------------------------------------------------------------- real data (slow)

needs_data = pytest.mark.skipif(not DATA_DIR.is_dir(), reason=f"no dataset folder at {DATA_DIR}")


@pytest.mark.slow
@needs_data
def test_real_gowalla() -> None:
    start = time.perf_counter()
    raw = get_source("gowalla").load(DATA_DIR, download=False)
    elapsed = time.perf_counter() - start
    assert (raw.num_users, raw.num_items) == (29_858, 40_981)
    assert int((raw.split == SPLIT_TRAIN).sum()) == 810_128
    assert int((raw.split == SPLIT_TEST).sum()) == 217_242
    assert elapsed < 10.0  # ~1 s here, generous for loaded CI machines


@pytest.mark.slow
@needs_data
def test_real_ml100k() -> None:
    raw = get_source("ml-100k").load(DATA_DIR, download=False)
    assert (raw.num_users, raw.num_items, len(raw)) == (943, 1_682, 100_000)
    assert float(raw.rating.min()) == 1.0 and float(raw.rating.max()) == 5.0
    assert "Toy Story" in raw.item_text[0]
    assert all(t is not None for t in raw.item_text) and len(raw.user_text) == 943


@pytest.mark.slow
@needs_data
@pytest.mark.parametrize("name", ["gowalla", "ml-100k"])
def test_real_checksums(name: str) -> None:
    source = get_source(name)
    assert set(source.checksums) == set(source.files)
    assert ensure_files(source, DATA_DIR, download=False) == source.path(DATA_DIR)
    assert source.fingerprint(DATA_DIR) == source.fingerprint(DATA_DIR)
