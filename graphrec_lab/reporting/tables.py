"""Small formatting helpers shared by the experiment scripts' tables."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def mean_std(values: Sequence[float], digits: int = 4) -> str:
    """``"m ± s"`` over seeds (sample std), the value alone for one seed, ``"-"`` for none."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"
