"""Every config composes and instantiates; misspelt keys fail with their dotted name."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import torch
import yaml
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate

from graphrec_lab.config import ConfigError, compose, config_dir, validate_config
from tests.conftest import REPO

GROUP_OPTIONS = {
    group: sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))
    for group in ("data", "model", "task", "trainer", "callbacks", "logger", "experiment")
}


NEEDS_TEXT = {"unisrec"}  # item text features are part of the model (text=frozen supplies them)


@pytest.mark.parametrize("option", GROUP_OPTIONS["model"])
def test_every_model_config_instantiates(option):
    cfg = compose([f"model={option}"])
    validate_config(cfg)
    text = {"item_features": torch.randn(7, 4)} if option in NEEDS_TEXT else {}
    model = instantiate(cfg.model, num_users=5, num_items=7, **text)
    assert model.num_users == 5 and model.num_items == 7


@pytest.mark.parametrize("option", GROUP_OPTIONS["data"])
def test_every_data_config_composes_and_validates(option):
    overrides = [f"data={option}"]
    if option == "recbole":
        overrides.append("data.dataset=recbole:toy")
    cfg = compose(overrides)
    validate_config(cfg)
    dm = instantiate(cfg.data, _convert_="all")
    assert dm.dataset  # building the graph needs the files; readers are tested separately


@pytest.mark.parametrize("group", ["trainer", "callbacks", "logger", "task"])
def test_every_other_group_option_instantiates(group, tmp_path):
    from graphrec_lab.models import MatrixFactorization

    for option in GROUP_OPTIONS[group]:
        cfg = compose([f"{group}={option}", f"paths.root={tmp_path}"])
        validate_config(cfg)
        node = cfg[group]
        if group == "task":
            instantiate(node, model=MatrixFactorization(30, 40), _recursive_=False, _convert_="all")  # >= 10 users: task=federated's default clients
        elif group == "trainer":
            if node.accelerator == "gpu":
                continue  # needs a GPU to instantiate; composition and validation are checked above
            instantiate(node, logger=False, default_root_dir=str(tmp_path))
        else:
            for sub in node.values():
                if "save_dir" in sub:
                    sub.save_dir = str(tmp_path)
                if sub.get("mode") == "auto":
                    sub.mode = "disabled"
                instantiate(sub)


@pytest.mark.parametrize("option", GROUP_OPTIONS["experiment"])
def test_every_experiment_composes(option):
    validate_config(compose([f"experiment={option}"]))


def test_misspelt_model_key_names_the_key_and_suggests():
    cfg = compose(["+model.embeding_dim=32"])
    with pytest.raises(ConfigError, match=r"model\.embeding_dim.*Did you mean 'embedding_dim'"):
        validate_config(cfg)


@pytest.mark.parametrize(
    ("data", "typo", "suggestion"),
    [("synthetic", "txt", "text"), ("synthetic", "split_sed", "split_seed"), ("hetrec_lastfm", "social_cor", "social_core")],
)
def test_data_modules_passing_kwargs_to_their_base_still_reject_typos(data, typo, suggestion):
    # ItemTextDataModule / SocialDataModule take **kwargs for InteractionDataModule's arguments;
    # the check follows the MRO, so both their own keys and the base's are known.
    cfg = compose([f"data={data}", f"+data.{typo}=1"])
    with pytest.raises(ConfigError, match=rf"unknown config key 'data.{typo}'.*Did you mean '{suggestion}'"):
        validate_config(cfg)


def test_misspelt_top_level_key_is_rejected():
    cfg = compose(["+optimised_metric=val/recall@20"])
    with pytest.raises(ConfigError, match=r"'optimised_metric'.*Did you mean 'optimized_metric'"):
        validate_config(cfg)


def test_override_of_unknown_key_without_plus_fails_in_hydra():
    with pytest.raises(ConfigCompositionException, match="max_epocs"):
        compose(["trainer.max_epocs=3"])


def test_misspelt_key_inside_a_config_file_is_caught(tmp_path, monkeypatch):
    # A typo in a YAML file would silently become a new key in plain Hydra.
    configs = tmp_path / "configs"
    import shutil

    shutil.copytree(config_dir(), configs)
    (configs / "model" / "typo.yaml").write_text("_target_: graphrec_lab.models.LightGCN\nnum_layer: 2\n")
    monkeypatch.setenv("GRAPHREC_CONFIG_DIR", str(configs))
    with pytest.raises(ConfigError, match=r"model\.num_layer.*Did you mean 'num_layers'"):
        validate_config(compose(["model=typo"]))


def _requirement_names(specs: list[str]) -> dict[str, str]:
    out = {}
    for spec in specs:
        name = re.split(r"[<>=!~\[ ;]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")
        out[name] = spec.strip()
    return out


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = _requirement_names(project["dependencies"] + project["optional-dependencies"]["test"])
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = _requirement_names([s for s in pip_section if not s.startswith("-")])
    assert listed == declared, "environment.yml and pyproject.toml declare different requirements"
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.replace(" ", "") in ("python=3.11", "python==3.11")
