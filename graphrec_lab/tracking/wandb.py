"""Weights & Biases through Lightning's logger, offline unless an API key is configured."""

from __future__ import annotations

import os
from pathlib import Path

from lightning.pytorch.loggers import WandbLogger


def wandb_is_configured() -> bool:
    """True when a W&B API key is available (environment or ~/.netrc)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


def make_wandb_logger(
    project: str = "graphrec_lab",
    save_dir: str = "outputs/wandb",
    name: str | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    mode: str = "auto",
    entity: str | None = None,
) -> WandbLogger:
    """A ``WandbLogger``; ``mode="auto"`` means online with an API key, offline without one.

    Offline runs land in ``<save_dir>/wandb/offline-run-*`` (config and metrics included) and can be
    uploaded later with ``wandb sync``.
    """
    if mode not in ("auto", "online", "offline", "disabled"):
        raise ValueError(f"logger.wandb.mode={mode!r}: expected auto, online, offline or disabled")
    if mode == "auto":
        mode = "online" if wandb_is_configured() else "offline"
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(
        project=project,
        save_dir=save_dir,
        name=name,
        group=group,
        tags=list(tags or []),
        entity=entity,
        mode=mode,
        offline=mode == "offline",
    )
