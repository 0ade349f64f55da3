"""Intervals arrive as PostgreSQL's text (IntervalStyle=postgres), each part signed on its own:
'-1 days +02:00:00' stopped the stream (DuckDB's cast refuses it). Every shape must land as
the exact months, days and microseconds the source holds, by backfill and by stream alike;
what DuckDB cannot hold (an infinite interval) is rejected into the errors table."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import psycopg2

from hybridshop.datastream.replicator import SOURCE_OPTIONS
from hybridshop.datastream.service import start_replicator
from hybridshop.datastream.typemap import ColumnType
from hybridshop.datastream.verify import duck_canonical, pg_canonical

from .conftest import Stream, execute, wait_caught_up, wait_streaming

# Inputs in every syntax PostgreSQL reads; what matters is the text it sends back.
SHAPES = [
    "-1 days +02:00:00",
    "1 mon -3 days",
    "-00:00:01",
    "-00:00:00.000001",
    "00:00:00",
    "1 year 2 mons 3 days 04:05:06.789",
    "-1 years -2 mons +3 days -04:05:06.000001",
    "1 day -00:00:00.5",
    "-1 mon +1 day",
    "1 mon 00:00:00.000001",
    "23:59:59.999999",
    "100 hours 1 second",  # hours beyond 24 stay hours
    "-2562047788:00:54.775807",  # the smallest microsecond part PostgreSQL reads
    "2562047788:00:54.775807",  # the largest
    "178000000 years",
    "-178000000 years",
    "2147483647 days",
    "-2147483648 days",
    "2147483647 mons",  # 178956970 years 7 mons
    "-2147483648 mons",
    "P1Y2M3DT4H5M6.5S",  # ISO 8601 input
    "P-1DT2H",
    "PT-0.000001S",
    "@ 1 day 2 hours ago",  # the verbose style, with "ago"
    "1.5 years",  # fractions of a unit become the next one down
    "-0.5 days",
    "1 week",
    "1 millennium",
    "3 days 25:00:00",
    "-3 days -25:00:00",
    "1 year -1 mon",
    "-1 year 1 mon -1 day 1 second",
]
INFINITE = ["infinity", "-infinity"]  # PostgreSQL 17+: DuckDB has no such interval


def _pg_values(dsn: str) -> dict[int, str]:
    conn = psycopg2.connect(dsn, options=SOURCE_OPTIONS)
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT id, {pg_canonical('iv', ColumnType('interval', 'INTERVAL', 'INTERVAL'))}, "
            "iv::text FROM spans WHERE iv IS NULL OR isfinite(iv) ORDER BY id"
        )
        rows = cur.fetchall()
    conn.close()
    return {int(r[0]): r[1] for r in rows}


def _duck_values(path: Path) -> dict[int, str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        expr = duck_canonical("iv", ColumnType("interval", "INTERVAL", "INTERVAL"))
        rows = con.execute(f"SELECT id, {expr} FROM public_spans ORDER BY id").fetchall()
    finally:
        con.close()
    return {int(r[0]): r[1] for r in rows}


def test_every_interval_shape_lands_exactly_by_backfill_and_stream(stream: Stream) -> None:
    stream.publication = "spans_pub"
    values = [*SHAPES, *INFINITE, None]
    rows = ", ".join(f"({i}, %s)" for i in range(len(values)))
    execute(
        stream.dsn,
        "CREATE TABLE spans (id int PRIMARY KEY, iv interval)",
        (f"INSERT INTO spans VALUES {rows}", tuple(values)),
        "CREATE PUBLICATION spans_pub FOR TABLE spans",
    )
    offset = 1000
    streamed = ", ".join(f"({offset + i}, %s)" for i in range(len(values)))
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=stream.config())
    try:
        wait_streaming(handle)
        execute(
            stream.dsn,
            (f"INSERT INTO spans VALUES {streamed}", tuple(values)),
            # an UPDATE's new image, and a key that moves, take the same path
            "UPDATE spans SET iv = iv - interval '1 mon' + interval '1 day' - interval '1 us' "
            "WHERE id = 1 AND isfinite(iv)",
            "UPDATE spans SET id = 2000 WHERE id = 1000",
        )
        wait_caught_up(stream.dsn, stream.slot, handle=handle)
    finally:
        handle.stop()
    assert handle.status()["error"] is None
    source = _pg_values(stream.dsn)
    assert _duck_values(stream.duckdb_path) == source
    # and the text the source sends really is of the mixed-sign kind this is about
    conn = psycopg2.connect(stream.dsn, options=SOURCE_OPTIONS)
    with conn.cursor() as cur:
        cur.execute("SELECT iv::text FROM spans WHERE id = 0")
        assert cur.fetchone() == ("-1 days +02:00:00",)
    conn.close()
    con = duckdb.connect(str(stream.duckdb_path), read_only=True)
    try:
        errors = con.execute(
            "SELECT key, column_name, value, reason, change_type FROM _datastream_errors "
            "ORDER BY lsn, key"
        ).fetchall()
    finally:
        con.close()
    infinite_ids = [len(SHAPES), len(SHAPES) + 1]
    expected = [
        *((str(i), "INSERT") for i in infinite_ids),
        *((str(offset + i), "INSERT") for i in infinite_ids),
    ]
    assert [(json.loads(str(e[0]))["id"], e[4]) for e in errors] == expected
    assert [e[2] for e in errors] == INFINITE * 2
    assert all(e[1] == "iv" and "infinite" in str(e[3]) for e in errors)
