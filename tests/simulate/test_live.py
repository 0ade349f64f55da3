"""Live simulation through the real local gateway: determinism, counts against the database,
the JWT authorizer, and one-line messages for a bad token, a dead or a wrong URL."""

from __future__ import annotations

import json
import socket
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conftest import create_database
from hybridshop.cli.main import app
from hybridshop.db.embedded import EmbeddedPostgres
from hybridshop.simulate.client import SimulationAborted
from hybridshop.simulate.live import Simulation, SimulationConfig, Summary

from .conftest import GatewayFactory, query, seed_demo

VOLATILE = ("t", "ms")  # timing fields of the request log


def simulate(url: str, **overrides: Any) -> Summary:
    config = SimulationConfig(**{"api_url": url, "rate": 60.0, "duration": 3.0, **overrides})
    return Simulation(config).run()


def requests_of(log: Path) -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    for entry in entries:
        for key in VOLATILE:
            entry.pop(key)
    return sorted(entries, key=lambda e: (e["visit"], e["step"]))


def test_same_seed_same_requests(
    pg: EmbeddedPostgres, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    logs = []
    for run, seed in enumerate((7, 7, 8)):
        dsn = create_database(pg)
        seed_demo(dsn)
        gateway = start_gateway(dsn)
        log = tmp_path / f"run{run}.jsonl"
        summary = simulate(
            gateway.url, seed=seed, concurrency=1, rate=25.0, duration=4.0, log_path=log
        )
        assert summary.server_errors == 0 and summary.transport_errors == 0
        # every planned visit ran (a machine too busy to keep up would drop some)
        assert summary.visits_dropped == 0, summary.lagging
        logs.append(requests_of(log))
    first, again, other = logs
    assert first == again
    assert first != other
    methods = {(e["method"], e["action"]) for e in first}
    assert ("POST", "buy") in methods and ("POST", "list") in methods
    assert len(first) > 50


def test_summary_counts_equal_the_database(
    database_url: str, start_gateway: GatewayFactory
) -> None:
    seeded = seed_demo(database_url)
    gateway = start_gateway(database_url)
    summary = simulate(gateway.url, seed=3, concurrency=6, rate=80.0, duration=4.0)
    ((orders, revenue, products, sim_keys),) = query(
        database_url,
        "SELECT (SELECT count(*) FROM orders), (SELECT coalesce(sum(price), 0) FROM orders), "
        "(SELECT count(*) FROM products), "
        "(SELECT count(*) FROM orders WHERE idempotency_key LIKE 'sim-3-%%')",
    )
    assert summary.orders > 10
    assert (summary.orders, summary.revenue, summary.products_added + seeded) == (
        orders,
        Decimal(revenue),
        products,
    )
    assert sim_keys == orders
    assert summary.server_errors == 0 and summary.unexpected_4xx == 0
    routes = {route for route, _ in summary.requests}
    assert routes == {
        "GET /categories",
        "GET /products",
        "GET /products/{id}",
        "POST /products",
        "POST /products/{id}/purchase",
    }
    assert summary.achieved_rate > 0.6 * summary.asked_rate


def test_with_the_jwt_authorizer_and_the_shops_identity(
    database_url: str, start_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_demo(database_url)
    gateway = start_gateway(database_url, auth=True)
    monkeypatch.setenv("METADATA_SERVER_URL", gateway.metadata_url)  # its own loopback port
    summary = simulate(gateway.url, seed=4, duration=2.5)
    assert summary.orders > 0
    assert summary.aborted is None
    assert not any(status in (401, 403) for _, status in summary.requests)


def test_bad_token_stops_with_one_line(database_url: str, start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(database_url, auth=True)
    result = CliRunner().invoke(
        app,
        ["simulate", "--api-url", gateway.url, "--token", "not.a.jwt", "--duration", "2"],
    )
    assert result.exit_code == 2, result.output
    assert "refused the token" in result.output and "--token" in result.output
    assert "Traceback" not in result.output
    ((orders,),) = query(database_url, "SELECT count(*) FROM orders")
    assert orders == 0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_and_wrong_urls(database_url: str, start_gateway: GatewayFactory) -> None:
    with pytest.raises(
        SimulationAborted, match=r"cannot reach the API .*connection refused.*`hybridshop up`"
    ):
        simulate(f"http://127.0.0.1:{_closed_port()}")
    gateway = start_gateway(database_url)
    with pytest.raises(SimulationAborted, match="does not look like the hybridshop API"):
        simulate(gateway.url + "/v1")
    with pytest.raises(SimulationAborted, match="must be an http"):
        simulate("127.0.0.1:3000")
    result = CliRunner().invoke(
        app, ["simulate", "--api-url", f"http://127.0.0.1:{_closed_port()}", "-d", "1"]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) <= 3


def test_unsustainable_rate_is_reported(database_url: str, start_gateway: GatewayFactory) -> None:
    seed_demo(database_url)
    gateway = start_gateway(database_url, concurrency=1)
    summary = simulate(gateway.url, seed=5, concurrency=1, rate=5000.0, duration=2.0)
    assert summary.lagging is not None and "lower --rate" in summary.lagging
    assert summary.achieved_rate < 0.9 * summary.asked_rate
    assert summary.visits_dropped > 0
    assert summary.server_errors == 0


def test_ctrl_c_stops_cleanly_with_the_summary(
    database_url: str, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    seed_demo(database_url)
    gateway = start_gateway(database_url)
    out = tmp_path / "summary.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hybridshop.cli.main", "simulate", "--api-url", gateway.url,
         "--rate", "40", "--seed", "2", "--summary-json", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "120"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ((orders,),) = query(database_url, "SELECT count(*) FROM orders")
            if orders > 0:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output
    assert "requests by route and status" in output and "stopped by Ctrl-C" in output
    summary = json.loads(out.read_text())
    ((orders,),) = query(database_url, "SELECT count(*) FROM orders")
    assert summary["stopped_by_user"] and summary["orders"] == orders > 0
