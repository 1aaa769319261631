"""Reader for the MIND news recommendation format (Wu et al., ACL 2020; https://msnews.github.io).

A MIND folder (``MINDsmall_train``, ``MINDsmall_dev``, ...) holds two tab-separated files without a
header:

* ``news.tsv``: ``news_id  category  subcategory  title  abstract  url  title_entities
  abstract_entities`` (the entity columns are JSON and not read here; only the first five columns
  are required, so trimmed copies work too).
* ``behaviors.tsv``: ``impression_id  user_id  time  history  impressions`` with ``time`` as
  ``11/15/2019 8:55:22 AM``, ``history`` the user's clicks before the logging period (space-separated
  news ids, possibly empty) and ``impressions`` the displayed articles with their label
  (``N123-1`` clicked, ``N456-0`` skipped). The MIND-large test file has no labels (``N123``);
  it reads with ``labels=None``.

``read_news`` / ``read_behaviors`` return the tables as parsed (string ids); bad lines raise
``DataFormatError`` naming the file and line. ``graphrec_lab.data.news`` builds the impression
dataset from them. The named sources (``mind-small-train``, ``mind-small-dev``,
``mind-small-sample``) know where the files come from, for the download-or-explain logic shared by
every dataset; their ``DatasetSource.reader`` (``read_mind_clicks``) gives the click graph as
``RawInteractions`` so the generic top-K pipeline can read MIND folders too.

Canonical downloads (MIND-small, the Microsoft Research License Terms apply):
``https://mind201910small.blob.core.windows.net/release/MINDsmall_train.zip`` (52,952,752 bytes) and
``.../MINDsmall_dev.zip`` (30,945,572 bytes); each zip holds ``behaviors.tsv``, ``news.tsv``,
``entity_embedding.vec`` and ``relation_embedding.vec`` at its root. The sha256 of the original
``news.tsv``/``behaviors.tsv`` files are not recorded here (no copy was available to hash), so
present MIND-small files are not checksum-verified; the sample's files are.
"""

from __future__ import annotations

import calendar
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from graphrec_lab.data.errors import format_error
from graphrec_lab.data.graph import RawInteractions
from graphrec_lab.data.sources.base import DatasetSource
from graphrec_lab.data.text import read_text_lines

log = logging.getLogger(__name__)

MIND_URL = "https://msnews.github.io"
MIND_RELEASE_URL = "https://mind201910small.blob.core.windows.net/release"
MIND_FILES = ("news.tsv", "behaviors.tsv")
NEWS_FIELDS = ("category", "subcategory", "title", "abstract", "url")
TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"


@dataclass
class NewsTable:
    """``news.tsv`` as read: one entry per distinct news id (first occurrence kept)."""

    ids: list[str]
    fields: dict[str, list[str]]  # NEWS_FIELDS -> one string per id
    source: str = "<memory>"
    duplicates: int = 0  # repeated ids skipped

    def __len__(self) -> int:
        return len(self.ids)

    def records(self) -> dict[str, dict[str, str]]:
        """``{news_id: {field: value}}``."""
        return {nid: {f: self.fields[f][k] for f in self.fields} for k, nid in enumerate(self.ids)}


@dataclass
class BehaviorsTable:
    """``behaviors.tsv`` as read: one entry per impression line.

    ``time``: [M] int64 unix seconds (the file's clock read as UTC); ``labels`` None for an
    unlabelled (test) file.
    """

    impression_ids: list[str]
    users: list[str]
    time: np.ndarray
    history: list[list[str]]
    candidates: list[list[str]]
    labels: list[list[int]] | None
    source: str = "<memory>"
    lines: list[int] = field(default_factory=list)  # 1-based line of each impression (for errors)

    def __len__(self) -> int:
        return len(self.users)


def parse_time(text: str) -> int:
    """``"11/15/2019 8:55:22 AM"`` -> unix seconds (the clock is taken as UTC)."""
    return calendar.timegm(datetime.strptime(text.strip(), TIME_FORMAT).timetuple())


def read_news(path: str | Path, decode_errors: str = "error") -> NewsTable:
    """Read ``news.tsv``; at least the id and the five text columns per line."""
    path = Path(path)
    lines, _ = read_text_lines(path, errors=decode_errors)
    ids: list[str] = []
    fields: dict[str, list[str]] = {f: [] for f in NEWS_FIELDS}
    seen: set[str] = set()
    duplicates = 0
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 6:
            raise format_error(
                path, lineno,
                f"expected at least 6 tab-separated columns (news_id category subcategory title abstract url), got {len(parts)}",
            )
        nid = parts[0].strip()
        if not nid:
            raise format_error(path, lineno, "empty news id")
        if nid in seen:
            duplicates += 1
            continue
        seen.add(nid)
        ids.append(nid)
        for f, value in zip(NEWS_FIELDS, parts[1:6]):
            fields[f].append(value.strip())
    if duplicates:
        log.warning("%s: %d repeated news ids (first occurrence kept)", path, duplicates)
    return NewsTable(ids, fields, source=str(path), duplicates=duplicates)


def read_behaviors(path: str | Path, decode_errors: str = "error") -> BehaviorsTable:
    """Read ``behaviors.tsv`` (labelled, or unlabelled as in MIND-large's test file)."""
    path = Path(path)
    lines, _ = read_text_lines(path, errors=decode_errors)
    imp_ids: list[str] = []
    users: list[str] = []
    times: list[int] = []
    history: list[list[str]] = []
    candidates: list[list[str]] = []
    labels: list[list[int]] = []
    line_numbers: list[int] = []
    labelled: bool | None = None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 5:
            raise format_error(
                path, lineno, f"expected 5 tab-separated columns (impression_id user time history impressions), got {len(parts)}"
            )
        imp_id, user, time_text, hist, imps = parts
        if not user.strip():
            raise format_error(path, lineno, "empty user id")
        try:
            t = parse_time(time_text)
        except ValueError:
            raise format_error(path, lineno, f"time {time_text!r} does not match 'MM/DD/YYYY h:mm:ss AM'") from None
        tokens = imps.split()
        if not tokens:
            raise format_error(path, lineno, "no impressed articles")
        cand: list[str] = []
        lab: list[int] = []
        for token in tokens:
            nid, sep, label = token.rpartition("-")
            this_labelled = bool(sep) and label in ("0", "1") and bool(nid)
            if labelled is None:
                labelled = this_labelled
            if this_labelled != labelled:
                raise format_error(
                    path, lineno, f"impression {token!r}: every impression must be 'NewsId-0/1' (labelled) or a bare id (unlabelled), not a mix"
                )
            if labelled:
                cand.append(nid)
                lab.append(int(label))
            else:
                cand.append(token)
        imp_ids.append(imp_id.strip())
        users.append(user.strip())
        times.append(t)
        history.append(hist.split())
        candidates.append(cand)
        labels.append(lab)
        line_numbers.append(lineno)
    return BehaviorsTable(
        impression_ids=imp_ids,
        users=users,
        time=np.asarray(times, dtype=np.int64),
        history=history,
        candidates=candidates,
        labels=labels if labelled or labelled is None else None,
        source=str(path),
        lines=line_numbers,
    )


def read_mind_folder(folder: str | Path, decode_errors: str = "error") -> tuple[NewsTable, BehaviorsTable]:
    """``news.tsv`` and ``behaviors.tsv`` of one MIND folder."""
    folder = Path(folder)
    return read_news(folder / "news.tsv", decode_errors), read_behaviors(folder / "behaviors.tsv", decode_errors)


def read_mind_clicks(folder: str | Path) -> RawInteractions:
    """The click graph of one MIND folder as ``RawInteractions``: every history click (timestamped
    at the impression that lists it, de-duplicated per user) and every clicked impression; news ids
    are all ids referenced or listed in ``news.tsv``, with their title as item text."""
    news, behaviors = read_mind_folder(folder)
    user_index: dict[str, int] = {}
    item_index: dict[str, int] = {nid: k for k, nid in enumerate(news.ids)}
    users: list[int] = []
    items: list[int] = []
    stamps: list[int] = []
    seen: set[tuple[int, int]] = set()

    def add(u: int, nid: str, t: int) -> None:
        i = item_index.setdefault(nid, len(item_index))
        if (u, i) not in seen:
            seen.add((u, i))
            users.append(u)
            items.append(i)
            stamps.append(t)

    for k, user in enumerate(behaviors.users):
        u = user_index.setdefault(user, len(user_index))
        t = int(behaviors.time[k])
        for nid in behaviors.history[k]:
            add(u, nid, t)
        if behaviors.labels is not None:
            for nid, label in zip(behaviors.candidates[k], behaviors.labels[k]):
                if label == 1:
                    add(u, nid, t)
    titles = dict(zip(news.ids, news.fields["title"]))
    item_tokens = list(item_index)
    return RawInteractions(
        user=torch.tensor(users, dtype=torch.long),
        item=torch.tensor(items, dtype=torch.long),
        num_users=len(user_index),
        num_items=len(item_index),
        timestamp=torch.tensor(stamps, dtype=torch.long),
        user_tokens=list(user_index),
        item_tokens=item_tokens,
        item_text=[titles.get(t) for t in item_tokens],
        source=f"MIND clicks in {folder}",
    )


def mind_source(name: str, dirname: str, archive: str | None = None, checksums: dict[str, str] | None = None) -> DatasetSource:
    """A MIND folder as a ``DatasetSource``; ``archive`` (e.g. ``"MINDsmall_train.zip"``) is fetched
    from the MIND release when files are missing and downloads are allowed."""
    downloads: tuple[tuple[str, str], ...] = ()
    url = MIND_URL
    if archive is not None:
        url = f"{MIND_RELEASE_URL}/{archive}"
        downloads = ((url, "zip:"),)  # the zips hold their files at the root
    return DatasetSource(
        name=name, dirname=dirname, files=MIND_FILES, url=url, checksums=dict(checksums or {}),
        downloads=downloads, reader=read_mind_clicks,
    )


__all__ = [
    "BehaviorsTable", "MIND_FILES", "MIND_RELEASE_URL", "MIND_URL", "NEWS_FIELDS", "NewsTable", "mind_source",
    "parse_time", "read_behaviors", "read_mind_clicks", "read_mind_folder", "read_news",
]
