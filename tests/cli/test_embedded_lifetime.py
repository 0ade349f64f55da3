"""A command that runs and ends leaves no PostgreSQL behind: the embedded server it had to
start for itself is stopped when it exits; one already running is left as found, and
``db url`` (which exists to hand out a running server) keeps it until ``db stop``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hybridshop.db.embedded import free_port

from .quickstart import alive, postmaster_pid


@pytest.fixture
def home() -> Iterator[Path]:
    """Outside pytest's 0700 temp folder: PostgreSQL's service user must enter it as root."""
    path = Path(tempfile.mkdtemp(prefix="hybridshop-test-lifetime-"))
    yield path / "state"
    pid = postmaster_pid(path / "state")
    if pid is not None and alive(pid):
        hybridshop(path / "state", 0, "db", "stop")
    shutil.rmtree(path, ignore_errors=True)


def hybridshop(home: Path, pg_port: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HYBRIDSHOP_HOME": str(home)}
    env.pop("DATABASE_URL", None)
    if pg_port:
        env["HYBRIDSHOP_PG_PORT"] = str(pg_port)
    return subprocess.run(
        [sys.executable, "-m", "hybridshop.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _running(home: Path) -> bool:
    pid = postmaster_pid(home)
    return pid is not None and alive(pid)


def test_one_shot_commands_stop_the_server_they_started_and_leave_a_running_one(
    home: Path,
) -> None:
    port = free_port()
    for command in (["replicate", "status"], ["db", "status"], ["db", "migrate"]):
        done = hybridshop(home, port, *command)
        assert done.returncode in (0, 1), done.stdout + done.stderr
        assert not _running(home), f"`hybridshop {' '.join(command)}` left PostgreSQL running"
    url = hybridshop(home, port, "db", "url")
    assert url.returncode == 0 and url.stdout.startswith("postgresql://"), url.stderr
    assert _running(home)  # handed out: it stays
    status = hybridshop(home, port, "db", "status")
    assert status.returncode == 0 and "products" in status.stdout, status.stderr
    assert _running(home), "a server that was already running was stopped"
    stopped = hybridshop(home, port, "db", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert not _running(home)
