"""``hybridshop bench simulate``: is the simulator ever the bottleneck, and how fast is history?

(a) **Live**: ``hybridshop simulate --rate 1000`` (a separate process, as a user runs it)
    against the local stack — the gateway started as ``hybridshop api`` on a private
    PostgreSQL. Its request log is then replayed, request for request, against a copy of the
    same starting database by a lean load generator (one epoll loop, keep-alive sockets, no
    parsing beyond framing) as fast as the gateway answers: the gateway's own ceiling for this
    very request mix. Ratio = the simulator's purchases/s over what it could have achieved,
    min(asked, ceiling) — target >= 0.9.
(b) **History**: ``--backfill-days 365`` rows/s (core functions, validation, batches of days
    in one transaction each) vs ``COPY ... FROM STDIN`` of the very rows it wrote into an
    empty copy of the schema (same constraints and indexes) — target >= 0.3. Median of the
    rounds. The CPU seconds of both (Python, and the PostgreSQL backend from /proc) are
    recorded too: on a loaded machine they vary far less than the wall-clock rates.

Both figures are ratios to a baseline measured in the same run: the machine is shared.
"""

from __future__ import annotations

import functools
import io
import json
import os
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg2
from rich.console import Console

from hybridshop.db.embedded import EmbeddedPostgres, free_port
from hybridshop.db.migrate import apply_migrations

console = Console(stderr=True)
STOCK = 30_000  # products on sale at the start, so shoppers never run out


def _admin(server: EmbeddedPostgres, sql: str) -> None:
    conn = psycopg2.connect(server.dsn("postgres"))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


def _fresh_database(server: EmbeddedPostgres, name: str, template: str | None = None) -> str:
    _admin(server, f'DROP DATABASE IF EXISTS "{name}"')
    _admin(server, f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    dsn = server.dsn(name)
    if template is None:
        conn = psycopg2.connect(dsn)
        apply_migrations(conn)
        conn.close()
    return dsn


def _stock(dsn: str) -> None:
    """A catalog of ``STOCK`` products over the categories, written with the backfill's own
    listing generator (validated like the API) so the pages look like the simulated shop."""
    import random

    from hybridshop.core.catalog import add_products
    from hybridshop.core.models import NewProduct
    from hybridshop.core.validation import parse_new_product
    from hybridshop.simulate import model

    rng = random.Random("bench-stock")
    supply = model.supply_shares()
    conn = psycopg2.connect(dsn)
    items: list[tuple[NewProduct, datetime | None]] = []
    for serial in range(STOCK):
        category = model.BY_NAME[model.weighted_choice(rng, supply)]
        items.append((parse_new_product(model.product_fields(rng, category, serial)), None))
    for i in range(0, len(items), 5000):
        add_products(conn, items[i : i + 5000])
    conn.close()


def _start_gateway(
    dsn: str, workdir: Path, concurrency: int
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "LOG_LEVEL": "WARNING",
        "HYBRIDSHOP_HOME": str(workdir / "state"),
    }
    log = (workdir / f"gateway-{port}.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hybridshop.cli.main", "api", "--port", str(port),
         "--concurrency", str(concurrency), "--quiet"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(
        f"the gateway did not start: {(workdir / f'gateway-{port}.log').read_text()[-2000:]}"
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _run_simulator(
    port: int, rate: float, seconds: float, concurrency: int, log: Path, summary: Path
) -> dict[str, Any]:
    """``hybridshop simulate`` as its own process; its CPU time and peak memory from wait4."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "hybridshop.cli.main", "simulate", "--api-url",
         f"http://127.0.0.1:{port}", "--rate", str(rate), "--duration", str(seconds),
         "--concurrency", str(concurrency), "--seed", "1", "--quiet", "--log", str(log),
         "--summary-json", str(summary)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode not in (0, 1) or not summary.exists():
        raise RuntimeError(f"hybridshop simulate failed ({proc.returncode}):\n{stderr[-3000:]}")
    result: dict[str, Any] = json.loads(summary.read_text())
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    result["max_rss_mb"] = usage.ru_maxrss / 1024  # KiB on Linux
    return result


def _request_bytes(entry: dict[str, Any]) -> bytes:
    from urllib.parse import urlencode

    target = entry["path"] + ("?" + urlencode(entry["query"]) if entry.get("query") else "")
    headers = [f"{entry['method']} {target} HTTP/1.1", "Host: 127.0.0.1"]
    body = b""
    if "body" in entry:
        body = json.dumps(entry["body"], separators=(",", ":")).encode()
        headers.append("Content-Type: application/json")
    if "key" in entry:
        headers.append(f"Idempotency-Key: {entry['key']}")
    headers.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


def _replay(port: int, requests_: list[bytes], connections: int) -> tuple[float, Counter[int]]:
    """Send every request as fast as the gateway answers, ``connections`` keep-alive sockets
    with one request in flight each, from one epoll loop; return seconds and statuses."""
    selector = selectors.DefaultSelector()
    statuses: Counter[int] = Counter()
    next_request = 0
    buffers: dict[socket.socket, bytes] = {}

    def send(sock: socket.socket) -> bool:
        nonlocal next_request
        if next_request >= len(requests_):
            return False
        sock.sendall(requests_[next_request])
        next_request += 1
        return True

    def response_end(buffer: bytes) -> int:
        head_end = buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return -1
        length = 0
        for line in buffer[:head_end].split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        end = head_end + 4 + length
        return end if len(buffer) >= end else -1

    started = time.perf_counter()
    active = 0
    for _ in range(connections):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffers[sock] = b""
        selector.register(sock, selectors.EVENT_READ)
        if send(sock):
            active += 1
    while active:
        for key, _ in selector.select(timeout=30):
            sock = key.fileobj  # type: ignore[assignment]
            assert isinstance(sock, socket.socket)
            data = sock.recv(65536)
            if not data:
                raise RuntimeError("the gateway closed a keep-alive connection")
            buffers[sock] += data
            end = response_end(buffers[sock])
            if end < 0:
                continue
            statuses[int(buffers[sock][9:12])] += 1
            buffers[sock] = buffers[sock][end:]
            if not send(sock):
                active -= 1
    elapsed = time.perf_counter() - started
    for sock in buffers:
        selector.unregister(sock)
        sock.close()
    selector.close()
    return elapsed, statuses


def measure_live(
    server: EmbeddedPostgres, workdir: Path, rate: float, seconds: float, concurrency: int
) -> dict[str, Any]:
    console.print("live: stocking the shop...")
    _fresh_database(server, "shop0")
    _stock(server.dsn("shop0"))
    sim_dsn = _fresh_database(server, "sim", template="shop0")
    ceiling_dsn = _fresh_database(server, "ceiling", template="shop0")

    gateway, port = _start_gateway(sim_dsn, workdir, 8)
    try:
        console.print(f"live: hybridshop simulate --rate {rate:g} for {seconds:g}s...")
        sim = _run_simulator(
            port, rate, seconds, concurrency, workdir / "requests.jsonl", workdir / "sim.json"
        )
    finally:
        _stop(gateway)
    entries = [json.loads(line) for line in (workdir / "requests.jsonl").read_text().splitlines()]
    entries.sort(key=lambda e: e["t"])
    # orders, as the simulator counts them: a 200 to a double click is the replay of an
    # order already counted, not a purchase
    purchases = sum(
        1
        for e in entries
        if e["method"] == "POST"
        and e["path"].endswith("/purchase")
        and e["status"] == 200
        and e.get("action") != "double-click"
    )
    gateway, port = _start_gateway(ceiling_dsn, workdir, 8)
    try:
        console.print(
            f"live: replaying its {len(entries):,} requests as fast as the gateway answers..."
        )
        # as many requests in flight as the simulator had workers (like for like: with fewer
        # the gateway idles between answers and its "ceiling" comes out below what the
        # simulator itself achieved); warm every execution environment up with reads first
        _replay(
            port, [_request_bytes(e) for e in entries if e["method"] == "GET"][:300], concurrency
        )
        elapsed, statuses = _replay(port, [_request_bytes(e) for e in entries], concurrency)
    finally:
        _stop(gateway)
    ceiling_rps = len(entries) / elapsed
    purchase_share = purchases / len(entries) if entries else 0.0
    ceiling_pps = ceiling_rps * purchase_share
    sim_pps = sim["purchases_per_s"]
    possible_pps = min(rate * purchase_share, ceiling_pps)
    return {
        "asked_rate": rate,
        "seconds": seconds,
        "simulator_concurrency": concurrency,
        "simulator_requests_per_s": sim["achieved_rate"],
        "simulator_purchases_per_s": sim_pps,
        "simulator_cpu_us_per_request": round(sim["cpu_s"] / max(1, sim["requests"]) * 1e6, 1),
        "simulator_max_rss_mb": round(sim["max_rss_mb"], 1),
        "simulator_server_errors": sim["server_errors"],
        "simulator_dropped_visits": sim["visits"]["dropped"],
        "purchase_share_of_requests": round(purchase_share, 4),
        "ceiling_connections": concurrency,
        "ceiling_requests_per_s": round(ceiling_rps, 1),
        "ceiling_purchases_per_s": round(ceiling_pps, 1),
        "ceiling_statuses": dict(sorted(statuses.items())),
        "possible_purchases_per_s": round(possible_pps, 1),
        "ratio": round(sim_pps / possible_pps, 3) if possible_pps else None,
        "target_ratio": 0.9,
    }


def measure_backfill(server: EmbeddedPostgres, days: int, rounds: int) -> dict[str, Any]:
    from hybridshop.simulate.backfill import BackfillConfig, backfill

    ours: list[float] = []
    copies: list[float] = []
    cpu_python: list[float] = []
    cpu_backend: list[float] = []
    cpu_copy: list[float] = []
    rows = 0
    result: Any = None
    for round_no in range(rounds):
        dsn = _fresh_database(server, "history")
        console.print(f"history: round {round_no + 1}/{rounds}, --backfill-days {days}...")
        conn = psycopg2.connect(dsn)
        python_cpu, server_cpu = time.process_time(), _server_cpu_s(server)
        result = backfill(
            conn,
            BackfillConfig(days=days, seed=1, until=date(2026, 12, 1)),
            connect=functools.partial(psycopg2.connect, dsn),  # as `hybridshop simulate` does
        )
        cpu_python.append(time.process_time() - python_cpu)
        cpu_backend.append(_server_cpu_s(server) - server_cpu)
        conn.close()
        rows = result.rows
        ours.append(result.rows_per_s)
        products, orders = io.BytesIO(), io.BytesIO()
        conn = psycopg2.connect(dsn)
        with conn.cursor() as cur:
            cur.copy_expert("COPY products TO STDOUT", products)
            cur.copy_expert("COPY orders TO STDOUT", orders)
        conn.close()
        target = psycopg2.connect(_fresh_database(server, "history_copy"))
        products.seek(0)
        orders.seek(0)
        copy_cpu = _server_cpu_s(server)
        started = time.perf_counter()
        with target.cursor() as cur:
            cur.copy_expert("COPY products FROM STDIN", products)
            cur.copy_expert("COPY orders FROM STDIN", orders)
        target.commit()
        copies.append(rows / (time.perf_counter() - started))
        cpu_copy.append(_server_cpu_s(server) - copy_cpu)
        target.close()
    ours_med, copy_med = statistics.median(ours), statistics.median(copies)
    return {
        "days": days,
        "rows": rows,
        "products": result.products,
        "orders": result.orders,
        "rounds": rounds,
        "backfill_rows_per_s": round(ours_med, 1),
        "copy_rows_per_s": round(copy_med, 1),
        "ratio": round(ours_med / copy_med, 3),
        "backfill_rows_per_s_all": [round(x) for x in ours],
        "copy_rows_per_s_all": [round(x) for x in copies],
        "target_ratio": 0.3,
        # CPU seconds (medians): the backfill's Python process and the PostgreSQL server
        # (every process of it) while it ran, and the server during COPY; NaN without /proc
        "backfill_cpu_s_python": round(statistics.median(cpu_python), 2),
        "backfill_cpu_s_postgres": round(statistics.median(cpu_backend), 2),
        "copy_cpu_s_postgres": round(statistics.median(cpu_copy), 2),
        "cpu_ratio": round(
            statistics.median(cpu_copy)
            / (statistics.median(cpu_python) + statistics.median(cpu_backend)),
            3,
        ),
    }


def _server_cpu_s(server: EmbeddedPostgres) -> float:
    """CPU seconds (user + system) the PostgreSQL server has used so far: the postmaster, its
    live processes (backends, WAL writer, checkpointer...) and the ones it has reaped. NaN
    where there is no /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        root = int((server.data_dir / "postmaster.pid").read_text().split()[0])
        entries = os.listdir("/proc")
    except (OSError, ValueError, IndexError):
        return float("nan")
    total = 0
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == root:
            total += sum(int(x) for x in fields[11:15])  # its own and its reaped children's
        elif int(fields[1]) == root:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def run_simulate_bench(
    *,
    rate: float,
    seconds: float,
    concurrency: int,
    days: int,
    rounds: int,
    out: Path,
    only: str | None = None,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hybridshop-bench-sim-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)
        server = EmbeddedPostgres(base_dir=workdir / "pg", port=free_port(), database="postgres")
        console.print("starting a private PostgreSQL for the benchmark...")
        server.start()
        try:
            result: dict[str, Any] = {}
            if out.exists() and only is not None:
                result = json.loads(out.read_text())
            result.update(
                {
                    "area": "simulate",
                    "cpu_count": os.cpu_count(),
                    "machine": "shared with other engineers' work: compare the ratios",
                    "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            )
            if only in (None, "live"):
                result["live"] = measure_live(server, workdir, rate, seconds, concurrency)
            if only in (None, "backfill"):
                result["backfill"] = measure_backfill(server, days, rounds)
        finally:
            server.stop(mode="immediate")
    result["bench_max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def markdown(result: dict[str, Any]) -> str:
    lines = ["| measure | ours | baseline | ratio (target) |", "|---|---|---|---|"]
    live = result.get("live")
    if live:
        lines.append(
            f"| purchases/s at --rate {live['asked_rate']:g} | "
            f"{live['simulator_purchases_per_s']:.1f} ({live['simulator_requests_per_s']:.0f} req/s) | "
            f"gateway ceiling for the same mix {live['ceiling_purchases_per_s']:.1f} "
            f"({live['ceiling_requests_per_s']:.0f} req/s); possible "
            f"{live['possible_purchases_per_s']:.1f} | {live['ratio']} (>= 0.9) |"
        )
    history = result.get("backfill")
    if history:
        lines.append(
            f"| --backfill-days {history['days']} ({history['rows']:,} rows) | "
            f"{history['backfill_rows_per_s']:,.0f} rows/s | COPY {history['copy_rows_per_s']:,.0f} "
            f"rows/s | {history['ratio']} (>= 0.3) |"
        )
    return "\n".join(lines)
