"""Faults during load, one at a time, each followed by the same books check: no order lost,
none duplicated, no product sold twice, and the replicator resumes."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from hybridshop.db.embedded import free_port

from .conftest import (
    AUDIENCE,
    Load,
    System,
    books_balance,
    children_of,
    cli,
    metadata_base,
    token,
)


def _kill_during_load(system: System, seed: int, pid: int, *, seconds: float = 8) -> Load:
    load = Load(system.up, seed=seed, seconds=seconds).start()
    time.sleep(seconds / 3)
    os.kill(pid, signal.SIGKILL)
    time.sleep(seconds / 3)
    return load.stop()


def test_kill9_of_the_replicator_during_load(system: System) -> None:
    first = system.up.replicator_pid()
    mark = len(system.up.lines)
    load = _kill_during_load(system, 11, first)
    system.up.wait_for(r"replicator: died killed by SIGKILL", after=mark)
    system.up.wait_for(r"replicator: restarted pid", after=mark)
    assert system.up.replicator_pid() != first
    assert not [s for s in load.statuses if s >= 500], load.statuses  # the API never noticed
    books_balance(system.home, system.dsn)


def test_kill9_of_one_execution_environment_during_load(system: System) -> None:
    workers = [
        pid
        for pid in children_of(system.up.proc.pid)
        if b"hybridshop.gateway.worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert workers, "no execution environment is running"
    load = _kill_during_load(system, 12, workers[0])
    # the one invocation it was running may fail (502, as Lambda's Runtime.ExitError);
    # the gateway starts a new environment and the rest is served
    assert load.statuses[200] + load.statuses[201] > 0, load.statuses
    assert sum(n for s, n in load.statuses.items() if s >= 500) <= 2, load.statuses
    assert load.statuses[500] == 0, load.statuses
    books_balance(system.home, system.dsn)


def test_postgres_restart_during_load_gives_clean_503s_then_recovers(system: System) -> None:
    postmaster = int((system.home / "postgres" / "data" / "postmaster.pid").read_text().split()[0])
    mark = len(system.up.lines)
    load = _kill_during_load(system, 13, postmaster, seconds=12)
    system.up.wait_for(rf"PostgreSQL: died process {postmaster} is gone", after=mark)
    system.up.wait_for(r"PostgreSQL: restarted pid", after=mark)
    assert load.statuses[500] == 0, (load.statuses, system.up.output)
    assert set(load.statuses) <= {200, 201, 404, 409, 503}, load.statuses
    assert load.slowest_s < 12, f"a request hung for {load.slowest_s:.1f}s"
    assert "TimeoutError" not in load.errors, load.errors
    deadline = time.monotonic() + 30  # recovers by itself: bounded probing, no restart
    while True:
        after = Load(system.up, seed=14, seconds=2, workers=1, max_ops=20).start().stop()
        # any answer the database gave counts (by now most products are sold: 409 "already
        # sold" needs the database as much as a 200 does); 503 means still down
        if sum(after.statuses[s] for s in (200, 201, 404, 409)) > 0:
            break
        assert time.monotonic() < deadline, ("the API did not recover", after.statuses)
    assert after.statuses[500] == 0, after.statuses
    books_balance(system.home, system.dsn)


def test_overload_is_shed_with_429_and_retry_after_while_a_probe_stays_responsive(
    system: System,
) -> None:
    bearer = token(system.up)
    port = system.up.ports["api"]

    def buy(n: int) -> tuple[int, str | None]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        try:
            conn.request(
                "POST",
                f"/products/{1 + n % 300}/purchase",
                body="{}",
                headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
            )
            response = conn.getresponse()
            response.read()
            return response.status, response.getheader("Retry-After")
        finally:
            conn.close()

    # --concurrency 4 per function: 64 purchases at once is many times what it sustains
    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        futures = [pool.submit(buy, n) for n in range(256)]
        time.sleep(0.3)
        started = time.monotonic()
        probe = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        probe.request("GET", "/_local/health")
        assert probe.getresponse().status == 200
        probe_s = time.monotonic() - started
        results = [f.result(timeout=60) for f in futures]
    shed = [(s, r) for s, r in results if s in (429, 503)]
    assert shed, "nothing was shed"
    assert all(r is not None for _s, r in shed), ("shed without Retry-After", shed)
    assert probe_s < 1.0
    assert 500 not in {s for s, _r in results}
    books_balance(system.home, system.dsn)


def _read_only(path: Path, on: bool) -> None:
    """Make the warehouse file read-only: the immutable attribute when root (who ignores file
    modes), its mode bits otherwise."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True)
    else:
        path.chmod(0o444 if on else 0o644)


def test_a_read_only_warehouse_stops_the_replicator_clearly_and_it_catches_up_once_fixed(
    system: System,
) -> None:
    warehouse = system.home / "warehouse.duckdb"
    deadline = time.monotonic() + 60
    while not (system.home / "warehouse.read.duckdb").exists():  # the first copy is out
        assert time.monotonic() < deadline, system.up.output
        time.sleep(0.2)
    mark = len(system.up.lines)
    load = Load(system.up, seed=15, seconds=6).start()
    time.sleep(1)
    _read_only(warehouse, True)
    try:
        os.kill(system.up.replicator_pid(), signal.SIGKILL)  # it must open the file again
        system.up.wait_for(r"replicator: died killed by SIGKILL", after=mark)
        system.up.wait_for(r"replicator: died exited with code 2", after=mark, timeout=30)
        # its output follows the report line: wait for it rather than read a snapshot
        system.up.wait_text(
            r"error:\s+cannot\s+write\s+the\s+warehouse\s.*warehouse\.duckdb.*"
            r"(not\s+permitted|ermission)",
            after=mark,
        )
        load.stop()
        broken = len(system.up.lines)
        assert "Traceback" not in "\n".join(system.up.lines[mark:broken])
        status = cli(system.home, "replicate", "status", "--json", dsn=system.dsn)
        assert status.returncode in (0, 1), status.stdout + status.stderr
        source = json.loads(status.stdout)["source"]
        assert source["replicator"]["running"] is False, source
        assert source["wal_retained_bytes"] > 0, source  # the slot keeps what it has not sent
        text = cli(system.home, "replicate", "status", dsn=system.dsn).stdout
        assert "NOT RUNNING" in text, text
    finally:
        _read_only(warehouse, False)
    deadline = time.monotonic() + 40
    while not re.search(r"replicator: restarted pid", "\n".join(system.up.lines[broken:])):
        if "gave up on replicator" in system.up.output:  # not restarted any more: restart `up`
            system.up.interrupt()
            system.restart()
            break
        assert time.monotonic() < deadline, "\n".join(system.up.lines[broken:])
        time.sleep(0.2)
    books_balance(system.home, system.dsn)


class Shop:
    """The shop as its own deployable (`hybridshop web`, as on Cloud Run) against the API."""

    def __init__(self, system: System) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "hybridshop.cli.main", "web", "--port", str(self.port)]
        args += ["--api-url", system.up.api, "--audience", AUDIENCE]
        args += ["--metadata-url", metadata_base(system.up)]
        env = {**os.environ, "HYBRIDSHOP_HOME": str(system.home)}
        self.proc = subprocess.Popen(
            args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def get(self, path: str = "/") -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=15) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_status(self, status: int, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                got, page = self.get()
            except (urllib.error.URLError, OSError):
                got, page = 0, ""
            if got == status:
                return page
            assert time.monotonic() < deadline, (status, got, page[:500])
            time.sleep(0.2)


@pytest.mark.xfail(
    strict=False,
    reason="seen once in CI (full suite, loaded machine): after kill -9 of `up` and its restart "
    "the warehouse stayed > 30 s behind the source and `replicate verify` gave up waiting; "
    "passes alone (3 runs) — undiagnosed, see issue 14's note",
)
def test_kill9_of_the_api_and_of_the_shop_during_load(system: System) -> None:
    """The API (the gateway, in `up`'s process: kill -9 of `up`) and the shop (its own
    process), each killed during load and restarted with the CLI; while the API is down the
    shop shows its friendly page, and recovers by itself once the API is back."""
    shop = Shop(system)
    try:
        assert "Traceback" not in shop.wait_status(200)
        load = Load(system.up, seed=16, seconds=6).start()
        time.sleep(2)
        system.up.proc.kill()
        system.up.proc.wait(timeout=10)
        load.stop()
        page = shop.wait_status(503, timeout=30)
        assert "Traceback" not in page and "<html" in page.lower(), page[:500]
        system.restart()
        shop.wait_status(200, timeout=60)  # by itself: the shop was not touched

        load = Load(system.up, seed=17, seconds=6).start()
        time.sleep(2)
        shop.proc.kill()
        shop.proc.wait(timeout=10)
        shop = Shop(system)  # restarted with the CLI
        shop.wait_status(200)
        load.stop()
    finally:
        shop.proc.kill()
        shop.proc.wait(timeout=10)
    books_balance(system.home, system.dsn)
