"""Export a list of Hydra overrides as an experiment config that ``graphrec-lab run`` reruns as is.

The file goes to ``<dir>/experiment/<name>.yaml`` (``# @package _global_``): group overrides
(``model=ngcf``) become ``override /model: ngcf`` entries of its defaults list, an ``experiment=X``
override becomes ``/experiment/X`` before them, and value overrides (``task.lr=0.01``,
``+model.x=1``) become nested values merged last. Rerun with::

    graphrec-lab run --config-dir <dir> experiment=<name>
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from graphrec_lab.config import ConfigError, config_dir, register_user_configs


def config_groups(overrides: Sequence[str]) -> set[str]:
    """The config groups (``model``, ``data``, ``experiment``...) of the composed run config."""
    # Hydra's composer imported on use, as in graphrec_lab.config.compose.
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    register_user_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = hydra_compose(config_name="train", overrides=list(overrides), return_hydra_config=True)
    return {str(k) for k in cfg.hydra.runtime.choices if not str(k).startswith("hydra/")}


def experiment_config(overrides: Sequence[str], groups: set[str]) -> dict[str, Any]:
    """The experiment file's content for ``overrides`` (later overrides of a key win)."""
    defaults: list[Any] = []
    group_choice: dict[str, str] = {}
    values = OmegaConf.create({})
    for ov in OverridesParser.create().parse_overrides(list(overrides)):
        key = ov.key_or_group
        if key == "hydra" or key.startswith("hydra.") or key.startswith("hydra/"):
            continue  # Hydra's own settings (output dirs, launcher) are not part of the run config
        if ov.is_sweep_override():
            raise ConfigError(f"override {ov.input_line!r} is a sweep, not a single value")
        if ov.is_delete():
            raise ConfigError(f"override {ov.input_line!r} deletes a key; an experiment config cannot express that")
        if ov.package:
            raise ConfigError(f"override {ov.input_line!r} has a package (@...); not supported by the export")
        if key in groups:
            group_choice[key] = ov.get_value_element_as_str()
        else:
            OmegaConf.update(values, key, ov.value(), merge=False, force_add=True)
    experiment = group_choice.pop("experiment", None)
    if experiment not in (None, "null"):
        defaults.append(f"/experiment/{experiment}")
    defaults.extend({f"override /{g}": choice} for g, choice in group_choice.items())
    defaults.append("_self_")
    return {"defaults": defaults, **OmegaConf.to_container(values)}  # type: ignore[dict-item]


def write_experiment_config(
    overrides: Sequence[str], directory: str | Path, name: str, header: str = ""
) -> Path:
    """Write ``<directory>/experiment/<name>.yaml`` atomically; returns its path."""
    content = experiment_config(overrides, config_groups(overrides))
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    text = "# @package _global_\n" + comment + OmegaConf.to_yaml(OmegaConf.create(content))
    path = Path(directory) / "experiment" / f"{name}.yaml"
    atomic_write_text(path, text)
    return path


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
