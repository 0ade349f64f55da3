"""What `hybridshop up` refuses, before it starts anything, with one line saying what to do:
a port that another program holds, two listeners on one port, a second `up` on the same
state folder (it would share the first one's PostgreSQL and fight over the warehouse)."""

from __future__ import annotations

import shutil
import socket
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hybridshop.db.embedded import EmbeddedPostgres, free_port
from upprocess import UpProcess

from .quickstart import alive, postmaster_pid


@pytest.fixture
def home() -> Iterator[Path]:
    """Outside pytest's 0700 temp folder: PostgreSQL's service user must enter it as root."""
    path = Path(tempfile.mkdtemp(prefix="hybridshop-test-refusals-"))
    yield path / "state"
    pid = postmaster_pid(path / "state")  # a failed test must not leave a server behind
    if pid is not None and alive(pid):
        EmbeddedPostgres(base_dir=path / "state" / "postgres").stop(mode="immediate")
    shutil.rmtree(path, ignore_errors=True)


def _refused(home: Path, *args: str) -> str:
    up = UpProcess(home, list(args))
    code = up.proc.wait(timeout=60)
    up.interrupt()
    assert code == 2, up.output
    assert "Traceback" not in up.output
    assert postmaster_pid(home) is None, "refused, yet PostgreSQL was started"
    return up.output


@pytest.mark.parametrize("option", ["--api-port", "--web-port", "--dashboard-port"])
def test_a_port_another_program_holds_is_refused_naming_the_option(home: Path, option: str) -> None:
    ports = {o: str(free_port()) for o in ("--api-port", "--web-port", "--dashboard-port")}
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        ports[option] = str(holder.getsockname()[1])
        output = _refused(home, *(x for pair in ports.items() for x in pair))
    assert f"error: port {ports[option]} on 127.0.0.1 is taken by another program" in output
    assert f"pass {option}" in output


def test_two_listeners_on_one_port_are_refused(home: Path) -> None:
    port = str(free_port())
    output = _refused(home, "--api-port", port, "--web-port", port)
    assert f"--web-port and --api-port are both {port}" in output


def test_a_second_up_on_the_same_state_folder_is_refused_and_the_first_keeps_serving(
    home: Path,
) -> None:
    pg = {"HYBRIDSHOP_PG_PORT": str(free_port())}
    first = UpProcess(
        home, ["--no-dashboards", "--no-web", "--api-port", str(api := free_port())], pg
    )
    try:
        first.wait_for("hybridshop is running")
        second = UpProcess(
            home, ["--no-dashboards", "--no-web", "--api-port", str(free_port())], pg
        )
        assert second.proc.wait(timeout=60) == 2, second.output
        second.interrupt()
        said = " ".join(second.lines)
        assert f"another `hybridshop up` (pid {first.proc.pid}) is running" in said, said
        assert "HYBRIDSHOP_HOME=" in said and "Traceback" not in said
        with urllib.request.urlopen(f"http://127.0.0.1:{api}/categories", timeout=10) as r:
            assert r.status == 200  # the first one was not disturbed
    finally:
        assert first.interrupt() == 0, first.output
    again = UpProcess(home, ["--no-dashboards", "--no-web", "--api-port", str(free_port())], pg)
    try:  # the lock went with the first process: the next `up` starts
        again.wait_for("hybridshop is running")
    finally:
        assert again.interrupt() == 0, again.output
