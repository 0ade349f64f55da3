"""Schema changes are compared with the warehouse on every Relation message (after a restart
too, and before a table's first change): followed when every value stays exact, otherwise
that table alone stops (the others keep flowing) until `replicate backfill` copies it again."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb

from hybridshop.datastream.service import start_replicator

from .conftest import Stream, execute, wait_caught_up, wait_streaming


def _query(path: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _run(stream: Stream, *statements: str) -> dict[str, object]:
    """Start the replicator, run ``statements`` once it streams, wait, stop; its status."""
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=stream.config())
    try:
        wait_streaming(handle)
        if statements:
            execute(stream.dsn, *statements)
        wait_caught_up(stream.dsn, stream.slot, handle=handle)
    finally:
        handle.stop()
    status = handle.status()
    assert status["error"] is None, status
    return status


def test_type_changes_are_compared_after_a_restart_and_narrowing_stops_only_that_table(
    stream: Stream,
) -> None:
    stream.publication = "drift_pub"
    execute(
        stream.dsn,
        "CREATE TABLE prices (id int PRIMARY KEY, amount numeric(10,2))",
        "CREATE TABLE notes (id int PRIMARY KEY, body text)",
        "CREATE PUBLICATION drift_pub FOR TABLE prices, notes",
    )
    _run(stream, "INSERT INTO prices VALUES (1, 1.23)")
    # while the replicator is stopped: a widening the layout can follow
    execute(
        stream.dsn,
        "ALTER TABLE prices ALTER COLUMN amount TYPE numeric(12,4)",
        "INSERT INTO prices VALUES (2, 3.1234)",
    )
    _run(stream)
    path = stream.duckdb_path
    assert _query(path, "SELECT id, amount FROM public_prices ORDER BY id") == [
        (1, Decimal("1.2300")),
        (2, Decimal("3.1234")),  # not 3.12
    ]
    types = dict(
        _query(
            path,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'public_prices'",
        )
    )
    assert types["amount"] == "DECIMAL(12,4)"
    # a narrowing, arriving before the table's first change after a restart
    execute(
        stream.dsn,
        "ALTER TABLE prices ALTER COLUMN amount TYPE numeric(6,1)",
        "INSERT INTO prices VALUES (3, 5.55)",
        "INSERT INTO notes VALUES (1, 'flows')",
    )
    status = _run(stream, "INSERT INTO notes VALUES (2, 'still flows')")
    stopped = status["stopped_tables"]
    assert isinstance(stopped, dict) and list(stopped) == ["public.prices"]
    assert "DECIMAL(12,4) to DECIMAL(6,1)" in stopped["public.prices"]
    assert "hybridshop replicate backfill public.prices" in stopped["public.prices"]
    assert _query(path, "SELECT id FROM public_prices ORDER BY id") == [(1,), (2,)]  # never 5.6
    assert _query(path, "SELECT id FROM public_notes ORDER BY id") == [(1,), (2,)]
    # stays stopped across a restart (its skipped changes are not silently resumed)
    status = _run(stream, "INSERT INTO prices VALUES (4, 1.0)", "INSERT INTO notes VALUES (3, 'x')")
    assert "public.prices" in status["stopped_tables"]  # type: ignore[operator]
    assert _query(path, "SELECT id FROM public_prices ORDER BY id") == [(1,), (2,)]
    assert _query(path, "SELECT count(*) FROM public_notes") == [(3,)]


def test_dropped_column_stops_the_table_instead_of_leaving_nulls(stream: Stream) -> None:
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=stream.config())
    try:
        wait_streaming(handle)
        execute(
            stream.dsn,
            "INSERT INTO products (id, name, price, image_url) OVERRIDING SYSTEM VALUE "
            "VALUES (1, 'a', 1, 'http://a')",
        )
        wait_caught_up(stream.dsn, stream.slot, handle=handle)
        execute(
            stream.dsn,
            "ALTER TABLE products DROP COLUMN image_url",
            "INSERT INTO products (id, name, price) OVERRIDING SYSTEM VALUE VALUES (2, 'b', 2)",
            "INSERT INTO orders (product_id, price, currency) VALUES (1, 1, 'EUR')",
        )
        wait_caught_up(stream.dsn, stream.slot, handle=handle)
        assert handle.is_alive()
        status = handle.status()
    finally:
        handle.stop()
    assert "public.products" in status["stopped_tables"]
    assert "dropped, renamed or reordered" in status["stopped_tables"]["public.products"]
    path = stream.duckdb_path
    assert _query(path, "SELECT id, image_url FROM public_products") == [(1, "http://a")]
    assert _query(path, "SELECT count(*) FROM public_orders") == [(1,)]
