"""The CPU thread policy (``threads`` in the run config, graphrec_lab/training/threads.py)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import torch

from graphrec_lab.config import ConfigError, compose
from graphrec_lab.experiment import build
from graphrec_lab.sweeps import study
from graphrec_lab.training import threads
from tests.conftest import tiny_overrides


@pytest.fixture()
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("cores", "workers", "default", "expected"),
    [(16, 1, 16, 16), (16, 2, 16, 8), (16, 3, 16, 5), (2, 2, 2, 1), (2, 3, 2, 1), (8, 1, 4, 4), (8, 2, 1, 1)],
)
def test_auto_divides_the_cores_among_workers_capped_at_the_default(cores, workers, default, expected):
    assert threads.resolve_threads("auto", cores=cores, workers=workers, default=default) == expected


def test_an_integer_is_taken_as_is_and_bad_settings_name_the_key():
    assert threads.resolve_threads(3, cores=2, workers=2, default=2) == 3
    for bad in (0, -1, "fast", True, 1.5):
        with pytest.raises(ConfigError, match="threads="):
            threads.resolve_threads(bad)


def test_workers_come_from_the_environment(monkeypatch):
    monkeypatch.delenv(threads.WORKERS_ENV, raising=False)
    assert threads.concurrent_workers() == 1
    with threads.concurrent_workers_env(4):
        assert threads.concurrent_workers() == 4
    assert threads.WORKERS_ENV not in os.environ
    monkeypatch.setenv(threads.WORKERS_ENV, "two")
    with pytest.raises(ConfigError, match=threads.WORKERS_ENV):
        threads.concurrent_workers()


def test_ddp_ranks_count_as_processes(monkeypatch, restore_threads):
    assert [threads.local_ranks(d) for d in (1, 4, [0, 1], "auto", None, True)] == [1, 4, 2, 1, 1, 1]
    monkeypatch.setenv(threads.WORKERS_ENV, "2")
    monkeypatch.setattr(threads, "available_cores", lambda: 16)
    monkeypatch.setattr(threads, "_DEFAULT_THREADS", 16)
    assert threads.apply_thread_policy("auto", ranks=4) == torch.get_num_threads() == 2  # 16 cores / (2 x 4)


def test_the_choice_is_logged_once_and_at_info_only_when_it_departs_from_the_default(
    monkeypatch, caplog, restore_threads
):
    monkeypatch.delenv(threads.WORKERS_ENV, raising=False)
    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    monkeypatch.setattr(threads, "_DEFAULT_THREADS", 4)
    monkeypatch.setattr(threads, "_logged", None)
    caplog.set_level(logging.DEBUG, logger=threads.__name__)
    torch.set_num_threads(4)
    threads.apply_thread_policy("auto")  # the default: DEBUG
    threads.apply_thread_policy("auto")  # the same choice: not logged again
    monkeypatch.setenv(threads.WORKERS_ENV, "2")
    threads.apply_thread_policy("auto")  # 8 cores / 2 workers = 4: still the default
    threads.apply_thread_policy(1)
    assert [(r.levelno, "intra-op" in r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, True), (logging.DEBUG, True), (logging.INFO, True)
    ]  # fmt: skip


def test_build_applies_the_setting_and_the_config_rejects_a_bad_one(out_dir, restore_threads):
    torch.set_num_threads(2)
    build(compose(tiny_overrides(out_dir, "threads=1")))
    assert torch.get_num_threads() == 1
    with pytest.raises(ConfigError, match="threads"):
        build(compose(tiny_overrides(out_dir, "threads=fast")))


def _report_threads(out_dir: str, worker: int) -> None:
    """Stands in for a sweep worker's body: the thread policy a spawned worker applies."""
    n = threads.apply_thread_policy("auto")
    info = {"workers": threads.concurrent_workers(), "cores": threads.available_cores(),
            "default": threads._DEFAULT_THREADS, "resolved": n, "torch": torch.get_num_threads()}  # fmt: skip
    Path(out_dir, f"worker{worker}.json").write_text(json.dumps(info))


def test_sweep_workers_get_their_share_of_the_cores(tmp_path, monkeypatch):
    # No OMP_NUM_THREADS in the workers: torch's default there is the machine's cores.
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv(threads.WORKERS_ENV, raising=False)
    monkeypatch.setattr(study, "open_study", lambda run: None)
    monkeypatch.setattr(study, "_worker_main", _report_threads)
    study.run_workers(str(tmp_path), 2)
    infos = [json.loads((tmp_path / f"worker{i}.json").read_text()) for i in range(2)]
    for info in infos:
        assert info["workers"] == 2
        assert info["resolved"] == info["torch"] == max(1, min(info["cores"] // 2, info["default"]))
    assert threads.WORKERS_ENV not in os.environ  # the parent's environment is restored


def test_threads_for_load_leaves_the_busy_cores_to_the_other_processes():
    # share 2 on 2 cores: quiet -> 2; a competitor holding a whole core, or two sharing both -> 1
    assert [threads.threads_for_load(2, 2, busy) for busy in (0.0, 0.2, 0.3, 0.67, 1.0, 1.33, 2.0)] == [2, 2, 1, 1, 1, 1, 1]
    assert threads.threads_for_load(8, 16, 3.0) == 8  # never above the share
    assert threads.threads_for_load(16, 16, 3.0) == 13


def test_cores_busy_elsewhere_subtracts_this_process():
    # 10 s of wall time: the machine was busy 15 CPU-s, 6 of them ours -> 0.9 cores elsewhere
    assert threads.cores_busy_elsewhere((100.0, 50.0, 0.0), (115.0, 56.0, 10.0)) == pytest.approx(0.9)
    assert threads.cores_busy_elsewhere((100.0, 50.0, 5.0), (101.0, 52.0, 5.0)) == 0.0  # no time passed


def test_the_governor_follows_the_load_and_restores_the_share():
    now = [0.0]
    machine = {"busy": 0.0, "own": 0.0}

    def sample():
        return machine["busy"], machine["own"], now[0]

    def run(seconds: float, ours: float, others: float) -> None:
        now[0] += seconds
        machine["own"] += ours * seconds
        machine["busy"] += (ours + others) * seconds

    set_to: list[int] = []
    gov = threads.ThreadGovernor(2, cores=2, period_s=5.0, sample=sample, set_threads=set_to.append)
    run(1.0, ours=2.0, others=0.0)
    assert gov.maybe_update() == 2 and set_to == []  # the period has not passed: no measurement
    run(5.0, ours=1.4, others=0.6)  # a competitor took 0.6 cores
    assert gov.maybe_update() == 1 and set_to == [1]
    run(5.0, ours=1.0, others=1.0)
    assert gov.update() == 1 and set_to == [1]
    run(5.0, ours=1.0, others=0.05)  # it has gone
    assert gov.update() == 2 and set_to == [1, 2]
    assert (gov.changes, gov.min_threads) == (2, 1)


def test_a_run_with_auto_threads_carries_the_governor(out_dir, restore_threads, monkeypatch):
    from graphrec_lab.training.callbacks import AdaptiveThreads

    monkeypatch.delenv(threads.WORKERS_ENV, raising=False)
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads, "_DEFAULT_THREADS", 2)
    exp = build(compose(tiny_overrides(out_dir)))
    governors = [c.governor for c in exp.callbacks if isinstance(c, AdaptiveThreads)]
    assert len(governors) == 1 and governors[0].share == 2
    exp = build(compose(tiny_overrides(out_dir, "threads=2")))
    assert not any(isinstance(c, AdaptiveThreads) for c in exp.callbacks)  # an integer is fixed
