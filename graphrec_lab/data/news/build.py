"""``build_news_data``: MIND tables (or the synthetic generator's) in, ``NewsData`` out: the split by
days (``SplitConfig``), id maps, article texts and the policy for articles without text."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from graphrec_lab.data.graph import DataValidationError
from graphrec_lab.data.news.types import (
    DEFAULT_TEXT_FIELDS,
    SECONDS_PER_DAY,
    SPLITS,
    TEXT_FIELDS,
    Impressions,
    NewsData,
    counts_to_ptr,
)
from graphrec_lab.data.sources.mind import NEWS_FIELDS, BehaviorsTable, NewsTable
from graphrec_lab.data.text import ItemTextConfig, assemble_texts

log = logging.getLogger(__name__)


@dataclass
class SplitConfig:
    """How impressions are split (see the package docstring)."""

    split: str = "auto"  # files | time | auto (files when a test file is given)
    val_days: int = 1
    test_days: int = 1

    def __post_init__(self) -> None:
        if self.split not in ("auto", "files", "time"):
            raise ValueError(f"data.split={self.split!r}: expected files, time or auto")
        if self.val_days < 1 or self.test_days < 1:
            raise ValueError(f"data.val_days={self.val_days}, data.test_days={self.test_days}: both must be >= 1")


def _day(t: np.ndarray) -> np.ndarray:
    return t // SECONDS_PER_DAY


def _split_by_days(behaviors: BehaviorsTable, cfg: SplitConfig, with_test: bool) -> dict[str, np.ndarray]:
    """Indices of ``behaviors`` impressions per split ("train", "val" and, when ``with_test``, "test")."""
    if len(behaviors) == 0:
        raise DataValidationError(f"{behaviors.source}: no impressions")
    days = _day(behaviors.time)
    distinct = np.unique(days)
    needed = cfg.val_days + (cfg.test_days if with_test else 0) + 1
    if distinct.size < needed:
        raise DataValidationError(
            f"{behaviors.source}: impressions span {distinct.size} day(s); the time split needs at least {needed} "
            f"(data.val_days={cfg.val_days}" + (f", data.test_days={cfg.test_days}" if with_test else "") + ")"
        )
    out: dict[str, np.ndarray] = {}
    cut = distinct.size
    if with_test:
        test_first = distinct[cut - cfg.test_days]
        out["test"] = np.flatnonzero(days >= test_first)
        cut -= cfg.test_days
    val_first = distinct[cut - cfg.val_days]
    val_last = distinct[cut - 1]
    out["val"] = np.flatnonzero((days >= val_first) & (days <= val_last))
    out["train"] = np.flatnonzero(days < val_first)
    return out


def build_news_data(
    news: list[NewsTable],
    train_behaviors: BehaviorsTable,
    test_behaviors: BehaviorsTable | None = None,
    text: ItemTextConfig | None = None,
    split: SplitConfig | None = None,
    name: str = "news",
) -> NewsData:
    """Index, split and clean MIND tables into ``NewsData``.

    Args:
        news: one or more ``news.tsv`` tables (MIND's train and dev files overlap; first row wins).
        train_behaviors: the training file's impressions (also the validation source).
        test_behaviors: the test file's impressions (``split="files"``), or None (``split="time"``).
        text: which fields make an article's text and the policy for articles without text.
        split: split protocol (``SplitConfig``).
    """
    text = text or ItemTextConfig(fields=DEFAULT_TEXT_FIELDS, missing="drop_items")
    split = split or SplitConfig()
    mode = split.split if split.split != "auto" else ("files" if test_behaviors is not None else "time")
    if mode == "files" and test_behaviors is None:
        raise ValueError("data.split=files needs a test file (data.test_dir / a dataset with a dev set)")
    if mode == "time" and test_behaviors is not None:
        raise ValueError("data.split=time uses one behaviors file; drop the test file or use data.split=files")
    for table in (train_behaviors, test_behaviors):
        if table is not None and table.labels is None:
            raise DataValidationError(f"{table.source}: impressions have no click labels (an unlabelled test file?); it cannot be used for training or evaluation")

    # ---- articles: every row of news.tsv plus every id referenced in the behaviours
    records: dict[str, dict[str, str]] = {}
    for table in news:
        for nid, rec in table.records().items():
            records.setdefault(nid, rec)
    tables = [train_behaviors] + ([test_behaviors] if test_behaviors is not None else [])
    referenced: dict[str, None] = {}
    for table in tables:
        for hist, cand in zip(table.history, table.candidates):
            referenced.update(dict.fromkeys(hist))
            referenced.update(dict.fromkeys(cand))
    tokens = list(records) + [nid for nid in referenced if nid not in records]
    index = {nid: k for k, nid in enumerate(tokens)}
    texts = assemble_texts(
        [records.get(nid) for nid in tokens], TEXT_FIELDS, text.fields, text.template, text.separator, DEFAULT_TEXT_FIELDS, name
    )
    no_row = np.array([nid not in records for nid in tokens], dtype=bool)
    no_text = np.array([t is None or not t.strip() for t in texts], dtype=bool)
    is_ref = np.array([nid in referenced for nid in tokens], dtype=bool)

    # ---- users and raw impressions per split, as id arrays
    users: dict[str, int] = {}

    def to_impressions(table: BehaviorsTable, rows: np.ndarray) -> Impressions:
        assert table.labels is not None
        u, hist_n, hist, cand_n, cand, lab = [], [], [], [], [], []
        for r in rows.tolist():
            u.append(users.setdefault(table.users[r], len(users)))
            h = table.history[r]
            hist_n.append(len(h))
            hist.extend(index[x] for x in h)
            c = table.candidates[r]
            cand_n.append(len(c))
            cand.extend(index[x] for x in c)
            lab.extend(table.labels[r])
        return Impressions(
            users=torch.tensor(u, dtype=torch.long),
            time=torch.from_numpy(table.time[rows].copy()),
            ids=[table.impression_ids[r] for r in rows.tolist()],
            hist_ptr=counts_to_ptr(hist_n), hist=torch.tensor(hist, dtype=torch.long),
            cand_ptr=counts_to_ptr(cand_n), cand=torch.tensor(cand, dtype=torch.long),
            labels=torch.tensor(lab, dtype=torch.int8),
        )

    if mode == "files":
        assert test_behaviors is not None
        parts = _split_by_days(train_behaviors, split, with_test=False)
        split_imps = {
            "train": to_impressions(train_behaviors, parts["train"]),
            "val": to_impressions(train_behaviors, parts["val"]),
            "test": to_impressions(test_behaviors, np.arange(len(test_behaviors))),
        }
        days_of = {"train": train_behaviors.time[parts["train"]], "val": train_behaviors.time[parts["val"]], "test": test_behaviors.time}
    else:
        parts = _split_by_days(train_behaviors, split, with_test=True)
        split_imps = {s: to_impressions(train_behaviors, parts[s]) for s in SPLITS}
        days_of = {s: train_behaviors.time[parts[s]] for s in SPLITS}

    # ---- articles without text
    missing = no_text & is_ref
    refs = 0
    for imp in split_imps.values():
        refs += int(torch.as_tensor(missing)[imp.hist].sum()) + int(torch.as_tensor(missing)[imp.cand].sum())
    meta: dict[str, Any] = {
        "split": mode,
        "val_days": split.val_days,
        "test_days": split.test_days if mode == "time" else None,
        "news_rows": len(records),
        "news_referenced": int(is_ref.sum()),
        "news_referenced_without_row": int((no_row & is_ref).sum()),
        "news_referenced_without_text": int(missing.sum()),
        "references_without_text": refs,
        "missing_text_policy": text.missing,
        "text_fields": list(text.fields) if text.fields else None,
        "text_template": text.template,
    }
    for s in SPLITS:
        t = days_of[s]
        meta[f"{s}_days"] = [int(d) for d in np.unique(_day(t))] if t.size else []
    if missing.any():
        first = [tokens[k] for k in np.flatnonzero(missing)[:5]]
        log.warning(
            "%s: %d of %d referenced articles have no text (%d have no row in news.tsv; %d references in "
            "histories and impressions; first: %s); data.text.missing=%s",
            name, int(missing.sum()), int(is_ref.sum()), meta["news_referenced_without_row"], refs, ", ".join(first), text.missing,
        )
    if text.missing == "error" and missing.any():
        first = [tokens[k] for k in np.flatnonzero(missing)[:10]]
        raise DataValidationError(
            f"{name}: {int(missing.sum())} referenced articles have no text ({meta['news_referenced_without_row']} have no row in "
            f"news.tsv; first: {', '.join(first)}) and data.text.missing='error'; choose drop_items, empty or placeholder"
        )
    final_text: list[str] = []
    for k, t in enumerate(texts):
        if t is not None and t.strip():
            final_text.append(t)
        elif text.missing == "placeholder":
            final_text.append(text.placeholder.format(token=tokens[k], index=k))
        else:
            final_text.append("")

    if text.missing == "drop_items" and no_text.any():
        keep = ~torch.from_numpy(no_text)
        new_id = torch.cumsum(keep.long(), 0) - 1
        for s in SPLITS:
            split_imps[s], dropped = _drop_articles(split_imps[s], keep, new_id)
            for key, value in dropped.items():
                meta[f"{s}_{key}"] = value
        kept = keep.nonzero().flatten().tolist()
        tokens = [tokens[k] for k in kept]
        final_text = [final_text[k] for k in kept]
        records_fields = {f: [records.get(tokens[j], {}).get(f, "") for j in range(len(tokens))] for f in NEWS_FIELDS}
        meta["dropped_articles"] = int(no_text.sum())
    else:
        records_fields = {f: [records.get(nid, {}).get(f, "") for nid in tokens] for f in NEWS_FIELDS}

    for s in SPLITS:
        imp = split_imps[s]
        meta[f"{s}_impressions"] = len(imp)
        meta[f"{s}_single_class"] = int(imp.single_class().sum()) if len(imp) else 0
        meta[f"{s}_clicks"] = int(imp.labels.long().sum())
    data = NewsData(name, tokens, final_text, records_fields, list(users), split_imps["train"], split_imps["val"], split_imps["test"], meta)
    data.validate()
    for s in ("train", "val", "test"):
        if len(data.split(s)) == 0:
            raise DataValidationError(
                f"{name}: the {s} split has no impressions after cleaning (split={mode}, data.text.missing={text.missing}); "
                f"counts: {json.dumps({k: v for k, v in meta.items() if k.startswith(s)})}"
            )
    return data


def _drop_articles(imp: Impressions, keep: Tensor, new_id: Tensor) -> tuple[Impressions, dict[str, int]]:
    """Remove the articles with ``keep`` False from histories and candidates, renumber the rest, and
    drop impressions left without candidates. Returns the new impressions and the counts removed."""
    if len(imp) == 0:
        return imp, {}
    h_keep = keep[imp.hist]
    c_keep = keep[imp.cand]
    h_rows = imp.history_rows()
    c_rows = imp.candidate_rows()
    m = len(imp)
    hist_n = torch.bincount(h_rows[h_keep], minlength=m)
    cand_n = torch.bincount(c_rows[c_keep], minlength=m)
    dropped_clicks = int((imp.labels[~c_keep] == 1).sum())
    trimmed = Impressions(
        imp.users, imp.time, imp.ids, counts_to_ptr(hist_n), new_id[imp.hist[h_keep]], counts_to_ptr(cand_n), new_id[imp.cand[c_keep]], imp.labels[c_keep]
    )
    alive = (cand_n > 0).nonzero().flatten()
    out = trimmed.select(alive) if alive.numel() < m else trimmed
    counts = {
        "dropped_history_refs": int((~h_keep).sum()),
        "dropped_candidates": int((~c_keep).sum()),
        "dropped_clicks": dropped_clicks,
        "dropped_impressions": m - alive.numel(),
    }
    return out, counts
