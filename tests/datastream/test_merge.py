"""Backfill + streaming in merge mode against a seeded random workload."""

from __future__ import annotations

import random

import psycopg2

from hybridshop.datastream.service import start_replicator
from hybridshop.datastream.verify import VerifyOptions, verify

from .conftest import (
    ORDER_COLUMNS,
    PRODUCT_COLUMNS,
    Stream,
    dest_rows,
    execute,
    source_rows,
    wait_caught_up,
    wait_streaming,
)


def random_workload(dsn: str, seed: int, transactions: int) -> None:
    """Inserts, updates (incl. primary-key changes), deletes, truncates, multi-statement
    transactions and rollbacks on products and orders."""
    rng = random.Random(seed)
    conn = psycopg2.connect(dsn)
    cur = conn.cursor()
    for _ in range(transactions):
        for _ in range(rng.randint(1, 5)):
            op = rng.random()
            if op < 0.45:
                cur.execute(
                    "INSERT INTO products (name, price, category, description) "
                    "VALUES (%s, %s, %s, %s)",
                    (
                        f"p{rng.randint(0, 10**6)}",
                        f"{rng.randint(1, 99999) / 100:.2f}",
                        rng.choice(["books", "toys", "general"]),
                        "x" * rng.randint(0, 50),
                    ),
                )
            elif op < 0.7:
                cur.execute(
                    "UPDATE products SET price = price + 1, name = name || 'u' WHERE id IN "
                    "(SELECT id FROM products ORDER BY random() LIMIT 2)"
                )
            elif op < 0.78:
                # primary-key change: an identity column can only move to DEFAULT (a new id)
                cur.execute(
                    "UPDATE products SET id = DEFAULT WHERE id = (SELECT id FROM products "
                    "WHERE id NOT IN (SELECT product_id FROM orders) ORDER BY random() LIMIT 1)"
                )
            elif op < 0.88:
                cur.execute(
                    "INSERT INTO orders (product_id, price, currency, buyer_ref) SELECT id, price, "
                    "currency, 'b' FROM products WHERE available AND id NOT IN "
                    "(SELECT product_id FROM orders) ORDER BY random() LIMIT 1"
                )
                cur.execute(
                    "UPDATE products SET available = false WHERE id IN (SELECT product_id FROM orders)"
                )
            elif op < 0.97:
                cur.execute(
                    "DELETE FROM products WHERE id = (SELECT id FROM products WHERE id NOT IN "
                    "(SELECT product_id FROM orders) ORDER BY random() LIMIT 1)"
                )
            elif op < 0.985:
                cur.execute("TRUNCATE orders")
            else:
                cur.execute("TRUNCATE orders, products")
        if rng.random() < 0.15:
            conn.rollback()
        else:
            conn.commit()
    conn.close()


def assert_same(stream: Stream) -> None:
    src = source_rows(stream.dsn, "products", PRODUCT_COLUMNS)
    assert src, "the workload should leave rows behind"
    assert dest_rows(stream.duckdb_path, "public_products", PRODUCT_COLUMNS) == src
    assert dest_rows(stream.duckdb_path, "public_orders", ORDER_COLUMNS) == source_rows(
        stream.dsn, "orders", ORDER_COLUMNS
    )
    assert_verified(stream)


def assert_verified(stream: Stream) -> None:
    """`hybridshop replicate verify` agrees: a full match, every source row compared."""
    report = verify(stream.dsn, stream.duckdb_path, VerifyOptions(slot=stream.slot, chunk_rows=50))
    assert report.ok, report.as_dict()
    for table in report.tables:
        assert table.source_rows == table.warehouse_rows and table.unsettled == 0, table


def test_backfill_then_random_workload_mirrors_source(stream: Stream) -> None:
    random_workload(stream.dsn, seed=1, transactions=60)  # rows that only the backfill sees
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=stream.config())
    try:
        wait_streaming(handle)
        random_workload(stream.dsn, seed=2, transactions=300)
        execute(stream.dsn, "INSERT INTO products (name, price) VALUES ('last', 1)")
        wait_caught_up(stream.dsn, stream.slot)
        assert handle.is_alive(), handle.status()
    finally:
        handle.stop()
    assert_same(stream)
    status = handle.status()
    assert status["changes_applied"] > 300
    assert status["backfill_rows"] > 0
