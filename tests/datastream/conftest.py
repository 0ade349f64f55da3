"""Helpers for the datastream tests: a source database, a DuckDB file, and equality checks
between the source tables and their destination (real PostgreSQL, real DuckDB)."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg2
import pytest

from conftest import create_database
from hybridshop.datastream.replicator import ReplicatorConfig
from hybridshop.db.embedded import EmbeddedPostgres


@dataclass
class Stream:
    dsn: str
    duckdb_path: Path
    slot: str
    publication: str = "hybridshop_pub"

    def config(self, **overrides: Any) -> ReplicatorConfig:
        base: dict[str, Any] = {
            "dsn": self.dsn,
            "duckdb_path": self.duckdb_path,
            "slot": self.slot,
            "publication": self.publication,
            "heartbeat_interval_s": 0.2,
        }
        base.update(overrides)
        return ReplicatorConfig(**base)


def drop_slot(dsn: str, slot: str) -> None:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        for _ in range(50):
            cur.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,))
            row = cur.fetchone()
            if row is None:
                break
            if not row[0]:
                cur.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                break
            time.sleep(0.1)
    conn.close()


@pytest.fixture
def stream(pg: EmbeddedPostgres, tmp_path: Path) -> Iterator[Stream]:
    dsn = create_database(pg)
    s = Stream(
        dsn=dsn, duckdb_path=tmp_path / "warehouse.duckdb", slot=f"s_{uuid.uuid4().hex[:10]}"
    )
    yield s
    drop_slot(dsn, s.slot)


def execute(dsn: str, *statements: str | tuple[str, tuple[Any, ...]]) -> None:
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        for st in statements:
            if isinstance(st, tuple):
                cur.execute(st[0], st[1])
            else:
                cur.execute(st)
    conn.close()


def wait_caught_up(dsn: str, slot: str, timeout: float = 30.0, handle: Any = None) -> None:
    """Wait until the slot's confirmed flush LSN passes the source's current WAL position
    (the replicator acknowledges only what DuckDB has committed)."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT pg_current_wal_lsn()")
        (target,) = cur.fetchone()
        deadline = time.monotonic() + timeout
        while True:
            cur.execute(
                "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots "
                "WHERE slot_name = %s",
                (target, slot),
            )
            row = cur.fetchone()
            if row is not None and row[0]:
                break
            if handle is not None:
                assert handle.is_alive(), handle.status()
            if time.monotonic() > deadline:
                raise AssertionError(f"replicator did not reach {target} within {timeout}s")
            time.sleep(0.05)
    conn.close()


def wait_streaming(handle: Any, timeout: float = 60.0) -> None:
    """Wait until the backfill is committed and the stream has started."""
    deadline = time.monotonic() + timeout
    while not handle.status()["streaming"]:
        assert handle.is_alive(), handle.status()
        assert time.monotonic() < deadline, "replicator did not start streaming"
        time.sleep(0.05)


def norm(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, Decimal):
        return value.normalize()
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def source_rows(dsn: str, table: str, columns: list[str]) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cols = ", ".join(f'"{c}"' for c in columns)
        cur.execute(f"SELECT {cols} FROM {table} ORDER BY 1")
        rows = [tuple(norm(v) for v in r) for r in cur.fetchall()]
    conn.close()
    return rows


def dest_rows(path: Path, table: str, columns: list[str]) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        cols = ", ".join(f'"{c}"' for c in columns)
        rows = con.execute(f"SELECT {cols} FROM {table} ORDER BY 1").fetchall()
    finally:
        con.close()
    return [tuple(norm(v) for v in r) for r in rows]


def replay_append_log(
    path: Path, table: str, columns: list[str], key: str
) -> list[tuple[Any, ...]]:
    """Source state rebuilt from an append-only change log: latest change per key wins."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        cols = ", ".join(f'"{c}"' for c in columns)
        rows = con.execute(
            f"SELECT {cols} FROM (SELECT * FROM {table} QUALIFY row_number() OVER (PARTITION BY "
            f'"{key}" ORDER BY datastream_metadata.change_sequence_number DESC) = 1) '
            "WHERE datastream_metadata.change_type IN ('INSERT', 'UPDATE-INSERT') ORDER BY 1"
        ).fetchall()
    finally:
        con.close()
    return [tuple(norm(v) for v in r) for r in rows]


PRODUCT_COLUMNS = [
    "id",
    "name",
    "description",
    "category",
    "price",
    "currency",
    "image_url",
    "available",
    "created_at",
    "updated_at",
]
ORDER_COLUMNS = [
    "id",
    "product_id",
    "price",
    "currency",
    "purchased_at",
    "buyer_ref",
    "channel",
    "idempotency_key",
]
