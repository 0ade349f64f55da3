"""``hybridshop bench api``: purchases through the local gateway vs pgbench, same run, same server.

For each client count the same purchase transaction (guarded UPDATE + INSERT into orders,
one commit) runs twice against a private embedded PostgreSQL:
1. through HTTP -> local API Gateway -> GetItem Lambda handler (keep-alive clients);
2. as a pgbench custom script (the baseline: what the database alone can do).
The HTTP clients are real keep-alive HTTP/1.1 connections over loopback, one purchase per
request, driven by one epoll loop in one process so they take little of the CPU they share
with the gateway and the database.
Each measurement buys fresh, distinct products so no run is slowed by already-sold rows.
The ratio gateway/pgbench is what matters: absolute numbers swing on a shared machine, so
the two alternate in ``rounds`` slices and the ratio is the median of the slices' ratios.
Before the gateway is measured, as many GetItem environments as clients are started and
idle (cold starts are measured separately, as the handlers' import times).

Then the attacks an adversarial review reproduced against the old gateway run together for
``attack_seconds``: 8 slow readers (one GET, then 400 pipelined GETs of the catalog, never
reading) and 10 pipelining clients that never read (~120 KB of requests each). Meanwhile a
probe asks for the catalog on a fresh connection every 100 ms; the gateway process's peak
RSS (VmHWM) is read from /proc before and after.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
from rich.console import Console

from hybridshop.bench.stats import percentile
from hybridshop.db.embedded import EmbeddedPostgres, client_bin, free_port
from hybridshop.db.migrate import apply_migrations

console = Console(stderr=True)


def pgbench_script() -> str:
    """The purchase statement the GetItem handler runs (``core.catalog.PURCHASE_SQL``), with
    its parameters filled the pgbench way: the next bench product, channel 'pgbench'."""
    from hybridshop.core.catalog import PURCHASE_SQL

    values = {
        "product_id": "(SELECT nextval('bench_ids'))",
        "buyer_ref": "NULL",
        "channel": "'pgbench'",
        "key": "NULL",
        "caller": "''",
        "fingerprint": "NULL",
    }
    return PURCHASE_SQL.strip() % values + ";\n"


HANDLERS = (
    "hybridshop.lambda_functions.get_products",
    "hybridshop.lambda_functions.get_item",
    "hybridshop.lambda_functions.add_product",
)


@dataclass
class Measurement:
    tps: float
    latencies_ms: list[float]
    errors: int


def _products_for(seconds: float) -> int:
    """Fresh products enough for ``seconds`` of purchases at 20,000/s (far above what two
    cores do): a bench client must never run out and buy rows already sold."""
    return int(max(2.0, seconds) * 20_000)


def _add_products(dsn: str, count: int) -> int:
    """Insert ``count`` available products; return the first new id and point the sequence there."""
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO products (name, price, category)
            SELECT 'Bench item ' || g, 10.00, 'bench' FROM generate_series(1, %s) g
            RETURNING id
            """,
            (count,),
        )
        ids = [r[0] for r in cur.fetchall()]
        cur.execute("CREATE SEQUENCE IF NOT EXISTS bench_ids")
        cur.execute("SELECT setval('bench_ids', %s, false)", (min(ids),))
    conn.commit()
    conn.close()
    return min(ids)


def _client_process(
    port: int, first_id: int, stride: int, offsets: list[int], window: tuple[float, float], out: Any
) -> None:
    """Keep-alive HTTP/1.1 clients buying ids first_id + offset + k*stride, one request in
    flight per connection, all driven by one epoll loop.

    Why not a thread per client: on two cores the load generator competes with what it
    measures, and threads (GIL hand-offs, buffered readers) cost several times the CPU of
    one loop doing a send and a recv per purchase. Each response is still read in full and
    framed by its Content-Length; only 200s count. Requests that start before ``window[0]``
    are warm-up; clients stop at ``window[1]``.
    """
    import selectors

    measure_from, deadline = window
    selector = selectors.DefaultSelector()
    latencies: list[float] = []
    errors = done = 0

    class Client:
        __slots__ = ("buffer", "k", "offset", "sock", "started")

        def __init__(self, offset: int) -> None:
            self.offset = offset
            self.k = 0
            self.buffer = b""
            self.started = 0.0
            self.sock = socket.create_connection(("127.0.0.1", port))
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def send(self) -> None:
            product_id = first_id + self.offset + self.k * stride
            self.k += 1
            self.started = time.perf_counter()
            self.sock.sendall(
                b"POST /products/%d/purchase HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Length: 0\r\n\r\n" % product_id
            )

    def response_end(buffer: bytes) -> int:
        """Offset just past one complete response in ``buffer``, or -1."""
        head_end = buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return -1
        length = 0
        for line in buffer[:head_end].split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        end = head_end + 4 + length
        return end if len(buffer) >= end else -1

    clients = [Client(offset) for offset in offsets]
    for client in clients:
        selector.register(client.sock, selectors.EVENT_READ, client)
        client.send()
    active = len(clients)
    while active:
        for key, _ in selector.select(timeout=5.0):
            client = key.data
            data = client.sock.recv(65536)
            if not data:
                raise RuntimeError("the gateway closed a keep-alive connection")
            client.buffer += data
            end = response_end(client.buffer)
            if end < 0:
                continue
            finished = time.perf_counter()
            response, client.buffer = client.buffer[:end], client.buffer[end:]
            if time.monotonic() - (finished - client.started) >= measure_from:
                latencies.append((finished - client.started) * 1000)
                if not response.startswith(b"HTTP/1.1 200 "):
                    errors += 1
                done += 1
            if time.monotonic() < deadline:
                client.send()
            else:
                selector.unregister(client.sock)
                client.sock.close()
                active -= 1
    selector.close()
    out.send((latencies, errors, done))
    out.close()


def _function_stats(port: int, function: str) -> dict[str, int]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET /_local/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    stats: dict[str, int] = json.loads(data.split(b"\r\n\r\n", 1)[1])["functions"][function]
    return stats


def _warm_purchases(port: int, dsn: str, clients: int, timeout: float = 120.0) -> None:
    """Start ``clients`` GetItem environments before measuring: bursts of ``clients``
    concurrent purchases (of products of their own) until the pool holds that many, all
    idle. Without it the first seconds of a measurement are cold starts (each an
    interpreter start plus the handler's imports, ~0.5 s of CPU), not purchases."""
    deadline = time.monotonic() + timeout
    while True:
        stats = _function_stats(port, "GetItem")
        if stats["environments"] >= clients and stats["idle"] >= clients:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"GetItem environments did not warm up: {stats}")
        first = _add_products(dsn, clients)
        socks = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(clients)]
        try:
            for n, sock in enumerate(socks):
                sock.sendall(
                    b"POST /products/%d/purchase HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Length: 0\r\nConnection: close\r\n\r\n" % (first + n)
                )
            for sock in socks:
                while sock.recv(65536):
                    pass
        finally:
            for sock in socks:
                sock.close()


def _measure_gateway(port: int, dsn: str, clients: int, seconds: float) -> Measurement:
    _warm_purchases(port, dsn, clients)
    first = _add_products(dsn, _products_for(seconds + 1.0))
    ctx = mp.get_context("fork")
    # every environment is warm; one more second of load before measuring
    warm_deadline = time.monotonic() + 1.0
    deadline = warm_deadline + seconds
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_client_process,
        args=(port, first, clients, list(range(clients)), (warm_deadline, deadline), child),
        daemon=True,
    )
    proc.start()
    latencies, errors, total = parent.recv()
    proc.join()
    return Measurement(tps=(total - errors) / seconds, latencies_ms=latencies, errors=errors)


def _measure_pgbench(dsn: str, port: int, clients: int, seconds: float, workdir: Path) -> float:
    _add_products(dsn, _products_for(round(seconds + 1)))
    script = workdir / "purchase.sql"
    script.write_text(pgbench_script())
    result = subprocess.run(
        [
            client_bin("pgbench"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "postgres",
            "-n",
            "-c",
            str(clients),
            "-j",
            "2",
            "-T",
            str(max(2, round(seconds + 1))),
            "-f",
            str(script),
            "bench",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"pgbench failed:\n{result.stdout}\n{result.stderr}")
    match = re.search(r"tps = ([0-9.]+)", result.stdout)
    if match is None:
        raise RuntimeError(f"could not read pgbench output:\n{result.stdout}")
    return float(match.group(1))


def measure_handler_imports(repeats: int = 5) -> dict[str, float]:
    """Median cold-import time of each handler module, each in a fresh interpreter."""
    timings: dict[str, float] = {}
    for module in HANDLERS:
        samples = []
        for _ in range(repeats):
            code = (
                "import time; t = time.perf_counter(); "
                f"import {module}; print((time.perf_counter() - t) * 1000)"
            )
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            )
            samples.append(float(out.stdout.strip()))
        timings[module.rsplit(".", 1)[1]] = round(statistics.median(samples), 1)
    return timings


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process (``VmHWM``: its peak so far) in MB, from /proc."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from /proc/<pid>/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _probe_once(port: int, path: str) -> float:
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    if not data.startswith(b"HTTP/1.1 200 "):
        raise RuntimeError(f"probe answered {data[:40]!r}")
    return (time.perf_counter() - started) * 1000


def _warm(port: int, path: str, connections: int) -> None:
    """Send ``connections`` requests at once so that many environments are started."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(connections)]
    try:
        for sock in socks:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        for sock in socks:
            while sock.recv(65536):
                pass
    finally:
        for sock in socks:
            sock.close()


def _measure_attacks(port: int, gateway_pid: int, seconds: float) -> dict[str, Any]:
    """Slow readers + pipelining non-readers for ``seconds``, a probe every 100 ms."""
    path = "/products?limit=20"
    _warm(port, path, 32)  # every GetProducts environment started: no cold start measured
    for _ in range(3):
        _probe_once(port, path)
    rss_before = rss_mb(gateway_pid)
    attackers: list[tuple[socket.socket, bytes]] = []
    try:
        for _ in range(8):  # slow readers
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            sock.recv(65536)
            sock.setblocking(False)
            attackers.append((sock, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode() * 400))
        request = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        for _ in range(10):  # pipelining, never reading
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            sock.setblocking(False)
            attackers.append((sock, request * (120_000 // len(request))))
        probes: list[float] = []
        peak = rss_before
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for i, (sock, pending) in enumerate(attackers):
                if pending:
                    try:
                        sent = sock.send(pending)
                    except (BlockingIOError, InterruptedError):
                        sent = 0
                    except OSError:
                        sent = len(pending)  # the gateway dropped it: fine
                    attackers[i] = (sock, pending[sent:])
            probes.append(_probe_once(port, path))
            peak = max(peak, rss_mb(gateway_pid))
            time.sleep(0.1)
    finally:
        for sock, _ in attackers:
            sock.close()
    unsent = sum(len(p) for _, p in attackers)
    return {
        "seconds": seconds,
        "slow_readers": 8,
        "pipelining_non_readers": 10,
        "request_bytes_not_accepted_by_the_gateway": unsent,
        "probes": len(probes),
        "probe_p50_ms": round(percentile(probes, 50), 2),
        "probe_max_ms": round(max(probes), 2),
        "gateway_rss_before_mb": round(rss_before, 1),
        "gateway_rss_peak_during_mb": round(peak, 1),
    }


def _wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the gateway did not start listening on port {port}")


def _measure_clients(
    api_port: int,
    gateway_pid: int,
    dsn: str,
    pg_port: int,
    n: int,
    seconds: float,
    rounds: int,
    workdir: Path,
) -> dict[str, Any]:
    """``rounds`` alternations of the gateway and pgbench, ``seconds / rounds`` each: on a
    shared machine the load swings within seconds, and a baseline measured right beside each
    slice of the gateway's run is what makes their ratio mean something. The ratio is the
    median of the rounds' ratios; tps and latencies are over all rounds."""
    slice_s = seconds / rounds
    measured: list[Measurement] = []
    baselines: list[float] = []
    cpu_used = 0.0
    for r in range(1, rounds + 1):
        console.print(f"[bold]{n} clients[/], round {r}/{rounds}: gateway, then pgbench...")
        cpu_before = cpu_seconds(gateway_pid)
        measured.append(_measure_gateway(api_port, dsn, n, slice_s))
        cpu_used += cpu_seconds(gateway_pid) - cpu_before
        baselines.append(_measure_pgbench(dsn, pg_port, n, slice_s, workdir))
    latencies = [ms for m in measured for ms in m.latencies_ms]
    gateway_tps = statistics.fmean(m.tps for m in measured)
    ratios = [m.tps / b for m, b in zip(measured, baselines, strict=True) if b]
    return {
        "gateway_tps": round(gateway_tps, 1),
        "pgbench_tps": round(statistics.fmean(baselines), 1),
        "ratio": round(statistics.median(ratios), 3) if ratios else None,
        "ratio_rounds": [round(r, 3) for r in ratios],
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "errors": sum(m.errors for m in measured),
        # the gateway process alone (HTTP, events, routing), warm-up included
        "gateway_cpu_us_per_request": round(cpu_used / max(1, len(latencies)) * 1e6, 1),
        "gateway_rss_peak_mb": round(rss_mb(gateway_pid, "VmHWM"), 1),
    }


def run_api_bench(
    clients: list[int],
    seconds: float,
    out: Path,
    attack_seconds: float = 15.0,
    rounds: int = 5,
) -> dict[str, Any]:
    """Run the benchmark, write ``out`` (JSON) and print a Markdown table."""
    with tempfile.TemporaryDirectory(prefix="hybridshop-bench-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)
        server = EmbeddedPostgres(base_dir=workdir / "pg", port=free_port(), database="bench")
        console.print("starting a private PostgreSQL for the benchmark...")
        dsn = server.start()
        gateway: subprocess.Popen[bytes] | None = None
        try:
            conn = psycopg2.connect(dsn)
            apply_migrations(conn)
            conn.close()
            api_port = free_port()
            env = {
                **os.environ,
                "DATABASE_URL": dsn,
                "LOG_LEVEL": "WARNING",
                "HYBRIDSHOP_HOME": str(workdir / "state"),
            }
            gateway_log = (workdir / "gateway.log").open("w")
            gateway = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hybridshop.cli.main",
                    "api",
                    "--port",
                    str(api_port),
                    "--concurrency",
                    str(max(clients)),
                    "--quiet",
                ],
                env=env,
                stdout=gateway_log,
                stderr=subprocess.STDOUT,
            )
            try:
                _wait_for_port(api_port)
            except RuntimeError:
                gateway_log.flush()
                tail = (workdir / "gateway.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the gateway did not start:\n{tail}") from None
            rows: dict[str, Any] = {}
            for n in clients:
                rows[str(n)] = _measure_clients(
                    api_port, gateway.pid, dsn, server.port, n, seconds, rounds, workdir
                )
            console.print(
                f"attacks: slow readers + pipelining non-readers ({attack_seconds:.0f}s)..."
            )
            attacks = _measure_attacks(api_port, gateway.pid, attack_seconds)
            gateway_peak = rss_mb(gateway.pid, "VmHWM")
            console.print("cold imports of the handlers...")
            imports = measure_handler_imports()
        finally:
            if gateway is not None:
                gateway.terminate()
                try:
                    gateway.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    gateway.kill()
            server.stop(mode="immediate")
    result = {
        "area": "api",
        "seconds_per_measurement": seconds,
        "rounds_per_measurement": rounds,
        "cpu_count": os.cpu_count(),
        "clients": rows,
        "attacks": attacks,
        "gateway_rss_peak_mb": round(gateway_peak, 1),
        "handler_import_ms": imports,
        "targets": {
            "ratio_at_8_clients": 0.6,
            "ratio_at_32_clients": 0.5,
            "p99_ms_at_32_clients": 20,
            "gateway_rss_peak_during_attacks_mb": 200,
            "probe_ms_during_attacks": 100,
            "handler_import_ms": 300,
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(_markdown(result))
    console.print(f"results written to {out}")
    return result


def _markdown(result: dict[str, Any]) -> str:
    lines = [
        "| clients | gateway tps | pgbench tps | ratio | p50 ms | p99 ms | errors | gateway RSS peak MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, row in result["clients"].items():
        lines.append(
            f"| {n} | {row['gateway_tps']} | {row['pgbench_tps']} | {row['ratio']} | "
            f"{row['p50_ms']} | {row['p99_ms']} | {row['errors']} | {row['gateway_rss_peak_mb']} |"
        )
    lines.append("")
    attacks = result["attacks"]
    lines.append(
        f"Attacks ({attacks['slow_readers']} slow readers + {attacks['pipelining_non_readers']} "
        f"pipelining non-readers, {attacks['seconds']:.0f} s): probe p50 {attacks['probe_p50_ms']} ms, "
        f"max {attacks['probe_max_ms']} ms over {attacks['probes']} probes; gateway RSS "
        f"{attacks['gateway_rss_before_mb']} -> peak {attacks['gateway_rss_peak_during_mb']} MB."
    )
    lines.append("")
    lines.append("| handler | cold import ms |")
    lines.append("|---|---:|")
    for name, ms in result["handler_import_ms"].items():
        lines.append(f"| {name} | {ms} |")
    return "\n".join(lines)
