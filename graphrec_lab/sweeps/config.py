"""Sweep configs: ``configs/sweep/<name>.yaml`` (or any YAML path), validated before a trial runs.

    n_trials: 20                 # total over every run of the command and every worker
    metric: null                 # default: the run config's optimized_metric (set for every trial)
    direction: null              # default: maximize (every val/ ranking metric; minimize for *loss*)
    seed: 0                      # sampler seed
    sampler: {name: tpe, n_startup_trials: 5}      # other keys are the sampler's arguments
    pruner: {name: median, n_startup_trials: 3, n_warmup_steps: 0}
    storage: null                # default: sqlite:///<paths.root>/sweeps/<study>/study.db
    heartbeat_interval: 30       # seconds; RUNNING trials silent for grace_period become FAIL
    grace_period: null           # default 2 x heartbeat_interval
    overrides: [data=ml100k]     # Hydra overrides applied to every trial (before the params)
    params: {...}                # the search space (graphrec_lab/sweeps/space.py)
"""

from __future__ import annotations

import inspect
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from omegaconf import OmegaConf

from graphrec_lab.config import ConfigError, ConfigIssue, check_values, config_dir, config_names, find_config
from graphrec_lab.sweeps.space import SearchSpace, parse_space

SAMPLERS: dict[str, type[optuna.samplers.BaseSampler]] = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "qmc": optuna.samplers.QMCSampler,
    "gp": optuna.samplers.GPSampler,
    "nsga2": optuna.samplers.NSGAIISampler,
    "bruteforce": optuna.samplers.BruteForceSampler,
}
PRUNERS: dict[str, type[optuna.pruners.BasePruner]] = {
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "threshold": optuna.pruners.ThresholdPruner,
    "wilcoxon": optuna.pruners.WilcoxonPruner,
    "none": optuna.pruners.NopPruner,
}
_KEYS = {
    "n_trials", "metric", "direction", "seed", "sampler", "pruner", "storage",
    "heartbeat_interval", "grace_period", "overrides", "params", "study_name",
}


@dataclass(frozen=True)
class SweepConfig:
    name: str
    source: str  # the YAML file, for error messages
    space: SearchSpace
    n_trials: int = 20
    metric: str | None = None
    direction: str | None = None
    seed: int = 0
    sampler: dict[str, Any] = field(default_factory=lambda: {"name": "tpe"})
    pruner: dict[str, Any] = field(default_factory=lambda: {"name": "median"})
    storage: str | None = None
    study_name: str | None = None
    heartbeat_interval: int = 30
    grace_period: int | None = None
    overrides: tuple[str, ...] = ()

    def make_sampler(self, seed: int | None) -> optuna.samplers.BaseSampler:
        """A fresh sampler; ``seed`` is passed when the sampler takes one."""
        kwargs = {k: v for k, v in self.sampler.items() if k != "name"}
        cls = SAMPLERS[self.sampler["name"]]
        if cls is optuna.samplers.TPESampler:
            # Parallel workers: pretend running trials scored badly, so they are not all sampled alike.
            kwargs.setdefault("constant_liar", True)
        if "seed" in inspect.signature(cls).parameters:
            kwargs["seed"] = seed
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return cls(**kwargs)

    def make_pruner(self) -> optuna.pruners.BasePruner:
        kwargs = {k: v for k, v in self.pruner.items() if k != "name"}
        return PRUNERS[self.pruner["name"]](**kwargs)

    def resolve_direction(self, metric: str) -> str:
        if self.direction is not None:
            return self.direction
        return "minimize" if "loss" in metric.split("/")[-1] else "maximize"


def sweep_path(name_or_path: str) -> Path:
    """``lightgcn`` -> ``sweep/lightgcn.yaml`` of ``$GRAPHREC_CONFIG_DIR``, else of the shipped configs;
    a path to a YAML file is used as is."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        return p
    return find_config("sweep", name_or_path) or config_dir() / "sweep" / f"{name_or_path}.yaml"


def load_sweep_config(name_or_path: str) -> SweepConfig:
    """Read and validate a sweep config; every error names the file and the key."""
    path = sweep_path(name_or_path)
    if not path.is_file():
        available = config_names("sweep")
        raise ConfigError(f"sweep config {name_or_path!r} not found at {path}; available: {available}")
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as exc:  # YAML syntax, bad interpolation
        raise ConfigError(f"{path}: cannot be read ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    where = str(path)
    # Every problem of the file at once: unknown keys, then types from SweepConfig's annotations
    # (the same check run configs get from their constructors' signatures), then the rules below.
    problems: list[ConfigIssue | str] = []
    unknown = set(map(str, raw)) - _KEYS
    if unknown:
        problems.append(f"unknown key(s) {sorted(unknown)}; accepted: {sorted(_KEYS)}")
    field_types = {k: v for k, v in typing.get_type_hints(SweepConfig).items() if k in _KEYS and k not in ("sampler", "pruner")}
    issues = check_values({k: v for k, v in raw.items() if k in field_types}, "", field_types)
    problems.extend(issues)
    bad = {i.key for i in issues}
    sampler = pruner = None
    for key, call in (
        ("sampler", lambda: _component(raw.get("sampler"), "tpe", SAMPLERS, f"{where}: sampler")),
        ("pruner", lambda: _component(raw.get("pruner"), "median", PRUNERS, f"{where}: pruner")),
        ("n_trials", lambda: _positive_int(raw.get("n_trials", 20), f"{where}: n_trials")),
        ("heartbeat_interval", lambda: _positive_int(raw.get("heartbeat_interval", 30), f"{where}: heartbeat_interval")),
        ("grace_period", lambda: raw.get("grace_period") is None or _positive_int(raw["grace_period"], f"{where}: grace_period")),
    ):
        if key in bad:
            continue
        try:
            value = call()
        except ConfigError as exc:
            problems.append(str(exc).removeprefix(f"{where}: "))
            continue
        if key == "sampler":
            sampler = value
        elif key == "pruner":
            pruner = value
    overrides = raw.get("overrides") or []
    if "overrides" not in bad and (not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides)):
        problems.append("overrides: expected a list of 'key=value' strings")
    direction = raw.get("direction")
    if direction not in (None, "maximize", "minimize"):
        problems.append(f"direction={direction!r}; expected maximize, minimize or null")
    try:
        space = parse_space(raw.get("params"), where)
    except ConfigError as exc:
        problems.append(str(exc).removeprefix(f"{where}: "))
    if problems:
        raise ConfigError.from_issues(problems, source=where)
    n_trials = raw.get("n_trials", 20)
    heartbeat = raw.get("heartbeat_interval", 30)
    grace = raw.get("grace_period")
    return SweepConfig(
        name=path.stem,
        source=where,
        space=space,
        n_trials=n_trials,
        metric=raw.get("metric"),
        direction=direction,
        seed=int(raw.get("seed", 0)),
        sampler=sampler,
        pruner=pruner,
        storage=raw.get("storage"),
        study_name=raw.get("study_name"),
        heartbeat_interval=heartbeat,
        grace_period=grace,
        overrides=tuple(overrides),
    )


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where}={value!r}: expected a positive integer")
    return value


def _component(raw: Any, default: str, registry: dict[str, Any], where: str) -> dict[str, Any]:
    """``{name: median, n_startup_trials: 3}`` (or just ``median``), its arguments checked."""
    if raw is None:
        raw = {"name": default}
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict) or "name" not in raw:
        raise ConfigError(f"{where}: expected {{name: <one of {sorted(registry)}>, <arguments>...}}")
    name = str(raw["name"])
    if name not in registry:
        raise ConfigError(f"{where}.name={name!r}; expected one of {sorted(registry)}")
    accepted = set(inspect.signature(registry[name]).parameters) - {"self", "seed"}
    for key in raw:
        if key != "name" and key not in accepted:
            raise ConfigError(f"{where}.{key}: not an argument of {registry[name].__name__} (accepted: {sorted(accepted)})")
    return dict(raw)
