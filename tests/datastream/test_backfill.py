"""The chunked backfill: COPY by heap page ranges inside the exported snapshot, loaded by
DuckDB while PostgreSQL copies the next range (real PostgreSQL, real DuckDB)."""

from __future__ import annotations

import itertools
import threading
import time

import duckdb
import psycopg2
import pytest

from hybridshop.datastream.service import start_replicator
from hybridshop.datastream.source import TypeCatalog, page_ranges, published_tables

from .conftest import (
    PRODUCT_COLUMNS,
    Stream,
    dest_rows,
    execute,
    replay_append_log,
    source_rows,
    wait_caught_up,
    wait_streaming,
)
from .test_exactly_once import _load

CHUNK_PAGES = 8


def _chunks(dsn: str, table: str, chunk_pages: int) -> list[tuple[int, int | None]]:
    conn = psycopg2.connect(dsn)
    try:
        tables = published_tables(conn, "hybridshop_pub", TypeCatalog())
        (source,) = [t for t in tables if t.name == table]
        return page_ranges(conn, source, chunk_pages)
    finally:
        conn.close()


def test_page_ranges_cover_the_table_once(stream: Stream) -> None:
    execute(
        stream.dsn,
        "INSERT INTO products (name, price) SELECT 'r' || g, 1 FROM generate_series(1, 3000) g",
    )
    # The publication exists once a replicator has checked its prerequisites.
    execute(stream.dsn, "CREATE PUBLICATION hybridshop_pub FOR TABLE products, orders")
    ranges = _chunks(stream.dsn, "products", CHUNK_PAGES)
    assert len(ranges) > 2
    assert ranges[0][0] == 0 and ranges[-1][1] is None  # open-ended: later rows are covered
    for (_, end), (start, _) in itertools.pairwise(ranges):
        assert end == start
    assert _chunks(stream.dsn, "products", 0) == [(0, None)]  # 0 = one COPY per table


def test_chunked_backfill_while_writes_continue(stream: Stream) -> None:
    """Updates move rows to other pages during the COPY: the snapshot still sees each row
    once, and the stream starts exactly where it ends (merge mode would show a duplicate
    backfill row as two rows with one id)."""
    execute(
        stream.dsn,
        "INSERT INTO products (name, price) SELECT 'b' || g, 1 FROM generate_series(1, 20000) g",
    )
    stop = threading.Event()
    writer = threading.Thread(target=_load, args=(stream.dsn, stop, 17), daemon=True)
    writer.start()
    handle = start_replicator(
        stream.dsn, stream.duckdb_path, config=stream.config(backfill_chunk_pages=CHUNK_PAGES)
    )
    try:
        wait_streaming(handle)
        reader = handle.reader()  # same DuckDB instance: the bulk-load settings are restored
        assert reader.execute("SELECT current_setting('preserve_insertion_order')").fetchone() == (
            True,
        )
        reader.close()
        time.sleep(0.5)
        stop.set()
        writer.join()
        wait_caught_up(stream.dsn, stream.slot, timeout=60, handle=handle)
    finally:
        stop.set()
        handle.stop()
    assert len(_chunks(stream.dsn, "products", CHUNK_PAGES)) > 10
    assert handle.status()["backfill_rows"] >= 20000
    src = source_rows(stream.dsn, "products", PRODUCT_COLUMNS)
    assert dest_rows(stream.duckdb_path, "public_products", PRODUCT_COLUMNS) == src


def test_chunked_append_only_backfill_keeps_values_and_sequence(stream: Stream) -> None:
    """Timestamps written in another time zone (and infinity) arrive as the same UTC
    instant; every backfill row gets its own change sequence number across chunks."""
    execute(
        stream.dsn,
        "SET TimeZone = 'America/New_York'",
        "INSERT INTO products (name, price, created_at, image_url) SELECT 'a' || g, g % 7 + 1, "
        "'2024-03-10 01:30:00.123456'::timestamptz + g * interval '17 minutes', "
        "CASE WHEN g % 3 = 0 THEN NULL ELSE 'https://x.test/' || g END "
        "FROM generate_series(1, 4000) g",
        "INSERT INTO products (name, price, created_at) VALUES ('never', 1, 'infinity'), "
        "('quoted, \"name\"\nwith a newline', 2, '1969-07-20 20:17:40-05')",
    )
    handle = start_replicator(
        stream.dsn,
        stream.duckdb_path,
        config=stream.config(mode="append-only", backfill_chunk_pages=CHUNK_PAGES),
    )
    try:
        wait_streaming(handle)
    finally:
        handle.stop()
    assert len(_chunks(stream.dsn, "products", CHUNK_PAGES)) > 3
    src = source_rows(stream.dsn, "products", PRODUCT_COLUMNS)
    assert replay_append_log(stream.duckdb_path, "public_products", PRODUCT_COLUMNS, "id") == src
    con = duckdb.connect(str(stream.duckdb_path), read_only=True)
    try:
        stats = con.execute(
            "SELECT count(*), count(DISTINCT datastream_metadata.change_sequence_number), "
            "count(DISTINCT datastream_metadata.uuid), "
            "list(DISTINCT datastream_metadata.change_type) FROM public_products"
        ).fetchone()
        infinite = con.execute(
            "SELECT count(*) FROM public_products WHERE isinf(created_at)"
        ).fetchone()
    finally:
        con.close()
    assert stats is not None
    rows, sequences, uuids, kinds = stats
    assert rows == len(src) == 4002
    assert sequences == rows and uuids == rows
    assert kinds == ["INSERT"]
    assert infinite == (1,)


def test_load_failure_cancels_the_copy_then_rejects_the_row(stream: Stream) -> None:
    """DuckDB refusing a value mid-backfill (here a BC timestamp) cancels the running COPY
    and commits nothing; the backfill then starts over with checked casts, loads every other
    row and records the refused one in ``_datastream_errors``."""
    execute(
        stream.dsn,
        "INSERT INTO products (name, price, created_at) VALUES ('old', 1, '0044-03-15 BC')",
        "INSERT INTO products (name, price) SELECT 'f' || g, 1 FROM generate_series(1, 20000) g",
    )
    handle = start_replicator(
        stream.dsn, stream.duckdb_path, config=stream.config(backfill_chunk_pages=CHUNK_PAGES)
    )
    try:
        wait_streaming(handle)
        assert not [t for t in threading.enumerate() if t.name == "backfill-copy"]
    finally:
        handle.stop()
    assert handle.status()["rejected_changes"] == 1
    con = duckdb.connect(str(stream.duckdb_path), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM public_products").fetchone() == (20000,)
        assert con.execute(
            "SELECT column_name, value, change_type FROM _datastream_errors"
        ).fetchall() == [("created_at", "0044-03-15 00:00:00 BC", "INSERT")]
    finally:
        con.close()


@pytest.mark.parametrize("chunk_pages", [0, CHUNK_PAGES])
def test_backfill_progress_reports_every_table(
    stream: Stream, chunk_pages: int, capsys: pytest.CaptureFixture[str]
) -> None:
    execute(
        stream.dsn,
        "INSERT INTO products (name, price) SELECT 'p' || g, 1 FROM generate_series(1, 2000) g",
    )
    handle = start_replicator(
        stream.dsn,
        stream.duckdb_path,
        config=stream.config(progress=True, backfill_chunk_pages=chunk_pages),
    )
    try:
        wait_streaming(handle)
    finally:
        handle.stop()
    out = capsys.readouterr().out
    assert "backfill public.products" in out and "backfill public.orders" in out
    # rich's DownloadColumn: the bytes copied for products (2,000 CSV rows: > 100 kB)
    line = next(x for x in out.splitlines() if "backfill public.products" in x)
    assert "kB" in line or "MB" in line, line
