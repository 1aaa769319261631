"""Paired significance tests over seeds: a row of an ablation table against its baseline row."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

WILCOXON_MIN_N = 6  # below this the exact Wilcoxon test cannot reach p < 0.05 (two-sided)


@dataclass(frozen=True)
class PairedTest:
    """``x`` vs ``baseline`` over the seeds both have; p-values are two-sided, None when undefined."""

    seeds: tuple[int, ...]
    mean_diff: float  # mean(x - baseline)
    p_ttest: float | None  # scipy.stats.ttest_rel; nan when every difference is equal
    p_wilcoxon: float | None  # scipy.stats.wilcoxon, only when n >= WILCOXON_MIN_N

    @property
    def n(self) -> int:
        return len(self.seeds)


def paired_test(x: Mapping[int, float], baseline: Mapping[int, float]) -> PairedTest:
    """Pair ``{seed: value}`` maps on their common seeds; t-test for n >= 2, Wilcoxon for n >= 6."""
    from scipy import stats  # imported here: the CLI imports this module for its error type
    seeds = tuple(sorted(set(x) & set(baseline)))
    a = [float(x[s]) for s in seeds]
    b = [float(baseline[s]) for s in seeds]
    diff = sum(u - v for u, v in zip(a, b)) / len(seeds) if seeds else math.nan
    p_t = p_w = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # zero variance: scipy returns nan and warns
        if len(seeds) >= 2:
            p_t = float(stats.ttest_rel(a, b).pvalue)
        if len(seeds) >= WILCOXON_MIN_N:
            try:
                p_w = float(stats.wilcoxon(a, b).pvalue)
            except ValueError:  # every difference is zero
                p_w = math.nan
    return PairedTest(seeds=seeds, mean_diff=diff, p_ttest=p_t, p_wilcoxon=p_w)


def format_p(p: float | None) -> str:
    if p is None:
        return "-"
    if math.isnan(p):
        return "n/a"
    return f"{p:.3g}"
