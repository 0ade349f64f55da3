"""History written by the backfill reaches the warehouse through the replicator (CDC), as live
traffic does: same rows, same past timestamps, in Datastream's BigQuery layout in DuckDB."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date
from decimal import Decimal
from pathlib import Path

import psycopg2

from conftest import create_database
from hybridshop.datastream.replicator import ReplicatorConfig
from hybridshop.datastream.service import start_replicator
from hybridshop.db.embedded import EmbeddedPostgres
from hybridshop.simulate.backfill import BackfillConfig, backfill

from .conftest import query, wait_caught_up


def test_90_days_of_history_reach_the_warehouse(pg: EmbeddedPostgres, tmp_path: Path) -> None:
    dsn = create_database(pg)
    slot = f"sim_{uuid.uuid4().hex[:10]}"
    warehouse = tmp_path / "warehouse.duckdb"
    handle = start_replicator(
        dsn,
        warehouse,
        config=ReplicatorConfig(
            dsn=dsn, duckdb_path=warehouse, slot=slot, heartbeat_interval_s=0.2
        ),
    )
    try:
        deadline = time.monotonic() + 60
        while not handle.status().get("streaming"):
            assert handle.is_alive(), handle.status()
            assert time.monotonic() < deadline, "replicator did not start streaming"
            time.sleep(0.05)
        conn = psycopg2.connect(dsn)
        result = backfill(
            conn, BackfillConfig(days=90, seed=21, orders_per_day=60, until=date(2026, 10, 1))
        )
        conn.close()
        wait_caught_up(dsn, slot, handle)
        source = query(
            dsn,
            "SELECT (SELECT count(*) FROM orders), (SELECT sum(price) FROM orders), "
            "(SELECT min(purchased_at) FROM orders), (SELECT max(purchased_at) FROM orders), "
            "(SELECT count(*) FROM products), (SELECT count(*) FROM products WHERE NOT available)",
        )[0]
        reader = handle.reader()
        try:
            dest = reader.execute(
                "SELECT (SELECT count(*) FROM public_orders), (SELECT sum(price) FROM public_orders), "
                "(SELECT min(purchased_at) FROM public_orders), "
                "(SELECT max(purchased_at) FROM public_orders), "
                "(SELECT count(*) FROM public_products), "
                "(SELECT count(*) FROM public_products WHERE NOT available)"
            ).fetchone()
        finally:
            reader.close()
    finally:
        handle.stop()
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        conn.close()
    assert source[0] == result.orders > 90 * 40
    assert dest is not None
    assert dest[0] == source[0] and Decimal(str(dest[1])) == source[1] == result.revenue
    assert _utc(dest[2]) == source[2] and _utc(dest[3]) == source[3]
    assert source[2].date() == date(2026, 7, 3)  # 90 days before --until
    assert dest[4:] == source[4:]


def _utc(value):  # type: ignore[no-untyped-def]
    return value if value.tzinfo else value.replace(tzinfo=UTC)
