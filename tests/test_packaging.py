"""The configs ship inside the package, and a user's config folder is searched before them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from graphrec_lab.config import ConfigError, compose, config_dir, config_names, find_config
from graphrec_lab.sweeps.config import sweep_path

REPO = Path(__file__).resolve().parents[1]
GRAPHREC_LAB = str(Path(sys.executable).parent / "graphrec-lab")


def test_wheel_contains_every_config(tmp_path: Path) -> None:
    """Build the wheel (from a copy, so the checkout gets no build/ folder) and list its configs."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "graphrec_lab", src / "graphrec_lab", ignore=shutil.ignore_patterns("__pycache__"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "whl"), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = (tmp_path / "whl").glob("graphrec_lab-*.whl")
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("graphrec_lab/configs/")}
    expected = {f"graphrec_lab/configs/{p.relative_to(config_dir()).as_posix()}" for p in config_dir().rglob("*.yaml")}
    assert "graphrec_lab/configs/train.yaml" in expected and len(expected) > 40
    assert shipped == expected


def test_compose_from_an_unrelated_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("GRAPHREC_CONFIG_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    cfg = compose(["model=bprmf"])
    assert cfg.model._target_ == "graphrec_lab.models.MatrixFactorization"
    assert config_dir() == Path(__file__).resolve().parents[1] / "graphrec_lab" / "configs"
    assert list(tmp_path.iterdir()) == []


@pytest.fixture()
def user_configs(tmp_path: Path, monkeypatch) -> Path:
    """A user folder with one new model, one new sweep and a replacement for paths/default.yaml."""
    user = tmp_path / "my-configs"
    (user / "model").mkdir(parents=True)
    (user / "paths").mkdir()
    (user / "sweep").mkdir()
    (user / "model" / "mine.yaml").write_text("_target_: graphrec_lab.models.LightGCN\nembedding_dim: 8\nnum_layers: 1\n")
    (user / "paths" / "default.yaml").write_text(f"root: {tmp_path / 'elsewhere'}\nresults: ${{paths.root}}/r.jsonl\n")
    shutil.copy(config_dir() / "sweep" / "lightgcn.yaml", user / "sweep" / "mysweep.yaml")
    monkeypatch.setenv("GRAPHREC_CONFIG_DIR", str(user))
    return user


def test_user_config_dir_adds_and_replaces_configs(user_configs: Path, tmp_path: Path) -> None:
    cfg = compose(["model=mine"])
    assert cfg.model.embedding_dim == 8
    assert cfg.paths.root == str(tmp_path / "elsewhere")  # the user's paths/default.yaml won
    assert compose(["model=ngcf"]).model._target_.endswith("NGCF")  # shipped configs still there
    assert {"mine", "lightgcn"} <= set(config_names("model"))
    assert find_config("model", "mine") == user_configs / "model" / "mine.yaml"
    assert find_config("model", "lightgcn") == config_dir() / "model" / "lightgcn.yaml"
    assert sweep_path("mysweep") == user_configs / "sweep" / "mysweep.yaml"
    assert sweep_path("lightgcn") == config_dir() / "sweep" / "lightgcn.yaml"


def test_cli_reads_the_user_config_dir(user_configs: Path, tmp_path: Path) -> None:
    proc = subprocess.run([GRAPHREC_LAB, "run", "--cfg", "job", "model=mine"], cwd=tmp_path, env=os.environ.copy(),
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "embedding_dim: 8" in proc.stdout and str(tmp_path / "elsewhere") in proc.stdout


def test_missing_user_config_dir_is_a_config_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GRAPHREC_CONFIG_DIR", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="GRAPHREC_CONFIG_DIR"):
        compose([])
