"""`graphrec-lab sweep`: search spaces, pruning, resume, failures, workers, best-config export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from optuna.trial import TrialState

from graphrec_lab.config import ConfigError, compose, config_dir, validate_config
from graphrec_lab.sweeps import load_sweep_config, prepare, run_sweep
from graphrec_lab.sweeps.export import experiment_config, write_experiment_config
from graphrec_lab.sweeps.space import SearchSpace, format_value, parse_space
from graphrec_lab.sweeps.study import budget_used, fail_dead_local_trials, merge_overrides, open_study
from graphrec_lab.tracking.results import ResultStore
from tests.conftest import tiny_overrides

GRAPHREC_LAB = str(Path(sys.executable).parent / "graphrec-lab")
LABELS = ("group", "tags", "name")  # set per trial by the sweep, not part of what a rerun computes


def write_sweep(path: Path, **fields) -> Path:
    body = {
        "n_trials": 4,
        "seed": 0,
        "sampler": {"name": "tpe", "n_startup_trials": 2},
        "pruner": {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
        "heartbeat_interval": 5,
        "params": {"task.lr": {"type": "float", "low": 1e-5, "high": 5e-2, "log": True}},
        **fields,
    }
    path.write_text(yaml.safe_dump(body))
    return path


def base(out: Path, *extra: str) -> list[str]:
    return tiny_overrides(out, "model=bprmf", "print_table=false", *extra)


def trials_of(storage: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


# --------------------------------------------------------------------------------- search spaces
def test_space_validation_names_the_key():
    with pytest.raises(ConfigError, match=r"f\.yaml: params\.task\.lr\.type: 'floaty'"):
        parse_space({"task.lr": {"type": "floaty", "low": 0, "high": 1}}, "f.yaml")
    with pytest.raises(ConfigError, match=r"params\.task\.lr: log=true needs low > 0"):
        parse_space({"task.lr": {"type": "float", "low": 0, "high": 1, "log": True}}, "f.yaml")
    with pytest.raises(ConfigError, match=r"params\.x\.high: required"):
        parse_space({"x": {"type": "int", "low": 1}}, "f.yaml")
    with pytest.raises(ConfigError, match=r"params\.model\.num_layers\.when: 'model' is not a parameter defined above"):
        parse_space({"model.num_layers": {"type": "int", "low": 1, "high": 3, "when": {"model": "ngcf"}}}, "f.yaml")
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['lo'\]"):
        parse_space({"x": {"type": "float", "lo": 1, "high": 2}}, "f.yaml")
    with pytest.raises(ConfigError, match="'params' is empty"):
        parse_space({}, "f.yaml")


def test_conditional_parameters_only_when_their_condition_holds():
    space = parse_space(
        {
            "model": ["lightgcn", "ngcf", "bprmf"],
            "task.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            "model.num_layers": {"type": "int", "low": 1, "high": 4, "when": {"model": ["lightgcn", "ngcf"]}},
            "model.message_dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1, "when": {"model": "ngcf"}},
        },
        "f.yaml",
    )
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=5))
    seen = []
    study.optimize(lambda t: (seen.append(space.suggest(t)), 0.0)[1], n_trials=30)
    for params in seen:
        assert ("model.num_layers" in params) == (params["model"] in ("lightgcn", "ngcf"))
        assert ("model.message_dropout" in params) == (params["model"] == "ngcf")
        assert 1e-4 <= params["task.lr"] <= 1e-1
    assert {p["model"] for p in seen} == {"lightgcn", "ngcf", "bprmf"}


@pytest.mark.parametrize("value", [0.01, 1e-05, 3, True, False, None, "ngcf", "a b", "1.0", "it's"])
def test_override_values_parse_back_to_the_same_value(value):
    parsed = OverridesParser.create().parse_override(f"key={format_value(value)}").value()
    assert parsed == value and type(parsed) is type(value)


def test_merge_overrides_last_wins_one_per_key():
    assert merge_overrides(["model=bprmf", "logger=csv", "task.lr=0.1"], ["task.lr=0.2", "+x=1", "logger=default"]) == [
        "model=bprmf", "task.lr=0.2", "+x=1", "logger=default"
    ]


def test_shipped_sweep_configs_load_and_every_param_is_a_real_config_key():
    files = sorted((config_dir() / "sweep").glob("*.yaml"))
    assert files
    for path in files:
        sweep = load_sweep_config(path.stem)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
        for _ in range(4):  # a few samples reach the conditional parameters too
            trial = study.ask()
            overrides = merge_overrides(sweep.overrides, SearchSpace.to_overrides(sweep.space.suggest(trial)))
            validate_config(compose(overrides))
            study.tell(trial, 0.0)
        sweep.make_sampler(0), sweep.make_pruner()


def test_sweep_config_errors_name_file_and_key(tmp_path):
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown key\(s\) \['n_trails'\]"):
        load_sweep_config(str(write_sweep(tmp_path / "bad.yaml", n_trails=3)))
    with pytest.raises(ConfigError, match=r"bad2\.yaml: pruner\.n_start: not an argument of MedianPruner"):
        load_sweep_config(str(write_sweep(tmp_path / "bad2.yaml", pruner={"name": "median", "n_start": 1})))
    with pytest.raises(ConfigError, match=r"sampler\.name='tpee'"):
        load_sweep_config(str(write_sweep(tmp_path / "bad3.yaml", sampler="tpee")))
    with pytest.raises(ConfigError, match=r"not found .* available: \["):
        load_sweep_config("no_such_sweep")


# -------------------------------------------------------------------------------- export, budget
def test_exported_experiment_config_composes_to_the_same_config(tmp_path):
    overrides = ["experiment=ml100k_recbole", "model=ngcf", "task.lr=1e-05", "trainer.max_epochs=3",
                 "seed=3", "+model.foo=[1,2]", "hydra.run.dir=x"]
    content = experiment_config(overrides, {"model", "data", "experiment", "logger"})
    assert content["defaults"] == ["/experiment/ml100k_recbole", {"override /model": "ngcf"}, "_self_"]
    assert content["task"] == {"lr": 1e-05} and content["model"] == {"foo": [1, 2]}
    overrides = ["experiment=ml100k_recbole", "model=ngcf", "logger=csv", "task.lr=1e-05", "seed=3",
                 "data.train_batch_size=100", f"paths.root={tmp_path}"]
    write_experiment_config(overrides, tmp_path / "cfg", "best", header="a test")
    rerun = compose([f"hydra.searchpath=[file://{tmp_path / 'cfg'}]", "experiment=best"])
    assert OmegaConf.to_container(rerun, resolve=True) == OmegaConf.to_container(compose(overrides), resolve=True)
    with pytest.raises(ConfigError, match="deletes a key"):
        experiment_config(["~callbacks.early_stopping"], set())


def test_budget_counts_finished_and_live_trials_but_not_interrupted_ones(tmp_path, out_dir):
    run = prepare(load_sweep_config(str(write_sweep(tmp_path / "b.yaml"))), overrides=base(out_dir))
    study = open_study(run)
    for value in (0.1, 0.2):
        study.tell(study.ask(), value)
    t = study.ask()
    t.set_user_attr("error", "ValueError: boom")
    study.tell(t, state=TrialState.FAIL)
    dead = subprocess.Popen(["true"])
    dead.wait()
    t = study.ask()  # a RUNNING trial whose process on this machine is gone
    t.set_user_attr("worker", {"host": os.uname().nodename, "pid": dead.pid, "start": None})
    live = study.ask()  # RUNNING in this (live) process
    live.set_user_attr("worker", {"host": os.uname().nodename, "pid": os.getpid(), "start": None})
    assert budget_used(study) == 5
    assert fail_dead_local_trials(study) == 1
    dead_trial = study.get_trials()[t.number]
    assert dead_trial.state == TrialState.FAIL and "interrupted" in dead_trial.user_attrs
    assert budget_used(study) == 4  # interrupted: not counted, its slot is run again
    assert study.get_trials()[live.number].state == TrialState.RUNNING


def test_a_study_name_is_not_reused_by_a_different_command(tmp_path, out_dir):
    sweep = load_sweep_config(str(write_sweep(tmp_path / "s.yaml")))
    open_study(prepare(sweep, study_name="same", overrides=base(out_dir)))
    with pytest.raises(ConfigError, match="was created by another command"):
        open_study(prepare(sweep, study_name="same", overrides=base(out_dir, "task.l2_reg=0.1")))
    with pytest.raises(ConfigError, match="study name"):
        prepare(sweep, study_name="a/b", overrides=base(out_dir))


# ------------------------------------------------------------------------------------ end to end
def _wandb_summary(run_file: Path) -> dict:
    wandb_cli = Path(sys.executable).parent / "wandb"
    out = subprocess.run([str(wandb_cli), "leet", "inspect", "--summary", "--json", str(run_file)],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        pytest.skip(f"`wandb leet inspect` unavailable: {out.stderr[-300:]}")
    summary = json.loads(out.stdout)
    records = subprocess.run([str(wandb_cli), "leet", "inspect", "--json", str(run_file)],
                             capture_output=True, text=True, timeout=120).stdout
    summary["group"] = next(json.loads(l)["run"]["run_group"] for l in records.splitlines() if '"type":"run"' in l)
    return summary


@pytest.mark.slow
def test_sweep_prunes_logs_to_wandb_resumes_and_its_best_config_reruns(tmp_path, out_dir, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    # lr 0.05 trains, 1e-5 does not: once a good trial is in, bad ones fall under the median.
    sweep = write_sweep(
        tmp_path / "prune.yaml", n_trials=6, sampler={"name": "bruteforce"},
        params={"task.lr": [0.05, 0.00001], "seed": [0, 1, 2]},
    )
    overrides = base(out_dir, "logger=default")
    summary = run_sweep(str(sweep), overrides=overrides)

    trials = trials_of(f"sqlite:///{out_dir / 'sweeps/prune/study.db'}", "prune")
    states = [t.state for t in trials]
    assert len(trials) == 6 and set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned and all(t.params["task.lr"] == 0.00001 for t in pruned)
    assert all(t.user_attrs["pruned_epoch"] < t.user_attrs["max_epochs"] == 4 for t in pruned)
    assert (summary.n_complete, summary.n_pruned, summary.n_failed) == (6 - len(pruned), len(pruned), 0)
    assert summary.saved_s_estimate > 0
    assert summary.best_params["task.lr"] == 0.05
    text = summary.format()
    assert f"{len(pruned)} pruned" in text and "an estimate" in text
    for png in ("optimization_history.png", "param_importances.png"):
        assert (out_dir / "sweeps/prune" / png).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out_dir / "sweeps/prune/summary.json").read_text())["n_pruned"] == len(pruned)

    # One W&B run per trial, grouped by the study, named and tagged by the trial's parameters.
    run_files = sorted(out_dir.glob("runs/*/*/wandb/offline-run-*/run-*.wandb"))
    assert len(run_files) == 6
    runs = [_wandb_summary(f) for f in run_files]
    assert {r["group"] for r in runs} == {"prune"}
    assert sorted(r["name"].split("-", 2)[1] for r in runs) == sorted(f"t{i}" for i in range(6))
    assert sum("pruned" in r["tags"] for r in runs) == len(pruned)
    assert all(any(tag.startswith("task.lr=") for tag in r["tags"]) for r in runs)
    assert {r["state"] for r in runs} == {"finished"}

    # The same command again: nothing new runs, nothing is lost.
    records_before = len(ResultStore(out_dir / "results.jsonl").read())
    again = run_sweep(str(sweep), overrides=overrides)
    assert [t.number for t in trials_of(f"sqlite:///{out_dir / 'sweeps/prune/study.db'}", "prune")] == list(range(6))
    assert (again.n_complete, again.n_pruned) == (summary.n_complete, summary.n_pruned)
    assert len(ResultStore(out_dir / "results.jsonl").read()) == records_before

    # The exported experiment config reruns the best trial as is: same config, same metric.
    best = next(t for t in trials if t.number == summary.best_number)
    best_record = next(r for r in ResultStore(out_dir / "results.jsonl").read()
                       if r["overrides"] == best.user_attrs["overrides"])
    cmd = [GRAPHREC_LAB, "run", "--config-dir", str(out_dir / "sweeps/prune/configs"), "experiment=prune_best",
           "logger=csv", f"hydra.run.dir={tmp_path / 'hydra'}"]
    assert summary.rerun and summary.rerun.startswith("graphrec-lab run --config-dir")
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    rerun = ResultStore(out_dir / "results.jsonl").read()[-1]
    assert rerun["overrides"] == ["experiment=prune_best", "logger=csv"]
    assert rerun["metrics"]["val/ndcg@20"] == best.value == best_record["metrics"]["val/ndcg@20"]
    strip = lambda c: {k: v for k, v in c.items() if k not in (*LABELS, "logger")}  # noqa: E731
    assert strip(rerun["config"]) == strip(best_record["config"])


@pytest.mark.slow
def test_failing_trial_is_fail_with_its_message_and_the_sweep_goes_on(tmp_path, out_dir):
    sweep = write_sweep(tmp_path / "fails.yaml", n_trials=2, sampler={"name": "bruteforce"},
                        params={"task.lr": [0.05, -1.0]})  # the config check rejects a negative learning rate
    summary = run_sweep(str(sweep), overrides=base(out_dir))
    trials = {t.params["task.lr"]: t for t in trials_of(summary.storage, "fails")}
    assert trials[-1.0].state == TrialState.FAIL
    assert "task.lr=-1.0: expected a finite number > 0" in trials[-1.0].user_attrs["error"]
    assert trials[0.05].state == TrialState.COMPLETE
    assert (summary.n_complete, summary.n_failed) == (1, 1)
    assert "task.lr=-1.0" in summary.format()
    assert len(ResultStore(out_dir / "results.jsonl").read()) == 1  # the failed run wrote no record
    again = run_sweep(str(sweep), overrides=base(out_dir))  # a failed trial counts: nothing reruns
    assert len(trials_of(summary.storage, "fails")) == 2 and again.n_failed == 1


def check_no_lost_or_duplicate_trials(storage: str, name: str, n_trials: int, results: Path) -> list:
    trials = trials_of(storage, name)
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(trials)))  # unique and gapless
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    counted = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
               or (t.state == TrialState.FAIL and "error" in t.user_attrs)]
    assert n_trials <= len(counted) <= n_trials + 1  # +1: two workers may pass the last check at once
    records = ResultStore(results).read()
    for t in trials:
        if t.state == TrialState.COMPLETE:  # exactly one result record per finished trial
            assert sum(r["overrides"] == t.user_attrs["overrides"] for r in records) == 1, t.number
    return trials


@pytest.mark.slow
def test_two_local_workers_share_one_sqlite_study(tmp_path, out_dir):
    sweep = write_sweep(tmp_path / "two.yaml", n_trials=6, pruner={"name": "none"},
                        params={"task.lr": {"type": "float", "low": 1e-3, "high": 5e-2, "log": True},
                                "seed": {"type": "int", "low": 0, "high": 1000}})
    summary = run_sweep(str(sweep), workers=2, overrides=base(out_dir))
    trials = check_no_lost_or_duplicate_trials(summary.storage, "two", 6, out_dir / "results.jsonl")
    assert len({t.user_attrs["worker"]["pid"] for t in trials}) == 2  # both workers ran trials
    assert len({(t.params["task.lr"], t.params["seed"]) for t in trials}) == len(trials)
    assert summary.n_complete == len(trials)


@pytest.mark.slow
def test_killed_sweep_resumes_without_losing_or_repeating_trials(tmp_path, out_dir):
    sweep = write_sweep(tmp_path / "kill.yaml", n_trials=5, pruner={"name": "none"})
    storage = f"sqlite:///{out_dir / 'sweeps/kill/study.db'}"
    cmd = [GRAPHREC_LAB, "sweep", str(sweep), *base(out_dir, "trainer.max_epochs=10")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    finished: dict[int, tuple] = {}
    try:
        # Kill it while a trial runs, once an earlier one has finished.
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            try:
                trials = trials_of(storage, "kill")
            except Exception:  # the study does not exist yet
                continue
            finished = {t.number: (t.state, t.params, t.value) for t in trials if t.state.is_finished()}
            if finished and any(t.state == TrialState.RUNNING for t in trials):
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert finished, f"no trial finished before the deadline: {proc.stderr.read()[-3000:] if proc.stderr else ''}"
    proc.stderr.close()

    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = check_no_lost_or_duplicate_trials(storage, "kill", 5, out_dir / "results.jsonl")
    after = {t.number: (t.state, t.params, t.value) for t in trials}
    for number, before in finished.items():  # every trial finished before the kill is kept as it was
        assert after[number] == before
    interrupted = [t for t in trials if t.state == TrialState.FAIL and "error" not in t.user_attrs]
    assert len(interrupted) == 1 and "died" in interrupted[0].user_attrs["interrupted"]
    assert len(trials) == 5 + 1  # the killed trial's slot was run again as a new trial
    assert "trials: " in done.stdout and "best: trial" in done.stdout


def test_trial_seeded_sampler_differs_across_workers_and_is_reproducible():
    """Two sweep commands started at once (both "worker 0", same sweep seed) must not draw the same
    parameters: randomness follows the trial number the shared storage hands out."""
    from graphrec_lab.sweeps.study import TrialSeededSampler

    make = lambda seed: optuna.samplers.TPESampler(seed=seed, constant_liar=True)  # noqa: E731  (as make_sampler)
    storage = optuna.storages.InMemoryStorage()

    def draw(study_name: str) -> list[float]:
        study = optuna.create_study(study_name=study_name, storage=storage, load_if_exists=True,
                                    sampler=TrialSeededSampler(make, 0))
        other = optuna.load_study(study_name=study_name, storage=storage, sampler=TrialSeededSampler(make, 0))
        values = []
        for s in (study, other, study, other):  # two workers interleaving on one study
            trial = s.ask()
            values.append(trial.suggest_float("lr", 1e-4, 1e-1, log=True))
            s.tell(trial, values[-1])
        return values

    first = draw("a")
    assert len(set(first)) == 4, first
    assert draw("b") == first  # same sweep seed, same trial numbers: the same parameters


def test_a_running_trial_its_worker_never_stamped_is_failed_after_the_grace(monkeypatch) -> None:
    """A worker killed between Optuna creating a trial and stamping its identity on it leaves a RUNNING
    trial no process check can match; it is failed once older than the grace, never before."""
    from graphrec_lab.sweeps import study as study_mod

    study = optuna.create_study()
    unstamped = study.ask()
    monkeypatch.setattr(study_mod, "UNSTAMPED_GRACE_S", 3600.0)
    assert study_mod.fail_dead_local_trials(study) == 0  # young: a live worker may be about to stamp it
    assert study.trials[unstamped.number].state == TrialState.RUNNING
    monkeypatch.setattr(study_mod, "UNSTAMPED_GRACE_S", 0.0)
    assert study_mod.fail_dead_local_trials(study) == 1
    frozen = study.trials[unstamped.number]
    assert frozen.state == TrialState.FAIL and "before recording itself" in frozen.user_attrs["interrupted"]


def test_the_sampler_stamps_the_worker_when_the_trial_is_created() -> None:
    from graphrec_lab.sweeps.study import TrialSeededSampler

    study = optuna.create_study(sampler=TrialSeededSampler(lambda seed: optuna.samplers.RandomSampler(seed=seed), 0))
    trial = study.ask()
    assert study.trials[trial.number].user_attrs["worker"]["pid"] == os.getpid()
