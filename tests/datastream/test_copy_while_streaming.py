"""A table copied while the stream runs (added to the publication, or asked for with
`replicate backfill`) no longer pauses the other tables for the whole copy: it is loaded a
chunk at a time between batches, exactly once (its changes after the snapshot are held and
applied to the copy), and a stop in the middle leaves the warehouse consistent."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import psycopg2

from hybridshop.datastream.requests import request_backfill
from hybridshop.datastream.service import start_replicator

from .conftest import Stream, execute, source_rows, wait_caught_up, wait_streaming
from .test_merge import assert_verified

BIG_ROWS = 20_000  # ~500 heap pages: 500 chunks of one page each


def _query(path: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _wait(handle: Any, what: str, ready: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready(handle.status()):
        assert handle.is_alive(), handle.status()
        assert time.monotonic() < deadline, f"{what}: {handle.status()}"
        time.sleep(0.02)


class Writes:
    """Inserts, updates, key changes and deletes on ``big`` until stopped."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.next_id = 0

    def __enter__(self) -> Writes:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def _run(self) -> None:
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        n = 0
        with conn.cursor() as cur:
            cur.execute("SELECT max(id) + 1 FROM big")
            (self.next_id,) = cur.fetchone()
            while not self.stop.is_set():
                n += 1
                cur.execute("INSERT INTO big VALUES (%s, 'new')", (self.next_id,))
                self.next_id += 1
                cur.execute("UPDATE big SET pad = 'upd' || %s WHERE id = %s", (n, 7 * n % BIG_ROWS))
                cur.execute("DELETE FROM big WHERE id = %s", (13 * n % BIG_ROWS + 1,))
                cur.execute(
                    "UPDATE big SET id = %s WHERE id = %s", (self.next_id, 17 * n % BIG_ROWS + 2)
                )
                self.next_id += 1
                time.sleep(0.005)
        conn.close()


def _setup(stream: Stream) -> dict[str, Any]:
    execute(
        stream.dsn,
        "CREATE TABLE big (id int PRIMARY KEY, pad text)",
        f"INSERT INTO big SELECT g, repeat('x', 150) FROM generate_series(1, {BIG_ROWS}) g",
    )
    return {"backfill_chunk_pages": 1, "table_check_interval_s": 0.2}


def _assert_same(stream: Stream) -> None:
    path = stream.duckdb_path
    for table, columns in (("big", ["id", "pad"]), ("products", ["id", "name"])):
        src = source_rows(stream.dsn, table, columns)
        assert _query(path, f"SELECT id, {columns[1]} FROM public_{table} ORDER BY id") == src
    assert_verified(stream)


def test_added_table_is_copied_between_batches_and_a_stop_midway_is_safe(
    stream: Stream,
) -> None:
    config = stream.config(**_setup(stream))
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=config)
    try:
        wait_streaming(handle)
        with Writes(stream.dsn):
            execute(stream.dsn, "ALTER PUBLICATION hybridshop_pub ADD TABLE big")
            _wait(handle, "copy started", lambda s: s["copying"].get("public.big", 0) > 0)
            # another table's change lands while the copy goes on (it used to wait for the
            # whole copy)
            execute(stream.dsn, "INSERT INTO products (name, price) VALUES ('during copy', 1)")
            wait_caught_up(stream.dsn, stream.slot, timeout=60, handle=handle)
            status = handle.status()
            assert "public.big" in status["copying"], status
            live = handle.reader()
            try:
                names = live.execute("SELECT name FROM public_products").fetchall()
                # readers never see a half-copied table
                big = live.execute(
                    "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'public_big'"
                ).fetchone()
            finally:
                live.close()
            assert names == [("during copy",)]
            assert big is not None
            if big[0]:
                assert _query_live(handle, "SELECT count(*) FROM public_big") == 0
    finally:
        handle.stop()  # in the middle of the copy
    assert handle.status()["error"] is None
    # the next run copies it again from a new snapshot; the writes go on meanwhile
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=config)
    try:
        with Writes(stream.dsn):
            wait_streaming(handle)
            _wait(handle, "copy finished", lambda s: bool(s["backfilled"]))
        wait_caught_up(stream.dsn, stream.slot, timeout=60, handle=handle)
    finally:
        handle.stop()
    status = handle.status()
    assert status["error"] is None and not status["copying"]
    assert status["copy_longest_step_s"] > 0
    _assert_same(stream)
    # the shadow table is gone, and a stopped run left none behind
    tables = _query(stream.duckdb_path, "SELECT table_name FROM duckdb_tables()")
    assert not [t for (t,) in tables if str(t).startswith("__backfill_")]


def _query_live(handle: Any, sql: str) -> Any:
    live = handle.reader()
    try:
        row = live.execute(sql).fetchone()
    finally:
        live.close()
    return row[0]


def test_requested_copy_keeps_the_table_whole_and_fresh_until_it_is_swapped_in(
    stream: Stream,
) -> None:
    config = stream.config(**_setup(stream))
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=config)
    try:
        wait_streaming(handle)
        execute(stream.dsn, "ALTER PUBLICATION hybridshop_pub ADD TABLE big")
        _wait(handle, "first copy finished", lambda s: bool(s["backfilled"]))
        first = dict(handle.status()["backfilled"])
        with Writes(stream.dsn):
            request_backfill(stream.duckdb_path, {"public.big"})
            _wait(handle, "copy started", lambda s: s["copying"].get("public.big", 0) > 0)
            execute(stream.dsn, "UPDATE big SET pad = 'during copy' WHERE id = 5")
            wait_caught_up(stream.dsn, stream.slot, timeout=60, handle=handle)
            assert "public.big" in handle.status()["copying"]
            # the old copy stays whole, and its changes keep being applied
            assert _query_live(handle, "SELECT pad FROM public_big WHERE id = 5") == "during copy"
            assert _query_live(handle, "SELECT count(*) FROM public_big") > BIG_ROWS * 0.9
            _wait(handle, "copy finished", lambda s: s["backfilled"] != first)
        wait_caught_up(stream.dsn, stream.slot, timeout=60, handle=handle)
    finally:
        handle.stop()
    assert handle.status()["error"] is None
    _assert_same(stream)
