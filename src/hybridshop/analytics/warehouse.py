"""The two Datastream tables the Looker project reads, for fixtures and the benchmark.

The DDL is what the local Datastream (``datastream/destination.py``, merge mode, single
dataset) creates for the shop's ``products`` and ``orders`` tables: PostgreSQL types mapped as
Datastream maps them to BigQuery, stored as their DuckDB equivalents, plus the
``datastream_metadata`` STRUCT of a table with a primary key (uuid, source_timestamp in epoch
milliseconds). ``tests/analytics`` checks it against a table the real replicator writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

METADATA = "STRUCT(uuid VARCHAR, source_timestamp BIGINT)"

PRODUCTS_DDL = (
    "CREATE TABLE IF NOT EXISTS public_products (id BIGINT, name VARCHAR, description VARCHAR, "
    "category VARCHAR, price DECIMAL(10,2), currency VARCHAR, image_url VARCHAR, "
    "available BOOLEAN, created_at TIMESTAMP, updated_at TIMESTAMP, "
    f"datastream_metadata {METADATA})"
)
ORDERS_DDL = (
    "CREATE TABLE IF NOT EXISTS public_orders (id BIGINT, product_id BIGINT, "
    "price DECIMAL(10,2), currency VARCHAR, purchased_at TIMESTAMP, buyer_ref VARCHAR, "
    "channel VARCHAR, idempotency_key VARCHAR, idempotency_caller VARCHAR, "
    f"request_fingerprint VARCHAR, datastream_metadata {METADATA})"
)


def create_tables(con: Any) -> None:
    con.execute(PRODUCTS_DDL)
    con.execute(ORDERS_DDL)


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def insert_products(con: Any, rows: Iterable[Sequence[Any]]) -> None:
    """Rows of (id, name, category, price, created_at (UTC, naive), available, source ts)."""
    for pid, name, category, price, created, available, source in rows:
        con.execute(
            "INSERT INTO public_products VALUES (?, ?, '', ?, ?, 'EUR', NULL, ?, ?, ?, "
            "{'uuid': uuid()::VARCHAR, 'source_timestamp': ?})",
            [pid, name, category, price, available, created, created, _ms_of(source)],
        )


def insert_orders(con: Any, rows: Iterable[Sequence[Any]]) -> None:
    """Rows of (id, product_id, price, purchased_at (UTC, naive), channel, source ts)."""
    for oid, product_id, price, purchased, channel, source in rows:
        con.execute(
            "INSERT INTO public_orders VALUES (?, ?, ?, 'EUR', ?, NULL, ?, NULL, '', NULL, "
            "{'uuid': uuid()::VARCHAR, 'source_timestamp': ?})",
            [oid, product_id, price, purchased, channel, _ms_of(source)],
        )


def _ms_of(value: datetime | int) -> int:
    if isinstance(value, int):
        return value
    from datetime import UTC

    return _ms(value.replace(tzinfo=UTC) if value.tzinfo is None else value)


CATEGORIES = ("books", "electronics", "fashion", "garden", "home", "music", "sports", "toys")


def generate(con: Any, orders: int = 1_000_000, days: int = 180, seed: float = 0.42) -> None:
    """A synthetic warehouse: ``orders`` orders over ``days`` days, each for its own product
    (a product sells once), plus 20 % more products that are still listed. Vectorised in
    DuckDB (a few seconds for a million orders)."""
    create_tables(con)
    products = int(orders * 1.2)
    con.execute(f"SELECT setseed({seed})")
    cats = "[" + ", ".join(f"'{c}'" for c in CATEGORIES) + "]"
    con.execute(
        f"""
        INSERT INTO public_products
        SELECT i, 'Product ' || i, '', {cats}[1 + CAST(hash(i) % {len(CATEGORIES)} AS BIGINT)],
               CAST(round(5 + CAST(hash(i * 7) % 49500 AS BIGINT) / 100.0, 2) AS DECIMAL(10,2)), 'EUR', NULL,
               i > {orders},
               TIMESTAMP '2026-01-01' - INTERVAL ({days} * 86400) SECOND
                   + INTERVAL (CAST(i AS BIGINT) * {days} * 86400 // {products}) SECOND,
               TIMESTAMP '2026-01-01',
               {{'uuid': 'u' || i, 'source_timestamp': 1767225600000 - (i % 86400) * 1000}}
        FROM range(1, {products} + 1) t(i)
        """
    )
    con.execute(
        f"""
        INSERT INTO public_orders
        SELECT i, i, p.price, 'EUR',
               p.created_at + INTERVAL (1 + CAST(hash(i * 13) % 259200 AS BIGINT)) SECOND,
               NULL, ['api', 'web', 'simulator'][1 + CAST(hash(i) % 3 AS BIGINT)], NULL, '', NULL,
               {{'uuid': 'o' || i, 'source_timestamp': 1767225600000 - (i % 86400) * 1000}}
        FROM range(1, {orders} + 1) t(i) JOIN public_products p ON p.id = i
        """
    )
