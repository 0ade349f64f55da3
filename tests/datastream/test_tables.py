"""Which tables and rows the warehouse holds: tables added to the publication (while streaming
or while stopped) are backfilled with no gap or duplicate and without copying the others again;
`replicate backfill TABLE`; replica identity FULL and key-less tables; publication column lists
and row filters."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import psycopg2
from typer.testing import CliRunner

from hybridshop.cli.main import app
from hybridshop.datastream.service import start_replicator

from .conftest import Stream, execute, source_rows, wait_caught_up, wait_streaming


def _query(path: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _wait_rows(handle: Any, sql: str, expected: int) -> None:
    """Wait until ``sql`` (a count) on the live warehouse reaches ``expected``."""
    deadline = time.monotonic() + 60
    while True:
        live = handle.reader()
        try:
            (count,) = live.execute(sql).fetchone()
        except duckdb.CatalogException:
            count = 0  # not created yet
        finally:
            live.close()
        if count >= expected:
            return
        assert handle.is_alive() and time.monotonic() < deadline, handle.status()
        time.sleep(0.1)


def test_table_added_while_streaming_is_backfilled_exactly_once(stream: Stream) -> None:
    execute(
        stream.dsn,
        "INSERT INTO products (name, price) SELECT 'p' || g, 1 FROM generate_series(1, 50) g",
        # key-less and insert-only (like pgbench_history): a duplicate or a gap would show
        "CREATE TABLE history (n int, note text)",
        "INSERT INTO history SELECT g, 'before' FROM generate_series(1, 2000) g",
    )
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=stream.config())
    stop = threading.Event()

    def writer() -> None:
        conn = psycopg2.connect(stream.dsn)
        conn.autocommit = True
        n = 2000
        with conn.cursor() as cur:
            while not stop.is_set():
                cur.execute(
                    "INSERT INTO history SELECT g, 'during' FROM generate_series(%s, %s) g",
                    (n + 1, n + 20),
                )
                n += 20
        conn.close()

    try:
        wait_streaming(handle)
        live = handle.reader()
        uuids = live.execute("SELECT datastream_metadata.uuid FROM public_products").fetchall()
        live.close()
        thread = threading.Thread(target=writer)
        thread.start()
        try:
            execute(stream.dsn, "ALTER PUBLICATION hybridshop_pub ADD TABLE history")
            _wait_rows(handle, "SELECT count(*) FROM public_history", 2000)
        finally:
            stop.set()
            thread.join()
        wait_caught_up(stream.dsn, stream.slot, handle=handle)
        live = handle.reader()
        after = live.execute("SELECT datastream_metadata.uuid FROM public_products").fetchall()
        live.close()
    finally:
        handle.stop()
    assert handle.status()["error"] is None
    assert sorted(after) == sorted(uuids)  # products were not copied again
    path = stream.duckdb_path
    src = source_rows(stream.dsn, "history", ["n", "note"])
    dst = _query(path, "SELECT n, note FROM public_history ORDER BY n")
    assert len(src) > 2000 and dst == src  # no gap, no duplicate
    # key-less: append layout with is_deleted
    types = dict(
        _query(
            path,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'public_history'",
        )
    )
    assert "is_deleted" in types["datastream_metadata"]


def test_table_added_while_stopped_appears_and_backfill_command(stream: Stream) -> None:
    execute(stream.dsn, "CREATE TABLE extra (id int PRIMARY KEY, v text)")
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=stream.config())
    try:
        wait_streaming(handle)
    finally:
        handle.stop()
    execute(
        stream.dsn,
        "INSERT INTO extra SELECT g, 'v' || g FROM generate_series(1, 300) g",
        "ALTER PUBLICATION hybridshop_pub ADD TABLE extra",
    )
    path = stream.duckdb_path
    handle = start_replicator(stream.dsn, path, config=stream.config())
    try:
        wait_streaming(handle)
        execute(stream.dsn, "UPDATE extra SET v = 'changed' WHERE id <= 10")
        wait_caught_up(stream.dsn, stream.slot, handle=handle)
        # `replicate backfill` while the replicator runs: asked through the requests file
        runner = CliRunner()
        env = {"DATABASE_URL": stream.dsn}
        args = ["replicate", "backfill", "extra", "--duckdb", str(path), "--slot", stream.slot]
        result = runner.invoke(app, [*args, "--timeout", "60"], env=env)
        assert result.exit_code == 0, result.output
        assert "asked the running replicator" in result.output
        assert "backfilled public.extra" in result.output
        execute(stream.dsn, "DELETE FROM extra WHERE id = 300")
        wait_caught_up(stream.dsn, stream.slot, handle=handle)
    finally:
        handle.stop()
    assert handle.status()["error"] is None
    assert _query(path, "SELECT id, v FROM public_extra ORDER BY id") == source_rows(
        stream.dsn, "extra", ["id", "v"]
    )
    # without a replicator: done in the command itself; a table not published is an error
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    assert "backfilled public.extra: 299 rows" in result.output
    result = runner.invoke(app, [*args[:2], "nosuch", *args[3:]], env=env)
    assert result.exit_code == 2 and "error: public.nosuch not published" in result.output


def test_stopped_table_resumes_after_replicate_backfill(stream: Stream) -> None:
    execute(
        stream.dsn,
        "INSERT INTO products (name, price, image_url) VALUES ('a', 1, 'https://x/a.png')",
    )
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=stream.config())
    try:
        wait_streaming(handle)
        execute(
            stream.dsn,
            "ALTER TABLE products DROP COLUMN image_url",
            "INSERT INTO products (name, price) VALUES ('b', 2)",
        )
        wait_caught_up(stream.dsn, stream.slot, handle=handle)
        assert "public.products" in handle.status()["stopped_tables"]
    finally:
        handle.stop()
    runner = CliRunner()
    env = {"DATABASE_URL": stream.dsn}
    path = stream.duckdb_path
    result = runner.invoke(
        app, ["replicate", "status", "--duckdb", str(path), "--slot", stream.slot], env=env
    )
    assert result.exit_code == 1 and "stopped table" in result.output, result.output
    result = runner.invoke(
        app,
        ["replicate", "backfill", "public.products", "--duckdb", str(path), "--slot", stream.slot],
        env=env,
    )
    assert result.exit_code == 0, result.output
    execute(stream.dsn, "INSERT INTO products (name, price) VALUES ('c', 3)")  # after the copy
    handle = start_replicator(stream.dsn, path, config=stream.config())
    try:
        wait_streaming(handle)
        execute(stream.dsn, "UPDATE products SET price = 9 WHERE name = 'a'")
        wait_caught_up(stream.dsn, stream.slot, handle=handle)
        assert handle.status()["stopped_tables"] == {}
    finally:
        handle.stop()
    cols = ["id", "name", "price"]
    assert _query(path, "SELECT id, name, price FROM public_products ORDER BY id") == [
        tuple(r) for r in source_rows(stream.dsn, "products", cols)
    ]
    names = {
        r[0]
        for r in _query(
            path,
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'public_products'",
        )
    }
    assert "image_url" not in names


def test_replica_identity_full_one_layout_across_restarts(stream: Stream) -> None:
    stream.publication = "full_pub"
    execute(
        stream.dsn,
        "CREATE TABLE keyed (id int PRIMARY KEY, v text)",
        "ALTER TABLE keyed REPLICA IDENTITY FULL",
        "CREATE TABLE twins (a int, b text)",
        "ALTER TABLE twins REPLICA IDENTITY FULL",
        "INSERT INTO keyed VALUES (1, 'a'), (2, 'b')",
        "INSERT INTO twins VALUES (1, 'same'), (1, 'same')",
        "CREATE PUBLICATION full_pub FOR TABLE keyed, twins",
    )
    path = stream.duckdb_path
    for round_ in range(2):  # the second run is a restart: same layout, same rule
        handle = start_replicator(stream.dsn, path, config=stream.config())
        try:
            wait_streaming(handle)
            if round_ == 0:
                execute(
                    stream.dsn,
                    "UPDATE keyed SET v = 'a2' WHERE id = 1",
                    "INSERT INTO twins VALUES (2, 'x'), (2, 'x')",
                )
            else:
                execute(
                    stream.dsn,
                    "UPDATE keyed SET v = 'a3' WHERE id = 1",
                    "DELETE FROM keyed WHERE id = 2",
                    "DELETE FROM twins WHERE ctid = (SELECT min(ctid) FROM twins WHERE a = 1)",
                )
            wait_caught_up(stream.dsn, stream.slot, handle=handle)
        finally:
            handle.stop()
        assert handle.status()["error"] is None
    assert _query(path, "SELECT id, v FROM public_keyed ORDER BY id") == [(1, "a3")]
    meta = _query(
        path,
        "SELECT data_type FROM information_schema.columns WHERE "
        "table_name = 'public_keyed' AND column_name = 'datastream_metadata'",
    )
    assert "is_deleted" not in str(meta[0][0])  # merge by primary key
    # key-less FULL: identical rows stay two rows; deleting one marks one deleted
    twins = _query(
        path,
        "SELECT a, b, datastream_metadata.is_deleted FROM public_twins ORDER BY a, 3",
    )
    assert twins == [
        (1, "same", False),
        (1, "same", False),
        (1, "same", True),
        (2, "x", False),
        (2, "x", False),
    ]


def test_backfill_copies_only_what_the_publication_publishes(stream: Stream) -> None:
    stream.publication = "part_pub"
    execute(
        stream.dsn,
        "CREATE TABLE accounts (id int PRIMARY KEY, name text, secret text, region text)",
        "INSERT INTO accounts VALUES (1, 'a', 's1', 'eu'), (2, 'b', 's2', 'us'), "
        "(3, 'c', 's3', 'eu')",
        "CREATE PUBLICATION part_pub FOR TABLE accounts (id, name, region) WHERE (id % 2 = 1)",
    )
    path = stream.duckdb_path
    handle = start_replicator(stream.dsn, path, config=stream.config())
    try:
        wait_streaming(handle)
        execute(
            stream.dsn,
            "INSERT INTO accounts VALUES (4, 'd', 's4', 'eu'), (5, 'e', 's5', 'us')",
            "UPDATE accounts SET id = 8 WHERE id = 3",  # leaves the filter: a delete
        )
        wait_caught_up(stream.dsn, stream.slot, handle=handle)
    finally:
        handle.stop()
    assert _query(
        path, "SELECT * EXCLUDE (datastream_metadata) FROM public_accounts ORDER BY id"
    ) == [(1, "a", "eu"), (5, "e", "us")]
