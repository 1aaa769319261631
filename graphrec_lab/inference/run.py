"""``load_run``: a finished run (its directory or checkpoint) back as a model ready to score.

A run directory (``<paths.root>/runs/<name>/<run id>/``) holds ``checkpoints/best.ckpt`` (the
selected model), ``config.yaml`` (the resolved run config) and the loggers' folders; the result store
(``<paths.root>/results.jsonl``) holds one record per run with the same config. The config is read,
in order of preference, from the checkpoint itself, from ``config.yaml``, or from the run's result
record. The data are rebuilt from the config (the processed-data cache makes that cheap), so the
loaded run scores over exactly the training graph it was fitted on, with the data's raw ids and item
text.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from graphrec_lab.models.base import Recommender
from graphrec_lab.models.scorers import scorer_kind

# Where a checkpoint may carry its resolved run config: ``checkpoint["graphrec_lab"]["config"]`` (what
# RecommendationTask.on_save_checkpoint writes), or a top-level key of these names.
CHECKPOINT_CONFIG_KEYS = ("graphrec_lab", "config", "run_config", "resolved_config")


class InferenceError(ValueError):
    """A run, a user or an item cannot be used as asked; the message names it."""


class RunLoadError(InferenceError):
    """A path is not a loadable run (no such path, no checkpoint, no config)."""


class UnknownIdError(InferenceError):
    """Raw user or item ids that the run's data do not contain."""


@dataclass
class LoadedRun:
    """A trained model with what it needs to score and to name its outputs.

    ``model`` is in eval mode with the checkpoint's weights; ``task`` is the LightningModule around it
    (it holds the training graph); ``data`` is the split ``InteractionGraph`` (raw ids: ``user_ids``
    [U] and ``item_ids`` [I]; ``item_text`` [I] where the data have text); ``config`` the run config.
    """

    run_dir: Path
    checkpoint: Path | None
    config: DictConfig
    config_source: str
    model: Any
    task: Any
    datamodule: Any
    data: Any  # graphrec_lab.data.graph.InteractionGraph
    user_ids: list[str]
    item_ids: list[str]
    item_text: list[str | None] | None
    text: Any = None  # the run's ItemTextFeatures (encoder and item texts) for text-fused runs, else None
    _user_index: dict[str, int] = field(default_factory=dict, repr=False)
    _item_index: dict[str, int] = field(default_factory=dict, repr=False)
    _embeddings: tuple[Tensor, Tensor] | None = field(default=None, repr=False)
    _csr: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._user_index = {raw: i for i, raw in enumerate(self.user_ids)}
        self._item_index = {raw: i for i, raw in enumerate(self.item_ids)}

    @property
    def model_name(self) -> str:
        return type(self.model).__name__

    @property
    def train_graph(self) -> Any:
        """The ``TrainGraph`` the model propagates over (``data.train_graph.TrainGraph`` or a subclass)."""
        return self.task.graph

    def user_index(self, raw_ids: list[str] | tuple[str, ...]) -> Tensor:
        """Dense ids [n] of raw user ids; ``UnknownIdError`` naming every unknown one."""
        return _lookup(self._user_index, raw_ids, "user", self)

    def item_index(self, raw_ids: list[str] | tuple[str, ...]) -> Tensor:
        """Dense ids [n] of raw item ids; ``UnknownIdError`` naming every unknown one."""
        return _lookup(self._item_index, raw_ids, "item", self)

    def embeddings(self) -> tuple[Tensor, Tensor]:
        """Final user [U, D] and item [I, D] embeddings (computed once; a score is their dot product)."""
        if self._embeddings is None:
            if not isinstance(self.model, Recommender):
                raise InferenceError(
                    f"{self.model_name} has no user and item embeddings to rank with (news models score impressions, "
                    "sequential models histories, GC-MC ratings); "
                    "export/explain need a top-K recommender run (recommend also reads sequential runs)"
                )
            with torch.no_grad():
                users, items = self.model(self.train_graph)
            self._embeddings = (users.detach().float().cpu(), items.detach().float().cpu())  # ranking runs on the CPU
        return self._embeddings

    def train_items(self, user: int) -> Tensor:
        """Dense ids of one user's training items: [n]."""
        return self._items_of("train", user)

    def val_items(self, user: int) -> Tensor:
        """Dense ids of one user's validation items: [n]."""
        return self._items_of("val", user)

    def _items_of(self, split: str, user: int) -> Tensor:
        # Per-split CSR built once: a mask over all edges per user costs O(E) per user.
        if split not in self._csr:
            edges = getattr(self.data, split)
            order = torch.argsort(edges.users, stable=True)
            ptr = torch.zeros(self.data.num_users + 1, dtype=torch.long)
            ptr[1:] = torch.cumsum(torch.bincount(edges.users, minlength=self.data.num_users), 0)
            self._csr[split] = (ptr, edges.items[order])
        ptr, items = self._csr[split]
        return items[int(ptr[user]) : int(ptr[user + 1])]


def _lookup(index: dict[str, int], raw_ids: Any, side: str, run: LoadedRun) -> Tensor:
    raw = [str(r) for r in raw_ids]
    unknown = [r for r in raw if r not in index]
    if unknown:
        examples = ", ".join(list(index)[:3])
        shown = ", ".join(repr(u) for u in unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        raise UnknownIdError(
            f"unknown {side} id(s) {shown} in run {run.run_dir} ({run.data.name}: {len(index)} {side}s, e.g. {examples})"
        )
    return torch.tensor([index[r] for r in raw], dtype=torch.long)


# ---------------------------------------------------------------------- locating the pieces
def _locate(path: Path) -> tuple[Path, Path | None]:
    """(run dir, checkpoint or None) of a run directory or a checkpoint file."""
    if not path.exists():
        raise RunLoadError(f"{path}: no such run directory or checkpoint")
    if path.is_file():
        if path.suffix != ".ckpt":
            raise RunLoadError(f"{path}: expected a run directory or a .ckpt checkpoint")
        # <run dir>/checkpoints/<name>.ckpt, else the checkpoint's own folder
        return (path.parent.parent if path.parent.name == "checkpoints" else path.parent), path
    ckpts = sorted((path / "checkpoints").glob("*.ckpt")) if (path / "checkpoints").is_dir() else []
    best = [c for c in ckpts if c.name == "best.ckpt"]
    return path, (best or ckpts or [None])[0]


def _record(run_dir: Path) -> dict | None:
    """The result record whose ``paths.run_dir`` is ``run_dir``, from a ``results.jsonl`` above it."""
    target = str(run_dir.resolve())
    for parent in list(run_dir.resolve().parents)[:4]:
        store = parent / "results.jsonl"
        if not store.is_file():
            continue
        for line in reversed(store.read_text().splitlines()):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            run = (rec.get("paths") or {}).get("run_dir")
            if run and str(Path(run).resolve()) == target:
                return rec
    return None


def _config(run_dir: Path, ckpt: dict | None) -> tuple[DictConfig, str, dict | None]:
    """(config, where it came from, result record or None)."""
    record = _record(run_dir)
    if ckpt is not None:
        for key in CHECKPOINT_CONFIG_KEYS:
            value, where = ckpt.get(key), f"checkpoint[{key!r}]"
            if isinstance(value, (dict, DictConfig)) and isinstance(value.get("config"), (dict, DictConfig)):
                value, where = value["config"], f"checkpoint[{key!r}]['config']"
            if isinstance(value, (dict, DictConfig)) and "model" in value and "data" in value:
                return OmegaConf.create(value), where, record
    saved = run_dir / "config.yaml"
    if saved.is_file():
        return OmegaConf.load(saved), str(saved), record  # type: ignore[return-value]
    if record is not None and record.get("config"):
        return OmegaConf.create(record["config"]), "result record", record
    raise RunLoadError(
        f"{run_dir}: no run config (not in the checkpoint, no config.yaml, no result record with this run_dir "
        "in a results.jsonl above it)"
    )


# ---------------------------------------------------------------------- building
def load_run(path: str | Path, device: str | torch.device = "cpu") -> LoadedRun:
    """Load a finished run for scoring, without retraining.

    ``path``: a run directory (``<paths.root>/runs/<name>/<run id>``) or a checkpoint inside one.
    Returns a ``LoadedRun`` (model in eval mode, weights loaded). Raises ``RunLoadError`` for an
    unknown path, a run without a checkpoint (a trainable model) or without any config.
    """
    from hydra.utils import instantiate

    run_dir, ckpt_path = _locate(Path(path).expanduser())
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False) if ckpt_path is not None else None
    cfg, source, record = _config(run_dir, ckpt)
    if ckpt_path is None and record is not None and (record.get("paths") or {}).get("checkpoint"):
        recorded = Path(record["paths"]["checkpoint"])
        if recorded.is_file():
            ckpt_path = recorded
            ckpt = torch.load(recorded, map_location="cpu", weights_only=False)

    scorer = scorer_kind(cfg.task.get("scorer"))
    if scorer != "dot":
        raise RunLoadError(
            f"{run_dir}: trained with task.scorer.kind={scorer}; recommend, export, explain and ensemble score "
            "runs by the dot product of user and item representations, so they load dot-scorer runs only"
        )
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.prepare_data()
    datamodule.setup("fit")
    data = datamodule.load_graph()
    text = None
    model_kwargs: dict[str, Any] = {}
    if cfg.get("text") is not None:
        text = instantiate(cfg.text)
        model_kwargs["item_features"] = text.attach(list(datamodule.item_texts()))
    model = instantiate(cfg.model, num_users=data.num_users, num_items=data.num_items, **model_kwargs)
    task_kwargs: dict[str, Any] = {"model": model, "text": text}
    if "item_groups" in inspect.signature(_target(cfg.task)).parameters:
        task_kwargs["item_groups"] = datamodule.item_groups() if hasattr(datamodule, "item_groups") else None
    task = instantiate(cfg.task, **task_kwargs, _recursive_=False, _convert_="all")
    task.attach_graph(datamodule.train_graph)

    if ckpt is None:
        if model.trainable:
            raise RunLoadError(
                f"{run_dir}: no checkpoint (checkpoints/*.ckpt is empty or missing). A run saves its selected "
                "checkpoint when validation runs during fitting: trainer.check_val_every_n_epoch must be at most "
                "trainer.max_epochs"
            )
    else:
        task.on_load_checkpoint(ckpt)  # LoRA runs: the frozen encoder weights are put back first
        task.load_state_dict(ckpt["state_dict"])
    if getattr(task, "text", None) is not None:
        task.text.refresh(model.input)  # the LoRA bank, encoded with the loaded adapters
    task.to(device).eval()
    model.eval()

    n_users, n_items = data.num_users, data.num_items
    return LoadedRun(
        run_dir=run_dir,
        checkpoint=ckpt_path,
        config=cfg,
        config_source=source,
        model=model,
        task=task,
        datamodule=datamodule,
        data=data,
        user_ids=list(data.user_tokens) if data.user_tokens is not None else [str(u) for u in range(n_users)],
        item_ids=list(data.item_tokens) if data.item_tokens is not None else [str(i) for i in range(n_items)],
        item_text=list(data.item_text) if data.item_text is not None else None,
        text=text,
    )


def _target(node: DictConfig) -> Any:
    from hydra.utils import get_method

    return get_method(str(node._target_))
