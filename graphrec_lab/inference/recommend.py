"""Top-K recommendations of a loaded run, ranked exactly as the evaluator ranks them.

Scores are ``user_emb @ item_emb.T``; the user's training items (and, on request, validation items)
are masked to -inf and the top K are taken with ``evaluation.ranking.topk_stable`` (ties: lower item
id first), so a recommendation list is the list the metrics were computed on.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from graphrec_lab.evaluation.ranking import mask_scores, topk_stable
from graphrec_lab.inference.export import search_index
from graphrec_lab.inference.foldin import fold_in
from graphrec_lab.inference.run import InferenceError, LoadedRun


@dataclass
class Recommendation:
    """One ranked item of one user's list."""

    user: str
    rank: int  # 1-based
    item: str
    score: float
    text: str | None


def _rank(run: LoadedRun, user_vecs: Tensor, exclude: list[Tensor], k: int) -> tuple[Tensor, Tensor]:
    """Top-k items [B, k'] and scores [B, k'] of ``user_vecs`` [B, D], ``exclude[b]`` masked."""
    _, item_emb = run.embeddings()
    scores = user_vecs @ item_emb.T  # [B, I]
    rows = torch.cat([torch.full_like(e, b) for b, e in enumerate(exclude)]) if exclude else torch.empty(0, dtype=torch.long)
    cols = torch.cat(exclude) if exclude else torch.empty(0, dtype=torch.long)
    mask_scores(scores, torch.stack([rows, cols]))
    top = topk_stable(scores, k)
    return top, scores.gather(1, top)


def recommendation_rows(run: LoadedRun, users: Sequence[str], top: Tensor, values: Tensor) -> list[list[Recommendation]]:
    """One ranked list per user from item ids ``top`` and scores ``values`` [B, k] (a list ends at -inf)."""
    out = []
    for b, user in enumerate(users):
        row = []
        for rank, (item, score) in enumerate(zip(top[b].tolist(), values[b].tolist()), start=1):
            if score == float("-inf"):  # fewer than k items left after the exclusions
                break
            text = run.item_text[item] if run.item_text is not None else None
            row.append(Recommendation(user, rank, run.item_ids[item], float(score), text))
        out.append(row)
    return out


def recommend(
    run: LoadedRun, users: Sequence[str], k: int = 20, exclude_val: bool = False, batch_size: int = 1024
) -> list[list[Recommendation]]:
    """Top-``k`` of each raw user id in ``users``: one list per user, best first.

    Training items are excluded; ``exclude_val`` also excludes validation items (the test protocol).
    Unknown ids raise ``UnknownIdError`` naming them all."""
    if k < 1:
        raise InferenceError(f"k={k}: need k >= 1")
    index = run.user_index(list(users))
    user_emb, _ = run.embeddings()
    out: list[list[Recommendation]] = []
    for start in range(0, len(users), batch_size):
        batch = index[start : start + batch_size]
        exclude = [_known(run, int(u), exclude_val) for u in batch]
        top, values = _rank(run, user_emb.index_select(0, batch), exclude, k)
        out += recommendation_rows(run, list(users[start : start + batch_size]), top, values)
    return out


def _known(run: LoadedRun, user: int, exclude_val: bool) -> Tensor:
    items = run.train_items(user)
    return torch.cat([items, run.val_items(user)]) if exclude_val else items


def recommend_new_user(run: LoadedRun, history: Sequence[str], k: int = 20, name: str = "new-user") -> list[Recommendation]:
    """Top-``k`` for a user outside the training graph, folded in from ``history`` (raw item ids;
    ``foldin.fold_in``); the history's items are excluded."""
    vec = fold_in(run, list(history))
    top, values = _rank(run, vec.unsqueeze(0), [torch.unique(run.item_index(list(history)))], k)
    return recommendation_rows(run, [name], top, values)[0]


def read_users_file(path: str | Path) -> list[str]:
    """Raw user ids, one per line (a CSV's first column; a header ``user`` is skipped; ``#`` comments)."""
    path = Path(path)
    if not path.is_file():
        raise InferenceError(f"--users-file {path}: no such file")
    users = []
    for line in path.read_text().splitlines():
        cell = line.split(",")[0].strip()
        if cell and not cell.startswith("#"):
            users.append(cell)
    if users and users[0].lower() in ("user", "user_id"):
        users = users[1:]
    if not users:
        raise InferenceError(f"--users-file {path}: no user ids")
    return users


def write_recommendations(lists: list[list[Recommendation]], path: str | Path) -> Path:
    """One row per (user, rank) to ``.csv`` or ``.jsonl`` (by the suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [asdict(r) for recs in lists for r in recs]
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif path.suffix == ".csv":
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["user", "rank", "item", "score", "text"])
            writer.writeheader()
            writer.writerows(rows)
    else:
        raise InferenceError(f"--out {path}: expected a .csv or .jsonl file")
    return path


def format_recommendations(recs: list[Recommendation], width: int = 70) -> str:
    """A plain-text table: rank, item id, score, text (shortened to ``width``)."""
    lines = [f"{'rank':>4}  {'item':<12}  {'score':>9}  text"]
    for r in recs:
        text = (r.text or "").replace("\n", " ")
        text = text if len(text) <= width else text[: width - 3] + "..."
        lines.append(f"{r.rank:>4}  {r.item:<12}  {r.score:9.4f}  {text}")
    return "\n".join(lines)


def recommend_with_index(run: LoadedRun, users: Sequence[str], index, k: int = 20, exclude_val: bool = False) -> list[list[Recommendation]]:
    """``recommend`` through an ANN index (``export.load_index``) instead of exact scoring of every item."""
    if k < 1:
        raise InferenceError(f"k={k}: need k >= 1")
    ids = run.user_index(list(users))
    user_emb, _ = run.embeddings()
    if index.d != user_emb.size(1) or index.ntotal != len(run.item_ids):
        raise InferenceError(
            f"--index: {index.ntotal} items of dimension {index.d}, but the run has {len(run.item_ids)} items of "
            f"dimension {user_emb.size(1)}; export the index from this run"
        )
    exclude = [set(_known(run, int(u), exclude_val).tolist()) for u in ids]
    found = search_index(index, user_emb.index_select(0, ids).numpy(), exclude, k)
    out = []
    for user, hits in zip(users, found):
        out.append([
            Recommendation(user, rank, run.item_ids[i], s, run.item_text[i] if run.item_text is not None else None)
            for rank, (i, s) in enumerate(hits, start=1)
        ])
    return out
