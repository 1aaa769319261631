"""Warm start from a finished run, possibly on another dataset (``init_from=<run dir or checkpoint>``).

The parameters this model shares with the run's model load (same name, same shape); the ID tables
never do, even when their shapes happen to agree, since ids mean different users and items in
another domain: they keep their fresh initialisation. Frozen item text features are data, not
weights: the target's own stay. Text-based models (``feature_mode=features``) therefore carry
everything they learned across domains; ID-based ones carry their non-ID layers only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from graphrec_lab.config import ConfigError

# ID tables by model family: sequential models' item table, the zoo's user+item input table.
ID_TABLES = ("item_embedding.weight", "input.embedding.weight")
DATA_BUFFERS = ("text_features",)


@dataclass
class WarmStart:
    """What ``warm_start`` did: parameter names loaded, kept fresh (ID tables, data), and skipped."""

    checkpoint: str
    loaded: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)  # ID tables and data buffers, by design
    shape_mismatch: list[str] = field(default_factory=list)
    not_in_source: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {"checkpoint": self.checkpoint, "loaded": len(self.loaded), "fresh": self.fresh,
                "shape_mismatch": self.shape_mismatch, "not_in_source": self.not_in_source}  # fmt: skip


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


def warm_start(model: nn.Module, source: str | Path) -> WarmStart:
    """Load into ``model`` the parameters it shares with the model of ``source`` (module docstring)."""
    path = resolve_checkpoint(source)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
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
    if not report.loaded:
        raise ConfigError(
            f"init_from={str(source)!r}: {type(model).__name__} shares no parameter with the checkpoint's model "
            f"(name and shape): {len(report.not_in_source)} not in it, {len(report.shape_mismatch)} of another shape"
        )
    model.load_state_dict(own)
    return report
