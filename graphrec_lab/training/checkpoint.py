"""Checkpoint files checked before Lightning loads them.

``ckpt_path`` may point at anything: an empty or truncated file (a run killed while saving), a
file that is not a checkpoint, or the checkpoint of another model or dataset. ``check_checkpoint``
reads it with ``weights_only=True`` (tensors and plain containers only: no code runs from the file)
and compares the run it was saved from (``RecommendationTask.on_save_checkpoint`` stores the
resolved config and sizes under ``CHECKPOINT_KEY``) with this run, so each of those cases is one
message naming the path and what differs, instead of an unpickling traceback or a raw state-dict
mismatch.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from graphrec_lab.config import ConfigError

CHECKPOINT_KEY = "graphrec_lab"

# What must agree between the checkpoint's run and this one for its weights to mean the same thing:
# dotted config keys (the model, the dataset and its preprocessing, the sizes of the layers).
COMPARED_KEYS = (
    "model._target_", "model.embedding_dim", "model.num_layers", "data.dataset", "data.synthetic", "data.split",
    "data.ratios", "data.split_seed", "data.val_fraction", "data.user_core", "data.item_core",
)


class CheckpointError(ConfigError):
    """``ckpt_path`` is not a loadable checkpoint, or one of another model or dataset."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at ``path`` loaded on the CPU with ``weights_only=True``; any unreadable file
    raises ``CheckpointError`` naming the path."""
    path = Path(path)
    where = f"ckpt_path={str(path)!r}"
    if not path.is_file():
        raise CheckpointError(f"{where}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{where}: the file is empty (0 bytes), not a checkpoint (a run killed while saving?)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        unsupported = [ln.strip() for ln in str(exc).splitlines() if "Unsupported global" in ln]
        if unsupported:  # a pickle of arbitrary objects: refused, and nothing of it is run
            raise CheckpointError(
                f"{where}: not a graphrec_lab checkpoint: it holds objects other than tensors and plain "
                f"containers, which are not loaded ({unsupported[0][:200]})"
            ) from None
        reason = next((ln.strip() for ln in str(exc).splitlines() if "Unpickler error" in ln), type(exc).__name__)
        raise CheckpointError(
            f"{where}: not a readable PyTorch checkpoint (truncated, corrupt or another kind of file; "
            f"{path.stat().st_size} bytes): {reason[:200]}"
        ) from None
    except (EOFError, RuntimeError, OSError, ValueError, zipfile.BadZipFile, AttributeError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{where}: not a readable PyTorch checkpoint (truncated, corrupt or another kind of file; "
            f"{path.stat().st_size} bytes): {first[:200]}"
        ) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{where}: a PyTorch file but not a Lightning checkpoint (it has no state_dict)")
    return ckpt


def _get(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def checkpoint_differences(
    ckpt: dict[str, Any], config: dict[str, Any], state: dict[str, torch.Tensor], sizes: dict[str, int] | None = None
) -> list[str]:
    """What differs between the checkpoint's run and this one: ``COMPARED_KEYS`` of the saved config
    (checkpoints saved with it) and every parameter whose name or shape differs (all checkpoints).

    ``config``: this run's resolved config; ``state``: this run's task ``state_dict()``; ``sizes``:
    this run's ``num_users``/``num_items``."""
    diffs: list[str] = []
    saved = ckpt.get(CHECKPOINT_KEY) or {}
    saved_cfg = saved.get("config")
    if isinstance(saved_cfg, dict):
        for key in COMPARED_KEYS:
            a, b = _get(saved_cfg, key), _get(config, key)
            if a != b:
                diffs.append(f"{key}: checkpoint {a!r}, this run {b!r}")
    for key, value in (sizes or {}).items():
        if key in saved and saved[key] != value:
            diffs.append(f"{key}: checkpoint {saved[key]}, this run {value}")
    weights = ckpt["state_dict"]
    for name, tensor in state.items():
        if name not in weights:
            if name.startswith("text."):
                continue  # frozen text-encoder weights are left out of checkpoints on purpose
            diffs.append(f"weight {name}: missing from the checkpoint")
        elif tuple(weights[name].shape) != tuple(tensor.shape):
            diffs.append(f"weight {name}: checkpoint shape {list(weights[name].shape)}, this run {list(tensor.shape)}")
    extra = sorted(set(weights) - set(state))
    if extra:
        diffs.append(f"weights only in the checkpoint: {', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}")
    return diffs


def check_checkpoint(
    path: str | Path, config: dict[str, Any], state: dict[str, torch.Tensor], sizes: dict[str, int] | None = None
) -> None:
    """Raise ``CheckpointError`` unless ``path`` is a readable checkpoint of this run's model and data."""
    ckpt = read_checkpoint(path)
    diffs = checkpoint_differences(ckpt, config, state, sizes)
    if diffs:
        raise CheckpointError(
            f"ckpt_path={str(path)!r} was saved by a different run: " + "; ".join(diffs[:8])
            + ("; ..." if len(diffs) > 8 else "") + ". Use the model and data overrides it was trained with"
        )
