"""Two sweep commands sharing one study on a real PostgreSQL server (as on two machines).

The test starts its own server: ``initdb`` into a fresh directory, ``pg_ctl start`` on a free loopback
port (``-h 127.0.0.1``, socket in that directory, fsync off), ``createdb``; stopped and removed at
the end. ``initdb`` refuses to run as root: as root the server runs as the ``postgres`` user (the
Debian package creates it; else ``nobody``) through ``runuser``. Skipped, saying why, when the
server binaries (``apt-get install postgresql``) or a driver (``psycopg2-binary`` or
``psycopg[binary]``) are missing.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_sweeps import GRAPHREC_LAB, base, check_no_lost_or_duplicate_trials, trials_of, write_sweep


def _pg_bin() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").is_file():
            return Path(candidate)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _driver() -> str | None:
    if importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2"
    if importlib.util.find_spec("psycopg") is not None:
        return "postgresql+psycopg"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def postgres_url() -> Iterator[str]:
    bin_dir, driver = _pg_bin(), _driver()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    if driver is None:
        pytest.skip("no PostgreSQL driver for SQLAlchemy (pip install psycopg2-binary)")
    as_user: list[str] = []
    # Not tmp_path: the server's user must be able to reach the directory (pytest's are 0700 root).
    root = Path(tempfile.mkdtemp(prefix="graphrec-pg-"))
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root and runuser is missing: initdb cannot run as root")
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            user = pwd.getpwnam("nobody")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", user.pw_name, "--"]
    data, port = root / "data", _free_port()

    def run(cmd: list[str]) -> None:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}\n{_log(root)}"

    try:
        run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60",
             "-o", f"-p {port} -k {root} -h 127.0.0.1 -c fsync=off", "start"])
        run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "optuna"])
        yield f"{driver}://postgres@127.0.0.1:{port}/optuna"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                           capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


def _log(root: Path) -> str:
    try:
        return (root / "server.log").read_text()[-2000:]
    except OSError:
        return ""


@pytest.mark.slow
def test_two_sweep_commands_share_a_postgres_study(postgres_url, tmp_path, out_dir):
    sweep = write_sweep(tmp_path / "pg.yaml", n_trials=6, pruner={"name": "none"},
                        params={"task.lr": {"type": "float", "low": 1e-3, "high": 5e-2, "log": True},
                                "seed": {"type": "int", "low": 0, "high": 1000}})
    cmd = [GRAPHREC_LAB, "sweep", str(sweep), "--storage", postgres_url, "--study-name", "pg", *base(out_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # Started at the same moment, like one command on two machines: both race to create the study.
    procs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=900) for p in procs]
    for p, (stdout, stderr) in zip(procs, outputs):
        assert p.returncode == 0, stderr[-3000:]
        assert "study pg (postgresql" in stdout
    trials = check_no_lost_or_duplicate_trials(postgres_url, "pg", 6, out_dir / "results.jsonl")
    assert len({t.user_attrs["worker"]["pid"] for t in trials}) == 2  # both commands ran trials
    assert [t.number for t in trials_of(postgres_url, "pg")] == list(range(len(trials)))
