"""Ensembles of finished runs: combine their scores, evaluate with the runs' own full-ranking evaluator.

Methods (per user, over all items; ``weights`` default to equal):

* ``zscore``: the weighted mean of each run's scores standardised per user (mean 0, std 1 over items);
* ``minmax``: the same with scores scaled to [0, 1] per user;
* ``rrf``: reciprocal rank fusion, sum_r w_r / (k0 + rank_r(i)) with 1-based ranks (Cormack et al.,
  SIGIR 2009; ``k0 = 60``);
* ``borda``: the weighted Borda count, sum_r w_r (I - rank_r(i)).

Ranks come from each run's scores with the evaluator's tie rule (lower item id first). The runs must
share the dataset and split (the split hash of ``InteractionGraph.content_hash``); the evaluation
masks and targets are the first run's DataModule's, exactly as a single run's ``test`` uses them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from graphrec_lab.evaluation.evaluator import METRICS as METRICS_ALL
from graphrec_lab.evaluation.evaluator import FullRankingEvaluator
from graphrec_lab.inference.run import InferenceError, LoadedRun

METHODS = ("zscore", "minmax", "rrf", "borda")
RRF_K0 = 60.0


@dataclass
class EnsembleResult:
    method: str
    weights: list[float]
    runs: list[str]  # run directories
    metrics: dict[str, float]  # "<split>/<metric>", as a run's record names them

    def format(self, names: Sequence[str] | None = None) -> str:
        keys = sorted({k.split("/", 1)[1] for k in self.metrics})
        lines = [f"ensemble ({self.method}) of {len(self.runs)} runs: " + ", ".join(names or self.runs), "",
                 f"{'metric':<18}{'val':>10}{'test':>10}", "-" * 38]  # fmt: skip
        for k in keys:
            val, test = self.metrics.get(f"val/{k}"), self.metrics.get(f"test/{k}")
            lines.append(f"{k:<18}{'' if val is None else f'{val:10.4f}'}{'' if test is None else f'{test:10.4f}'}")
        return "\n".join(lines)


def check_compatible(runs: Sequence[LoadedRun]) -> None:
    """Every run on the same data and split as the first; ``InferenceError`` naming the first that is not."""
    if not runs:
        raise InferenceError("ensemble: no runs given")
    first = runs[0]
    want = (first.data.name, first.data.content_hash(), first.user_ids, first.item_ids)
    for run in runs[1:]:
        got = (run.data.name, run.data.content_hash(), run.user_ids, run.item_ids)
        if got[:2] != want[:2] or got[2:] != want[2:]:
            raise InferenceError(
                f"ensemble: {run.run_dir} uses {got[0]} with split hash {got[1]}, but {first.run_dir} uses "
                f"{want[0]} with split hash {want[1]}; ensembles need the same data and split"
            )


def ranks(scores: Tensor) -> Tensor:
    """1-based rank of every item per row of ``scores`` [B, I] (ties: lower item id first), float [B, I]."""
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    out = torch.empty_like(scores)
    out.scatter_(1, order, torch.arange(1, scores.shape[1] + 1, dtype=scores.dtype).expand_as(scores).contiguous())
    return out


def combine(scores: Sequence[Tensor], method: str, weights: Sequence[float]) -> Tensor:
    """The ensemble's scores [B, I] from each run's scores [B, I]."""
    if method not in METHODS:
        raise InferenceError(f"ensemble --method {method!r}: expected one of {', '.join(METHODS)}")
    out = torch.zeros_like(scores[0], dtype=torch.float64)
    for s, w in zip(scores, weights):
        s = s.to(torch.float64)
        if method == "zscore":
            part = (s - s.mean(1, keepdim=True)) / s.std(1, keepdim=True).clamp_min(1e-12)
        elif method == "minmax":
            lo, hi = s.min(1, keepdim=True).values, s.max(1, keepdim=True).values
            part = (s - lo) / (hi - lo).clamp_min(1e-12)
        elif method == "rrf":
            part = 1.0 / (RRF_K0 + ranks(s))
        else:  # borda
            part = s.shape[1] - ranks(s)
        out += w * part
    return out


def evaluate_ensemble(
    runs: Sequence[LoadedRun], method: str = "zscore", weights: Sequence[float] | None = None,
    splits: Sequence[str] = ("val", "test"), batch_size: int = 1024,
) -> EnsembleResult:  # fmt: skip
    """Metrics of the combined scores on each split, by the first run's evaluator settings and masks."""
    check_compatible(runs)
    weights = list(weights) if weights is not None else [1.0] * len(runs)
    if len(weights) != len(runs) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise InferenceError(f"ensemble --weights {weights}: expected {len(runs)} non-negative numbers, not all 0")
    first = runs[0]
    task = first.task
    embeddings = [run.embeddings() for run in runs]
    metrics: dict[str, float] = {}
    for split in splits:
        evaluator = FullRankingEvaluator(first.data.num_items, list(task.hparams.get("ks", (10, 20))), list(task.hparams.get("metrics", METRICS_ALL)))
        users = first.datamodule.eval_users(split)
        loader = torch.utils.data.DataLoader(users, batch_size=batch_size, collate_fn=users.collate)
        for batch in loader:
            per_run = [u[batch.users] @ i.T for u, i in embeddings]
            evaluator.update(combine(per_run, method, weights), batch)
        metrics.update({f"{split}/{k}": v for k, v in evaluator.compute().items()})
    return EnsembleResult(method, weights, [str(r.run_dir) for r in runs], metrics)
