"""DDP on CPU (gloo, 2 processes): exact evaluation, one record per run, one config per sweep trial.

The slow tests start real worker processes through ``graphrec_lab.distributed`` (as a user's
``trainer.strategy=ddp trainer.devices=2`` does) and compare with a single process.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from graphrec_lab.config import ConfigError, compose
from graphrec_lab.data import sampling
from graphrec_lab.data.sampling import ShardedEvalSampler
from graphrec_lab.distributed import local_processes
from graphrec_lab.experiment import run_experiment
from graphrec_lab.sweeps import run_sweep
from graphrec_lab.tracking.results import ResultStore
from tests.conftest import tiny_overrides

DDP = ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp"]
# 121 users: odd, so the two ranks get 61 and 60 of the users that have held-out items (or so).
SMALL = ["data.synthetic.num_users=121", "print_table=false"]


@pytest.mark.parametrize("world", [1, 2, 3, 4, 7, 8])
def test_sharded_eval_sampler_covers_every_index_exactly_once(world, monkeypatch):
    data = list(range(7))
    seen: list[int] = []
    lengths = []
    for rank in range(world):
        monkeypatch.setattr(sampling, "distributed_rank_and_world", lambda rank=rank: (rank, world))
        sampler = ShardedEvalSampler(data)  # type: ignore[arg-type]
        shard = list(sampler)
        assert len(sampler) == len(shard)
        seen += shard
        lengths.append(len(shard))
    assert sorted(seen) == data  # no index twice (torch's DistributedSampler pads 7 -> 8 for world 2)
    assert max(lengths) - min(lengths) <= 1


@pytest.mark.parametrize(
    ("trainer", "expected"),
    [
        ({"strategy": "auto", "devices": 4}, 1),
        ({"strategy": "ddp", "devices": 2, "accelerator": "cpu"}, 2),
        ({"strategy": "ddp_spawn", "devices": 2}, 1),  # Lightning spawns these itself
        ({"strategy": "ddp_notebook", "devices": 2}, 1),
        ({"strategy": "fsdp", "devices": [0, 1, 2]}, 3),
        ({"strategy": "deepspeed_stage_2", "devices": "3"}, 3),
        ({"strategy": "ddp", "devices": "auto", "accelerator": "cpu"}, 1),
        ({"strategy": {"_target_": "lightning.pytorch.strategies.DDPStrategy"}, "devices": 2}, 2),
        ({"strategy": {"_target_": "lightning.pytorch.strategies.DDPStrategy", "start_method": "spawn"}, "devices": 2}, 1),
    ],
)
def test_processes_launched_per_strategy(trainer, expected):
    assert local_processes(OmegaConf.create(trainer)) == expected


def test_multi_node_without_torchrun_is_a_clear_error(out_dir, monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    cfg = compose(tiny_overrides(out_dir, *DDP, "trainer.num_nodes=2"))
    with pytest.raises(ConfigError, match="trainer.num_nodes=2: start every node with torchrun"):
        run_experiment(cfg)


def test_missing_checkpoint_is_a_clear_error(out_dir):
    cfg = compose(tiny_overrides(out_dir, "fit=false", f"ckpt_path={out_dir}/nope.ckpt"))
    with pytest.raises(ConfigError, match="ckpt_path=.*nope.ckpt.*no such checkpoint"):
        run_experiment(cfg)


@pytest.mark.slow
def test_ddp_evaluation_of_a_checkpoint_equals_single_process(out_dir):
    trained = run_experiment(compose(tiny_overrides(out_dir, *SMALL, "trainer.max_epochs=2")))
    ckpt = ResultStore(out_dir / "results.jsonl").read()[-1]["paths"]["checkpoint"]
    assert ckpt and Path(ckpt).is_file()

    evaluate = tiny_overrides(out_dir, *SMALL, "fit=false", f"ckpt_path={ckpt}")
    single = run_experiment(compose(evaluate))
    ddp = run_experiment(compose([*evaluate, *DDP]))

    # The evaluated checkpoint is the trained one (not a fresh initialisation).
    assert single["val/ndcg@20"] == pytest.approx(trained["val/ndcg@20"], abs=1e-6)
    assert int(single["val/num_users"]) % 2 == 1 or int(single["test/num_users"]) % 2 == 1
    metrics = [k for k in single if k.startswith(("val/", "test/"))]
    assert len(metrics) >= 30
    for key in metrics:
        assert ddp[key] == pytest.approx(single[key], abs=1e-6), key
    records = ResultStore(out_dir / "results.jsonl").read()
    assert [r["world_size"] for r in records] == [1, 1, 2]


@pytest.mark.slow
def test_ddp_training_writes_one_record_one_wandb_run_one_checkpoint(out_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    metrics = run_experiment(compose(tiny_overrides(out_dir, *SMALL, *DDP, "logger=default", "name=ddp-run")))
    records = ResultStore(out_dir / "results.jsonl").read()
    assert len(records) == 1 and records[0]["world_size"] == 2 and records[0]["strategy"] == "DDPStrategy"
    run_dirs = list((out_dir / "runs" / "ddp-run").iterdir())
    assert len(run_dirs) == 1  # rank 1 made no directory of its own
    assert len(list(run_dirs[0].glob("wandb/offline-run-*/run-*.wandb"))) == 1
    assert sorted(p.name for p in (run_dirs[0] / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert records[0]["paths"]["checkpoint"] == str(run_dirs[0] / "checkpoints" / "best.ckpt")
    assert metrics["val/num_users"] == records[0]["metrics"]["val/num_users"] > 0
    # Training really ran on both ranks: the record's epochs and a selected checkpoint.
    assert metrics["epochs"] == 4 and metrics["best_epoch"] >= 0


@pytest.mark.slow
def test_ddp_sweep_trial_trains_one_configuration_on_both_ranks(out_dir, tmp_path):
    # Different embedding sizes on the two ranks could not even build one DDP model: DDP checks
    # that every rank holds parameters of the same shapes.
    sweep = tmp_path / "ddp_sweep.yaml"
    sweep.write_text(
        yaml.safe_dump(
            {
                "n_trials": 2, "seed": 3, "sampler": {"name": "random"}, "pruner": {"name": "none"},
                "params": {"model.embedding_dim": [8, 16, 24, 32, 40, 48], "task.lr": {"type": "float", "low": 1e-3, "high": 5e-2, "log": True}},
            }  # fmt: skip
        )
    )
    summary = run_sweep(str(sweep), overrides=tiny_overrides(out_dir, *SMALL, *DDP, "model=bprmf", "trainer.max_epochs=2"))
    assert (summary.n_complete, summary.n_failed) == (2, 0)
    records = ResultStore(out_dir / "results.jsonl").read()
    assert len(records) == 2 and all(r["world_size"] == 2 for r in records)
    # What rank 1 ran: the config file rank 0 wrote for it, one per trial, with the trial's values.
    configs = sorted((out_dir / "ddp").glob("*.yaml"))
    assert len(configs) == 2
    ran = sorted((int(c["model"]["embedding_dim"]), float(c["task"]["lr"])) for c in map(_load, configs))
    recorded = sorted((int(r["config"]["model"]["embedding_dim"]), float(r["config"]["task"]["lr"])) for r in records)
    assert ran == recorded


def _load(path: Path) -> dict:
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)  # type: ignore[return-value]


def test_ddp_module_refuses_to_run_outside_a_launch(monkeypatch, tmp_path):
    from graphrec_lab import rank

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    with pytest.raises(SystemExit, match="LOCAL_RANK unset"):
        rank.main([str(tmp_path / "x.yaml")])


@pytest.mark.slow
def test_two_nodes_over_loopback_evaluate_a_checkpoint_like_one_process(out_dir, tmp_path):
    """Two "nodes" (one torchrun agent each, as on two machines; here both on loopback) evaluate one
    checkpoint; the metrics equal one process's."""
    import os
    import subprocess
    import sys

    from lightning.fabric.plugins.environments.lightning import find_free_network_port

    run_experiment(compose(tiny_overrides(out_dir, *SMALL, "trainer.max_epochs=2")))
    ckpt = ResultStore(out_dir / "results.jsonl").read()[-1]["paths"]["checkpoint"]
    evaluate = tiny_overrides(out_dir, *SMALL, "fit=false", f"ckpt_path={ckpt}")
    single = run_experiment(compose(evaluate))

    port = find_free_network_port()
    torchrun = str(Path(sys.executable).parent / "torchrun")
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_PORT")}
    nodes = []
    for node in range(2):
        cmd = [
            torchrun, "--nnodes=2", "--nproc_per_node=1", f"--node_rank={node}", "--master_addr=127.0.0.1",
            f"--master_port={port}", "-m", "graphrec_lab", "run", *evaluate, "trainer.accelerator=cpu",
            "trainer.strategy=ddp", "trainer.devices=1", "trainer.num_nodes=2",
            f"hydra.run.dir={tmp_path / f'hydra-{node}'}", "hydra.output_subdir=null",
        ]  # fmt: skip
        nodes.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=600)[0] for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]

    records = ResultStore(out_dir / "results.jsonl").read()
    assert len(records) == 3  # train, single evaluation, one record for the two nodes
    two_nodes = records[-1]
    assert two_nodes["world_size"] == 2 and two_nodes["config"]["trainer"]["num_nodes"] == 2
    for key, value in single.items():
        if key.startswith(("val/", "test/")):
            assert two_nodes["metrics"][key] == pytest.approx(value, abs=1e-6), key


def test_gpu_check_script_runs_on_cpu_in_fp32_and_bf16(tmp_path):
    """benchmarks/gpu_check/check.py is meant for a GPU machine; its CPU smoke mode keeps it from
    rotting (bf16-mixed included: sparse propagation must stay in fp32 under autocast)."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check" / "check.py"
    out = subprocess.run(
        [sys.executable, str(script), "--accelerator", "cpu", "--data", "synthetic", "--epochs", "1", "--out", str(tmp_path),
         "data.synthetic.num_users=120", "data.synthetic.num_items=150", "data.cache_dir=none"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith(("| 32-true", "| bf16-mixed"))]
    assert len(rows) == 2
    assert all(float(row.split("|")[7]) > 0 for row in rows)  # test Recall@20 of a trained LightGCN


@pytest.mark.slow
def test_ddp_sweep_prunes_a_trial_and_goes_on(out_dir, tmp_path):
    """A pruned trial raises on rank 0; the launcher stops the other rank and the sweep continues."""
    import optuna
    from optuna.trial import TrialState

    sweep = tmp_path / "prune.yaml"
    sweep.write_text(
        yaml.safe_dump(
            {"n_trials": 3, "seed": 0, "sampler": {"name": "bruteforce"},
             "pruner": {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
             "params": {"task.lr": [0.05, 0.00001], "seed": [0, 1]}}  # fmt: skip
        )
    )
    overrides = tiny_overrides(out_dir, *SMALL, *DDP, "model=bprmf", "trainer.check_val_every_n_epoch=1")
    summary = run_sweep(str(sweep), overrides=overrides)
    trials = optuna.load_study(study_name="prune", storage=f"sqlite:///{out_dir / 'sweeps/prune/study.db'}").trials
    assert len(trials) == 3 and summary.n_failed == 0
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert summary.n_pruned >= 1  # lr 1e-5 falls under the median of a finished lr 0.05 trial
    # Every finished (not pruned) trial wrote its one record.
    assert len(ResultStore(out_dir / "results.jsonl").read()) == summary.n_complete


@pytest.mark.slow
def test_ddp_news_evaluation_equals_single_process(out_dir, tmp_path, tiny_encoder_dir):
    """MIND metrics per impression: each impression scored on one rank, sums reduced once."""
    news = [
        "experiment=news_synthetic", "model=graph_nrms", f"paths.root={out_dir}", "logger=csv", "print_table=false",
        f"text.encoder.model_name_or_path={tiny_encoder_dir}", "text.encoder.max_length=32",
        f"text.cache_dir={tmp_path / 'text'}", "data.cache_dir=none", "data.synthetic.num_users=81",
        "data.synthetic.days=4", "data.synthetic.new_per_day=30", "data.synthetic.history_news_per_day=10",
        "trainer.accelerator=cpu", "trainer.max_epochs=1",
    ]  # fmt: skip
    run_experiment(compose(news))
    ckpt = ResultStore(out_dir / "results.jsonl").read()[-1]["paths"]["checkpoint"]
    evaluate = [*news, "fit=false", f"ckpt_path={ckpt}"]
    single = run_experiment(compose(evaluate))
    ddp = run_experiment(compose([*evaluate, "trainer.devices=2", "trainer.strategy=ddp"]))
    keys = [k for k in single if k.startswith(("val/", "test/"))]
    assert {"val/auc", "test/auc", "test/mrr", "test/ndcg@5", "test/ndcg@10"} <= set(keys)
    for key in keys:
        assert ddp[key] == pytest.approx(single[key], abs=1e-6), key
