"""Bad config values: one ConfigError that lists every key path, its value and what was expected.

The checks come from the annotations of the callables the config's ``_target_`` nodes name
(``Trainer(max_epochs: Optional[int])``), plus ``config.PARAM_RANGES`` for what a type cannot say.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from graphrec_lab.config import ConfigError, check_values, compose, validate_config
from graphrec_lab.data.sources import UnknownDatasetError
from graphrec_lab.experiment import run_experiment
from graphrec_lab.sweeps.config import load_sweep_config
from tests.conftest import tiny_overrides

CASES = [
    # (override, the key path and value the message names, words of the expected type/range)
    ("trainer.max_epochs=abc", "trainer.max_epochs='abc'", "an integer"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0", "an integer >= 1"),
    ("task.lr=fast", "task.lr='fast'", "a number"),
    ("task.lr=0", "task.lr=0", "> 0"),
    ("seed=abc", "seed='abc'", "an integer"),
    ("data.train_batch_size=0", "data.train_batch_size=0", "an integer >= 1"),
    ("model.embedding_dim=0", "model.embedding_dim=0", "an integer >= 1"),
    ("data.ratios=[0.9,0.9,0.9]", "data.ratios=[0.9, 0.9, 0.9]", "summing to 1"),
    ("trainer.check_val_every_n_epoch=0", "trainer.check_val_every_n_epoch=0", "an integer >= 1"),
    ("fit=maybe", "fit='maybe'", "true or false"),
    ("task.nonfinite_loss=ignore", "task.nonfinite_loss='ignore'", "one of 'error', 'skip'"),
]


@pytest.mark.parametrize(("override", "named", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_value_names_key_value_and_expectation(override, named, expected):
    with pytest.raises(ConfigError) as info:
        validate_config(compose([override]))
    line = next(line for line in str(info.value).splitlines() if named in line)
    assert expected in line


def test_every_bad_value_is_reported_at_once():
    overrides = [c[0] for c in CASES if c[0] not in ("trainer.max_epochs=0", "task.lr=0")]
    with pytest.raises(ConfigError) as info:
        validate_config(compose(overrides))
    keys = {issue.key for issue in info.value.issues}
    assert {"trainer.max_epochs", "task.lr", "seed", "data.train_batch_size", "model.embedding_dim", "data.ratios", "fit"} <= keys
    assert "data.split_seed" not in keys  # ${seed}: its problem is reported once, at seed


def test_interpolated_key_with_its_own_bad_value_is_reported():
    with pytest.raises(ConfigError, match=r"^config: data\.split_seed='abc': expected an integer$"):
        validate_config(compose(["data.split_seed=abc"]))


def test_bad_value_stops_run_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError, match=r"model\.embedding_dim=0"):
        run_experiment(compose(tiny_overrides(tmp_path, "model.embedding_dim=0")))
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_recbole_without_a_dataset_name_names_data_dataset():
    with pytest.raises(ConfigError, match=r"data\.dataset='\?\?\?': expected a dataset name .*recbole:<folder>"):
        validate_config(compose(["data=recbole"]))


def test_recbole_name_without_prefix_suggests_the_prefix(tmp_path):
    with pytest.raises(UnknownDatasetError, match=r"data\.dataset='mini': unknown dataset.*data\.dataset=recbole:mini"):
        run_experiment(compose(["data=recbole", "data.dataset=mini", f"data.data_dir={tmp_path}", f"paths.root={tmp_path / 'out'}"]))


def make_thing(size: int, rate: float = 0.1, names: list[str] | None = None) -> dict:
    return {"size": size, "rate": rate, "names": names}


def test_check_values_is_generic_over_any_target():
    node = {"thing": {"_target_": f"{__name__}.make_thing", "size": "big", "rate": [1], "names": ["a", 2]}}
    issues = check_values(node)
    assert [(i.key, i.value) for i in issues] == [("thing.size", "big"), ("thing.rate", [1]), ("thing.names", ["a", 2])]
    assert check_values({"thing": {"_target_": f"{__name__}.make_thing", "size": 3}}) == []


def test_sweep_config_reports_every_bad_field_at_once(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({
        "n_trials": "many", "direction": "sideways", "seed": "x",
        "params": {"task.lr": {"type": "float", "low": 1e-4, "high": 1e-2}},
    }))  # fmt: skip
    with pytest.raises(ConfigError) as info:
        load_sweep_config(str(path))
    message = str(info.value)
    assert "bad.yaml: 3 problems" in message
    assert "n_trials='many': expected an integer" in message
    assert "seed='x': expected an integer" in message
    assert "direction='sideways'" in message
