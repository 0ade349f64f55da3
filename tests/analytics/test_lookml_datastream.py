"""End to end: the shop's PostgreSQL → the local Datastream → the LookML tiles.

The same hand-computed dataset as conftest.py, written into a real PostgreSQL (the shop's
schema), backfilled by the real replicator, then one more purchase streamed: the tiles read
the warehouse exactly as the replicator lays it out, and the fixture DDL matches it."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import duckdb
import psycopg2
import pytest

from conftest import create_database
from hybridshop.analytics.lookml import Project, compile_element, run_query
from hybridshop.analytics.warehouse import create_tables
from hybridshop.datastream.replicator import ReplicatorConfig
from hybridshop.datastream.service import start_replicator
from hybridshop.db.embedded import EmbeddedPostgres

from .conftest import ALL_DATES, ORDERS, PRODUCTS


def _wait(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    return con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
        "ORDER BY ordinal_position",
        [table],
    ).fetchall()


def _caught_up(dsn: str, slot: str) -> bool:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT pg_current_wal_lsn()")
        (target,) = cur.fetchone()
        cur.execute(
            "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots "
            "WHERE slot_name = %s",
            (target, slot),
        )
        row = cur.fetchone()
    conn.close()
    return bool(row and row[0])


@pytest.fixture
def source(pg: EmbeddedPostgres) -> str:
    dsn = create_database(pg)
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'")
        for _pid, name, category, price, created, available in PRODUCTS:
            cur.execute(
                "INSERT INTO products (name, category, price, created_at, available) "
                "VALUES (%s, %s, %s, %s, %s)",
                (name, category, price, created, available),
            )
        for _oid, product_id, price, purchased, channel in ORDERS:
            cur.execute(
                "INSERT INTO orders (product_id, price, currency, purchased_at, channel) "
                "VALUES (%s, %s, 'EUR', %s, %s)",
                (product_id, price, purchased, channel),
            )
    conn.close()
    return dsn


def test_tiles_on_the_replicated_warehouse(project: Project, source: str, tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    slot = f"a_{uuid.uuid4().hex[:10]}"
    handle = start_replicator(
        source,
        path,
        config=ReplicatorConfig(dsn=source, duckdb_path=path, slot=slot, heartbeat_interval_s=0.2),
    )
    try:
        _wait(lambda: handle.status()["streaming"] or not handle.is_alive())
        assert handle.is_alive(), handle.status()
        conn = psycopg2.connect(source)
        with conn, conn.cursor() as cur:  # the Pen sells now, through the stream
            cur.execute("UPDATE products SET available = false WHERE id = 4")
            cur.execute(
                "INSERT INTO orders (product_id, price, currency, purchased_at) "
                "VALUES (4, 5.00, 'EUR', '2024-01-11 10:00+00')"
            )
        conn.close()
        _wait(lambda: _caught_up(source, slot))
        con = handle.reader()
        try:
            con.execute("SET TimeZone = 'UTC'")

            def one(dashboard: str, element: str) -> object:
                compiled = compile_element(project, dashboard, element, ALL_DATES)
                (row,) = run_query(compiled, con).rows
                return next(iter(row.values()))

            assert float(one("sales", "revenue")) == 415.0  # 410 + the Pen
            assert one("sales", "orders") == 6
            assert one("catalog", "items_sold") == 6
            assert one("catalog", "sell_through_rate") == 1.0
            assert one("pipeline_health", "products_rows") == 6
            freshness = one("pipeline_health", "orders_freshness")
            assert isinstance(freshness, int) and 0 <= freshness < 60  # replicated seconds ago
            replicated = {t: _columns(con, t) for t in ("public_products", "public_orders")}
        finally:
            con.close()
    finally:
        handle.stop()
        conn = psycopg2.connect(source)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s AND NOT active",
                (slot,),
            )
        conn.close()
    fixture = duckdb.connect()
    create_tables(fixture)
    assert {t: _columns(fixture, t) for t in replicated} == replicated
