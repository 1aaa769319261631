"""Reader for RecBole atomic files (``.inter``, ``.item``, ``.user``), so any RecBole dataset works.

Atomic files are tab-separated with a ``name:type`` header, type one of ``token``, ``token_seq``,
``float``, ``float_seq`` (https://recbole.io/docs/user_guide/data/atomic_files.html). This reader
takes the interactions (user, item, optional rating and timestamp) and item/user text; other
columns are validated but not kept. In particular the sequence column of RecBole's sequential
benchmark files (``item_id_list:token_seq`` in ``<dataset>.{train,valid,test}.inter``) is ignored:
only each row's target ``(user, item)`` becomes an interaction here, and the sequential format is
handled elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from typing import Any

import numpy as np
import torch

from graphrec_lab.data.errors import format_error, not_found_error
from graphrec_lab.data.graph import SPLIT_TEST, SPLIT_TRAIN, SPLIT_VAL, RawInteractions
from graphrec_lab.data.sources.base import DatasetSource
from graphrec_lab.data.text import read_text_lines

RECBOLE_URL = "https://recbole.io/dataset_list.html"
FIELD_TYPES = ("token", "token_seq", "float", "float_seq")
BENCHMARK_SPLITS = (("train", SPLIT_TRAIN), ("valid", SPLIT_VAL), ("test", SPLIT_TEST))


class _Table:
    """One parsed atomic file: ``fields`` [(name, type)] and ``columns`` name -> [R] raw strings."""

    def __init__(
        self, path: Path, fields: list[tuple[str, str]], columns: dict[str, list[str]], linenos: list[int]
    ) -> None:
        self.path = path
        self.fields = fields
        self.columns = columns
        self.linenos = linenos  # 1-based file line of each row
        self.types = dict(fields)

    def require(self, name: str, role: str) -> list[str]:
        if name not in self.columns:
            have = ", ".join(f"{n}:{t}" for n, t in self.fields)
            raise format_error(self.path, 1, f"header has no {role} field {name!r} (fields: {have})")
        return self.columns[name]

    def floats(self, name: str, allow_empty: bool = False) -> np.ndarray:
        """Column ``name`` as float64 [R]; a non-numeric cell raises with its line."""
        col = self.columns[name]
        try:
            return np.array([c if c.strip() or not allow_empty else "nan" for c in col], dtype=np.float64)
        except ValueError:
            for k, cell in enumerate(col):
                if allow_empty and not cell.strip():
                    continue
                try:
                    float(cell)
                except ValueError:
                    raise format_error(
                        self.path, self.linenos[k], f"field {name!r}: {cell!r} is not a number"
                    ) from None
            raise


def _read_table(path: Path) -> _Table:
    """Parse and validate an atomic file: header types, column counts, numeric float cells."""
    lines = read_text_lines(path, fix="save the file as UTF-8")[0]
    if not lines or not lines[0].strip():
        raise format_error(path, 1 if lines else None, "empty file; expected a 'name:type' header row")
    fields: list[tuple[str, str]] = []
    for cell in lines[0].split("\t"):
        name, sep, ftype = cell.strip().rpartition(":")
        if not sep or not name:
            raise format_error(path, 1, f"header field {cell!r} has no ':type' (expected e.g. 'item_id:token')")
        if ftype not in FIELD_TYPES:
            known = ", ".join(FIELD_TYPES)
            raise format_error(path, 1, f"header field {cell!r} has unknown type {ftype!r} (known: {known})")
        if any(name == n for n, _ in fields):
            raise format_error(path, 1, f"header field {name!r} appears twice")
        fields.append((name, ftype))
    width = len(fields)
    rows: list[list[str]] = []
    linenos: list[int] = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != width:
            raise format_error(path, lineno, f"expected {width} tab-separated columns, got {len(parts)}")
        rows.append(parts)
        linenos.append(lineno)
    cols = list(zip(*rows)) if rows else [()] * width
    table = _Table(path, fields, {n: list(c) for (n, _), c in zip(fields, cols)}, linenos)
    for name, ftype in fields:
        if ftype == "float":
            table.floats(name, allow_empty=True)  # RecBole reads empty cells as NaN
        elif ftype == "float_seq":
            for k, cell in enumerate(table.columns[name]):
                for token in cell.split():
                    try:
                        float(token)
                    except ValueError:
                        message = f"field {name!r}: {token!r} is not a number"
                        raise format_error(path, linenos[k], message) from None
    return table


def _finite(table: _Table, name: str) -> np.ndarray:
    """Column ``name`` as float64 [R]; ``nan``/``inf`` (which float() accepts) raise with their line:
    a NaN rating would pass every threshold test as False and an inf timestamp breaks ordering."""
    values = table.floats(name)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        k = int(bad[0])
        raise format_error(
            table.path, table.linenos[k], f"field {name!r}: {table.columns[name][k]!r} is not a finite number"
        )
    return values


def _text_rows(
    table: _Table, key: list[str], text_fields: tuple[str, ...] | None, key_name: str
) -> dict[str, str | None]:
    """token -> text fields joined with ". " (first row of a token wins; no text -> None)."""
    if text_fields is None:
        text_fields = tuple(n for n, t in table.fields if t == "token_seq" and n != key_name)
    for name in text_fields:
        table.require(name, "text")
    out: dict[str, str | None] = {}
    for k, token in enumerate(key):
        if token in out:
            continue
        pieces = [table.columns[name][k].strip() for name in text_fields]
        pieces = [p for p in pieces if p]
        out[token] = ". ".join(pieces) if pieces else None
    return out


def read_recbole_atomic(
    folder: str | Path,
    dataset: str | None = None,
    text_fields: tuple[str, ...] | None = None,
    user_field: str = "user_id",
    item_field: str = "item_id",
    rating_field: str = "rating",
    time_field: str = "timestamp",
) -> RawInteractions:
    """Read ``<dataset>.inter`` (or the ``.train/.valid/.test.inter`` benchmark split) plus optional
    ``<dataset>.item`` / ``<dataset>.user`` into ``RawInteractions``.

    Tokens get dense ids in order of first appearance (interactions first, then ids that occur only
    in ``.item``/``.user``); the raw tokens are kept in ``user_tokens``/``item_tokens``. ``split`` is
    set only for the benchmark split files. ``item_text[i]`` joins ``text_fields`` of ``.item``
    (default: every ``token_seq`` field) with ". ", ``None`` for items without a row; ``user_text``
    likewise joins the ``token_seq`` fields of ``.user`` when it has any. ``rating``/``timestamp``
    are kept when every interaction file has that field.
    """
    folder = Path(folder)
    dataset = dataset or folder.name
    single = folder / f"{dataset}.inter"
    if single.is_file():
        parts = [(single, None)]
    else:
        parts = [
            (folder / f"{dataset}.{name}.inter", code)
            for name, code in BENCHMARK_SPLITS
            if (folder / f"{dataset}.{name}.inter").is_file()
        ]
        if not parts:
            names = [f"{dataset}.inter"] + [f"{dataset}.{n}.inter" for n, _ in BENCHMARK_SPLITS]
            raise not_found_error([f"{names[0]} (or {', '.join(names[1:])})"], folder, RECBOLE_URL)

    user_ids: dict[str, int] = {}
    item_ids: dict[str, int] = {}
    users, items, splits, ratings, times = [], [], [], [], []
    for path, split in parts:
        table = _read_table(path)
        u_col = table.require(user_field, "user")
        i_col = table.require(item_field, "item")
        users.append(np.fromiter((user_ids.setdefault(t, len(user_ids)) for t in u_col), np.int64, len(u_col)))
        items.append(np.fromiter((item_ids.setdefault(t, len(item_ids)) for t in i_col), np.int64, len(i_col)))
        splits.append(np.full(len(u_col), split if split is not None else -1, dtype=np.int8))
        ratings.append(_finite(table, rating_field) if rating_field in table.columns else None)
        times.append(_finite(table, time_field) if time_field in table.columns else None)

    item_text = user_text = None
    item_file = folder / f"{dataset}.item"
    if item_file.is_file():
        table = _read_table(item_file)
        key = table.require(item_field, "item")
        texts = _text_rows(table, key, text_fields, item_field)
        for token in key:
            item_ids.setdefault(token, len(item_ids))
        item_text = [texts.get(token) for token in item_ids]
    user_file = folder / f"{dataset}.user"
    if user_file.is_file():
        table = _read_table(user_file)
        key = table.require(user_field, "user")
        for token in key:
            user_ids.setdefault(token, len(user_ids))
        if any(t == "token_seq" and n != user_field for n, t in table.fields):
            utexts = _text_rows(table, key, None, user_field)
            user_text = [utexts.get(token) for token in user_ids]

    rating = timestamp = None
    if all(r is not None for r in ratings):
        rating = torch.from_numpy(np.concatenate(ratings).astype(np.float32))
    if all(t is not None for t in times):
        timestamp = torch.from_numpy(np.concatenate(times).astype(np.int64))
    return RawInteractions(
        user=torch.from_numpy(np.concatenate(users)),
        item=torch.from_numpy(np.concatenate(items)),
        num_users=len(user_ids),
        num_items=len(item_ids),
        rating=rating,
        timestamp=timestamp,
        split=torch.from_numpy(np.concatenate(splits)) if parts[0][1] is not None else None,
        user_tokens=list(user_ids),
        item_tokens=list(item_ids),
        item_text=item_text,
        user_text=user_text,
        source=f"RecBole atomic files {', '.join(p.name for p, _ in parts)} in {folder}",
    )


def recbole_source(name: str) -> DatasetSource:
    """An ad-hoc source for a folder ``<data_dir>/<name>`` of RecBole atomic files named ``<name>.*``.

    Files are discovered at read time (``files=()``, no checksums, no download): the user brings
    the data, e.g. from RecBole's dataset list.
    """
    return DatasetSource(
        name=name,
        dirname=name,
        files=(),
        url=RECBOLE_URL,
        checksums={},
        downloads=(),
        reader=read_recbole_atomic,
    )


def read_recbole_tables(folder: str | Path, dataset: str | None = None, user_field: str = "user_id",
                        item_field: str = "item_id") -> dict[str, Any]:  # fmt: skip
    """``{"user": DataFrame, "item": DataFrame}`` of ``<dataset>.user`` / ``<dataset>.item`` (those
    present), indexed by the raw id, one string column per other field (the header's names without
    ``:type``). ``token_seq`` / ``float_seq`` cells are ``|``-joined so a ``multihot`` feature reads
    them as sets; ``float`` cells stay strings for ``numeric`` to parse (empty: missing)."""
    import pandas as pd

    folder = Path(folder)
    dataset = dataset or folder.name
    out: dict[str, Any] = {}
    for side, key in (("user", user_field), ("item", item_field)):
        path = folder / f"{dataset}.{side}"
        if not path.is_file():
            continue
        table = _read_table(path)
        index = table.require(key, side)
        columns = {}
        for name, ftype in table.fields:
            if name == key:
                continue
            cells = table.columns[name]
            columns[name] = ["|".join(c.split()) for c in cells] if ftype.endswith("_seq") else list(cells)
        frame = pd.DataFrame(columns, index=pd.Index(index, name=key), dtype="string")
        out[side] = frame[~frame.index.duplicated()]  # a repeated id: the first row, as the reader keeps
    return out
