"""Search spaces: ``params:`` of a ``configs/sweep/*.yaml`` file, sampled define-by-run.

Each parameter is a Hydra override key (``task.lr``, ``model`` for a config group, ``+model.x`` for a
new key) with a distribution::

    task.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
    model.num_layers: {type: int, low: 1, high: 4, step: 1, when: {model: lightgcn}}
    model: {type: categorical, choices: [lightgcn, ngcf]}
    data.train_batch_size: [1024, 2048]          # shorthand for a categorical

``when`` makes a parameter conditional on parameters defined above it (a value or a list of allowed
values): it is only sampled, and only becomes an override, when every condition holds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna

from graphrec_lab.config import ConfigError

Scalar = str | int | float | bool | None
_FIELDS = {"type", "low", "high", "log", "step", "choices", "when"}
_PLAIN = re.compile(r"^[A-Za-z0-9_./@:+\-]+$")


@dataclass(frozen=True)
class ParamSpec:
    """One searched parameter; ``name`` is the Hydra override key (also the Optuna param name)."""

    name: str
    type: str  # float | int | categorical
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Scalar, ...] = ()
    when: tuple[tuple[str, tuple[Scalar, ...]], ...] = ()

    def active(self, sampled: Mapping[str, Any]) -> bool:
        """True when every ``when`` condition holds for the parameters sampled so far."""
        return all(name in sampled and sampled[name] in allowed for name, allowed in self.when)

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.type == "float":
            return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log,  # type: ignore[arg-type]
                                       step=None if self.step is None else float(self.step))
        if self.type == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log,  # type: ignore[arg-type]
                                     step=int(self.step or 1))
        return trial.suggest_categorical(self.name, list(self.choices))  # type: ignore[arg-type]


@dataclass(frozen=True)
class SearchSpace:
    params: tuple[ParamSpec, ...] = field(default_factory=tuple)

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Sample the active parameters in definition order; returns ``{override key: value}``."""
        sampled: dict[str, Any] = {}
        for spec in self.params:
            if spec.active(sampled):
                sampled[spec.name] = spec.suggest(trial)
        return sampled

    @staticmethod
    def to_overrides(params: Mapping[str, Any]) -> list[str]:
        """``{"task.lr": 0.01, "model": "ngcf"}`` -> ``["task.lr=0.01", "model=ngcf"]``."""
        return [f"{key}={format_value(value)}" for key, value in params.items()]


def format_value(value: Any) -> str:
    """A Python value as a Hydra override value that parses back to the same value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return repr(value)  # shortest round-tripping form: 0.01, 1e-05
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in ("null", "true", "false") and not _is_number(text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def parse_space(params: Mapping[str, Any] | None, where: str) -> SearchSpace:
    """Validate ``params:`` of a sweep config; errors name ``<where>: params.<key>.<field>``."""
    if not params:
        raise ConfigError(f"{where}: 'params' is empty: a sweep needs at least one searched parameter")
    specs: list[ParamSpec] = []
    for name, raw in params.items():
        name = str(name)
        at = f"{where}: params.{name}"
        if isinstance(raw, Sequence) and not isinstance(raw, (str, bytes)):
            raw = {"type": "categorical", "choices": list(raw)}
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{at}: expected a mapping (type, low, high, ...) or a list of choices, got {raw!r}")
        unknown = set(map(str, raw)) - _FIELDS
        if unknown:
            raise ConfigError(f"{at}: unknown field(s) {sorted(unknown)}; accepted: {sorted(_FIELDS)}")
        kind = str(raw.get("type", "categorical" if "choices" in raw else ""))
        when = _parse_when(raw.get("when"), at, [s.name for s in specs])
        if kind in ("float", "int"):
            specs.append(_numeric(name, kind, raw, at, when))
        elif kind == "categorical":
            choices = raw.get("choices")
            if not isinstance(choices, Sequence) or isinstance(choices, str) or len(choices) == 0:
                raise ConfigError(f"{at}.choices: expected a non-empty list")
            for c in choices:
                if c is not None and not isinstance(c, (str, int, float, bool)):
                    raise ConfigError(f"{at}.choices: {c!r} is not a scalar (str, int, float, bool, null)")
            extra = {"low", "high", "log", "step"} & set(map(str, raw))
            if extra:
                raise ConfigError(f"{at}: {sorted(extra)} do not apply to a categorical parameter")
            specs.append(ParamSpec(name, "categorical", choices=tuple(choices), when=when))
        else:
            raise ConfigError(f"{at}.type: {kind!r}; expected float, int or categorical")
    return SearchSpace(tuple(specs))


def _numeric(name: str, kind: str, raw: Mapping[str, Any], at: str, when: Any) -> ParamSpec:
    if "choices" in raw:
        raise ConfigError(f"{at}: 'choices' only applies to a categorical parameter")
    cast = float if kind == "float" else int
    try:
        low, high = cast(raw["low"]), cast(raw["high"])
        step = None if raw.get("step") is None else cast(raw["step"])
    except KeyError as exc:
        raise ConfigError(f"{at}.{exc.args[0]}: required for a {kind} parameter") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{at}: low/high/step must be {kind}s ({exc})") from None
    if kind == "int" and any(raw.get(k) is not None and float(raw[k]) != int(float(raw[k])) for k in ("low", "high", "step")):
        raise ConfigError(f"{at}: low/high/step of an int parameter must be whole numbers")
    log = bool(raw.get("log", False))
    if not low <= high:
        raise ConfigError(f"{at}: low={low} must not exceed high={high}")
    if log and low <= 0:
        raise ConfigError(f"{at}: log=true needs low > 0 (got {low})")
    if log and step is not None and not (kind == "int" and step == 1):
        raise ConfigError(f"{at}: 'step' cannot be combined with log=true")
    if step is not None and step <= 0:
        raise ConfigError(f"{at}.step: must be positive (got {step})")
    return ParamSpec(name, kind, low=low, high=high, log=log, step=step, when=when)


def _parse_when(raw: Any, at: str, defined: list[str]) -> tuple[tuple[str, tuple[Scalar, ...]], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"{at}.when: expected a mapping {{parameter: value or [values]}}")
    out = []
    for key, allowed in raw.items():
        if str(key) not in defined:
            raise ConfigError(
                f"{at}.when: {key!r} is not a parameter defined above it (defined so far: {defined})"
            )
        values = tuple(allowed) if isinstance(allowed, Sequence) and not isinstance(allowed, str) else (allowed,)
        out.append((str(key), values))
    return tuple(out)
