"""Readers for social recommendation datasets: user-item interactions plus user-user ties.

Every reader returns ``RawInteractions`` whose ``social_edges`` [2, S] are the file's directed ties
(``edges[0] -> edges[1]``, as written, self-loops and duplicates included: cleaning, symmetrising and
filtering are ``data.social.build_social_graph``'s job, configured per run). ``num_users`` counts every
user of either file, so a user who only appears in the social file is still a user here; whether it
is kept is a preprocessing choice (``data.social_only_users``).

Three formats:

- ``read_lastfm_lightgcn``: the LastFM split shipped with LightGCN-PyTorch and SocialLGN
  (``data1.txt`` train, ``test1.txt`` test: ``user<TAB>item<TAB>weight`` where weight is the listening
  count, sometimes written in exponent notation, ``3.2466e+05``; ``trustnetwork.txt``:
  ``user<TAB>user``). Ids are **1-based** (1..1892 users, 1..4489 items; LightGCN-PyTorch subtracts 1),
  so an id 0 is an error naming file and line. Dense id = raw id - 1; ids missing from every file
  still count (the id space is the published one).
- ``read_hetrec_lastfm``: the raw HetRec 2011 ``hetrec2011-lastfm-2k`` files (header rows, CRLF):
  ``user_artists.dat`` (userID, artistID, weight), ``user_friends.dat`` (userID, friendID),
  ``artists.dat`` (id, name, url, pictureURL: the name becomes the item text). Users and artists are
  renumbered densely in increasing raw-id order; ``user_tokens``/``item_tokens`` keep the raw ids.
  ``drop_users`` (default ``(1,)``) removes users from both files: the copy in ``$GRAPHREC_DATA_DIR``
  carries a foreign user ``1`` (10 listening rows, one friend row; the original ids are 2..2100).
  Text files are read as UTF-8 and fall back to Latin-1 (HetRec's ``tags.dat`` is Latin-1; the
  tag-assignment files are missing from that copy, so tags are not read at all).
- ``read_diffnet``: DiffNet's release format (Wu et al., SIGIR 2019), any dataset released in it
  (``yelp``, ``flickr``): ``<prefix>.train.rating`` / ``<prefix>.val.rating`` /
  ``<prefix>.test.rating`` (``user<TAB>item[<TAB>rating]``) give the split, ``<prefix>.links``
  (``user<TAB>user[<TAB>weight]``) the directed ties; ids are 0-based and already dense. The id space
  is the largest id + 1 over all files: Yelp's item ids go up to 38,341 but only 37,378 occur, and the
  preprocessing (``compact_ids``) renumbers the items that occur, so processed Yelp has 37,378 items
  (items never interacted with could only add untrained scores to the ranking).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import torch

from graphrec_lab.data.errors import format_error
from graphrec_lab.data.graph import SPLIT_TEST, SPLIT_TRAIN, SPLIT_VAL, RawInteractions
from graphrec_lab.data.sources.base import DatasetSource

log = logging.getLogger(__name__)

LIGHTGCN_LASTFM_RAW = "https://raw.githubusercontent.com/gusye1234/LightGCN-PyTorch/master/data/lastfm"
LIGHTGCN_LASTFM_URL = "https://github.com/gusye1234/LightGCN-PyTorch/tree/master/data/lastfm"
HETREC_LASTFM_URL = "https://files.grouplens.org/datasets/hetrec2011/hetrec2011-lastfm-2k.zip"
# DiffNet's README: "Download the yelp data from this link" (a Google Drive folder, no per-file URLs).
DIFFNET_URL = "https://drive.google.com/drive/folders/1hIkRDIVI87CUM4xFGjHMeipOlPz97ThX"

LASTFM_FILES = ("data1.txt", "test1.txt", "trustnetwork.txt")
HETREC_FILES = ("user_artists.dat", "user_friends.dat", "artists.dat")
DIFFNET_SPLITS = (("train", SPLIT_TRAIN), ("val", SPLIT_VAL), ("test", SPLIT_TEST))


# ----------------------------------------------------------------------------------------- parsing


def _decode(path: Path, encodings: tuple[str, ...] = ("utf-8",)) -> tuple[str, str]:
    """The file's text and the encoding that decoded it (the first of ``encodings`` that works)."""
    data = path.read_bytes()
    for i, enc in enumerate(encodings):
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError as exc:
            if i == len(encodings) - 1:
                line = data.count(b"\n", 0, exc.start) + 1
                raise format_error(path, line, f"not valid {enc} ({exc.reason})") from None
    raise AssertionError("unreachable")


def read_columns(
    path: str | Path,
    names: tuple[str, ...],
    kinds: tuple[str, ...],
    min_cols: int | None = None,
    header: tuple[str, ...] | None = None,
    sep: str | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Parse a delimited numeric table into columns, checking every line.

    ``names``/``kinds``: the columns in order; a kind is ``"id"`` (non-negative int64) or ``"float"``.
    ``min_cols``: lines may omit trailing columns down to this many (missing floats read as NaN).
    ``header``: the expected first row (compared case-insensitively), or None for no header.
    ``sep``: the delimiter (None: any whitespace). Blank lines are skipped; ``\\r\\n`` and ``\\n`` both
    end a line. Returns ``({name: [R] array}, linenos [R])`` (1-based file lines). A wrong column count,
    a non-number or a negative id raises ``DataFormatError`` with ``path:line``.
    """
    path = Path(path)
    text, _ = _decode(path)
    lines = text.split("\n")
    min_cols = len(names) if min_cols is None else min_cols
    start = 0
    if header is not None:
        first = lines[0].strip().split(sep) if lines else []
        if [c.strip().lower() for c in first] != [h.lower() for h in header]:
            raise format_error(path, 1, f"expected the header {' '.join(header)!r}, got {lines[0].strip()[:80]!r}" if lines else "empty file")
        start = 1
    rows: list[list[str]] = []
    linenos: list[int] = []
    for lineno, line in enumerate(lines[start:], start=start + 1):
        parts = line.strip().split(sep)
        if not parts or parts == [""]:
            continue
        if not min_cols <= len(parts) <= len(names):
            want = f"{len(names)}" if min_cols == len(names) else f"{min_cols} to {len(names)}"
            raise format_error(path, lineno, f"expected {want} columns ({', '.join(names)}), got {len(parts)}")
        rows.append(parts + ["nan"] * (len(names) - len(parts)))
        linenos.append(lineno)
    cols: dict[str, np.ndarray] = {}
    for k, (name, kind) in enumerate(zip(names, kinds)):
        cells = [r[k] for r in rows]
        try:
            if kind == "id":
                values = np.array(cells, dtype=np.int64) if cells else np.zeros(0, dtype=np.int64)
                if values.size and values.min() < 0:
                    raise ValueError
            else:
                values = np.array(cells, dtype=np.float64) if cells else np.zeros(0, dtype=np.float64)
        except (ValueError, OverflowError):
            _raise_bad_cell(path, name, kind, cells, linenos, optional=k >= min_cols)
            raise
        cols[name] = values
    return cols, np.asarray(linenos, dtype=np.int64)


def _raise_bad_cell(path: Path, name: str, kind: str, cells: list[str], linenos: list[int], optional: bool) -> None:
    for cell, lineno in zip(cells, linenos):
        if kind == "id":
            try:
                value = int(cell)
            except ValueError:
                raise format_error(path, lineno, f"{name} {cell!r} is not an integer id") from None
            if value < 0:
                raise format_error(path, lineno, f"{name} {value} is negative")
        else:
            try:
                float(cell)
            except ValueError:
                raise format_error(path, lineno, f"{name} {cell!r} is not a number") from None


def _check_base(path: Path, name: str, values: np.ndarray, linenos: np.ndarray, base: int) -> None:
    """Ids of a ``base``-based file must be >= base; name the first line that breaks it."""
    bad = np.flatnonzero(values < base)
    if bad.size:
        k = int(bad[0])
        raise format_error(
            path, int(linenos[k]),
            f"{name} {int(values[k])} is below {base}: this file has {base}-based ids (set reader.id_base "
            f"if your copy is {1 - base}-based)",
        )


# ------------------------------------------------------------------------- LightGCN / SocialLGN LastFM


def read_lastfm_lightgcn(
    folder: str | Path,
    train_file: str = "data1.txt",
    test_file: str = "test1.txt",
    trust_file: str = "trustnetwork.txt",
    id_base: int = 1,
    stats: dict | None = None,
) -> RawInteractions:
    """Read the LightGCN-PyTorch / SocialLGN LastFM folder (see the module docstring).

    Returns train rows as ``SPLIT_TRAIN`` and test rows as ``SPLIT_TEST`` (``data.split=given`` keeps
    them; validation is carved out of train), ``rating`` = listening count, ``social_edges`` = the trust
    rows. ``stats`` (optional) receives counts.
    """
    if id_base not in (0, 1):
        raise ValueError(f"reader.id_base={id_base}: expected 0 or 1")
    folder = Path(folder)
    users, items, weights, splits = [], [], [], []
    for name, split in ((train_file, SPLIT_TRAIN), (test_file, SPLIT_TEST)):
        path = folder / name
        cols, lines = read_columns(path, ("user", "item", "weight"), ("id", "id", "float"), min_cols=2)
        _check_base(path, "user id", cols["user"], lines, id_base)
        _check_base(path, "item id", cols["item"], lines, id_base)
        users.append(cols["user"] - id_base)
        items.append(cols["item"] - id_base)
        weights.append(cols["weight"])
        splits.append(np.full(cols["user"].size, split, dtype=np.int8))
    trust_path = folder / trust_file
    trust, tlines = read_columns(trust_path, ("user", "friend"), ("id", "id"))
    _check_base(trust_path, "user id", trust["user"], tlines, id_base)
    _check_base(trust_path, "friend id", trust["friend"], tlines, id_base)
    social = np.stack([trust["user"], trust["friend"]]) - id_base
    user = np.concatenate(users)
    item = np.concatenate(items)
    num_users = int(max(user.max(initial=-1), social.max(initial=-1))) + 1
    num_items = int(item.max(initial=-1)) + 1
    if stats is not None:
        stats.update(train_rows=int(users[0].size), test_rows=int(users[1].size), trust_rows=int(social.shape[1]))
    return RawInteractions(
        user=torch.from_numpy(user),
        item=torch.from_numpy(item),
        num_users=num_users,
        num_items=num_items,
        rating=torch.from_numpy(np.concatenate(weights)).float(),
        split=torch.from_numpy(np.concatenate(splits)),
        user_tokens=[str(u + id_base) for u in range(num_users)],
        item_tokens=[str(i + id_base) for i in range(num_items)],
        social_edges=torch.from_numpy(social),
        source=f"LightGCN LastFM: {folder / train_file} + {folder / test_file} + {trust_path}",
    )


# ---------------------------------------------------------------------------------- HetRec 2011 LastFM


def read_hetrec_lastfm(
    folder: str | Path,
    drop_users: tuple[int, ...] | list[int] = (1,),
    stats: dict | None = None,
) -> RawInteractions:
    """Read the raw HetRec 2011 ``hetrec2011-lastfm-2k`` files (see the module docstring).

    Interactions carry ``rating`` = listening count (no split: any ``data.split`` but ``given``).
    Items are the artists of ``artists.dat`` plus any artist that only occurs in ``user_artists.dat``
    (text None for those); ``item_text`` = artist name. Users are those of either file, less
    ``drop_users`` (raw ids; their rows are removed from both files and counted in ``stats``).
    """
    folder = Path(folder)
    ua_path, uf_path, ar_path = (folder / f for f in HETREC_FILES)
    ua, ua_lines = read_columns(
        ua_path, ("userID", "artistID", "weight"), ("id", "id", "float"), header=("userID", "artistID", "weight"), sep="\t"
    )
    uf, _ = read_columns(uf_path, ("userID", "friendID"), ("id", "id"), header=("userID", "friendID"), sep="\t")
    artist_ids, names = _read_artists(ar_path)

    drop = np.asarray(sorted(set(int(u) for u in drop_users)), dtype=np.int64)
    keep_rows = ~np.isin(ua["userID"], drop)
    keep_ties = ~(np.isin(uf["userID"], drop) | np.isin(uf["friendID"], drop))
    raw_users = np.unique(np.concatenate([ua["userID"][keep_rows], uf["userID"][keep_ties], uf["friendID"][keep_ties]]))
    raw_items = np.unique(np.concatenate([artist_ids, ua["artistID"]]))
    user = np.searchsorted(raw_users, ua["userID"][keep_rows])
    item = np.searchsorted(raw_items, ua["artistID"][keep_rows])
    social = np.stack([np.searchsorted(raw_users, uf["userID"][keep_ties]), np.searchsorted(raw_users, uf["friendID"][keep_ties])])
    name_of = dict(zip(artist_ids.tolist(), names))
    item_text = [name_of.get(int(a)) for a in raw_items]
    if stats is not None:
        stats.update(
            dropped_users=[int(u) for u in drop if u in set(ua["userID"].tolist()) | set(uf["userID"].tolist()) | set(uf["friendID"].tolist())],
            dropped_interaction_rows=int((~keep_rows).sum()),
            dropped_friend_rows=int((~keep_ties).sum()),
            artists_without_name=int(sum(t is None for t in item_text)),
        )
    if (~keep_rows).any() or (~keep_ties).any():
        log.info(
            "%s: dropped users %s (%d listening rows, %d friend rows)",
            folder, drop.tolist(), int((~keep_rows).sum()), int((~keep_ties).sum()),
        )
    return RawInteractions(
        user=torch.from_numpy(user),
        item=torch.from_numpy(item),
        num_users=int(raw_users.size),
        num_items=int(raw_items.size),
        rating=torch.from_numpy(ua["weight"][keep_rows]).float(),
        user_tokens=[str(u) for u in raw_users.tolist()],
        item_tokens=[str(i) for i in raw_items.tolist()],
        item_text=item_text,
        social_edges=torch.from_numpy(social),
        source=f"HetRec 2011 LastFM: {ua_path} + {uf_path} + {ar_path}",
    )


def _read_artists(path: Path) -> tuple[np.ndarray, list[str | None]]:
    """``artists.dat``: (ids [A], names); UTF-8, else Latin-1 (which decodes any byte)."""
    text, enc = _decode(path, ("utf-8", "latin-1"))
    if enc != "utf-8":
        log.warning("%s is not valid UTF-8; read as %s", path, enc)
    lines = text.split("\n")
    head = lines[0].strip().split("\t") if lines else []
    if [h.lower() for h in head[:2]] != ["id", "name"]:
        raise format_error(path, 1, f"expected the header 'id<TAB>name<TAB>url<TAB>pictureURL', got {lines[0][:80]!r}")
    ids: list[int] = []
    names: list[str | None] = []
    for lineno, line in enumerate(lines[1:], start=2):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        parts = line.split("\t")
        try:
            ids.append(int(parts[0]))
        except ValueError:
            raise format_error(path, lineno, f"artist id {parts[0]!r} is not an integer") from None
        name = parts[1].strip() if len(parts) > 1 else ""
        names.append(name or None)
    return np.asarray(ids, dtype=np.int64), names


# ------------------------------------------------------------------------------------- DiffNet release


def diffnet_files(prefix: str) -> tuple[str, ...]:
    """The four files of one dataset of the DiffNet release."""
    return tuple(f"{prefix}.{part}.rating" for part, _ in DIFFNET_SPLITS) + (f"{prefix}.links",)


def read_diffnet(folder: str | Path, prefix: str = "yelp", stats: dict | None = None) -> RawInteractions:
    """Read one dataset of the DiffNet release (``<prefix>.{train,val,test}.rating`` + ``<prefix>.links``).

    Rows keep their file's split (``data.split=given``); ``rating`` is the third column (1 in the
    release; NaN where absent). Ids are 0-based and taken as they are (see the module docstring).
    """
    folder = Path(folder)
    users, items, ratings, splits = [], [], [], []
    for part, split in DIFFNET_SPLITS:
        path = folder / f"{prefix}.{part}.rating"
        cols, _ = read_columns(path, ("user", "item", "rating"), ("id", "id", "float"), min_cols=2)
        users.append(cols["user"])
        items.append(cols["item"])
        ratings.append(cols["rating"])
        splits.append(np.full(cols["user"].size, split, dtype=np.int8))
    links_path = folder / f"{prefix}.links"
    links, _ = read_columns(links_path, ("user", "friend", "weight"), ("id", "id", "float"), min_cols=2)
    social = np.stack([links["user"], links["friend"]])
    user, item = np.concatenate(users), np.concatenate(items)
    num_users = int(max(user.max(initial=-1), social.max(initial=-1))) + 1
    num_items = int(item.max(initial=-1)) + 1
    if stats is not None:
        stats.update(
            {f"{part}_rows": int(u.size) for (part, _), u in zip(DIFFNET_SPLITS, users)},
            link_rows=int(social.shape[1]),
            declared_items=num_items,
            occurring_items=int(np.unique(item).size),
        )
    return RawInteractions(
        user=torch.from_numpy(user),
        item=torch.from_numpy(item),
        num_users=num_users,
        num_items=num_items,
        rating=torch.from_numpy(np.concatenate(ratings)).float(),
        split=torch.from_numpy(np.concatenate(splits)),
        social_edges=torch.from_numpy(social),
        source=f"DiffNet format: {folder}/{prefix}.*",
    )


def diffnet_source(
    prefix: str, dirname: str | None = None, name: str | None = None, checksums: dict[str, str] | None = None
) -> DatasetSource:
    """A source for one dataset of the DiffNet release: files ``<prefix>.*`` in ``<data_dir>/<dirname>``
    (default ``<prefix>``). The release is a Google Drive folder, so there is no automatic download:
    a missing file raises ``DatasetNotFoundError`` naming the files, the folder and the URL."""
    return DatasetSource(
        name=name or f"diffnet:{prefix}",
        dirname=dirname or prefix,
        files=diffnet_files(prefix),
        url=DIFFNET_URL,
        checksums=dict(checksums or {}),
        downloads=(),
        reader=functools.partial(read_diffnet, prefix=prefix),
    )


__all__ = [
    "DIFFNET_URL",
    "HETREC_LASTFM_URL",
    "LIGHTGCN_LASTFM_URL",
    "diffnet_files",
    "diffnet_source",
    "read_columns",
    "read_diffnet",
    "read_hetrec_lastfm",
    "read_lastfm_lightgcn",
]
