"""`hybridshop up` supervises what it starts (real processes, real kill -9): a component that
dies is reported with its last output and restarted; one that keeps failing is given up on —
the rest keeps serving, unless nothing can work without it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from conftest import create_database
from hybridshop.datastream.verify import VerifyOptions, verify
from hybridshop.db.embedded import EmbeddedPostgres, free_port
from hybridshop.db.replication import DEFAULT_SLOT
from upprocess import UpProcess


class Up(UpProcess):
    """`hybridshop up` (API and replicator, no shop or dashboards) on ``api_port``."""

    def __init__(self, home: Path, api_port: int, env: dict[str, str], *args: str) -> None:
        flags = ["--no-web", "--no-dashboards", "--api-port", str(api_port), *args]
        super().__init__(home, flags, env)
        self.api = f"http://127.0.0.1:{api_port}"


def _products(api: str) -> int:
    with urllib.request.urlopen(f"{api}/categories", timeout=10) as response:
        return sum(c["total"] for c in json.loads(response.read())["items"])


def _wait_api(api: str, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _products(api)
        except (urllib.error.URLError, ConnectionError, KeyError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)


def _verified(dsn: str, warehouse: Path) -> None:
    """Once a replicator streams again (holds the slot), the warehouse is a full match."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    deadline = time.monotonic() + 60
    with conn.cursor() as cur:
        while True:
            cur.execute(
                "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (DEFAULT_SLOT,)
            )
            row = cur.fetchone()
            if row is not None and row[0]:
                break
            assert time.monotonic() < deadline, "no replicator holds the slot"
            time.sleep(0.1)
    conn.close()
    report = verify(dsn, warehouse, VerifyOptions(slot=DEFAULT_SLOT, wait_timeout_s=60))
    assert report.ok and report.replicator_running, report.as_dict()
    for table in report.tables:  # merge mode: one row per key, nothing duplicated
        assert table.source_rows == table.warehouse_rows and not table.unsettled, table


@pytest.fixture
def home() -> Iterator[Path]:
    """A state directory outside pytest's private (0700) temp folder, which PostgreSQL's
    unprivileged service user could not enter (see tests/conftest.py)."""
    path = Path(tempfile.mkdtemp(prefix="hybridshop-test-up-"))
    yield path / "state"
    shutil.rmtree(path, ignore_errors=True)


def test_killed_components_are_reported_and_restarted_then_postgres_given_up(home: Path) -> None:
    api_port, pg_port = free_port(), free_port()
    up = Up(home, api_port, {}, "--pg-port", str(pg_port))
    server = EmbeddedPostgres(base_dir=home / "postgres", port=pg_port)
    dsn = server.dsn()
    warehouse = home / "warehouse.duckdb"
    blocker: socket.socket | None = None
    try:
        first = int(up.wait_for(r"replicator: started pid (\d+)").group(1))
        up.wait_for("hybridshop is running")
        assert _wait_api(up.api) == 300
        _verified(dsn, warehouse)
        status = subprocess.run(
            [sys.executable, "-m", "hybridshop.cli.main", "replicate", "status", "--json"],
            env={**os.environ, "HYBRIDSHOP_HOME": str(home), "DATABASE_URL": dsn},
            capture_output=True,
            text=True,
            timeout=120,
        )
        replicator = json.loads(status.stdout)["source"]["replicator"]
        assert replicator["running"] and replicator["application"] == "hybridshop-datastream"

        # kill -9 the replicator: reported with its last output, restarted, exactly once
        os.kill(first, signal.SIGKILL)
        mark = len(up.lines)
        up.wait_for(r"replicator: died killed by SIGKILL", after=mark)
        conn = psycopg2.connect(dsn)
        with conn, conn.cursor() as cur:  # written while no replicator runs
            cur.execute(
                "INSERT INTO products (name, price) SELECT 'after kill ' || g, 2 "
                "FROM generate_series(1, 200) g"
            )
            cur.execute("UPDATE products SET price = price + 1 WHERE id % 5 = 0")
        conn.close()
        second = int(up.wait_for(r"replicator: restarted pid (\d+)", after=mark).group(1))
        assert second != first
        assert "status: PostgreSQL running, API gateway running, replicator running" in up.output
        _verified(dsn, warehouse)

        # kill -9 PostgreSQL: restarted, the API serves again, the replicator reconnects
        postmaster = int((server.data_dir / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGKILL)
        mark = len(up.lines)
        up.wait_for(rf"PostgreSQL: died process {postmaster} is gone", after=mark)
        up.wait_for(r"PostgreSQL: restarted pid", after=mark)
        assert _wait_api(up.api) == 500
        _verified(dsn, warehouse)

        # PostgreSQL dies again and its port is taken: nothing works without it -> exit 1
        postmaster = int((server.data_dir / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while blocker is None:
            try:
                blocker = socket.create_server(("127.0.0.1", pg_port))
            except OSError:
                assert time.monotonic() < deadline, "PostgreSQL's port stayed busy"
                time.sleep(0.05)
        code = up.proc.wait(timeout=90)
        up._reader.join(timeout=10)
        assert code == 1, up.output
        assert re.search(r"gave up on PostgreSQL after 5 failures in 60s \(last: .*port", up.output)
        assert "stopping everything" in up.output and "stopped." in up.output
    finally:
        up.interrupt()
        if blocker is not None:
            blocker.close()
        server.stop(mode="immediate")


def test_a_replicator_failing_at_every_start_is_given_up_while_the_api_keeps_serving(
    pg: EmbeddedPostgres, tmp_path: Path
) -> None:
    home = tmp_path / "state"
    home.mkdir()
    (home / "warehouse.duckdb").write_bytes(b"not a DuckDB file, " * 100)  # corrupted warehouse
    dsn = create_database(pg)
    up = Up(home, free_port(), {"DATABASE_URL": dsn})
    try:
        up.wait_for("hybridshop is running")
        found = up.wait_for(r"gave up on replicator after 5 failures in 60s \(last: (.*)\)")
        assert "exited with code 2" in found.group(1)  # an expected failure: error + exit 2
        assert "the rest keeps running without it" in up.output
        # each death came with the replicator's own last words: the fix, not a traceback
        assert up.output.count("replicator: died exited with code 2") == 5
        assert re.search(
            r"^\s+error: cannot use the warehouse .*warehouse\.duckdb", up.output, re.M
        )
        assert "Traceback" not in up.output and "Fix: move it aside" in up.output
        restarts = re.findall(r"restarting in ([\d.]+)s", up.output)
        assert [float(s) for s in restarts] == [0.5, 1.0, 2.0, 4.0]  # backoff
        assert re.search(r"status: .*API gateway running, replicator FAILED", up.output)
        assert _wait_api(up.api) == 300  # the shop's API still serves
        assert up.proc.poll() is None
        # `replicate status` says so too, with the replicator's last words
        status = subprocess.run(
            [sys.executable, "-m", "hybridshop.cli.main", "replicate", "status"],
            env={**os.environ, "HYBRIDSHOP_HOME": str(home), "DATABASE_URL": dsn},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "replicator           NOT RUNNING" in status.stdout, status.stdout + status.stderr
        assert "[hybridshop up] replicator exited with code 2" in status.stdout
        assert up.interrupt() == 0
    finally:
        up.interrupt()
    log = (home / "logs" / "replicator.log").read_text()
    assert log.count("[hybridshop up] replicator exited with code 2") == 5


def test_a_replicator_given_up_on_resumes_once_fixed_and_wal_piling_up_meanwhile_alarms(
    pg: EmbeddedPostgres, tmp_path: Path
) -> None:
    """Given up on, the replicator is tried again (every --retry-failed-after seconds) and
    resumes by itself once its cause is gone; meanwhile the slot's WAL grows and `up` raises
    the alarm (--wal-alarm-mb, as the deployed CloudWatch alarm), and says when it clears."""
    home = tmp_path / "state"
    home.mkdir()
    warehouse = home / "warehouse.duckdb"
    warehouse.write_bytes(b"not a DuckDB file, " * 100)
    dsn = create_database(pg)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:  # a slot that a stopped replicator leaves behind
        cur.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (DEFAULT_SLOT,))
    args = ("--retry-failed-after", "3", "--wal-alarm-mb", "0.05")
    up = Up(home, free_port(), {"DATABASE_URL": dsn}, *args)
    try:
        up.wait_for(r"gave up on replicator after 5 failures")
        assert "started again within 3s" in up.output
        with conn.cursor() as cur:  # WAL the slot must keep
            cur.execute(
                "INSERT INTO products (name, price) SELECT 'wal ' || g, 5 FROM generate_series(1, 2000) g"
            )
        alarm = up.wait_for(r"replicator: alarm slot hybridshop_slot retains ([\d.]+) MB", 40)
        assert float(alarm.group(1)) > 0.05
        assert "no replicator consumes it" in up.output and "pg_drop_replication_slot" in up.output
        retried = up.wait_for(r"replicator: still-failed .*trying again in 3s")
        assert "Fix: move it aside" in up.output
        mark = len(up.lines)
        warehouse.unlink()  # the fix its error named
        up.wait_for(r"replicator: retrying", after=mark, timeout=20)
        up.wait_for(r"replicator: restarted pid", after=mark, timeout=20)
        up.wait_for(r"replicator: alarm WAL retained back under 0.05 MB", after=mark, timeout=60)
        _verified(dsn, warehouse)
        assert retried is not None and up.interrupt() == 0
    finally:
        up.interrupt()
        conn.close()
        drop = psycopg2.connect(dsn)
        drop.autocommit = True
        with drop.cursor() as cur:
            cur.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s AND NOT active",
                (DEFAULT_SLOT,),
            )
        drop.close()


def test_a_shop_thread_that_stops_serving_is_restarted_on_its_port() -> None:
    """The in-process components (shop, API) are supervised the same way: a real shop server
    whose serving loop ends is reported and started again on the same port."""
    from hybridshop.cli.supervisor import Event, Supervisor, ThreadComponent
    from hybridshop.web.server import start_web

    events: list[Event] = []
    port = free_port()
    shop = ThreadComponent(
        "web shop",
        lambda: start_web("http://127.0.0.1:9", "127.0.0.1", port),
        lambda w: bool(w.is_alive()),
        threads=("hybridshop-web",),
        describe=lambda w: str(w.url),
    )
    supervisor = Supervisor(report=events.append, poll_interval_s=0.05)
    supervisor.start(shop)
    first = shop.server
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
            assert response.status == 200
        first._server.shutdown()  # its serving loop ends, as if the thread had died
        deadline = time.monotonic() + 20
        while not any(e.kind == "restarted" for e in events):
            supervisor.check()
            assert time.monotonic() < deadline, events
            time.sleep(0.05)
        assert [e.kind for e in events] == ["started", "died", "restarting", "restarted"]
        assert events[1].message == "stopped serving"
        assert shop.server is not first
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
            assert response.status == 200
        assert supervisor.status() == [
            ("web shop", "running", f"http://127.0.0.1:{port} (1 recent failure(s))")
        ]
    finally:
        supervisor.stop_all()
