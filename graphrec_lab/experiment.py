"""``run_experiment``: the one entry point of every run, sweep trial, ablation cell and notebook;
``build``: the pieces it wires together, for benchmarks, notebooks and tests.

validate config -> seed -> ``build`` (DataModule -> model -> task -> callbacks, loggers, trainer) -> fit
(model selection on validation) -> test the selected checkpoint -> one result record -> metrics.
"""

from __future__ import annotations

import inspect
import logging
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from graphrec_lab.config import ConfigError, validate_config
from graphrec_lab.data.graph import InteractionGraph
from graphrec_lab.data.protocols import DataModule, ItemGroupSource, ItemTextSource, SideFeatureSource, UserGroupSource, implements
from graphrec_lab.distributed import global_rank, launch_local_ranks, new_run_id
from graphrec_lab.tracking.paths import safe_dir_name
from graphrec_lab.tracking.results import ResultStore, ResultStoreError, failure_record, save_fallback
from graphrec_lab.tracking.wandb_dashboard import finish_wandb_run
from graphrec_lab.training.callbacks import AdaptiveThreads, EpochTimer, progress_bar_callbacks, progress_bar_enabled
from graphrec_lab.training.checkpoint import check_checkpoint
from graphrec_lab.training.threads import ThreadGovernor, apply_thread_policy, local_ranks
from graphrec_lab.training.warm_start import warm_start

log = logging.getLogger(__name__)


@dataclass
class Experiment:
    """One run's pieces, built from a config by ``build`` and wired as ``run_experiment`` uses them.

    ``graph``: the processed dataset (``datamodule.load_graph()``); ``name``: the run's name
    (``cfg.name`` or ``<model>-<dataset>``); ``run_dir``: ``<paths.root>/runs/<name>/<run_id>``, where
    checkpoints and logger files go; ``timer``: the ``EpochTimer`` among ``callbacks``.
    """

    cfg: DictConfig
    datamodule: DataModule
    graph: InteractionGraph
    model: nn.Module
    task: pl.LightningModule
    callbacks: list[Callback]
    loggers: list[Logger]
    trainer: pl.Trainer
    timer: EpochTimer
    name: str
    run_id: str
    run_dir: Path


def build(cfg: DictConfig, extra_callbacks: Sequence[Callback] = (), run_id: str | None = None) -> Experiment:
    """Validate ``cfg``, seed every RNG from ``cfg.seed`` and build the run's pieces without running
    anything: the DataModule (prepared and set up), the model (with text features when ``cfg.text``
    is set), the task attached to the training graph, callbacks, loggers and the trainer.

    ``extra_callbacks`` are added to the configured ones; ``run_id`` names the run directory (a new
    ``<time>-<6 hex>`` when None). Creates ``run_dir`` on rank 0.
    """
    validate_config(cfg)
    _check_optimized_metric(cfg)
    return _build(cfg, extra_callbacks, run_id or new_run_id())


def run_experiment(
    cfg: DictConfig, overrides: list[str] | None = None, extra_callbacks: Sequence[Callback] = ()
) -> dict[str, float]:
    """Run one experiment described by a composed config and return its metrics.

    ``extra_callbacks``: live Lightning callbacks added to the configured ones (a sweep's pruning
    callback, which holds its Optuna trial and so cannot come from the config).

    Returns a flat dict: ``val/<metric>@<k>`` of the selected checkpoint, ``test/<metric>@<k>`` of
    the same checkpoint, ``best_epoch``, ``epochs``, ``time/fit_s``, ``time/epoch_s``, ``time/test_s``.
    Also appends one JSON record (config, overrides, metrics, seed, git commit, durations, paths)
    to ``cfg.paths.results``.
    """
    t_start = time.perf_counter()
    validate_config(cfg)
    _check_optimized_metric(cfg)
    # Before any compute: a result that cannot be recorded would be lost.
    ResultStore(cfg.paths.results).check_writable()
    # DDP & co.: ranks 1.. are started here with this exact config (graphrec_lab.distributed).
    with launch_local_ranks(cfg, overrides) as run_id:
        started: dict[str, Any] = {}  # set by _run once training or evaluation has begun
        try:
            return _run(cfg, overrides, extra_callbacks, run_id, t_start, started)
        except Exception as exc:
            # A run that failed once it was running (non-finite loss, out of memory) is recorded as
            # failed; rejected input (config, data files, checkpoint) writes nothing.
            # A pruned sweep trial (optuna.TrialPruned) is Optuna's to record, not a failure.
            if started and not isinstance(exc, ResultStoreError) and type(exc).__name__ != "TrialPruned":
                _record_failure(cfg, overrides, run_id, exc, started)
            raise


def _record_failure(
    cfg: DictConfig, overrides: list[str] | None, run_id: str, exc: BaseException, started: dict[str, Any]
) -> None:
    """Append a ``status: failed`` record (no metrics) for a run that started and raised."""
    if global_rank() != 0:
        return
    base = {
        "run_id": run_id, "name": started.get("name"), "paths": {"run_dir": started.get("run_dir")},
        "group": cfg.get("group"), "tags": list(cfg.get("tags") or []),
        "seed": cfg.get("seed"), "optimized_metric": cfg.get("optimized_metric"), "overrides": list(overrides or []),
        "config": OmegaConf.to_container(cfg, resolve=True), "git_commit": _git("rev-parse", "HEAD"),
    }  # fmt: skip
    try:
        ResultStore(cfg.paths.results).append(failure_record(base, exc))
    except OSError as store_exc:
        log.warning("could not record the failed run in %s: %s", cfg.paths.results, store_exc)


def _run(
    cfg: DictConfig, overrides: list[str] | None, extra_callbacks: Sequence[Callback], run_id: str, t_start: float,
    started: dict[str, Any] | None = None,
) -> dict[str, float]:
    """The body of ``run_experiment`` on one rank."""
    built = _build(cfg, extra_callbacks, run_id)
    datamodule, graph, model, task = built.datamodule, built.graph, built.model, built.task
    callbacks, loggers, trainer, timer = built.callbacks, built.loggers, built.trainer, built.timer
    name, run_dir = built.name, built.run_dir
    resolved = OmegaConf.to_container(cfg, resolve=True)
    task.run_config = resolved  # saved in every checkpoint (RecommendationTask.on_save_checkpoint)
    for lg in loggers:
        lg.log_hyperparams(resolved)  # type: ignore[arg-type]

    checkpoint = next((c for c in callbacks if isinstance(c, ModelCheckpoint)), None)
    metrics: dict[str, float] = {}
    t_fit = time.perf_counter()
    ckpt_path: str | None = None
    if cfg.get("ckpt_path"):  # readable, and saved by this model on this data (else: what differs)
        sizes = {"num_users": graph.num_users, "num_items": graph.num_items}
        check_checkpoint(str(cfg.ckpt_path), resolved, task.state_dict(), sizes)
    if started is not None:
        started.update(name=name, run_dir=str(run_dir))
    warm: dict[str, Any] | None = None
    if cfg.get("init_from"):
        if cfg.get("ckpt_path"):
            raise ConfigError("init_from and ckpt_path: give one (ckpt_path resumes this run's own checkpoint)")
        ids = str(cfg.get("init_from_ids", "fresh"))
        texts = _item_texts(cfg, datamodule, "init_from_ids=text") if ids == "text" else None
        warm = warm_start(model, str(cfg.init_from), ids, texts, int(cfg.get("init_from_neighbours", 10))).summary()
        log.info("init_from %s: %d parameters loaded, fresh: %s, mapped through text: %s", warm["checkpoint"],
                 warm["loaded"], warm["fresh"], warm.get("mapped", "-"))
    if model.trainable and cfg.fit:
        # ckpt_path with fit=true resumes training from that checkpoint (optimizer and epoch included).
        trainer.fit(task, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
        if checkpoint is not None and checkpoint.best_model_path:
            ckpt_path = checkpoint.best_model_path
        elif checkpoint is not None:
            log.warning(
                "no validation ran in %d epochs (trainer.check_val_every_n_epoch=%s): the metrics below are "
                "the last epoch's, not a selected checkpoint's (best_epoch -1)",
                trainer.current_epoch, cfg.trainer.get("check_val_every_n_epoch"),
            )
    elif cfg.get("ckpt_path"):
        ckpt_path = str(cfg.ckpt_path)  # evaluate a saved checkpoint (fit=false)
    fit_s = time.perf_counter() - t_fit
    # Validation metrics of the selected checkpoint (exactly the model that is tested).
    val_out = trainer.validate(task, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False, weights_only=True)
    metrics.update({k: float(v) for k, v in val_out[0].items()})
    test_s = 0.0
    if cfg.test:
        t_test = time.perf_counter()
        test_out = trainer.test(task, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False, weights_only=True)
        test_s = time.perf_counter() - t_test
        metrics.update({k: float(v) for k, v in test_out[0].items()})
    metrics.update(
        {
            "epochs": float(trainer.current_epoch) if model.trainable and cfg.fit else 0.0,
            "best_epoch": float(_best_epoch(ckpt_path)),
            "time/fit_s": fit_s,
            "time/epoch_s": timer.mean_epoch_seconds,
            "time/test_s": test_s,
            "time/total_s": time.perf_counter() - t_start,
        }
    )
    metrics[f"skipped_users/val"] = float(datamodule.skipped_users("val"))
    metrics[f"skipped_users/test"] = float(datamodule.skipped_users("test"))

    status = _git("status", "--porcelain", "--untracked-files=no")
    record = {
        "run_id": run_id,
        "name": name,
        "group": cfg.group,
        "tags": list(cfg.tags),
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "seed": int(cfg.seed),
        "optimized_metric": cfg.optimized_metric,
        "overrides": list(overrides or []),
        "config": resolved,
        "metrics": metrics,
        "data": {"name": graph.name, "split_hash": graph.content_hash(), **graph.stats()},
        "git_commit": _git("rev-parse", "HEAD"),
        # Tracked files edited since that commit: the commit alone does not reproduce this run.
        "git_dirty": None if status is None else status != "",
        "paths": {"run_dir": str(run_dir), "checkpoint": ckpt_path, **(_logger_dirs(loggers) if trainer.is_global_zero else {})},
        # The strategy's device: Lightning moves the module back to the CPU when fit/test end.
        "device": str(trainer.strategy.root_device),
        "world_size": int(trainer.world_size),
        "torch_threads": torch.get_num_threads(),  # the thread policy's choice (graphrec_lab/training/threads.py)
        **_thread_changes(callbacks),
        "strategy": type(trainer.strategy).__name__,
        **({"init_from": warm} if warm is not None else {}),
        **({"side_features": datamodule.feature_report} if implements(datamodule, SideFeatureSource) and datamodule.feature_report else {}),
    }
    store_error: ResultStoreError | None = None
    if trainer.is_global_zero:
        try:
            ResultStore(cfg.paths.results).append(record)
        except OSError as exc:  # the metrics still reach the loggers and the terminal below
            store_error = _fallback(record, cfg.paths.results, run_dir, exc)
    for lg in loggers if trainer.is_global_zero else []:  # other ranks hold no-op logger experiments
        if isinstance(lg, WandbLogger):  # summary, metrics Table, curves, artifacts; closes the run
            finish_wandb_run(lg, record)
        else:
            lg.log_metrics({k: v for k, v in metrics.items()})
            lg.finalize("success")
    if (cfg.print_table or store_error is not None) and trainer.is_global_zero:
        print(format_metrics_table(metrics, title=f"{name} ({run_dir})"))
    if store_error is not None:
        raise store_error
    return metrics


def _fallback(record: dict[str, Any], store: str, run_dir: Path, exc: OSError) -> ResultStoreError:
    """Save a record the store refused in the run directory; the error to raise names both paths."""
    try:
        kept = f"the record is saved in {save_fallback(record, run_dir)}"
    except OSError as fallback_exc:
        kept = f"saving it in {run_dir / 'result.json'} failed too ({fallback_exc})"
    return ResultStoreError(f"the result record could not be appended to {store} ({exc}); the metrics are printed above and {kept}")


def _check_optimized_metric(cfg: DictConfig) -> None:
    if not str(cfg.optimized_metric).startswith("val/"):
        raise ConfigError(f"optimized_metric={cfg.optimized_metric!r}: model selection must use a val/ metric")


def _build(cfg: DictConfig, extra_callbacks: Sequence[Callback], run_id: str) -> Experiment:
    """``build`` after validation: threads, seed, then every piece in the order whose RNG draws a seed fixes."""
    threads = cfg.get("threads", "auto")
    share = apply_thread_policy(threads, ranks=local_ranks(cfg.trainer.get("devices", 1)))
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)

    datamodule = instantiate(cfg.data, _convert_="all")
    if not implements(datamodule, DataModule):
        raise ConfigError(f"data._target_={cfg.data.get('_target_')!r} does not build a DataModule (graphrec_lab.data.protocols)")
    datamodule.prepare_data()
    datamodule.setup("fit")
    graph = datamodule.load_graph()
    text = _build_text(cfg)
    model_kwargs: dict[str, Any] = {}
    if text is not None:
        model_kwargs["item_features"] = text.attach(_item_texts(cfg, datamodule))
    for side, values in (datamodule.side_features() if implements(datamodule, SideFeatureSource) else {}).items():
        if f"{side}_features" in model_kwargs:
            raise ConfigError(f"data.features.{side} and text= both give item features; use one")
        model_kwargs[f"{side}_features"] = values
    model = instantiate(cfg.model, num_users=graph.num_users, num_items=graph.num_items, **model_kwargs)
    item_groups = datamodule.item_groups() if implements(datamodule, ItemGroupSource) else None
    try:
        task = instantiate(cfg.task, model=model, text=text, item_groups=item_groups, _recursive_=False, _convert_="all")
    except Exception as err:  # Hydra wraps a task's own ConfigError (naming the key) in InstantiationException
        if isinstance(err.__cause__, ConfigError):
            raise err.__cause__ from None
        raise
    task.attach_graph(datamodule.train_graph)
    user_groups = datamodule.user_groups() if implements(datamodule, UserGroupSource) else {}
    for evaluator in (task.val_evaluator, task.test_evaluator) if user_groups else ():
        evaluator.add_groups(user_groups=user_groups)  # cold-start users: metrics per group
    _check_metric_exists(cfg, task)

    name = cfg.name or f"{type(model).__name__.lower()}-{graph.name}"
    run_dir = Path(cfg.paths.root) / "runs" / safe_dir_name(name) / run_id
    if global_rank() == 0:  # other ranks write nothing of their own (checkpoint dir: rank 0's, broadcast)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ResultStoreError(f"paths.root={str(cfg.paths.root)!r}: cannot create the run directory {run_dir} ({exc})") from None
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)  # a run dir is loadable on its own (load_run)

    callbacks = _callbacks(cfg, run_dir)
    timer = EpochTimer()
    callbacks.append(timer)
    if isinstance(threads, str) and share > 1:  # auto: follow the load while the run lasts
        callbacks.append(AdaptiveThreads(ThreadGovernor(share)))
    callbacks.extend(extra_callbacks)
    loggers = _loggers(cfg, run_dir, name)
    # _partial_: pass live callback and logger objects straight to the constructor (Hydra would try
    # to turn them into config nodes).
    trainer: pl.Trainer = instantiate(cfg.trainer, _partial_=True)(
        callbacks=callbacks, logger=loggers or False, default_root_dir=str(run_dir),
        enable_progress_bar=progress_bar_enabled(cfg.trainer.get("enable_progress_bar")),
    )
    return Experiment(cfg, datamodule, graph, model, task, callbacks, loggers, trainer, timer, name, run_id, run_dir)


def _build_text(cfg: DictConfig) -> Any:
    """The item-text features (``cfg.text``), or None for an ID-only run."""
    if cfg.get("text") is None:
        return None
    model_cls = get_class(str(cfg.model._target_))
    if "item_features" not in inspect.signature(model_cls).parameters:
        raise ConfigError(f"text: model {cfg.model._target_} takes no input features; drop text= or pick a trainable model")
    return instantiate(cfg.text)


def _item_texts(cfg: DictConfig, datamodule: object, key: str = "text") -> list[str]:
    if not implements(datamodule, ItemTextSource):
        raise ConfigError(
            f"{key}: data module {type(datamodule).__name__} ({cfg.data.get('dataset')}) has no item text; "
            "use a data config with text (e.g. data=amazon_scientific or data=ml100k_text)"
        )
    return list(datamodule.item_texts())


def _check_metric_exists(cfg: DictConfig, task: Any) -> None:
    metric = str(cfg.optimized_metric).split("/", 1)[1]
    names = set(task.val_evaluator.metric_names)
    if metric not in names:
        raise ConfigError(f"optimized_metric={cfg.optimized_metric!r} is not computed; task.ks/metrics give {sorted(names)}")


def _callbacks(cfg: DictConfig, run_dir: Path) -> list[Callback]:
    out: list[Callback] = []
    for key, node in (cfg.get("callbacks") or {}).items():
        if node is None:
            continue
        if "dirpath" in node and node.dirpath is None:
            node = node.copy()
            with open_dict(node):
                node.dirpath = str(run_dir / "checkpoints")
        out.append(instantiate(node))
    out.extend(progress_bar_callbacks(cfg.trainer.get("enable_progress_bar")))
    return out


def _loggers(cfg: DictConfig, run_dir: Path, name: str) -> list[Logger]:
    out: list[Logger] = []
    for key, node in (cfg.get("logger") or {}).items():
        if node is None:
            continue
        node = node.copy()
        with open_dict(node):
            if "save_dir" in node and node.save_dir is None:
                node.save_dir = str(run_dir)
            if str(node.get("_target_", "")).endswith("make_wandb_logger") and node.get("name") is None:
                node.name = f"{name}-{run_dir.name}"
        out.append(instantiate(node))
    return out


def _logger_dirs(loggers: list[Logger]) -> dict[str, str]:
    dirs = {}
    for lg in loggers:
        if isinstance(lg, WandbLogger):
            dirs["wandb_dir"] = str(lg.experiment.dir)
        elif lg.log_dir is not None:
            dirs[f"{type(lg).__name__.lower()}_dir"] = str(lg.log_dir)
    return dirs


def _thread_changes(callbacks: Sequence[Callback]) -> dict[str, int]:
    """What ``threads: auto`` did under load: the fewest threads it set and how often it changed them."""
    governor = next((c.governor for c in callbacks if isinstance(c, AdaptiveThreads)), None)
    if governor is None or governor.changes == 0:
        return {}
    return {"torch_threads_min": governor.min_threads, "torch_thread_changes": governor.changes}


def _best_epoch(ckpt_path: str | None) -> int:
    if not ckpt_path:
        return -1
    return int(torch.load(ckpt_path, map_location="cpu", weights_only=True).get("epoch", -1))


def _git(*args: str) -> str | None:
    """``git <args>`` in the package's checkout: its stripped output, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def format_metrics_table(metrics: dict[str, float], title: str = "") -> str:
    """A plain-text table: one row per metric@k, validation and test side by side, then the run's
    other numbers; counts (``num_users``, ``epochs``, ``best_epoch``, ``skipped_users/*``) as integers."""
    rows: dict[str, dict[str, float]] = {}
    extra = []
    for key, value in metrics.items():
        split, _, metric = key.partition("/")
        if split in ("val", "test") and metric:
            rows.setdefault(metric, {})[split] = value
        else:
            extra.append((key, value))
    width = max([len(m) for m in rows] + [len(k) for k, _ in extra] + [6])
    lines = [title, f"{'metric':<{width}}  {'val':>8}  {'test':>8}", "-" * (width + 20)] if title else []
    for metric in sorted(rows, key=lambda m: (m.split("@")[0], int(m.split("@")[1]) if "@" in m and m.split("@")[1].isdigit() else 0)):
        v, t = rows[metric].get("val"), rows[metric].get("test")
        lines.append(f"{metric:<{width}}  {_cell(metric, v, 4)}  {_cell(metric, t, 4)}")
    for key, value in extra:
        lines.append(f"{key:<{width}}  {_cell(key, value, 3)}")
    return "\n".join(lines)


_COUNT_NAMES = ("epochs", "best_epoch", "skipped_users")


def _cell(key: str, value: float | None, digits: int) -> str:
    """One right-aligned 8-wide cell: ``-`` when missing, an integer for a whole-valued count."""
    if value is None:
        return f"{'-':>8}"
    is_count = any(part in _COUNT_NAMES or part.startswith("num_") for part in key.split("/"))
    if is_count and float(value).is_integer():
        return f"{int(value):>8d}"
    return f"{value:8.{digits}f}"
