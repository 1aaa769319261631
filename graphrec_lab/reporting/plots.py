"""A metric against a swept factor: one line per combination of the other factors, std error bars."""

from __future__ import annotations

import math
import re
from pathlib import Path

from graphrec_lab.reporting.report import ReportError, Table


def plot_metric_vs_factor(table: Table, factor: str, metric: str, path: str | Path) -> Path:
    """Write a PNG of ``metric`` (mean ± std over seeds) against ``factor``; returns its path.

    A numeric factor gets a numeric x axis (logarithmic when it spans more than two decades, as
    learning rates do); any other factor gets one tick per value, in the table's order.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if factor not in table.factors:
        raise ReportError(f"--plot {factor!r}: not a varying factor of this table ({table.factors})")
    if metric not in table.metrics:
        raise ReportError(f"metric {metric!r} is not in the table ({table.metrics})")
    values = list(dict.fromkeys(r.factors[factor] for r in table.rows))
    numeric = all(_is_float(v) for v in values)
    others = [f for f in table.factors if f != factor]
    lines: dict[str, list[tuple[float, float, float]]] = {}
    for row in table.rows:
        if not row.values.get(metric):
            continue
        label = ", ".join(f"{k}={row.factors[k]}" for k in others) or metric
        x = float(row.factors[factor]) if numeric else float(values.index(row.factors[factor]))
        mean, std = row.stats(metric)
        lines.setdefault(label, []).append((x, mean, 0.0 if math.isnan(std) else std))

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (label, points) in enumerate(lines.items()):
        points.sort()
        xs, ys, es = zip(*points)
        if not numeric:  # side by side, unconnected: categories have no order to draw a line along
            xs = tuple(x + 0.08 * (i - (len(lines) - 1) / 2) for x in xs)
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=label, linestyle="-" if numeric else "none")
    if numeric:
        xs_all = [float(v) for v in values]
        if min(xs_all) > 0 and max(xs_all) / min(xs_all) > 100:
            ax.set_xscale("log")
    else:
        ax.set_xticks(range(len(values)), values, rotation=20 if max(map(len, values)) > 8 else 0)
        ax.set_xlim(-0.5, len(values) - 0.5)
    ax.set_xlabel(factor)
    ax.set_ylabel(f"{metric} (mean ± std over seeds)")
    if len(lines) > 1:
        ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out)
    return out


def plot_filename(metric: str, factor: str) -> str:
    """``test/ndcg@20`` vs ``task.lr`` -> ``test_ndcg_20_vs_task.lr.png``."""
    clean = lambda s: re.sub(r"[^A-Za-z0-9_.\-]+", "_", s)  # noqa: E731
    return f"{clean(metric)}_vs_{clean(factor)}.png"


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
