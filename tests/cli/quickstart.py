"""Run ``hybridshop up`` the way a person does and check what they would: both ports answer
(``GET /products`` on the API, the shop's page), Ctrl-C (SIGINT) stops everything, and no
process or PostgreSQL server is left behind.

Used by ``tests/cli/test_install_layouts.py`` and by ``.ci/quickstart-smoke``
(``python -m tests.cli.quickstart --help``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Ports:
    api: int = 3000
    web: int = 8080
    pg: int = 55432
    dashboards: int = 8090

    def args(self) -> list[str]:
        return [
            "--api-port", str(self.api), "--web-port", str(self.web), "--pg-port", str(self.pg),
            "--dashboard-port", str(self.dashboards),
        ]  # fmt: skip


@dataclass
class Running:
    """A ``hybridshop up`` process that answered on both ports."""

    proc: subprocess.Popen[bytes]
    ports: Ports
    state: Path  # the state folder (``.hybridshop`` of the folder `up` runs in)
    log: Path
    ready_s: float  # launch -> both ports answering
    pids: set[int] = field(default_factory=set)  # its descendants and the postmaster, seen alive

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _answer(url: str) -> tuple[int, bytes] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return None


def get_json(url: str) -> Any:
    answer = _answer(url)
    assert answer is not None and answer[0] == 200, (url, answer)
    return json.loads(answer[1])


def _children_of(pid: int) -> set[int]:
    """Every living descendant of ``pid`` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """True for a process that exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def postmaster_pid(state: Path) -> int | None:
    pid_file = state / "postgres" / "data" / "postmaster.pid"
    try:
        return int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def start_up(
    command: Sequence[str] | str,
    cwd: Path,
    ports: Ports | None = None,
    *,
    env: dict[str, str] | None = None,
    state: Path | None = None,
    user: int | None = None,
    group: int | None = None,
    timeout: float = 120,
) -> Running:
    """Launch ``command`` in ``cwd`` and wait until the API's ``GET /products`` and the shop's
    page both answer 200. A list is ``hybridshop up`` (the ports' options are added); a string
    is a shell command line run as typed (default ports). ``state``: ``HYBRIDSHOP_HOME``
    (default: ``.hybridshop`` in ``cwd``)."""
    env = dict(os.environ if env is None else env)
    for name in ("DATABASE_URL", "HYBRIDSHOP_HOME", "HYBRIDSHOP_API_PORT", "HYBRIDSHOP_WEB_PORT"):
        env.pop(name, None)
    if state is not None:
        env["HYBRIDSHOP_HOME"] = str(state)
    ports = ports or Ports()
    argv = ["bash", "-c", command] if isinstance(command, str) else [*command, *ports.args()]
    log = Path(tempfile.mkstemp(prefix="hybridshop-up-", suffix=".log")[1])
    with log.open("wb") as out:
        started = time.perf_counter()
        # Its own session, like a terminal's foreground job: Ctrl-C goes to the whole group.
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            user=user,
            group=group,
            extra_groups=[] if user is not None else None,
            start_new_session=True,
        )
    running = Running(proc, ports, state or cwd / ".hybridshop", log, ready_s=0.0)
    api, shop = f"http://{HOST}:{ports.api}/products", f"http://{HOST}:{ports.web}/"
    api_ok = web_ok = False
    deadline = started + timeout
    while not (api_ok and web_ok):
        if proc.poll() is not None:
            raise AssertionError(f"`up` exited with {proc.returncode}:\n{running.output()}")
        if time.perf_counter() > deadline:
            stop(running)
            raise AssertionError(f"`up` did not answer in {timeout:.0f} s:\n{running.output()}")
        api_ok = api_ok or (_answer(api) or (0, b""))[0] == 200
        web_ok = web_ok or (_answer(shop) or (0, b""))[0] == 200
        if not (api_ok and web_ok):
            time.sleep(0.02)
    running.ready_s = time.perf_counter() - started
    running.pids = _children_of(proc.pid)
    postmaster = postmaster_pid(running.state)
    if postmaster is not None:
        running.pids.add(postmaster)
    return running


def stop(running: Running, timeout: float = 60) -> str:
    """Ctrl-C as a terminal sends it (SIGINT to the foreground process group), wait for the
    exit; return the output."""
    running.pids |= _children_of(running.proc.pid)
    if running.proc.poll() is None:
        os.killpg(running.proc.pid, signal.SIGINT)
    try:
        running.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(running.proc.pid, signal.SIGKILL)
        running.proc.wait()
        raise AssertionError(
            f"`up` ignored SIGINT for {timeout:.0f} s:\n{running.output()}"
        ) from None
    return running.output()


def leftovers(running: Running, grace: float = 10) -> list[int]:
    """Processes of that run still alive ``grace`` seconds after it exited."""
    deadline = time.monotonic() + grace
    while True:
        left = sorted(pid for pid in running.pids if alive(pid))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def check_stopped_clean(running: Running) -> str:
    """Stop with SIGINT and assert: exit 0, nothing left running, the ports closed."""
    output = stop(running)
    assert running.proc.returncode == 0, f"`up` exited with {running.proc.returncode}:\n{output}"
    left = leftovers(running)
    assert not left, f"left running after Ctrl-C: {left}\n{output}"
    ports = running.ports
    for port in (ports.api, ports.web, ports.pg, ports.dashboards):
        assert _answer(f"http://{HOST}:{port}/") is None, f"port {port} still answers"
    assert postmaster_pid(running.state) is None, "postmaster.pid remains: PostgreSQL not stopped"
    return output


def reported_start_up(output: str) -> str:
    """The start-up time `up` reports itself (from its own launch)."""
    found = re.search(r"ready in ([0-9.]+) s", output)
    if found is None:  # stopped once the API and the shop answered, before the dashboards
        return "`up` had not printed its 'ready in' line yet (dashboards still starting)"
    return f"`up` reports ready {found.group(1)} s after its launch"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.cli.quickstart",
        description="Run a command that starts `hybridshop up` (default ports), wait for "
        "GET /products and the shop page, stop it with Ctrl-C (SIGINT to its process group), "
        "check that no process and no PostgreSQL server is left behind; print the times.",
    )
    parser.add_argument("command", help="shell command line, e.g. the README's quick start")
    parser.add_argument("--cwd", required=True, type=Path, help="folder to run it in")
    parser.add_argument("--state", type=Path, help="HYBRIDSHOP_HOME (default: CWD/.hybridshop)")
    parser.add_argument("--label", default="up", help="name of this run in the report")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for ports")
    parser.add_argument(
        "--ports",
        default="3000,8080,55432,8090",
        help="API, shop, PostgreSQL and dashboards ports the command uses (up's defaults)",
    )
    args = parser.parse_args(argv)
    ports = Ports(*(int(p) for p in args.ports.split(",")))
    running = start_up(args.command, args.cwd, ports, state=args.state, timeout=args.timeout)
    products = get_json(f"http://{HOST}:{running.ports.api}/products")
    assert products["items"], "the demo catalog is empty"
    output = check_stopped_clean(running)
    print(
        f"quickstart [{args.label}]: both ports answered {running.ready_s:.2f} s after the "
        f"command started; {reported_start_up(output)}; "
        "Ctrl-C left no process and no PostgreSQL server behind"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
