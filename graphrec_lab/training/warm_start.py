"""Warm start from a finished run, possibly on another dataset (``init_from=<run dir or checkpoint>``).

The parameters this model shares with the run's model load (same name, same shape); the ID tables
never do, even when their shapes happen to agree, since ids mean different users and items in
another domain: they keep their fresh initialisation, or, with ``ids="text"``
(``init_from_ids=text``), their item rows start from the rows of the source items with the most
similar text (``training.text_id_map``); user rows always start fresh. Frozen item text features are
data, not weights: the target's own stay. Text-based models (``feature_mode=features``) therefore
carry everything they learned across domains; ID-based ones carry their non-ID layers, and through
``ids="text"`` what their item rows learned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from graphrec_lab.config import ConfigError
from graphrec_lab.training.checkpoint import CHECKPOINT_KEY
from graphrec_lab.training.text_id_map import map_item_rows, text_neighbours

# ID tables by model family and where their item rows are: "pad" rows 1..I (sequential models' item
# table, row 0 pads), "after_users" rows U..U+I-1 (the zoo's shared user+item table), "items" rows
# 0..I-1; None: no item rows (user tables, GC-MC's per-node level weights).
ID_TABLES: dict[str, str | None] = {
    "item_embedding.weight": "pad", "input.embedding.weight": "after_users",
    "input.item_embedding.weight": "items", "input.user_embedding.weight": None, "level_weights": None,
}
DATA_BUFFERS = ("text_features",)
ID_MAPS = ("fresh", "text")


@dataclass
class WarmStart:
    """What ``warm_start`` did: parameter names loaded, kept fresh (ID tables, data), and skipped."""

    checkpoint: str
    loaded: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)  # ID tables and data buffers, by design
    shape_mismatch: list[str] = field(default_factory=list)
    not_in_source: list[str] = field(default_factory=list)
    mapped: list[dict[str, object]] = field(default_factory=list)  # ids="text": per table, MappedRows.summary()

    def summary(self) -> dict[str, object]:
        return {"checkpoint": self.checkpoint, "loaded": len(self.loaded), "fresh": self.fresh,
                "shape_mismatch": self.shape_mismatch, "not_in_source": self.not_in_source,
                **({"mapped": self.mapped} if self.mapped else {})}  # fmt: skip


def resolve_checkpoint(source: str | Path) -> Path:
    """A checkpoint file, or a run directory's ``checkpoints/best.ckpt`` (else ``last.ckpt``)."""
    path = Path(source).expanduser()
    if path.is_dir():
        for name in ("best.ckpt", "last.ckpt"):
            if (path / "checkpoints" / name).is_file():
                return path / "checkpoints" / name
        raise ConfigError(f"init_from={str(source)!r}: the run directory has no checkpoints/best.ckpt or last.ckpt")
    if not path.is_file():
        raise ConfigError(f"init_from={str(source)!r}: no such run directory or checkpoint file")
    return path


def warm_start(
    model: nn.Module, source: str | Path, ids: str = "fresh", target_item_texts: list[str] | None = None, k: int = 10
) -> WarmStart:
    """Load into ``model`` the parameters it shares with the model of ``source`` (module docstring).

    ``ids="text"`` also maps the item rows of the ID tables through text: ``target_item_texts`` are
    this model's items' texts (one per 0-based item); the source's are read from the data config saved
    in the checkpoint; ``k``: neighbours per item (``training.text_id_map``)."""
    if ids not in ID_MAPS:
        raise ConfigError(f"init_from_ids={ids!r}: expected one of {', '.join(ID_MAPS)}")
    if ids == "text" and target_item_texts is None:
        raise ConfigError("init_from_ids=text: this run's data has no item text to map the ID tables through")
    path = resolve_checkpoint(source)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        state = ckpt["state_dict"]
    except Exception as exc:  # a truncated or foreign file
        raise ConfigError(f"init_from={str(source)!r}: cannot read {path} as a Lightning checkpoint ({exc})") from None
    src = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    own = model.state_dict()
    report = WarmStart(str(path))
    for name, value in own.items():
        if name in ID_TABLES or name.rsplit(".", 1)[-1] in DATA_BUFFERS:
            report.fresh.append(name)
        elif name not in src:
            report.not_in_source.append(name)
        elif src[name].shape != value.shape:
            report.shape_mismatch.append(name)
        else:
            own[name] = src[name].to(value.dtype)
            report.loaded.append(name)
    if ids == "text":
        assert target_item_texts is not None
        _map_tables(own, src, ckpt, str(source), target_item_texts, k, report, num_users=int(getattr(model, "num_users", 0)))
    if not report.loaded and not report.mapped:
        raise ConfigError(
            f"init_from={str(source)!r}: {type(model).__name__} shares no parameter with the checkpoint's model "
            f"(name and shape): {len(report.not_in_source)} not in it, {len(report.shape_mismatch)} of another shape"
        )
    model.load_state_dict(own)
    return report


def _item_rows(layout: str, num_users: int, rows: int) -> slice:
    return {"pad": slice(1, rows), "after_users": slice(num_users, rows), "items": slice(0, rows)}[layout]


def _map_tables(
    own: dict[str, Tensor], src: dict[str, Tensor], ckpt: dict, where: str, target_texts: list[str], k: int,
    report: WarmStart, num_users: int,
) -> None:
    """``ids="text"``: the item rows of every ID table both models have, mapped through text (in place)."""
    tables = [n for n, layout in ID_TABLES.items() if layout is not None and n in own and n in src]
    if not tables:
        raise ConfigError(f"init_from_ids=text: the model and the checkpoint of init_from={where!r} share no item ID table")
    meta = ckpt.get(CHECKPOINT_KEY) or {}
    source_texts = source_item_texts(meta.get("config"), where)
    ids, sims = text_neighbours(source_texts, target_texts, k)
    for name in tables:
        layout = ID_TABLES[name]
        assert layout is not None
        src_rows = src[name][_item_rows(layout, int(meta.get("num_users") or 0), src[name].shape[0])]
        dst = _item_rows(layout, num_users, own[name].shape[0])
        if src_rows.shape[0] != len(source_texts) or own[name][dst].shape[0] != len(target_texts):
            raise ConfigError(
                f"init_from_ids=text: {name} has {src_rows.shape[0]} source and {own[name][dst].shape[0]} target item rows "
                f"for {len(source_texts)} and {len(target_texts)} item texts"
            )
        rows, mapped = map_item_rows(src_rows, own[name][dst], ids, sims, name)
        own[name] = own[name].clone()
        own[name][dst] = rows
        report.mapped.append(mapped.summary())


def source_item_texts(config: dict | None, where: str) -> list[str]:
    """The item texts of the data a checkpoint was trained on, rebuilt from its saved run config."""
    from hydra.utils import instantiate

    if not config or "data" not in config:
        raise ConfigError(f"init_from_ids=text: the checkpoint of init_from={where!r} holds no run config to read its items' texts from")
    datamodule = instantiate(config["data"], _convert_="all")
    if not callable(getattr(datamodule, "item_texts", None)):
        raise ConfigError(f"init_from_ids=text: the data of init_from={where!r} ({config['data'].get('dataset')}) has no item text")
    datamodule.prepare_data()
    datamodule.setup("fit")
    return list(datamodule.item_texts())
