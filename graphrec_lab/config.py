"""Config composition and validation.

Hydra composes ``graphrec_lab/configs/`` (shipped inside the package), after the folder named by
``$GRAPHREC_CONFIG_DIR`` when it is set; before anything is built, ``validate_config`` checks every node with a
``_target_`` against the signature of the callable it names (as torchtune does), and the top level
against the known keys, so a misspelt key stops the run with its full dotted name and a suggestion,
instead of silently becoming a default.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import DictConfig, ListConfig, OmegaConf

# Top-level keys of configs/train.yaml besides the config groups.
TOP_LEVEL_KEYS = {
    "data", "model", "task", "trainer", "callbacks", "logger", "paths", "experiment", "text",
    "name", "seed", "optimized_metric", "tags", "group", "fit", "test", "print_table", "hydra", "ckpt_path",
}
PATHS_KEYS = {"root", "results"}
# Arguments run_experiment supplies at instantiation time (never in the config files).
RUNTIME_ARGS = {"num_users", "num_items", "model", "callbacks", "logger", "item_features", "text", "item_groups"}


class ConfigError(ValueError):
    """A config key is unknown, misspelt, or has a value that cannot be used."""


def config_dir() -> Path:
    """The shipped configs: ``graphrec_lab/configs/`` inside the installed package."""
    return Path(__file__).resolve().parent / "configs"


def user_config_dir() -> Path | None:
    """``$GRAPHREC_CONFIG_DIR``: a folder of the user's configs, searched before the shipped ones.

    It holds files in the same layout (``model/mine.yaml``, ``experiment/x.yaml``, even a whole
    ``train.yaml``): a new file adds a choice, a file named like a shipped one replaces it.
    """
    env = os.environ.get("GRAPHREC_CONFIG_DIR")
    if not env:
        return None
    path = Path(env).expanduser().resolve()
    if not path.is_dir():
        raise ConfigError(f"GRAPHREC_CONFIG_DIR={env!r}: not a directory")
    return path


def config_search_path() -> list[Path]:
    """The config folders in lookup order (the first holding a file wins)."""
    user = user_config_dir()
    return [user, config_dir()] if user is not None else [config_dir()]


def find_config(group: str, name: str) -> Path | None:
    """``(sweep, lightgcn)`` -> the first ``<dir>/sweep/lightgcn.yaml`` on the search path, or None."""
    for root in config_search_path():
        path = root / group / f"{name}.yaml"
        if path.is_file():
            return path
    return None


def config_names(group: str) -> list[str]:
    """Every config name of a group over the whole search path, sorted."""
    return sorted({p.stem for root in config_search_path() for p in (root / group).glob("*.yaml")})


class UserConfigSearchPath(SearchPathPlugin):
    """Puts ``$GRAPHREC_CONFIG_DIR`` before the shipped configs on Hydra's search path.

    Registered by ``register_user_configs``; it acts only on a search path whose primary folder is
    the shipped configs, so another Hydra app in the same process is left alone.
    """

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        user = user_config_dir()
        if user is None:
            return
        # hydra.main gives the main folder as file://<path>, initialize_config_dir as a bare path
        mains = [Path(str(e.path).removeprefix("file://")) for e in search_path.get_path() if e.provider == "main"]
        if config_dir() not in mains:
            return
        search_path.prepend(provider="graphrec-lab", path=f"file://{user}", anchor=SearchPathQuery(provider="main"))


def register_user_configs() -> None:
    """Check ``$GRAPHREC_CONFIG_DIR`` and register ``UserConfigSearchPath`` (once) with Hydra; every
    entry point that composes the config calls it before Hydra builds its search path."""
    from hydra.core.plugins import Plugins

    user_config_dir()  # a bad folder: a ConfigError now, not a Hydra traceback later
    Plugins.instance().register(UserConfigSearchPath)


def compose(overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
    """Compose the project config with Hydra overrides, outside any Hydra app (tests, notebooks)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    register_user_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def _import(target: str) -> Any:
    module_name, _, attr = target.rpartition(".")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError:
        # ``pkg.Class.method``-style targets
        parent, _, cls = module_name.rpartition(".")
        obj = getattr(importlib.import_module(parent), cls)
    return getattr(obj, attr)


def _accepted_keys(target: str, where: str) -> set[str] | None:
    """Parameter names of the callable named by ``target``; None when it takes ``**kwargs``."""
    try:
        fn = _import(target)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{where}._target_: cannot import {target!r} ({exc})") from exc
    if not inspect.isclass(fn):
        return _named_params(fn)
    # A subclass that passes **kwargs on to its base accepts the base's parameters too: follow
    # the MRO until an __init__ names all it takes (None if none does).
    accepted: set[str] = set()
    for klass in fn.__mro__:
        if "__init__" not in vars(klass):
            continue
        named = _named_params(klass.__init__)
        if named is not None:
            return accepted | named
        accepted |= {n for n, p in inspect.signature(klass.__init__).parameters.items() if n != "self" and p.kind not in _VARIADIC}
    return None


_VARIADIC = (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)


def _named_params(fn: Any) -> set[str] | None:
    """The parameter names of ``fn``; None when it also takes ``**kwargs``."""
    sig = inspect.signature(fn)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return {name for name in sig.parameters if name != "self"}


def _unknown(key: str, where: str, accepted: set[str], owner: str) -> ConfigError:
    close = difflib.get_close_matches(key, sorted(accepted), n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    dotted = f"{where}.{key}" if where else key
    return ConfigError(f"unknown config key '{dotted}' for {owner}.{hint} Accepted keys: {', '.join(sorted(accepted))}")


def _walk(node: Any, where: str) -> None:
    if isinstance(node, DictConfig):
        target = node.get("_target_") if "_target_" in node else None
        if target is not None:
            accepted = _accepted_keys(str(target), where)
            if accepted is not None:
                for key in node.keys():
                    key = str(key)
                    if key.startswith("_"):
                        continue
                    if key not in accepted:
                        raise _unknown(key, where, accepted, str(target))
        for key in node.keys():
            child = node._get_node(key)  # the raw node: interpolations stay unresolved here
            if isinstance(child, (DictConfig, ListConfig)):
                _walk(child, f"{where}.{key}" if where else str(key))
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            child = node._get_node(i)
            if isinstance(child, (DictConfig, ListConfig)):
                _walk(child, f"{where}[{i}]")


def validate_config(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` naming the first unknown key; also resolves every interpolation."""
    for key in cfg.keys():
        if key not in TOP_LEVEL_KEYS:
            raise _unknown(str(key), "", TOP_LEVEL_KEYS, "the run config (configs/train.yaml)")
    for key in cfg.get("paths", {}) or {}:
        if key not in PATHS_KEYS:
            raise _unknown(str(key), "paths", PATHS_KEYS, "paths")
    for group in ("data", "model", "task", "trainer"):
        if group not in cfg or cfg[group] is None or "_target_" not in cfg[group]:
            raise ConfigError(f"config group '{group}' is missing or has no _target_")
    for group in ("callbacks", "logger"):
        for key, node in (cfg.get(group) or {}).items():
            if node is not None and "_target_" not in node:
                raise ConfigError(
                    f"'{group}.{key}' has no _target_ (an experiment may set keys of a {group[:-1]} "
                    f"that the selected {group} config does not define)"
                )
    for group in ("data", "model", "task", "trainer", "callbacks", "logger", "text"):
        if group in cfg and cfg[group] is not None:
            _walk(cfg[group], group)
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except Exception as exc:  # an interpolation to a missing key, a missing ??? value
        raise ConfigError(f"config cannot be resolved: {exc}") from exc
