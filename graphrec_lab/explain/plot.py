"""A PNG of an explanation subgraph: the user, the top contributing items or edges, the target item."""

from __future__ import annotations

from pathlib import Path


def plot_explanation(user: str, item: str, weights: list[tuple[str, float]], path: str | Path, title: str = "") -> Path:
    """Draw user -> contributing item -> target item, edge width by |weight|, colour by sign.

    ``weights``: (history item label, weight), at most a dozen are drawn legibly."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = max(1, len(weights))
    biggest = max((abs(w) for _, w in weights), default=1.0) or 1.0
    fig, ax = plt.subplots(figsize=(8, max(3.0, 0.45 * n + 1.5)))
    ys = [n - 1 - r for r in range(n)]
    mid = (n - 1) / 2
    ax.scatter([0], [mid], s=500, c="#4c72b0", zorder=3)
    ax.annotate(f"user\n{user}", (0, mid), ha="center", va="center", fontsize=8, color="white", zorder=4)
    ax.scatter([2], [mid], s=500, c="#c44e52", zorder=3)
    ax.annotate(f"item\n{item}", (2, mid), ha="center", va="center", fontsize=8, color="white", zorder=4)
    for (label, w), y in zip(weights, ys):
        colour = "#55a868" if w >= 0 else "#dd8452"
        width = 0.5 + 5.0 * abs(w) / biggest
        ax.plot([0, 1], [mid, y], color=colour, lw=width, alpha=0.8, zorder=1)
        ax.plot([1, 2], [y, mid], color="grey", lw=0.8, ls="--", alpha=0.6, zorder=1)
        ax.scatter([1], [y], s=120, c="#8172b2", zorder=3)
        ax.annotate(f"{label}  ({w:+.3g})", (1.05, y + 0.15), fontsize=8)
    ax.set_xlim(-0.4, 2.6)
    ax.set_ylim(-1, n)
    ax.axis("off")
    ax.set_title(title or f"why {item} for {user}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
