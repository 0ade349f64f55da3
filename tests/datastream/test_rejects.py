"""Values that used to stop the replicator for good: unchanged TOASTed text, numeric with a
negative scale, and values DuckDB cannot hold (rejected, recorded, and the stream goes on)."""

from __future__ import annotations

import json
import random
import string
from decimal import Decimal
from pathlib import Path

import duckdb
import psycopg2
from typer.testing import CliRunner

from conftest import create_database
from hybridshop.cli.main import app
from hybridshop.datastream.service import start_replicator
from hybridshop.db.embedded import EmbeddedPostgres

from .conftest import Stream, execute, wait_caught_up, wait_streaming


def _query(path: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_buying_a_product_with_a_long_description_keeps_it(stream: Stream) -> None:
    # 5,000 random characters (allowed by the schema) do not compress below TOAST's threshold:
    # stored out of line, so an UPDATE that does not touch it sends it as "unchanged".
    long = "".join(random.Random(7).choices(string.ascii_letters + string.digits, k=5000))
    execute(
        stream.dsn,
        ("INSERT INTO products (name, price, description) VALUES ('long', 10, %s)", (long,)),
    )
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=stream.config())
    try:
        wait_streaming(handle)
        execute(stream.dsn, "UPDATE products SET available = false WHERE name = 'long'")
        wait_caught_up(stream.dsn, stream.slot, handle=handle)
    finally:
        handle.stop()
    assert handle.status()["error"] is None
    rows = _query(stream.duckdb_path, "SELECT description, available FROM public_products")
    assert rows == [(long, False)]


def test_numeric_with_negative_scale_or_scale_above_precision(stream: Stream) -> None:
    stream.publication = "measures_pub"
    execute(
        stream.dsn,
        "CREATE TABLE measures (id int PRIMARY KEY, hundreds numeric(5,-2), tiny numeric(2,4))",
        "INSERT INTO measures VALUES (1, 1234567, 0.0012)",
        "CREATE PUBLICATION measures_pub FOR TABLE measures",
    )
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=stream.config())
    try:
        wait_streaming(handle)
        execute(stream.dsn, "INSERT INTO measures VALUES (2, 9999949, 0.0099)")
        wait_caught_up(stream.dsn, stream.slot, handle=handle)
    finally:
        handle.stop()
    path = stream.duckdb_path
    assert _query(path, "SELECT id, hundreds, tiny FROM public_measures ORDER BY id") == [
        (1, Decimal("1234600"), Decimal("0.0012")),
        (2, Decimal("9999900"), Decimal("0.0099")),
    ]
    types = dict(
        _query(
            path,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'public_measures'",
        )
    )
    assert types["hundreds"] == "DECIMAL(7,0)" and types["tiny"] == "DECIMAL(4,4)"


def test_values_duckdb_cannot_hold_are_rejected_recorded_and_the_stream_goes_on(
    stream: Stream, pg: EmbeddedPostgres
) -> None:
    stream.publication = "readings_pub"
    execute(
        stream.dsn,
        "CREATE TABLE readings (id int PRIMARY KEY, amount numeric(10,2), at timestamp, d date)",
        "INSERT INTO readings VALUES (1, 'NaN', '2026-01-01', '2026-01-01'), "
        "(2, 1.5, '294270-01-01 00:00:00', '2026-01-01'), "
        "(3, 2.5, '2026-01-01', '0044-03-15 BC'), (4, 3.5, '2026-01-01', '2026-01-01')",
        "CREATE PUBLICATION readings_pub FOR TABLE readings, products",
    )
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=stream.config())
    try:
        wait_streaming(handle)
        execute(
            stream.dsn,
            "INSERT INTO readings VALUES (5, 'NaN', '2026-01-02', '2026-01-02'), "
            "(6, 6.5, '2026-01-02', '2026-01-02')",
            "UPDATE readings SET at = '294270-01-01 00:00:00' WHERE id = 4",
            "INSERT INTO products (name, price) VALUES ('still flowing', 1)",
        )
        wait_caught_up(stream.dsn, stream.slot, handle=handle)
        # and later batches go through the fast path again
        execute(stream.dsn, "INSERT INTO readings VALUES (7, 7.5, '2026-01-03', '2026-01-03')")
        wait_caught_up(stream.dsn, stream.slot, handle=handle)
    finally:
        handle.stop()
    assert handle.status()["error"] is None
    assert handle.status()["rejected_changes"] == 5
    path = stream.duckdb_path
    assert _query(path, "SELECT id, amount FROM public_readings ORDER BY id") == [
        (4, Decimal("3.50")),  # the rejected UPDATE left the row as it was
        (6, Decimal("6.50")),
        (7, Decimal("7.50")),
    ]
    assert _query(path, "SELECT name FROM public_products") == [("still flowing",)]
    errors = _query(
        path,
        "SELECT source_table, key, column_name, value, reason, change_type, lsn "
        "FROM _datastream_errors ORDER BY lsn, key",
    )
    assert [(e[0], json.loads(str(e[1]))["id"], e[2], e[3], e[5]) for e in errors] == [
        ("public.readings", "1", "amount", "NaN", "INSERT"),
        ("public.readings", "2", "at", "294270-01-01 00:00:00", "INSERT"),
        ("public.readings", "3", "d", "0044-03-15 BC", "INSERT"),
        ("public.readings", "4", "at", "294270-01-01 00:00:00", "UPDATE-INSERT"),
        ("public.readings", "5", "amount", "NaN", "INSERT"),
    ]
    reasons = [str(e[4]) for e in errors]
    assert "NaN" in reasons[0] and "294247" in reasons[1] and "before year 1" in reasons[2]
    assert all("/" in str(e[6]) for e in errors)  # an LSN like 0/1A2B3C4

    runner = CliRunner()
    result = runner.invoke(
        app,
        ["replicate", "status", "--duckdb", str(path), "--slot", stream.slot],
        env={"DATABASE_URL": stream.dsn},
    )
    assert result.exit_code == 1, result.output
    assert "rejected changes     5" in result.output
    assert "not running (stopped" in result.output
    assert "0044-03-15 BC" in result.output


def test_status_against_database_url_never_migrates_or_seeds_it(
    pg: EmbeddedPostgres, tmp_path: Path
) -> None:
    dsn = create_database(pg, migrated=False)
    result = CliRunner().invoke(
        app,
        ["replicate", "status", "--duckdb", str(tmp_path / "w.duckdb")],
        env={"DATABASE_URL": dsn},
    )
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert cur.fetchone() == (0,)  # no migrations, no demo products
    conn.close()
    assert result.exit_code == 0, result.output
    assert "no replicator has run" in result.output
