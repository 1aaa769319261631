"""Reader for the raw GroupLens MovieLens-100K files (``u.data``, ``u.item``, ``u.user``, ``u.genre``).

Ids in the files are 1-based and dense; dense id ``k`` is file id ``k + 1``. ``u.item`` is
Latin-1 (titles like "Misérables, Les (1995)"), not UTF-8.

Item text is assembled from named fields of ``u.item`` (``ITEM_TEXT_FIELDS``): ``title`` as in the
file ("Toy Story (1995)"), ``name`` (the title without a trailing "(YYYY)"), ``year`` (of the release
date, else of the title's "(YYYY)"), ``genres`` (the set genre flags, "Animation, Children's,
Comedy"; "" when none is set) and ``release_date`` ("01-Jan-1995"). The default is
``"{title}. Genres: {genres}"``; ``text_fields`` / ``text_template`` choose others.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from graphrec_lab.data.errors import format_error
from graphrec_lab.data.graph import RawInteractions
from graphrec_lab.data.text import assemble_texts

# Genre order of u.genre, used when the file is absent.
DEFAULT_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)  # fmt: skip
_GENDER = {"M": "male", "F": "female"}
ITEM_TEXT_FIELDS = ("title", "name", "year", "genres", "release_date")
DEFAULT_ITEM_TEMPLATE = "{title}. Genres: {genres}"
_TITLE_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")


def _lines(path: Path, encoding: str = "utf-8") -> list[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers (trailing blank lines are common in these files)."""
    text = path.read_text(encoding=encoding)
    return [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _int(path: Path, lineno: int, token: str, what: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise format_error(path, lineno, f"{what} {token!r} is not an integer") from None


def _read_ratings(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``u.data`` -> (user [N] 1-based, item [N] 1-based, rating [N] float32, timestamp [N] int64).

    Parsed by numpy's C ``loadtxt`` (~30 ms); lines are only scanned in Python to locate an error.
    """
    try:
        cols = np.loadtxt(path, dtype=np.int64, delimiter="\t", ndmin=2, comments=None, encoding="utf-8")
    except ValueError as exc:
        _raise_first_bad_row(path)
        raise format_error(path, None, str(exc)) from None
    if cols.size == 0:
        cols = np.zeros((0, 4), dtype=np.int64)
    user, item, rating, timestamp = cols.T
    checks = (
        (rating, (rating < 1) | (rating > 5), "rating {} is outside 1..5"),
        (user, user < 1, "user id {} must be >= 1 (ids are 1-based)"),
        (item, item < 1, "item id {} must be >= 1 (ids are 1-based)"),
    )
    for values, bad, message in checks:
        if bad.any():
            k = int(np.flatnonzero(bad)[0])  # loadtxt skips blank lines: map row k to its line
            raise format_error(path, _lines(path)[k][0], message.format(int(values[k])))
    return user.copy(), item.copy(), rating.astype(np.float32), timestamp.copy()


def _raise_first_bad_row(path: Path) -> None:
    for lineno, line in _lines(path):
        parts = line.split("\t")
        if len(parts) != 4:
            raise format_error(
                path, lineno, f"expected 4 tab-separated columns (user item rating timestamp), got {len(parts)}"
            )
        for token, what in zip(parts, ("user id", "item id", "rating", "timestamp")):
            _int(path, lineno, token, what)


def _read_info(path: Path) -> dict[str, int]:
    """``u.info`` ("943 users") -> {"users": 943, ...}; empty when absent."""
    if not path.is_file():
        return {}
    info = {}
    for lineno, line in _lines(path):
        parts = line.split()
        if len(parts) == 2:
            info[parts[1]] = _int(path, lineno, parts[0], f"{parts[1]} count")
    return info


def _read_genres(path: Path) -> list[str]:
    if not path.is_file():
        return list(DEFAULT_GENRES)
    genres: dict[int, str] = {}
    for lineno, line in _lines(path):
        name, sep, idx = line.rpartition("|")
        if not sep:
            raise format_error(path, lineno, "expected 'name|index'")
        genres[_int(path, lineno, idx, "genre index")] = name
    return [genres[k] for k in sorted(genres)]


def _read_items(path: Path, genres: list[str]) -> dict[int, dict[str, str]]:
    """``u.item`` (Latin-1) -> {1-based id: {title, name, year, genres, release_date}}."""
    expected = 5 + len(genres)
    records: dict[int, dict[str, str]] = {}
    for lineno, line in _lines(path, encoding="latin-1"):
        parts = line.split("|")
        if len(parts) != expected:
            raise format_error(path, lineno, f"expected {expected} '|'-separated columns, got {len(parts)}")
        item = _int(path, lineno, parts[0], "item id")
        flags = parts[5:]
        if any(f not in ("0", "1") for f in flags):
            raise format_error(path, lineno, "genre flags must be 0 or 1")
        title = parts[1].strip()
        date = parts[2].strip()
        in_title = _TITLE_YEAR.search(title)
        year = date[-4:] if len(date) >= 4 and date[-4:].isdigit() else (in_title.group(1) if in_title else "")
        records[item] = {
            "title": title,
            "name": _TITLE_YEAR.sub("", title) if in_title else title,
            "year": year,
            "genres": ", ".join(g for g, f in zip(genres, flags) if f == "1"),
            "release_date": date,
        }
    return records


def _read_users(path: Path) -> dict[int, str]:
    """``u.user`` (id|age|gender|occupation|zip) -> {1-based id: "age 24, male, technician"}."""
    texts: dict[int, str] = {}
    for lineno, line in _lines(path, encoding="latin-1"):
        parts = line.split("|")
        if len(parts) != 5:
            raise format_error(path, lineno, f"expected 5 '|'-separated columns, got {len(parts)}")
        user = _int(path, lineno, parts[0], "user id")
        age = _int(path, lineno, parts[1], "age")
        texts[user] = f"age {age}, {_GENDER.get(parts[2], parts[2])}, {parts[3]}"
    return texts


def read_movielens_100k(
    folder: str | Path,
    text_fields: tuple[str, ...] | list[str] | None = None,
    text_template: str | None = None,
    text_separator: str = ". ",
) -> RawInteractions:
    """Read an ML-100K folder: 100,000 ratings of 943 users on 1,682 items, no split.

    ``rating`` [N] float32 in 1..5, ``timestamp`` [N] int64 unix seconds; ``item_text``/``user_text``
    from ``u.item``/``u.user`` when present (``None`` for ids without a row); tokens are the raw ids.
    ``item_text`` joins ``text_fields`` (of ``ITEM_TEXT_FIELDS``) with ``text_separator``, or formats
    ``text_template``; with neither it is ``DEFAULT_ITEM_TEMPLATE`` ("Toy Story (1995). Genres: ...").
    """
    if text_fields is None and text_template is None:
        text_template = DEFAULT_ITEM_TEMPLATE
    folder = Path(folder)
    user, item, rating, timestamp = _read_ratings(folder / "u.data")
    info = _read_info(folder / "u.info")
    for ids, kind in ((user, "users"), (item, "items")):
        declared = info.get(kind)
        if declared is not None and ids.size and int(ids.max()) > declared:
            k = int(np.flatnonzero(ids > declared)[0])
            raise format_error(
                folder / "u.data", _lines(folder / "u.data")[k][0],
                f"{kind[:-1]} id {int(ids[k])} is out of range: u.info declares {declared} {kind}",
            )
    num_users = max(int(user.max()) if user.size else 0, info.get("users", 0))
    num_items = max(int(item.max()) if item.size else 0, info.get("items", 0))

    item_text = user_text = None
    if (folder / "u.item").is_file():
        records = _read_items(folder / "u.item", _read_genres(folder / "u.genre"))
        num_items = max(num_items, max(records, default=0))
        item_text = assemble_texts(
            [records.get(k) for k in range(1, num_items + 1)],
            ITEM_TEXT_FIELDS, text_fields, text_template, text_separator, ("title", "genres"), "MovieLens-100K",
        )
    if (folder / "u.user").is_file():
        utexts = _read_users(folder / "u.user")
        num_users = max(num_users, max(utexts, default=0))
        user_text = [utexts.get(k) for k in range(1, num_users + 1)]

    return RawInteractions(
        user=torch.from_numpy(user - 1),
        item=torch.from_numpy(item - 1),
        num_users=num_users,
        num_items=num_items,
        rating=torch.from_numpy(rating),
        timestamp=torch.from_numpy(timestamp),
        user_tokens=[str(k) for k in range(1, num_users + 1)],
        item_tokens=[str(k) for k in range(1, num_items + 1)],
        item_text=item_text,
        user_text=user_text,
        source=f"MovieLens-100K (GroupLens raw files) in {folder}",
    )
