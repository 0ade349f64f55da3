"""Mappings that used to differ by path or lose information: arrays (backfill = stream),
timetz normalised to UTC, domains as their base type, generated columns as published."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import duckdb

from hybridshop.datastream.service import start_replicator

from .conftest import Stream, execute, wait_caught_up, wait_streaming

ROW = (
    "ARRAY['{\"a\": 1}', '[2, \"x\"]']::jsonb[], "
    "ARRAY['2026-01-02 03:04:05.5+02', '2026-06-30 23:59:59+00']::timestamptz[], "
    "ARRAY['2026-01-02 03:04:05']::timestamp[], ARRAY[1.50, NULL]::numeric[], "
    "ARRAY['a b', 'c\"d']::text[], ARRAY[true, false], ARRAY['2026-01-02']::date[], "
    "'10:00:00+02', 7, 12.345, 3"
)


def _query(path: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_arrays_timetz_domains_and_generated_columns_agree_by_both_paths(stream: Stream) -> None:
    stream.publication = "types_pub"
    execute(
        stream.dsn,
        "CREATE DOMAIN qty AS int CHECK (VALUE >= 0)",
        "CREATE DOMAIN money2 AS numeric(10,2)",
        "CREATE TABLE typed (id int PRIMARY KEY, js jsonb[], tz timestamptz[], ts timestamp[], "
        "nums numeric[], words text[], flags bool[], days date[], t timetz, q qty, m money2, "
        "base int, twice int GENERATED ALWAYS AS (base * 2) STORED)",
        f"INSERT INTO typed VALUES (1, {ROW})",
        "CREATE PUBLICATION types_pub FOR TABLE typed WITH (publish_generated_columns = stored)",
    )
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=stream.config())
    try:
        wait_streaming(handle)
        execute(stream.dsn, f"INSERT INTO typed VALUES (2, {ROW})")
        wait_caught_up(stream.dsn, stream.slot, handle=handle)
    finally:
        handle.stop()
    path = stream.duckdb_path
    rows = _query(path, "SELECT * EXCLUDE (id, datastream_metadata) FROM public_typed ORDER BY id")
    backfilled, streamed = rows
    assert backfilled == streamed  # one representation, whichever path wrote it
    js, tz, ts, nums, words, flags, days, t, q, m, base, twice = backfilled
    assert json.loads(str(js)) == [{"a": 1}, [2, "x"]]  # JSON values, not strings of JSON
    assert json.loads(str(tz)) == ["2026-01-02T01:04:05.5+00:00", "2026-06-30T23:59:59+00:00"]
    assert json.loads(str(ts)) == ["2026-01-02T03:04:05"]
    assert json.loads(str(nums)) == [1.5, None] and json.loads(str(words)) == ["a b", 'c"d']
    assert json.loads(str(flags)) == [True, False] and json.loads(str(days)) == ["2026-01-02"]
    assert t == dt.time(8, 0)  # 10:00+02 is 08:00 UTC: BigQuery's TIME has no zone
    assert q == 7 and m == Decimal("12.35") and (base, twice) == (3, 6)
    types = dict(
        _query(
            path,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'public_typed'",
        )
    )
    assert types["q"] == "BIGINT" and types["m"] == "DECIMAL(10,2)"  # the domains' base types
    assert types["twice"] == "BIGINT"
