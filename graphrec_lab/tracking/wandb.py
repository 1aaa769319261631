"""Weights & Biases through Lightning's logger, offline unless an API key is configured.

Sweeps and ablations: every trial or multirun cell is its own W&B run. ``label_run`` puts it in the
study's or ablation's group, names it by the factors that vary and tags it with them;
``make_wandb_logger`` defines the summaries (best validation value, last test value) so that the
dashboard's run table compares like with like, and charts ``val/*`` and ``train/*`` against the
epoch. What a run logs when it ends (metrics Table, curves, artifacts): ``wandb_dashboard``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, open_dict

from graphrec_lab.tracking.wandb_dashboard import DashboardWandbLogger

WANDB_TAG_MAX = 64  # W&B rejects longer tags
WANDB_NAME_MAX = 128


def wandb_is_configured() -> bool:
    """True when a W&B API key is available (environment or ~/.netrc)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


_ENV_MODES = {"online": "online", "run": "online", "offline": "offline", "dryrun": "offline", "disabled": "disabled"}


def resolve_mode(mode: str, key: str = "logger.wandb.mode") -> str:
    """``auto`` -> the ``WANDB_MODE`` environment variable when set, else ``online`` with an API key
    and ``offline`` without one; other modes as they are.

    The variable is read here because an explicit ``mode`` passed to ``wandb.init`` overrides it:
    ``WANDB_MODE=offline`` with an API key configured must still give an offline run.
    """
    if mode not in ("auto", "online", "offline", "disabled"):
        raise ValueError(f"{key}={mode!r}: expected auto, online, offline or disabled")
    if mode == "auto":
        env = os.environ.get("WANDB_MODE", "").strip().lower()
        if env in _ENV_MODES:
            return _ENV_MODES[env]
        return "online" if wandb_is_configured() else "offline"
    return mode


def make_wandb_logger(
    project: str = "graphrec_lab",
    save_dir: str = "outputs/wandb",
    name: str | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    mode: str = "auto",
    entity: str | None = None,
    log_artifacts: bool = True,
) -> WandbLogger:
    """A ``WandbLogger``; ``mode="auto"``: ``WANDB_MODE`` if set, else online with an API key,
    offline without one.

    Offline runs land in ``<save_dir>/wandb/offline-run-*`` (config, metrics, tables and artifact
    manifests included) and can be uploaded later with ``wandb sync``. Summaries: ``val/*`` keep
    their maximum (every ranking metric is higher-is-better), ``test/*`` their last value; ``val/*``
    and ``train/*`` are charted against ``epoch``. ``log_artifacts``: log the selected checkpoint and
    the result record as Artifacts when the run ends.
    """
    mode = resolve_mode(mode)
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    logger = DashboardWandbLogger(
        project=project,
        save_dir=save_dir,
        name=name,
        group=group,
        tags=list(tags or []),
        entity=entity,
        mode=mode,
        offline=mode == "offline",
        log_artifacts=log_artifacts,
    )
    if mode != "disabled":
        run = logger.experiment  # starts the run now (Lightning would at the first log call)
        # Lightning adds the epoch to every row it logs; x-axis of the per-epoch curves.
        run.define_metric("epoch")
        run.define_metric("val/*", step_metric="epoch", summary="max")
        run.define_metric("train/*", step_metric="epoch")
        run.define_metric("test/*", summary="last")
    return logger


def factor_label(factors: Mapping[str, Any]) -> str:
    """``{"model": "ngcf", "task.lr": 0.01}`` -> ``"model=ngcf,task.lr=0.01"``."""
    return ",".join(f"{key.lstrip('+~')}={_short(value)}" for key, value in factors.items())


def label_run(cfg: DictConfig, factors: Mapping[str, Any], group: str | None = None, prefix: str | None = None) -> None:
    """Label one sweep trial or multirun cell in place, before ``run_experiment(cfg)``.

    ``cfg.group`` becomes ``group`` unless the user set one; ``key=value`` tags are added for each
    factor; every W&B logger in ``cfg.logger`` is named ``<prefix>-<factors>`` unless named already.
    """
    if group is not None and cfg.get("group") is None:
        cfg.group = group
    tags = list(cfg.get("tags") or [])
    for key, value in factors.items():
        tag = f"{key.lstrip('+~')}={_short(value)}"[:WANDB_TAG_MAX]
        if tag not in tags:
            tags.append(tag)
    cfg.tags = tags
    label = factor_label(factors)
    name = "-".join(part for part in (prefix, label) if part)[:WANDB_NAME_MAX] or None
    for node in (cfg.get("logger") or {}).values():
        if node is not None and str(node.get("_target_", "")).endswith("make_wandb_logger") and node.get("name") is None:
            with open_dict(node):
                node.name = name


def finish_active_run(state: str) -> None:
    """Finish a W&B run left open by an interrupted trial (pruned or failed), marking its state.

    ``run_experiment`` finishes its run only on success; without this the next trial in the same
    process would log into the open run (``WandbLogger`` reuses ``wandb.run``).
    """
    wandb = sys.modules.get("wandb")  # never import wandb just to find nothing to finish
    run = getattr(wandb, "run", None) if wandb is not None else None
    if run is None:
        return
    try:
        run.summary["trial_state"] = state
        run.tags = tuple(run.tags or ()) + (state,)
    finally:
        run.finish(exit_code=0 if state == "pruned" else 1)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def quiet_wandb_console() -> None:
    """W&B prints ~40 lines per run (header, sparkline history, summary, sync hints), all of which
    the run's files and the final table already hold. Without an API key (offline runs) it is made
    silent; with one, quiet (the run's URL still prints). Console capture is off, so progress bars
    are not copied into the run. Settings already in the environment win."""
    online = wandb_is_configured() and os.environ.get("WANDB_MODE", "") not in ("offline", "disabled", "dryrun")
    os.environ.setdefault("WANDB_CONSOLE", "off")
    if online:
        os.environ.setdefault("WANDB_QUIET", "true")
        return
    os.environ.setdefault("WANDB_SILENT", "true")
    if os.environ["WANDB_SILENT"].lower() in ("1", "true", "yes"):
        # wandb.init checks its arguments before reading WANDB_SILENT, and Lightning passes
        # anonymous=None, which wandb (0.31) answers with a deprecation line; set silent first.
        import wandb

        wandb.termsetup(wandb.Settings(silent=True), None)
