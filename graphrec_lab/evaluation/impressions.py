"""Impression metrics of the MIND benchmark: AUC, MRR, nDCG@5, nDCG@10, per impression then averaged.

The official scorer (``evaluate.py`` of https://github.com/msnews/MIND) computes, for every
impression (a list of candidates with 0/1 click labels):

* ``AUC``: ``sklearn.metrics.roc_auc_score(labels, scores)``;
* ``MRR``: ``sum_{clicked c} 1 / rank(c) / #clicked``;
* ``nDCG@k``: ``DCG@k / ideal DCG@k`` with gains ``2**label - 1`` and discounts ``log2(rank + 1)``;

and reports the plain mean of each over impressions. Those definitions are reproduced exactly here,
vectorised over padded batches of impressions, in float64:

**Ties.** ``roc_auc_score`` gives a tied positive/negative pair half a point. The official MRR and
nDCG rank candidates with ``np.argsort(scores)[::-1]``, whose order among tied scores is an artefact
of numpy's sort (and the submission format is a ranking, so ties are normally absent). Here tied
candidates share their rank positions evenly: a candidate tied with ``g - 1`` others over ranks
``r+1 .. r+g`` receives the mean of ``1/rank`` (resp. of the discount) over those ``g`` ranks. That
is the expected value of the official metric under a uniformly random order of the tied
candidates, the same convention as AUC's half point, so the result never depends on candidate order
or batch layout. Without ties every value equals the official script's.

**Impressions the official script cannot score.** ``roc_auc_score`` raises on an impression whose
candidates are all clicked or all skipped (one class), and an impression without a click makes MRR
and nDCG divide by zero. (In the MIND files every impression has a click; such impressions arise
after filtering, e.g. when articles without text are dropped.) ``single_class="skip"`` (default)
leaves every single-class impression out of all four averages and counts it (``skipped``), so the
four numbers average over the same impressions, the ones the official script can score.
``single_class="partial"`` keeps impressions whose candidates were all clicked in MRR and nDCG (as the
script defines them: nDCG is 1, MRR the mean of ``1/r`` over ``r = 1..n``) and leaves them out of AUC
only; impressions without a click are skipped either way.
An impression with a single candidate is single-class by definition.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

SINGLE_CLASS_POLICIES = ("skip", "partial")
DEFAULT_KS = (5, 10)


def metric_names(ks: Sequence[int] = DEFAULT_KS) -> list[str]:
    """``["auc", "mrr", "ndcg@5", "ndcg@10"]`` for the default cut-offs."""
    return ["auc", "mrr", *(f"ndcg@{k}" for k in ks)]


def _tie_counts(scores: Tensor, valid: Tensor, reference: Tensor) -> tuple[Tensor, Tensor]:
    """For every entry of ``scores`` [B, C]: how many ``reference`` entries of its row score strictly
    higher, and how many score exactly the same. ``reference`` is a [B, C] bool mask of the
    candidates counted (invalid padding never counts). Returns two [B, C] int64 tensors."""
    c = scores.size(1)
    ref = torch.where(reference & valid, scores, torch.full_like(scores, -math.inf))
    asc, _ = torch.sort(ref, dim=1)
    query = scores.contiguous()
    below_or_equal = torch.searchsorted(asc, query, right=True)  # entries <= s (padding -inf included)
    below = torch.searchsorted(asc, query, right=False)  # entries < s
    # -inf padding sorts below every finite score, so it never counts as higher or equal.
    return c - below_or_equal, below_or_equal - below


def _mean_over_ranks(table: Tensor, start: Tensor, count: Tensor) -> Tensor:
    """Mean of ``f(p)`` over ranks ``p = start+1 .. start+count`` given ``table[n] = sum_{p<=n} f(p)``."""
    hi = torch.clamp(start + count, max=table.numel() - 1)
    lo = torch.clamp(start, max=table.numel() - 1)
    return (table[hi] - table[lo]) / count.clamp(min=1).to(table.dtype)


def impression_metrics(
    scores: Tensor,
    labels: Tensor,
    mask: Tensor | None = None,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, Tensor]:
    """Per-impression AUC, MRR and nDCG@k of a padded batch of impressions.

    Args:
        scores: [B, C] model scores (finite; padding entries are ignored whatever their value).
        labels: [B, C] 0/1 (bool or int) click labels.
        mask: [B, C] bool, True for real candidates (None: all are real).
        ks: nDCG cut-offs.

    Returns:
        ``{"auc": [B], "mrr": [B], "ndcg@k": [B], "num_pos": [B], "num_neg": [B]}``, float64 metric
        values (NaN where undefined: AUC of a single-class impression, MRR/nDCG without a click) and
        int64 counts.
    """
    if scores.dim() != 2 or scores.shape != labels.shape:
        raise ValueError(f"scores and labels must both be [B, C], got {tuple(scores.shape)} and {tuple(labels.shape)}")
    valid = torch.ones_like(labels, dtype=torch.bool) if mask is None else mask.bool()
    if valid.shape != scores.shape:
        raise ValueError(f"mask must be [B, C] like scores, got {tuple(valid.shape)}")
    s = scores.detach().to(torch.float64)
    if not bool(torch.isfinite(s[valid]).all()):
        raise ValueError("impression scores contain NaN or infinite values")
    s = torch.where(valid, s, torch.zeros_like(s))
    pos = labels.bool() & valid
    neg = ~labels.bool() & valid
    n_pos = pos.sum(1)
    n_neg = neg.sum(1)
    c = s.size(1)
    out: dict[str, Tensor] = {"num_pos": n_pos, "num_neg": n_neg}

    # AUC: each positive earns 1 per negative scored below it and 1/2 per negative tied with it.
    neg_higher, neg_equal = _tie_counts(s, valid, neg)
    neg_below = n_neg.unsqueeze(1) - neg_higher - neg_equal
    credit = torch.where(pos, neg_below.to(torch.float64) + 0.5 * neg_equal.to(torch.float64), torch.zeros_like(s))
    pairs = (n_pos * n_neg).to(torch.float64)
    out["auc"] = torch.where(pairs > 0, credit.sum(1) / pairs.clamp(min=1), torch.full_like(pairs, math.nan))

    # Ranks among all valid candidates, ties sharing their positions evenly.
    higher, equal = _tie_counts(s, valid, valid)
    ranks = torch.arange(0, c + 1, dtype=torch.float64, device=s.device)
    harmonic = torch.cat([ranks.new_zeros(1), torch.cumsum(1.0 / ranks[1:], 0)])  # [C+1]: sum_{p<=n} 1/p
    rr = _mean_over_ranks(harmonic, higher, equal)
    has_pos = n_pos > 0
    rr_sum = torch.where(pos, rr, torch.zeros_like(rr)).sum(1)
    out["mrr"] = torch.where(has_pos, rr_sum / n_pos.clamp(min=1).to(torch.float64), torch.full_like(rr_sum, math.nan))
    discounts = torch.cat([ranks.new_zeros(1), 1.0 / torch.log2(ranks[1:] + 1.0)])
    for k in ks:
        disc_k = torch.where(ranks <= k, discounts, torch.zeros_like(discounts))
        table = torch.cumsum(disc_k, 0)  # [C+1]: sum of discounts of ranks 1..n within the top k
        gain = _mean_over_ranks(table, higher, equal)
        dcg = torch.where(pos, gain, torch.zeros_like(gain)).sum(1)
        ideal = table[n_pos.clamp(max=c)]
        out[f"ndcg@{k}"] = torch.where(has_pos, dcg / ideal.clamp(min=1e-300), torch.full_like(dcg, math.nan))
    return out


class ImpressionEvaluator(Metric):
    """Accumulates the MIND metrics over batches of impressions (sums in float64, DDP-reducible).

    Args:
        ks: nDCG cut-offs (MIND: 5 and 10).
        single_class: ``"skip"`` or ``"partial"`` (see the module docstring).

    ``update(scores [B, C], labels [B, C], mask [B, C])``; ``compute()`` returns
    ``{"auc", "mrr", "ndcg@k"...: mean over scored impressions}``; ``num_impressions`` (scored) and
    ``skipped`` (single-class impressions left out) are kept as attributes after ``compute``.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, ks: Sequence[int] = DEFAULT_KS, single_class: str = "skip") -> None:
        super().__init__()
        if single_class not in SINGLE_CLASS_POLICIES:
            raise ValueError(f"single_class={single_class!r}: expected one of {SINGLE_CLASS_POLICIES}")
        ks = tuple(int(k) for k in ks)
        if not ks or any(k < 1 for k in ks):
            raise ValueError(f"ks={list(ks)}: nDCG cut-offs must be positive integers")
        self.ks = ks
        self.single_class = single_class
        self.names = metric_names(ks)
        for name in self.names:
            self.add_state(f"sum_{name}", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"n_{name}", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("seen", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("skipped_count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    @property
    def metric_names(self) -> list[str]:
        """The metric names this evaluator reports (run_experiment checks optimized_metric against them)."""
        return list(self.names)

    @property
    def metrics(self) -> dict[str, None]:
        """``metric_names`` as dict keys (the interface of ``FullRankingEvaluator.metrics``)."""
        return dict.fromkeys(self.names)

    def update(self, scores: Tensor, labels: Tensor, mask: Tensor | None = None) -> None:  # type: ignore[override]
        values = impression_metrics(scores, labels, mask, self.ks)
        two_class = (values["num_pos"] > 0) & (values["num_neg"] > 0)
        if self.single_class == "skip":
            ranked = two_class
        else:  # all-clicked impressions still have MRR and nDCG
            ranked = values["num_pos"] > 0
        for name in self.names:
            keep = two_class if name == "auc" else ranked
            v = values[name]
            getattr(self, f"sum_{name}").add_(v[keep].sum())
            getattr(self, f"n_{name}").add_(keep.sum().to(torch.float64))
        self.seen.add_(float(scores.size(0)))
        self.skipped_count.add_((~two_class).sum().to(torch.float64))

    def compute(self) -> dict[str, Tensor]:  # type: ignore[override]
        # Inside compute the states are summed over DDP ranks; torchmetrics restores the local ones
        # afterwards, so the counts are kept here for num_impressions / skipped.
        self._totals = (int(self.seen.item()), int(self.skipped_count.item()))
        out = {}
        for name in self.names:
            n = getattr(self, f"n_{name}")
            out[name] = getattr(self, f"sum_{name}") / n if n > 0 else torch.tensor(math.nan, dtype=torch.float64)
        return out

    def _counts(self) -> tuple[int, int]:
        """(seen, skipped): over all ranks after ``compute``, else this process's."""
        totals = getattr(self, "_totals", None)
        return totals if totals is not None else (int(self.seen.item()), int(self.skipped_count.item()))

    def reset(self) -> None:
        super().reset()
        self._totals = None

    @property
    def num_impressions(self) -> int:
        """Impressions in every average under ``skip`` (those with a click and a skip)."""
        seen, skipped = self._counts()
        return seen - skipped

    @property
    def skipped(self) -> int:
        """Single-class impressions (all clicked, none clicked, or one candidate)."""
        return self._counts()[1]


__all__ = ["DEFAULT_KS", "ImpressionEvaluator", "SINGLE_CLASS_POLICIES", "impression_metrics", "metric_names"]
