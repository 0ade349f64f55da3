"""Faults during load, one at a time, each followed by the same books check: no order lost,
none duplicated, no product sold twice, and the replicator resumes."""

from __future__ import annotations

import concurrent.futures
import http.client
import os
import signal
import time
from pathlib import Path

import pytest

from conftest import Load, System, books_balance, children_of, token


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
        if after.statuses[200] + after.statuses[201] > 0:
            break
        assert time.monotonic() < deadline, ("the API did not recover", after.statuses)
    assert after.statuses[500] == 0, after.statuses
    books_balance(system.home, system.dsn)


@pytest.mark.xfail(
    strict=True,
    reason="defect: the local gateway never sheds load: with every environment busy a request "
    "queues (up to the 30 s integration timeout) instead of API Gateway's 429 + Retry-After",
)
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
    assert all(r is not None for _s, r in shed), "shed without Retry-After"
    assert probe_s < 1.0
    assert 500 not in {s for s, _r in results}
    books_balance(system.home, system.dsn)
