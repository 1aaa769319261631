"""Worker processes for multi-process strategies (DDP, FSDP, DeepSpeed) on one node.

Lightning's own DDP launcher starts ranks 1.. by re-running ``sys.argv``. That is wrong for every
way run_experiment is called except a plain script: ``graphrec-lab sweep`` would re-run the whole
sweep on each rank (each rank sampling its own trial), a notebook cannot be re-run, and
``graphrec-lab run`` loses its sub-command. Here rank 0 decides the configuration once, writes it
(resolved hyperparameters included) to ``<paths.root>/ddp/<run id>.yaml``, and starts ranks 1..
as ``python -m graphrec_lab.rank <that file>``; every rank then trains exactly that
configuration. The environment is the one ``torchrun`` sets (``MASTER_ADDR``, ``MASTER_PORT``,
``WORLD_SIZE``, ``NODE_RANK``, ``LOCAL_RANK``), so Lightning sees externally created processes and
does not launch again. Under ``torchrun``/SLURM (``LOCAL_RANK`` already set) nothing is launched here.

Several nodes are always launched by ``torchrun`` or SLURM (README, "Multi-GPU and multi-node").
The rank entry point is ``graphrec_lab.rank`` (it runs ``run_experiment``, which imports this launcher).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.environments.lightning import find_free_network_port
from omegaconf import DictConfig, OmegaConf

from graphrec_lab.config import ConfigError

log = logging.getLogger(__name__)

# Strategies whose ranks are separate processes started by a script launcher (the ones Lightning
# would start by re-running sys.argv). ``ddp_spawn``/``ddp_fork``/``ddp_notebook`` start their
# processes themselves from the live objects and are left to Lightning.
SCRIPT_LAUNCHED_PREFIXES = ("ddp", "fsdp", "deepspeed")
SELF_LAUNCHING = ("spawn", "fork", "notebook")
RUN_ID_ENV = "GRAPHREC_RUN_ID"
_ENV_KEYS = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "NODE_RANK", "LOCAL_RANK", RUN_ID_ENV)


def new_run_id() -> str:
    """``<time>-<6 hex>``; every rank of a launched run reads the same one from ``GRAPHREC_RUN_ID``."""
    return os.environ.get(RUN_ID_ENV) or f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def global_rank() -> int:
    """This process's rank before the process group exists (``RANK`` from torchrun/SLURM, else
    ``NODE_RANK``/``LOCAL_RANK``), 0 in a single process."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    if "SLURM_PROCID" in os.environ:
        return int(os.environ["SLURM_PROCID"])
    return int(os.environ.get("LOCAL_RANK", 0))  # one node: node rank 0


def _strategy_name(strategy: Any) -> str:
    if isinstance(strategy, str):
        return strategy
    if isinstance(strategy, DictConfig | dict):
        target = str(strategy.get("_target_", "")).rsplit(".", 1)[-1].lower()
        start = str(strategy.get("start_method", "popen"))
        return f"{target}_{start}" if start != "popen" else target.replace("strategy", "")
    return type(strategy).__name__.lower()


def local_processes(trainer_cfg: DictConfig) -> int:
    """How many processes this node runs for ``trainer_cfg`` when it needs a script launcher, else 1."""
    name = _strategy_name(trainer_cfg.get("strategy", "auto")).lower()
    if not name.startswith(SCRIPT_LAUNCHED_PREFIXES) or any(s in name for s in SELF_LAUNCHING):
        return 1
    devices = trainer_cfg.get("devices", 1)
    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    if isinstance(devices, str) and devices not in ("auto", "-1"):
        devices = [d for d in devices.split(",") if d.strip()] if "," in devices else int(devices)
    if devices in (-1, "-1", "auto"):  # Lightning: every GPU; on CPU, "auto" is one process
        gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
        return max(torch.cuda.device_count(), 1) if gpu else 1
    if isinstance(devices, list | tuple) or OmegaConf.is_list(devices):
        return len(devices)
    return int(devices)


@contextmanager
def launch_local_ranks(cfg: DictConfig, overrides: list[str] | None = None) -> Iterator[str]:
    """Start ranks 1.. of ``cfg`` on this node when its strategy needs a script launcher; yields the
    run id every rank shares. Rank 0 (the caller) runs inside the ``with`` block; on leaving, it waits
    for the other ranks and raises if one failed, or stops them if rank 0 failed (they would wait
    forever in a collective)."""
    nprocs = local_processes(cfg.trainer)
    num_nodes = int(cfg.trainer.get("num_nodes", 1) or 1)
    if nprocs <= 1 or "LOCAL_RANK" in os.environ:
        yield new_run_id()  # single process, or ranks created by torchrun / SLURM / this launcher
        return
    if num_nodes > 1:
        raise ConfigError(
            f"trainer.num_nodes={num_nodes}: start every node with torchrun or SLURM (README, 'Multi-GPU and "
            "multi-node'); graphrec_lab launches the processes of one node only"
        )
    run_id = new_run_id()
    config_path = Path(str(cfg.paths.root)) / "ddp" / f"{run_id}.yaml"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, config_path)
    (config_path.with_suffix(".overrides")).write_text("\n".join(overrides or []))
    env = {
        "MASTER_ADDR": os.environ.get("MASTER_ADDR", "127.0.0.1"),
        "MASTER_PORT": str(find_free_network_port()),
        "WORLD_SIZE": str(nprocs),
        "NODE_RANK": "0",
        RUN_ID_ENV: run_id,
    }
    saved = {k: os.environ.get(k) for k in _ENV_KEYS}
    procs: list[subprocess.Popen] = []
    ok = False
    try:
        os.environ.update(env, LOCAL_RANK="0")
        for rank in range(1, nprocs):
            child_env = {**os.environ, "LOCAL_RANK": str(rank)}
            cmd = [sys.executable, "-m", "graphrec_lab.rank", str(config_path)]
            procs.append(subprocess.Popen(cmd, env=child_env))
        log.info("launched ranks 1..%d of %d (config %s, port %s)", nprocs - 1, nprocs, config_path, env["MASTER_PORT"])
        yield run_id
        ok = True
    finally:
        # Lightning leaves the process group up; a later run in this process (the next sweep trial,
        # a single-process run in the same notebook) must not find the dead group of this one.
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        failed = []
        for rank, proc in enumerate(procs, start=1):
            if not ok:
                proc.terminate()
            try:
                code = proc.wait(timeout=None if ok else 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            if code != 0:
                failed.append((rank, code))
        if ok and failed:
            raise RuntimeError(f"DDP ranks failed (rank, exit code): {failed}; their output is above (config {config_path})")
