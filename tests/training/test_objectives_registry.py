"""``training.objectives.OBJECTIVES`` lists every objective, under the key its config uses."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from omegaconf import OmegaConf

from graphrec_lab.config import config_dir
from graphrec_lab.training import objectives
from graphrec_lab.training.objectives import OBJECTIVES, Objective

CONFIG_DIR = config_dir()


def test_every_objective_class_is_registered() -> None:
    defined = set()
    for info in pkgutil.iter_modules(objectives.__path__):
        module = importlib.import_module(f"{objectives.__name__}.{info.name}")
        defined |= {
            obj for _, obj in inspect.getmembers(module, inspect.isclass)
            if issubclass(obj, Objective) and obj is not Objective and obj.__module__ == module.__name__
        }  # fmt: skip
    # A shared base (ContrastiveObjective) is not itself an objective a config can name.
    bases = {cls for cls in defined if any(other is not cls and issubclass(other, cls) for other in defined)}
    assert len(defined - bases) >= 5
    assert defined - bases == set(OBJECTIVES.values())


def test_config_objectives_use_the_registry_key_and_the_package_path() -> None:
    found = {}
    for path in sorted(CONFIG_DIR.rglob("*.yaml")):
        cfg = OmegaConf.load(path)
        nodes = OmegaConf.select(cfg, "task.objectives") if OmegaConf.is_dict(cfg) else None
        for key, node in (nodes or {}).items():
            found[key] = (path.relative_to(CONFIG_DIR), node["_target_"])
    assert set(found) == set(OBJECTIVES), found
    for key, (path, target) in found.items():
        assert target == f"graphrec_lab.training.objectives.{OBJECTIVES[key].__name__}", f"configs/{path}: task.objectives.{key}"
