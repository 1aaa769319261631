"""Reader for the UniSRec release of Amazon 2018 datasets (Hou et al., KDD 2022): Scientific, Pantry,
Instruments, Arts, Office, ... all in the same RecBole-atomic layout, ``<P>`` being the prefix:

- ``<P>.train.inter`` / ``<P>.valid.inter`` / ``<P>.test.inter``: header
  ``user_id:token  item_id_list:token_seq  item_id:token``, dense integer ids. UniSRec's
  ``process_amazon.py`` writes, per user with chronological sequence ``s`` (5-core), leave-one-out:
  ``valid`` target ``s[-2]``, ``test`` target ``s[-1]``, and for the training part ``t = s[:-2]`` one
  train row per ``t[-j]`` (``j = 1 .. len(t)-1``, so in *descending* position order) whose history is
  ``t[:-j][-50:]``. The first training item only ever appears in a history.
- ``<P>.item2index`` / ``<P>.user2index``: ``raw_id<TAB>index`` (no header); raw item ids are ASINs.
- ``<P>.text``: header ``item_id:token  text:token_seq``; keyed by ASIN; the text is
  ``"<title>. <categories>. <brand>. "`` (each field cleaned so it ends in exactly one ".", category
  levels joined by spaces, an absent field skipped, an empty one written as ".").

The reader rebuilds each user's sequence from the rows, checks that every row is the prefix the
script would write (any other layout is an error naming file and line), and returns one interaction
per distinct (user, item) pair: the training items (history and targets, de-duplicated) as
``SPLIT_TRAIN``, the valid target as ``SPLIT_VAL`` and the test target as ``SPLIT_TEST``. A held-out
target the user already bought in training (a repeat purchase), or a test target equal to the
valid target, is dropped and counted: the graph's invariant forbids held-out edges in training, and
a test item that is also a validation item is masked out at test time and could never be hit.

Item text: ``split_unisrec_text`` parses the string back into ``title``, ``categories`` and
``brand`` (``text`` is the whole string). The separator ". " also occurs inside titles ("4.5 in. x
10 yd.") and brands ("Norton Abrasives - St. Gobain"), so the parse anchors on the categories: every
category path of one Amazon dataset starts with the same root ("Industrial & Scientific"), detected
as the word prefix shared by most rows whose text has exactly three segments. The categories
field is the first segment after the title that starts with the root (or is empty: a missing
category list is written as ". ."); everything before is the title, everything after is the brand.
Rows without such a segment fall back to position (title, then categories, then brand as the last
two segments) and are counted.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from graphrec_lab.data.errors import format_error, not_found_error
from graphrec_lab.data.graph import SPLIT_TEST, SPLIT_TRAIN, SPLIT_VAL, RawInteractions
from graphrec_lab.data.sources.base import DatasetSource
from graphrec_lab.data.text import assemble_texts, read_text_lines

log = logging.getLogger(__name__)

# The UniSRec README's download location for the processed downstream datasets
# (https://github.com/RUCAIBox/UniSRec, "Download Datasets and Pre-trained Model").
UNISREC_URL = "https://drive.google.com/drive/folders/1Uik0fMk4oquV_bS9lXTZuExAYbIDkEMW"
TEXT_FIELDS = ("title", "categories", "brand", "text")
DEFAULT_TEXT_FIELDS = ("title", "categories", "brand")
SPLIT_FILES = (("train", SPLIT_TRAIN), ("valid", SPLIT_VAL), ("test", SPLIT_TEST))
_INTER_HEADER = ("user_id:token", "item_id_list:token_seq", "item_id:token")


def unisrec_files(prefix: str) -> tuple[str, ...]:
    """The six files of one dataset of the release."""
    return tuple(
        f"{prefix}.{ext}" for ext in ("train.inter", "valid.inter", "test.inter", "item2index", "user2index", "text")
    )


# --------------------------------------------------------------------------------------------- text


def _segments(text: str) -> list[str]:
    body = text.strip()
    if body.endswith("."):
        body = body[:-1]
    return body.split(". ")


def detect_category_root(texts: list[str], share: float = 0.8) -> str:
    """The category root of a dataset: the longest word prefix that at least ``share`` of the
    non-empty middle segments of three-segment texts (``title. categories. brand.``) start with;
    ``""`` when there is none."""
    seconds = [segs[1].split(" ") for segs in map(_segments, texts) if len(segs) == 3 and segs[1]]
    prefix: list[str] = []
    pool = seconds
    while pool:
        depth = len(prefix)
        counts = Counter(w[depth] for w in pool if len(w) > depth)
        if not counts:
            break
        word, n = counts.most_common(1)[0]
        if n < share * len(seconds):
            break
        prefix.append(word)
        pool = [w for w in pool if len(w) > depth and w[depth] == word]
    return " ".join(prefix)


def split_unisrec_text(text: str, category_root: str) -> tuple[dict[str, str], bool]:
    """``"<title>. <categories>. <brand>. "`` -> ({title, categories, brand, text}, anchored).

    ``anchored`` is False when no segment after the first starts with ``category_root`` (or is
    empty) and the fields were assigned by position instead (see the module docstring).
    """
    segs = _segments(text)
    cat = None
    for k in range(1, len(segs)):
        s = segs[k]
        if s == "" or (category_root and (s == category_root or s.startswith(category_root + " "))):
            cat = k
            break
    anchored = cat is not None
    if cat is not None:
        title, categories, brand = segs[:cat], segs[cat], segs[cat + 1 :]
    elif len(segs) >= 3:
        title, categories, brand = segs[:-2], segs[-2], segs[-1:]
    elif len(segs) == 2:  # an absent field is skipped by the release script; a brand is likelier
        title, categories, brand = segs[:1], "", segs[1:]
    else:
        title, categories, brand = segs, "", []
    fields = {
        "title": ". ".join(title).strip(),
        "categories": categories.strip(),
        "brand": ". ".join(brand).strip(),
        "text": text.strip(),
    }
    return fields, anchored


def _read_text_file(
    path: Path, item_index: dict[str, int], decode_errors: str, category_root: str | None, stats: dict
) -> list[dict[str, str] | None]:
    lines, replaced = read_text_lines(path, errors=decode_errors)
    stats["text_lines_replaced"] = replaced
    if not lines:
        raise format_error(path, None, "empty file; expected the header 'item_id:token<TAB>text:token_seq'")
    header = lines[0].split("\t")
    if len(header) != 2 or header[0].strip() != "item_id:token":
        raise format_error(path, 1, f"expected the header 'item_id:token<TAB>text:token_seq', got {lines[0]!r}")
    rows: list[tuple[str, str]] = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        asin, sep, text = line.partition("\t")  # a tab inside the text stays in the text
        if not sep:
            raise format_error(path, lineno, "expected 'item_id<TAB>text'")
        rows.append((asin.strip(), text))
    root = detect_category_root([t for _, t in rows]) if category_root in (None, "auto") else category_root
    stats["category_root"] = root
    records: list[dict[str, str] | None] = [None] * len(item_index)
    unknown = duplicate = by_position = 0
    for asin, text in rows:
        idx = item_index.get(asin)
        if idx is None:
            unknown += 1
            continue
        if records[idx] is not None:
            duplicate += 1
            continue
        fields, anchored = split_unisrec_text(text, root)
        by_position += not anchored
        records[idx] = fields
    stats.update(text_rows_unknown_item=unknown, text_rows_duplicate=duplicate, text_rows_parsed_by_position=by_position)
    if unknown or duplicate:
        log.warning("%s: %d text rows for items not in item2index, %d duplicate rows (first kept)", path, unknown, duplicate)
    if by_position:
        log.info("%s: %d texts had no segment starting with the category root %r; fields assigned by position", path, by_position, root)
    return records


# ----------------------------------------------------------------------------------- index files


def _read_index(path: Path, what: str) -> dict[str, int]:
    """``raw_id<TAB>index`` lines -> {raw_id: index}; indices must be exactly 0..n-1."""
    lines, _ = read_text_lines(path)
    out: dict[str, int] = {}
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise format_error(path, lineno, f"expected '{what}_id<TAB>index', got {len(parts)} column(s)")
        try:
            idx = int(parts[1])
        except ValueError:
            raise format_error(path, lineno, f"index {parts[1]!r} is not an integer") from None
        if parts[0] in out:
            raise format_error(path, lineno, f"{what} {parts[0]!r} appears twice")
        out[parts[0]] = idx
    values = sorted(out.values())
    if values != list(range(len(values))):
        missing = sorted(set(range(len(values))) - set(values))
        raise format_error(path, None, f"{what} indices are not 0..{len(values) - 1} (first gap: {missing[:1] or values[-1:]})")
    return out


# -------------------------------------------------------------------------------------- sequences


class _Row:
    __slots__ = ("lineno", "history", "target")

    def __init__(self, lineno: int, history: list[int], target: int) -> None:
        self.lineno, self.history, self.target = lineno, history, target


def _read_inter(path: Path, num_users: int | None, num_items: int) -> dict[int, list[_Row]]:
    """user -> rows in file order; ids checked against the index files."""
    lines, _ = read_text_lines(path)
    if not lines:
        raise format_error(path, None, "empty file; expected the header " + "<TAB>".join(_INTER_HEADER))
    header = tuple(c.strip() for c in lines[0].split("\t"))
    if header != _INTER_HEADER:
        raise format_error(path, 1, f"expected the header {'<TAB>'.join(_INTER_HEADER)}, got {lines[0]!r}")
    rows: dict[int, list[_Row]] = {}
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise format_error(path, lineno, f"expected 3 tab-separated columns, got {len(parts)}")
        try:
            user = int(parts[0])
            history = [int(t) for t in parts[1].split()]
            target = int(parts[2])
        except ValueError:
            raise format_error(path, lineno, "user, history and target must be integer indices") from None
        if user < 0 or (num_users is not None and user >= num_users):
            raise format_error(path, lineno, f"user index {user} is out of range [0, {num_users})")
        for item in (*history, target):
            if not 0 <= item < num_items:
                raise format_error(path, lineno, f"item index {item} is out of range [0, {num_items}) of item2index")
        rows.setdefault(user, []).append(_Row(lineno, history, target))
    return rows


def _check_suffix(path: Path, row: _Row, seq: list[int], end: int, what: str) -> None:
    """A row's history must be the last len(history) items of ``seq[:end]`` (UniSRec keeps <= 50)."""
    h = row.history
    if not h and end:
        raise format_error(path, row.lineno, f"{what} row has an empty history but the user has earlier items")
    if len(h) > end or seq[end - len(h) : end] != h:
        raise format_error(
            path, row.lineno,
            f"{what} history does not match the user's sequence rebuilt from the train rows "
            "(UniSRec writes one train row per prefix, longest first); not a UniSRec leave-one-out file?",
        )


def read_unisrec_sequences(
    folder: str | Path, dataset: str = "Scientific", num_users: int | None = None, num_items: int | None = None
) -> dict[int, tuple[list[int], int | None, int | None]]:
    """Each user's chronological training sequence (repeats kept), valid target and test target.

    ``{user: (train_sequence, valid_item or None, test_item or None)}`` with dense indices. Raises
    ``DataFormatError`` (file:line) when a row is not the prefix UniSRec's script writes.
    """
    folder = Path(folder)
    if num_items is None:
        num_items = len(_read_index(folder / f"{dataset}.item2index", "item"))
    paths = {name: folder / f"{dataset}.{name}.inter" for name, _ in SPLIT_FILES}
    train = _read_inter(paths["train"], num_users, num_items)
    held = {}
    for name in ("valid", "test"):
        rows = _read_inter(paths[name], num_users, num_items)
        for user, rs in rows.items():
            if len(rs) > 1:
                raise format_error(paths[name], rs[1].lineno, f"user {user} has more than one {name} row")
        held[name] = {u: rs[0] for u, rs in rows.items()}
    out: dict[int, tuple[list[int], int | None, int | None]] = {}
    for user in sorted(set(train) | set(held["valid"]) | set(held["test"])):
        rows = train.get(user, [])
        valid, test = held["valid"].get(user), held["test"].get(user)
        if rows:
            first = rows[-1]  # the shortest prefix: history [s0], target s1
            if len(first.history) != 1:
                raise format_error(
                    paths["train"], first.lineno,
                    f"the last train row of user {user} should have a one-item history (the sequence's first "
                    f"item), got {len(first.history)}; rows must be the user's prefixes, longest first",
                )
            seq = [first.history[0]] + [r.target for r in reversed(rows)]
            for j, row in enumerate(rows, start=1):  # row j predicts seq[-j] from seq[:-j]
                _check_suffix(paths["train"], row, seq, len(seq) - j, "train")
        else:  # a training sequence of one item appears only in the held-out histories
            seq = list(valid.history) if valid is not None else list(test.history) if test is not None else []
        if valid is not None:
            _check_suffix(paths["valid"], valid, seq, len(seq), "valid")
        if test is not None:
            full = seq + ([valid.target] if valid is not None else [])
            _check_suffix(paths["test"], test, full, len(full), "test")
        out[user] = (seq, None if valid is None else valid.target, None if test is None else test.target)
    return out


# ----------------------------------------------------------------------------------------- reader


def read_unisrec(
    folder: str | Path,
    dataset: str = "Scientific",
    text_fields: tuple[str, ...] | list[str] | None = None,
    text_template: str | None = None,
    text_separator: str = ". ",
    decode_errors: str = "error",
    category_root: str | None = "auto",
    stats: dict[str, Any] | None = None,
) -> RawInteractions:
    """Read one dataset of the UniSRec release (files ``<dataset>.*`` in ``folder``).

    Returns one row per distinct (user, item) pair in chronological order of first purchase, per user:
    training items (``SPLIT_TRAIN``), then the valid target (``SPLIT_VAL``), then the test target
    (``SPLIT_TEST``); repeat purchases of held-out targets are dropped and counted (module docstring).
    ``item_tokens`` are ASINs, ``user_tokens`` the raw user ids of ``user2index`` (the indices as
    strings when that file is absent); ``item_text[i]`` is assembled from the parsed fields
    (``text_fields``, default title, categories, brand, joined by ``text_separator``; or
    ``text_template`` such as ``"{title} by {brand}"``), ``None`` for items without a text row.
    ``category_root``: "auto" detects it, a string fixes it, "" parses by position only.
    ``stats``, when given, is filled with counts (repeats dropped, text rows parsed by position...).
    """
    folder = Path(folder)
    stats = {} if stats is None else stats
    item_file = folder / f"{dataset}.item2index"
    needed = [folder / f"{dataset}.{n}.inter" for n, _ in SPLIT_FILES] + [item_file]
    missing = [p.name for p in needed if not p.is_file()]
    if missing:
        raise not_found_error(missing, folder, UNISREC_URL)
    item_index = _read_index(item_file, "item")
    user_file = folder / f"{dataset}.user2index"
    user_index = _read_index(user_file, "user") if user_file.is_file() else None
    num_items = len(item_index)
    sequences = read_unisrec_sequences(folder, dataset, None if user_index is None else len(user_index), num_items)
    num_users = len(user_index) if user_index is not None else (max(sequences, default=-1) + 1)

    users: list[int] = []
    items: list[int] = []
    splits: list[int] = []
    n_seq = train_repeats = val_dropped = test_dropped = test_is_val = 0
    for user, (seq, valid, test) in sequences.items():
        n_seq += len(seq) + (valid is not None) + (test is not None)
        train_items = list(dict.fromkeys(seq))  # first purchase order
        train_repeats += len(seq) - len(train_items)
        users += [user] * len(train_items)
        items += train_items
        splits += [SPLIT_TRAIN] * len(train_items)
        seen = set(train_items)
        if valid is not None:
            if valid in seen:
                val_dropped += 1
            else:
                users.append(user), items.append(valid), splits.append(SPLIT_VAL)
        if test is not None:
            if test in seen:
                test_dropped += 1
            elif test == valid:
                test_is_val += 1
            else:
                users.append(user), items.append(test), splits.append(SPLIT_TEST)
    stats.update(
        sequence_interactions=n_seq,
        train_repeat_interactions=train_repeats,
        val_repeats_dropped=val_dropped,
        test_repeats_dropped=test_dropped,
        test_equal_to_val_dropped=test_is_val,
    )
    if val_dropped or test_dropped or test_is_val:
        log.warning(
            "%s: dropped repeat purchases from the held-out targets: %d valid and %d test targets the user "
            "already bought in training, %d test targets equal to the valid target",
            folder, val_dropped, test_dropped, test_is_val,
        )

    item_text = None
    text_file = folder / f"{dataset}.text"
    if text_file.is_file():
        records = _read_text_file(text_file, item_index, decode_errors, category_root, stats)
        stats["items_without_text_row"] = sum(r is None for r in records)
        item_text = assemble_texts(
            records, TEXT_FIELDS, text_fields, text_template, text_separator, DEFAULT_TEXT_FIELDS, f"UniSRec {dataset}"
        )
    item_tokens = [None] * num_items
    for asin, idx in item_index.items():
        item_tokens[idx] = asin
    if user_index is not None:
        user_tokens = [None] * num_users
        for raw_id, idx in user_index.items():
            user_tokens[idx] = raw_id
    else:
        user_tokens = [str(u) for u in range(num_users)]
    return RawInteractions(
        user=torch.from_numpy(np.asarray(users, dtype=np.int64)),
        item=torch.from_numpy(np.asarray(items, dtype=np.int64)),
        num_users=num_users,
        num_items=num_items,
        split=torch.from_numpy(np.asarray(splits, dtype=np.int8)),
        user_tokens=user_tokens,  # type: ignore[arg-type]
        item_tokens=item_tokens,  # type: ignore[arg-type]
        item_text=item_text,
        source=f"UniSRec release {dataset} ({', '.join(p.name for p in needed)}) in {folder}",
    )


def unisrec_source(
    prefix: str, dirname: str | None = None, checksums: dict[str, str] | None = None, name: str | None = None
) -> DatasetSource:
    """A source for one dataset of the UniSRec release: files ``<prefix>.*`` in ``<data_dir>/<dirname>``.

    The release is a Google Drive folder (no stable per-file URLs), so there is no automatic
    download: a missing file raises ``DatasetNotFoundError`` naming the files, folder and URL.
    """
    return DatasetSource(
        name=name or f"unisrec:{prefix}",
        dirname=dirname or prefix,
        files=unisrec_files(prefix),
        url=UNISREC_URL,
        checksums=dict(checksums or {}),
        downloads=(),
        reader=functools.partial(read_unisrec, dataset=prefix),
    )


def read_unisrec_item_fields(folder: str | Path, dataset: str = "Scientific", category_root: str | None = "auto") -> dict[str, dict[str, str]]:
    """``{asin: {title, categories, brand}}`` parsed from ``<dataset>.text`` (items of
    ``<dataset>.item2index`` with a text row), for side features. ``categories`` is the whole
    category path as one string (the release joins the levels with spaces, so they cannot be split)."""
    folder = Path(folder)
    item_index = _read_index(folder / f"{dataset}.item2index", "item")
    text_file = folder / f"{dataset}.text"
    if not text_file.is_file():
        raise not_found_error([text_file.name], folder, UNISREC_URL)
    records = _read_text_file(text_file, item_index, "error", category_root, {})
    tokens = sorted(item_index, key=item_index.__getitem__)
    return {asin: {k: rec[k] for k in ("title", "categories", "brand")} for asin, rec in zip(tokens, records) if rec is not None}


def unisrec_prefix(source: DatasetSource) -> str | None:
    """The release prefix (``Scientific``) when ``source`` reads a UniSRec release, else None."""
    reader = source.reader
    if isinstance(reader, functools.partial) and reader.func is read_unisrec:
        return str(reader.keywords["dataset"])
    return None
