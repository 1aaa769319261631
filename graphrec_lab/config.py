"""Config composition and validation.

Hydra composes ``graphrec_lab/configs/`` (shipped inside the package), after the folder named by
``$GRAPHREC_CONFIG_DIR`` when it is set; before anything is built, ``validate_config`` checks every node with a
``_target_`` against the signature of the callable it names (as torchtune does), and the top level
against the known keys, so a misspelt key stops the run with its full dotted name and a suggestion,
instead of silently becoming a default.

Values are checked too, without building anything: each key of a ``_target_`` node against the type
annotation of the parameter it fills (``trainer.max_epochs: Optional[int]`` rejects ``abc``), plus
the few ranges an annotation cannot say (``PARAM_RANGES``: ``embedding_dim >= 1``, ``ratios`` summing
to 1, ...). Every problem is collected and reported at once in one ``ConfigError`` whose ``issues``
list each key path, its value and what was expected. ``check_values`` is the generic entry point for
any mapping (a sweep's fixed overrides, a study file's cells); ``validate_config`` applies it to a
composed run config.
"""

from __future__ import annotations

import collections.abc
import difflib
import importlib
import inspect
import math
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import DictConfig, ListConfig, OmegaConf

# Top-level keys of configs/train.yaml besides the config groups.
TOP_LEVEL_KEYS = {
    "data", "model", "task", "trainer", "callbacks", "logger", "paths", "experiment", "text",
    "name", "seed", "optimized_metric", "tags", "group", "fit", "test", "print_table", "hydra", "ckpt_path",
    "threads", "init_from", "init_from_ids", "init_from_neighbours",
}
PATHS_KEYS = {"root", "results"}
# Arguments run_experiment supplies at instantiation time (never in the config files).
RUNTIME_ARGS = {"num_users", "num_items", "model", "callbacks", "logger", "item_features", "text", "item_groups"}


@dataclass(frozen=True)
class ConfigIssue:
    """One bad config entry: its dotted key path, the value found and what was expected."""

    key: str
    value: Any
    expected: str

    def __str__(self) -> str:
        return f"{self.key}={self.value!r}: expected {self.expected}"


class ConfigError(ValueError):
    """A config key is unknown, misspelt, or has a value that cannot be used.

    ``issues`` holds every problem found (empty when the error is not about single keys)."""

    def __init__(self, message: str, issues: Sequence[ConfigIssue] = ()) -> None:
        super().__init__(message)
        self.issues = tuple(issues)

    @classmethod
    def from_issues(cls, issues: Sequence[ConfigIssue | str], source: str = "config") -> ConfigError:
        """One error listing every issue, one per line after a count."""
        lines = [str(i) for i in issues]
        if len(lines) == 1:
            message = f"{source}: {lines[0]}"
        else:
            message = f"{source}: {len(lines)} problems:\n  " + "\n  ".join(lines)
        return cls(message, [i for i in issues if isinstance(i, ConfigIssue)])


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


def _unknown_message(key: str, where: str, accepted: set[str], owner: str) -> str:
    close = difflib.get_close_matches(key, sorted(accepted), n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    dotted = f"{where}.{key}" if where else key
    return f"unknown config key '{dotted}' for {owner}.{hint} Accepted keys: {', '.join(sorted(accepted))}"


def _walk(node: Any, where: str, problems: list[ConfigIssue | str]) -> None:
    """Unknown keys of every ``_target_`` node under ``node`` (raw config: interpolations unresolved)."""
    if isinstance(node, DictConfig):
        target = node.get("_target_") if "_target_" in node else None
        if target is not None:
            try:
                accepted = _accepted_keys(str(target), where)
            except ConfigError as exc:
                problems.append(str(exc))
                accepted = None
            if accepted is not None:
                for key in node.keys():
                    key = str(key)
                    if key.startswith("_"):
                        continue
                    if key not in accepted:
                        problems.append(_unknown_message(key, where, accepted, str(target)))
        for key in node.keys():
            child = node._get_node(key)  # the raw node: interpolations stay unresolved here
            if isinstance(child, (DictConfig, ListConfig)):
                _walk(child, f"{where}.{key}" if where else str(key), problems)
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            child = node._get_node(i)
            if isinstance(child, (DictConfig, ListConfig)):
                _walk(child, f"{where}[{i}]", problems)


# ------------------------------------------------------------------------------------ value checks
@dataclass(frozen=True)
class Range:
    """A check an annotation cannot express: ``ok(value)`` and the words for what is expected."""

    ok: Callable[[Any], bool]
    expected: str


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _ratios_ok(v: Any) -> bool:
    if not isinstance(v, (list, tuple)) or len(v) != 3 or not all(_number(x) for x in v):
        return False
    # Summing to 1 on purpose: [0.9, 0.9, 0.9] is more likely a typo than proportions to normalise.
    return all(0 <= x <= 1 for x in v) and v[0] > 0 and math.isclose(sum(v), 1.0, abs_tol=1e-6)


# Ranges by parameter name, applied to that key of any ``_target_`` node (None is left to the
# annotation: ``Optional`` parameters may be null). Keys are parameter names, not dotted paths, so the
# same rule holds for every model, data module and trainer config, and for sweep and study overrides.
PARAM_RANGES: dict[str, Range] = {
    "embedding_dim": Range(lambda v: _number(v) and v >= 1, "an integer >= 1"),
    "max_epochs": Range(lambda v: _number(v) and (v >= 1 or v == -1), "an integer >= 1 (or -1: no limit)"),
    "train_batch_size": Range(lambda v: _number(v) and v >= 1, "an integer >= 1"),
    "eval_batch_size": Range(lambda v: _number(v) and v >= 1, "an integer >= 1"),
    "check_val_every_n_epoch": Range(lambda v: _number(v) and v >= 1, "an integer >= 1"),
    "lr": Range(lambda v: _number(v) and v > 0 and math.isfinite(v), "a finite number > 0"),
    "ratios": Range(_ratios_ok, "three train/val/test fractions in [0, 1] summing to 1 (e.g. [0.8, 0.1, 0.1])"),
    # Training knobs (training.task.RecommendationTask, docs/training.md)
    "num_negatives": Range(lambda v: _number(v) and v >= 1, "an integer >= 1"),
    "hard_candidates": Range(lambda v: _number(v) and v >= 1, "an integer >= 1"),
    "popularity_alpha": Range(lambda v: _number(v) and v >= 0, "a number >= 0 (0: uniform, 1: proportional to popularity)"),
    "softmax_temperature": Range(lambda v: _number(v) and v > 0, "a number > 0"),
    "embedding_lr": Range(lambda v: _number(v) and v > 0 and math.isfinite(v), "a finite number > 0 (or null: task.lr)"),
    "dense_lr": Range(lambda v: _number(v) and v > 0 and math.isfinite(v), "a finite number > 0 (or null: task.lr)"),
    "momentum": Range(lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "lr_step_size": Range(lambda v: _number(v) and v >= 1, "an integer >= 1"),
    "lr_gamma": Range(lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "warmup_epochs": Range(lambda v: _number(v) and v >= 0, "an integer >= 0"),
    "warmup_start_factor": Range(lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "lr_min_factor": Range(lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "plateau_patience": Range(lambda v: _number(v) and v >= 0, "an integer >= 0"),
}

# The run config's own keys (configs/train.yaml), typed like a signature.
TOP_LEVEL_TYPES: dict[str, Any] = {
    "name": str | None, "seed": int, "optimized_metric": str, "tags": list[str], "group": str | None,
    "fit": bool, "test": bool, "print_table": bool, "ckpt_path": str | None,
    "threads": int | Literal["auto"], "init_from": str | None, "init_from_ids": Literal["fresh", "text"],
    "init_from_neighbours": int,
}


def _param_types(fn: Any) -> dict[str, Any]:
    """Each parameter's annotation as a type (unresolvable ones, e.g. TYPE_CHECKING-only names, are
    left out: nothing is checked against them)."""
    if inspect.isclass(fn):
        out: dict[str, Any] = {}
        for klass in reversed(fn.__mro__):  # a subclass's annotation wins over its base's
            if "__init__" in vars(klass) and klass is not object:
                out.update(_param_types(klass.__init__))
        return out
    try:
        return {k: v for k, v in typing.get_type_hints(fn).items() if k != "return"}
    except Exception:
        pass
    out = {}
    namespace = dict(getattr(fn, "__globals__", {}))
    for name, param in inspect.signature(fn).parameters.items():
        ann = param.annotation
        if ann is inspect.Parameter.empty:
            continue
        if isinstance(ann, str):
            try:
                ann = eval(ann, namespace)  # noqa: S307  an annotation string of the callable's own module
            except Exception:
                continue
        out[name] = ann
    return out


def _matches(value: Any, tp: Any) -> bool:
    """Whether a plain config value (resolved: str, int, float, bool, None, list, dict) fits ``tp``.

    Types a config value cannot be checked against (classes, callables, type variables) accept
    anything: the check only rejects what certainly cannot work."""
    if tp is Any or tp is inspect.Parameter.empty:
        return True
    if tp is None or tp is type(None):
        return value is None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        return any(_matches(value, a) for a in args)
    if origin is typing.Literal:
        return value in args and type(value) in {type(a) for a in args}
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return _number(value)
    if tp is str or tp is Path or (inspect.isclass(tp) and issubclass(tp, os.PathLike)):
        return isinstance(value, str)
    if isinstance(value, dict) and "_target_" in value:
        return True  # a nested object built from its own config node (checked there)
    seq_origins = (list, tuple, collections.abc.Sequence, collections.abc.Iterable, collections.abc.Collection)
    if tp in seq_origins or origin in seq_origins:
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args))
        if args:
            return all(_matches(v, args[0]) for v in value)
        return True
    if tp in (dict, Mapping, collections.abc.Mapping) or origin in (dict, collections.abc.Mapping):
        return isinstance(value, dict)
    return True


def _describe(tp: Any) -> str:
    """``int``, ``int or None``, ``one of 'a', 'b'``: the expected type in words."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(dict.fromkeys(_describe(a) for a in typing.get_args(tp)))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "None"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    return str(tp).replace("typing.", "") if origin else getattr(tp, "__name__", str(tp))


def check_values(node: Any, where: str = "", types_: Mapping[str, Any] | None = None) -> list[ConfigIssue]:
    """Every value under ``node`` (a resolved mapping) that does not fit its parameter's annotation
    or ``PARAM_RANGES``; ``types_`` types the keys of ``node`` itself (e.g. ``TOP_LEVEL_TYPES``).

    Generic: works on any mapping whose objects carry ``_target_`` (run configs, sweep and study
    overrides composed into a run config). Returns the issues instead of raising, so callers can
    report every problem of a file at once."""
    issues: list[ConfigIssue] = []
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=True)
    if isinstance(node, dict):
        hints = dict(types_ or {})
        target = node.get("_target_")
        if isinstance(target, str):
            try:
                hints.update(_param_types(_import(target)))
            except Exception:  # an unimportable target is reported by the key check
                pass
        for key, value in node.items():
            key = str(key)
            if key.startswith("_"):
                continue
            path = f"{where}.{key}" if where else key
            tp = hints.get(key)
            # null is left to the callable: run_experiment fills null placeholders (save_dir,
            # dirpath) and a default applies to the rest.
            if tp is not None and value is not None and not _matches(value, tp):
                issues.append(ConfigIssue(path, value, _describe(tp)))
                continue
            rule = PARAM_RANGES.get(key) if target is not None else None
            if rule is not None and value is not None and not rule.ok(value):
                issues.append(ConfigIssue(path, value, rule.expected))
                continue
            if isinstance(value, (dict, list)):
                issues.extend(check_values(value, path))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            if isinstance(value, (dict, list)):
                issues.extend(check_values(value, f"{where}[{i}]"))
    return issues


def _interpolated_from(cfg: DictConfig, dotted: str) -> str | None:
    """``seed`` when the raw value at ``dotted`` is exactly ``${seed}``, else None."""
    parent_key, _, leaf = dotted.rpartition(".")
    try:
        parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
        if not isinstance(parent, DictConfig) or leaf not in parent or not OmegaConf.is_interpolation(parent, leaf):
            return None
        raw = str(parent._get_node(leaf)._value())  # type: ignore[union-attr]
    except Exception:
        return None
    return raw[2:-1] if raw.startswith("${") and raw.endswith("}") and raw.count("${") == 1 else None


# Hints for mandatory (???) values, by key path.
_MISSING_HINTS = {
    "data.dataset": "a dataset name (registered, e.g. ml-100k; or recbole:<folder> for RecBole atomic files)",
}


def validate_config(cfg: DictConfig) -> None:
    """Raise one ``ConfigError`` listing every unknown key, missing value, bad type and out-of-range
    value (key path, value, expected); also resolves every interpolation."""
    problems: list[ConfigIssue | str] = []
    for key in cfg.keys():
        if key not in TOP_LEVEL_KEYS:
            problems.append(_unknown_message(str(key), "", TOP_LEVEL_KEYS, "the run config (configs/train.yaml)"))
    for key in cfg.get("paths", {}) or {}:
        if key not in PATHS_KEYS:
            problems.append(_unknown_message(str(key), "paths", PATHS_KEYS, "paths"))
    for group in ("data", "model", "task", "trainer"):
        if group not in cfg or cfg[group] is None or "_target_" not in cfg[group]:
            problems.append(f"config group '{group}' is missing or has no _target_")
    for group in ("callbacks", "logger"):
        for key, node in (cfg.get(group) or {}).items():
            if node is not None and "_target_" not in node:
                problems.append(
                    f"'{group}.{key}' has no _target_ (an experiment may set keys of a {group[:-1]} "
                    f"that the selected {group} config does not define)"
                )
    for group in ("data", "model", "task", "trainer", "callbacks", "logger", "text"):
        if group in cfg and cfg[group] is not None:
            _walk(cfg[group], group, problems)
    missing = sorted(OmegaConf.missing_keys(cfg))
    for key in missing:
        problems.append(ConfigIssue(key, "???", _MISSING_HINTS.get(key, "a value (it is mandatory: ???)")))
    resolved: Any = None
    if not missing:
        try:
            resolved = OmegaConf.to_container(cfg, resolve=True)
        except Exception as exc:  # an interpolation to a missing key
            problems.append(f"config cannot be resolved: {exc}")
    if isinstance(resolved, dict):
        issues = check_values({k: v for k, v in resolved.items() if k != "hydra"}, "", TOP_LEVEL_TYPES)
        bad = {i.key for i in issues}
        # data.split_seed: ${seed} repeats seed's problem: report it once, at its source.
        problems.extend(i for i in issues if _interpolated_from(cfg, i.key) not in bad)
    if problems:
        raise ConfigError.from_issues(problems)
