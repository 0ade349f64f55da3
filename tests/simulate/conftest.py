"""Fixtures for the simulator: the REAL local gateway running the REAL handlers over loopback
against a fresh PostgreSQL database per test (the way ``tests/api`` and ``tests/web`` start it),
optionally with the JWT authorizer on and the shop's identity as the only allowed caller."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from hybridshop.db.seed import seed_if_empty
from hybridshop.gateway.authorizer import JwtAuthorizerConfig
from hybridshop.gateway.server import GatewayConfig, LocalGateway
from hybridshop.settings import LOCAL_SERVICE_ACCOUNT as SERVICE_ACCOUNT

AUDIENCE = "hybridshop-api"

GatewayFactory = Callable[..., LocalGateway]


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[GatewayFactory]:
    started: list[LocalGateway] = []

    def start(database_url: str, *, auth: bool = False, concurrency: int = 4) -> LocalGateway:
        env = {"DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
        if auth:
            env["ALLOWED_CALLERS"] = SERVICE_ACCOUNT
        gateway = LocalGateway(
            GatewayConfig(
                port=0,
                env=env,
                concurrency=concurrency,
                authorizer=JwtAuthorizerConfig.local((AUDIENCE,)) if auth else None,
                local_issuer=auth,
                state_dir=tmp_path / f"state{len(started)}",
                quiet=True,
            )
        )
        gateway.start()
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


def seed_demo(dsn: str) -> int:
    """The demo catalog ``hybridshop up`` seeds (deterministic)."""
    conn = psycopg2.connect(dsn)
    try:
        return seed_if_empty(conn)
    finally:
        conn.close()


def query(dsn: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


def wait_caught_up(dsn: str, slot: str, handle: Any, timeout: float = 60.0) -> None:
    """Wait until the replication slot has confirmed the source's current WAL position."""
    (target,) = query(dsn, "SELECT pg_current_wal_lsn()")[0]
    deadline = time.monotonic() + timeout
    while True:
        rows = query(
            dsn,
            "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots "
            "WHERE slot_name = %s",
            (target, slot),
        )
        if rows and rows[0][0]:
            return
        assert handle.is_alive(), handle.status()
        assert time.monotonic() < deadline, f"replicator did not reach {target} in {timeout}s"
        time.sleep(0.05)
