"""The whole system as a user runs it: ``hybridshop up`` (JWT authorizer on) as a child
process on free loopback ports with its state in a temp folder, a bounded load of real HTTP
purchases and additions, and one ``books_balance`` check that PostgreSQL, the warehouse,
``replicate verify`` and the Sales dashboard agree.

Every loop here is bounded in count and in time; nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg2
import pytest

from hybridshop.db.embedded import EmbeddedPostgres, free_port
from hybridshop.db.replication import DEFAULT_SLOT
from upprocess import UpProcess

METADATA_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"
AUDIENCE = "hybridshop-api"
SEED_PRODUCTS = 300  # what `up` seeds an empty catalog with


def cli(home: Path, *args: str, timeout: float = 120, dsn: str | None = None) -> Any:
    """``hybridshop <args>`` against the stack's state folder."""
    env = {**os.environ, "HYBRIDSHOP_HOME": str(home)}
    env.pop("DATABASE_URL", None)
    if dsn is not None:
        env["DATABASE_URL"] = dsn
    return subprocess.run(
        [sys.executable, "-m", "hybridshop.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Up(UpProcess):
    """``hybridshop up --auth`` on the system's ports (the shop's identity is the only caller
    the API allows)."""

    def __init__(self, home: Path, ports: dict[str, int], *extra: str) -> None:
        self.ports = ports
        args = ["--auth", "--no-dashboards", "--api-port", str(ports["api"])]
        args += ["--web-port", str(ports["web"]), "--pg-port", str(ports["pg"])]
        args += ["--concurrency", "4", *extra]
        super().__init__(home, args, {"HYBRIDSHOP_ISSUER_PORT": str(ports["issuer"])})
        self.api = f"http://127.0.0.1:{ports['api']}"
        self.web = f"http://127.0.0.1:{ports['web']}"

    def wait_ready(self) -> None:
        self.wait_for("hybridshop is running")
        wait_http(f"{self.api}/categories")

    def replicator_pid(self) -> int:
        return self.started_pid("replicator")


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                response.read()
                return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
        except (urllib.error.URLError, OSError):
            pass
        assert time.monotonic() < deadline, f"{url} did not answer in {timeout}s"
        time.sleep(0.1)


def metadata_base(up: Up) -> str:
    """The local issuer's metadata-server base URL (the shop's METADATA_SERVER_URL): on its
    own loopback listener, or under the gateway's /_local."""
    candidates = [
        f"http://127.0.0.1:{up.ports['issuer']}",
        f"http://127.0.0.1:{up.ports['issuer']}/metadata",
        f"{up.api}/_local/metadata",
    ]
    errors = []
    for base in candidates:
        request = urllib.request.Request(
            f"{base}{METADATA_PATH}?audience={AUDIENCE}", headers={"Metadata-Flavor": "Google"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
                return base
        except (urllib.error.URLError, OSError) as exc:
            errors.append(f"{base}: {exc}")
    raise AssertionError("no local issuer answered: " + "; ".join(errors))


def token(up: Up) -> str:
    """An ID token from the local issuer (the stand-in for Cloud Run's metadata server)."""
    request = urllib.request.Request(
        f"{metadata_base(up)}{METADATA_PATH}?audience={AUDIENCE}",
        headers={"Metadata-Flavor": "Google"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.read().decode().strip())


# --- load ---------------------------------------------------------------------------------
@dataclass
class Load:
    """A bounded load of real API calls: purchases of random products (each with an
    Idempotency-Key, retried with the same key after a connection error or a 5xx, so a retry
    never buys twice) and additions. Stops at ``max_ops`` per worker, at ``seconds``, or at
    ``stop()``, whichever comes first."""

    up: Up
    seed: int
    workers: int = 3
    max_ops: int = 300
    seconds: float = 20.0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    slowest_s: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Load:
        self._token = token(self.up)
        self._deadline = time.monotonic() + self.seconds
        for n in range(self.workers):
            thread = threading.Thread(target=self._run, args=(n,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> Load:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
            assert not thread.is_alive(), "a load worker hangs"
        return self

    def _record(self, status: int | None, error: str | None, took: float) -> None:
        with self._lock:
            if status is not None:
                self.statuses[status] += 1
            if error is not None:
                self.errors[error] += 1
            self.slowest_s = max(self.slowest_s, took)

    def _call(
        self,
        conn: http.client.HTTPConnection,
        method: str,
        path: str,
        body: dict[str, Any],
        key: str,
    ) -> int:
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Content-Type": "application/json",
            "Idempotency-Key": key,
        }
        conn.request(method, path, body=json.dumps(body), headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status

    def _run(self, n: int) -> None:
        rng = random.Random(self.seed * 100 + n)
        conn = http.client.HTTPConnection("127.0.0.1", self.up.ports["api"], timeout=15)
        for i in range(self.max_ops):
            if self._stop.is_set() or time.monotonic() > self._deadline:
                break
            key = f"load-{self.seed}-{n}-{i}-{uuid.uuid4().hex[:8]}"
            if rng.random() < 0.8:
                method, path = "POST", f"/products/{rng.randint(1, SEED_PRODUCTS + 50)}/purchase"
                body: dict[str, Any] = {}
            else:
                method, path = "POST", "/products"
                body = {"name": f"load {self.seed} {n} {i}", "price": rng.randint(1, 500) + 0.5}
            for _attempt in range(20):  # bounded retries, same key: a retry never buys twice
                started = time.monotonic()
                try:
                    status = self._call(conn, method, path, body, key)
                except (OSError, http.client.HTTPException) as exc:
                    self._record(None, type(exc).__name__, time.monotonic() - started)
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.up.ports["api"], timeout=15)
                    if self._stop.wait(0.2):
                        break
                    continue
                self._record(status, None, time.monotonic() - started)
                if status < 500 and status != 429:
                    break
                if self._stop.wait(0.1):
                    break
        conn.close()


# --- the books ------------------------------------------------------------------------------
def _pg_books(dsn: str) -> tuple[dict[int, tuple[Any, ...]], set[int]]:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT id, product_id, price, currency, buyer_ref, channel, idempotency_key "
                "FROM orders"
            )
            orders = {row[0]: tuple(row[1:]) for row in cur.fetchall()}
            cur.execute("SELECT id FROM products WHERE NOT available")
            sold = {row[0] for row in cur.fetchall()}
    finally:
        conn.close()
    return orders, sold


def _warehouse_books(read_copy: Path) -> tuple[list[tuple[Any, ...]], set[int]]:
    con = duckdb.connect(str(read_copy), read_only=True)
    try:
        orders = con.execute(
            "SELECT id, product_id, price, currency, buyer_ref, channel, idempotency_key "
            "FROM public_orders"
        ).fetchall()
        sold = {
            row[0]
            for row in con.execute("SELECT id FROM public_products WHERE NOT available").fetchall()
        }
    finally:
        con.close()
    return orders, sold


def books_balance(home: Path, dsn: str, *, timeout: float = 60) -> dict[str, Any]:
    """Every order in PostgreSQL is in the warehouse exactly once with the same values, the
    products sold are sold there too (and none twice), ``replicate verify`` is a full match and
    the Sales dashboard's revenue tile is the sum of the order prices."""
    pg_orders, pg_sold = _pg_books(dsn)
    assert pg_orders, "the load bought nothing: the books check would prove nothing"
    assert len({o[0] for o in pg_orders.values()}) == len(pg_orders)  # no product sold twice
    assert {o[0] for o in pg_orders.values()} <= pg_sold
    read_copy = home / "warehouse.read.duckdb"
    deadline = time.monotonic() + timeout
    while True:  # the reader copy trails the warehouse by about a second
        try:
            wh_orders, wh_sold = _warehouse_books(read_copy)
        except (duckdb.Error, OSError) as exc:
            wh_orders, wh_sold, last = [], set(), str(exc)
        else:
            last = f"{len(wh_orders)} of {len(pg_orders)} orders"
        if len(wh_orders) >= len(pg_orders) and wh_sold == pg_sold:
            break
        assert time.monotonic() < deadline, f"the warehouse did not catch up: {last}"
        time.sleep(0.2)
    ids = Counter(row[0] for row in wh_orders)
    assert [i for i, c in ids.items() if c > 1] == [], "orders duplicated in the warehouse"
    assert set(ids) == set(pg_orders), "orders lost or invented in the warehouse"
    for row in wh_orders:
        expected = pg_orders[row[0]]
        got = (row[1], Decimal(str(row[2])), row[3], row[4], row[5], row[6])
        assert got == (expected[0], Decimal(expected[1]), *expected[2:]), (row[0], got, expected)
    assert wh_sold == pg_sold
    assert len({row[1] for row in wh_orders}) == len(wh_orders), "a product sold twice"

    _wait_slot_held(dsn)  # a full match is claimed only while a replicator streams
    verify = cli(home, "replicate", "verify", dsn=dsn)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    tile = cli(home, "dashboards", "query", "sales", "revenue", "--json")
    assert tile.returncode == 0, tile.stdout + tile.stderr
    rows = json.loads(tile.stdout)
    revenue = Decimal(str(next(iter(rows[0].values()))))
    total = sum((Decimal(o[1]) for o in pg_orders.values()), Decimal(0))
    assert revenue == total, (rows, total)
    return {"orders": len(pg_orders), "sold": len(pg_sold), "revenue": total}


def _wait_slot_held(dsn: str, timeout: float = 60) -> None:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    deadline = time.monotonic() + timeout
    try:
        with conn.cursor() as cur:
            while True:
                cur.execute(
                    "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (DEFAULT_SLOT,)
                )
                row = cur.fetchone()
                if row is not None and row[0]:
                    return
                assert time.monotonic() < deadline, "no replicator holds the slot"
                time.sleep(0.1)
    finally:
        conn.close()


def freshness_s(dsn: str, *, bound_s: float = 10.0) -> float:
    """Seconds from now until the replicator has confirmed every change written so far (its
    slot's confirmed_flush_lsn passes the current WAL position); polls with a bound."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    started = time.monotonic()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_current_wal_lsn()")
            target = cur.fetchone()[0]
            while True:
                cur.execute(
                    "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots "
                    "WHERE slot_name = %s",
                    (target, DEFAULT_SLOT),
                )
                row = cur.fetchone()
                if row is not None and row[0]:
                    return time.monotonic() - started
                if time.monotonic() - started > bound_s:
                    return time.monotonic() - started
                time.sleep(0.02)
    finally:
        conn.close()


# --- processes ------------------------------------------------------------------------------
def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Live processes whose command line mentions ``text`` (the stack's state folder or port)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        cmd = raw.replace(b"\0", b" ").decode(errors="replace")
        if text in cmd and state != "Z":
            found.append((int(entry.name), cmd))
    return found


def children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


@dataclass
class System:
    home: Path
    ports: dict[str, int]
    up: Up

    @property
    def dsn(self) -> str:
        return EmbeddedPostgres(base_dir=self.home / "postgres", port=self.ports["pg"]).dsn()

    def restart(self, *extra: str) -> Up:
        self.up = Up(self.home, self.ports, *extra)
        self.up.wait_ready()
        return self.up


def new_ports() -> dict[str, int]:
    return {name: free_port() for name in ("api", "web", "pg", "issuer")}


@contextlib.contextmanager
def running_system(*extra: str) -> Iterator[System]:
    """A fresh ``up`` in its own temp folder (outside pytest's 0700 temp dir: PostgreSQL runs
    as an unprivileged user when the tests run as root); everything stopped afterwards."""
    base = Path(tempfile.mkdtemp(prefix="hybridshop-system-"))
    home = base / "state"
    ports = new_ports()
    system = System(home, ports, Up(home, ports, *extra))
    try:
        system.up.wait_ready()
        yield system
    finally:
        system.up.interrupt()
        EmbeddedPostgres(base_dir=home / "postgres", port=ports["pg"]).stop(mode="immediate")
        for pid, _cmd in processes_mentioning(str(home)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def system() -> Iterator[System]:
    """One stack shared by a module's tests (each leaves it serving)."""
    with running_system() as running:
        yield running


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store_true",
        default=False,
        help="tests/system: run the long soak variants (minutes of load per fault).",
    )


@pytest.fixture
def soak(request: pytest.FixtureRequest) -> bool:
    return bool(
        request.config.getoption("--soak", default=False) or os.environ.get("HYBRIDSHOP_SOAK")
    )
