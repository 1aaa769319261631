"""Next-item recommendations of a sequential run (``task=sequential``): a history in, the top K out.

A known user's history is the whole sequence the run's data hold for them (training items, then the
validation and test items), so the list predicts the item after everything known. ``history`` takes
any list of raw item ids, oldest first: a sequence model reads histories, so a new user needs no
fold-in. Scores are the model's ``full_scores`` over every item, ranked with
``evaluation.ranking.topk_stable`` (ties: lower item id first) as the evaluator ranks them. The
history's own items are ranked too (the UniSRec protocol keeps repeat purchases) unless
``exclude_history``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from graphrec_lab.data.sequential import pad_sequences
from graphrec_lab.evaluation.ranking import mask_scores, topk_stable
from graphrec_lab.inference.recommend import Recommendation, recommendation_rows
from graphrec_lab.inference.run import InferenceError, LoadedRun
from graphrec_lab.models.sequential.base import SequentialBase


def is_sequential(run: LoadedRun) -> bool:
    return isinstance(run.model, SequentialBase)


def user_history(run: LoadedRun, user: int) -> list[int]:
    """Dense item ids of everything the data hold for ``user`` (dense id), oldest first."""
    entry = run.datamodule.sequences().get(user)
    if entry is None:
        raise InferenceError(f"user {run.user_ids[user]!r} has no sequence in the run's data (too short to be kept)")
    seq, valid, test = entry
    return [*seq, *(i for i in (valid, test) if i is not None)]


def _max_length(run: LoadedRun) -> int:
    return int(getattr(run.model, "max_length", None) or getattr(run.datamodule, "max_length", 50))


def rank_histories(run: LoadedRun, histories: list[list[int]], k: int, exclude_history: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` item ids [B, k'] and scores [B, k'] after each history (dense ids, oldest first)."""
    if k < 1:
        raise InferenceError(f"k={k}: need k >= 1")
    padded = pad_sequences(histories, _max_length(run))
    with torch.no_grad():
        scores = run.model.full_scores(padded).float()  # [B, I]
    if exclude_history:
        rows = torch.cat([torch.full((len(h),), b, dtype=torch.long) for b, h in enumerate(histories)])
        cols = torch.cat([torch.as_tensor(h, dtype=torch.long) for h in histories])
        mask_scores(scores, torch.stack([rows, cols]))
    top = topk_stable(scores, min(k, scores.shape[1]))
    return top, scores.gather(1, top)


def recommend_next(
    run: LoadedRun, users: Sequence[str], k: int = 20, exclude_history: bool = False, batch_size: int = 256
) -> list[list[Recommendation]]:
    """The next items for each raw user id in ``users``, after their whole known sequence."""
    index = run.user_index(list(users)).tolist()
    out: list[list[Recommendation]] = []
    for start in range(0, len(index), batch_size):
        histories = [user_history(run, u) for u in index[start : start + batch_size]]
        top, values = rank_histories(run, histories, k, exclude_history)
        out += recommendation_rows(run, list(users[start : start + batch_size]), top, values)
    return out


def recommend_next_for_history(
    run: LoadedRun, history: Sequence[str], k: int = 20, exclude_history: bool = False, name: str = "new-user"
) -> list[Recommendation]:
    """The next items after ``history`` (raw item ids, oldest first) for a user the run never saw."""
    if not history:
        raise InferenceError("--history: give at least one item id")
    items = run.item_index(list(history)).tolist()
    top, values = rank_histories(run, [items], k, exclude_history)
    return recommendation_rows(run, [name], top, values)[0]
