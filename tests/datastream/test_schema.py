"""Types, TOAST, tables without a key, schema evolution, layouts, append-only replay,
and misconfigurations that must fail with the fix in the message."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from hybridshop.datastream.replicator import Replicator
from hybridshop.datastream.service import start_replicator
from hybridshop.datastream.source import PrerequisiteError
from hybridshop.db.embedded import EmbeddedPostgres, free_port

from .conftest import (
    ORDER_COLUMNS,
    PRODUCT_COLUMNS,
    Stream,
    execute,
    replay_append_log,
    source_rows,
    wait_caught_up,
    wait_streaming,
)
from .test_merge import random_workload


def _query(path: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _extra_tables(stream: Stream) -> None:
    stream.publication = "extra_pub"
    execute(
        stream.dsn,
        "CREATE TABLE docs (id int PRIMARY KEY, title text, body text, tags text[], "
        "nums int[], meta jsonb, amount numeric, exact numeric(12,4), at timestamptz, "
        "d date, blob bytea, ok boolean)",
        "ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL",
        "CREATE TABLE events (kind text, payload text)",
        "ALTER TABLE events REPLICA IDENTITY FULL",
        "CREATE PUBLICATION extra_pub FOR TABLE docs, events, products",
    )


def test_types_toast_nopk_and_added_column(stream: Stream) -> None:
    _extra_tables(stream)
    big = "x" * 200_000  # stored out of line (TOAST)
    execute(
        stream.dsn,
        (
            "INSERT INTO docs VALUES (1, 'a', %s, '{\"a b\",c}', '{1,2}', '{\"k\": [1, 2]}', "
            "123456789.123456789, 12.5, '2026-01-02 03:04:05+02', '2026-01-02', '\\x0102', true)",
            (big,),
        ),
    )
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=stream.config())
    try:
        wait_streaming(handle)
        execute(
            stream.dsn,
            ("INSERT INTO docs (id, title, body) VALUES (2, 'b', %s)", (big + "y",)),
            "UPDATE docs SET title = 'a2' WHERE id = 1",  # body not touched: sent as 'u'
            "UPDATE docs SET title = 'b2' WHERE id = 2",
            "INSERT INTO events VALUES ('k1', 'p1'), ('k2', 'p2')",
            "UPDATE events SET payload = 'p1b' WHERE kind = 'k1'",
            "DELETE FROM events WHERE kind = 'k2'",
            "ALTER TABLE docs ADD COLUMN note text",
            "INSERT INTO docs (id, title, note) VALUES (3, 'c', 'added')",
        )
        wait_caught_up(stream.dsn, stream.slot)
        assert handle.is_alive(), handle.status()
    finally:
        handle.stop()
    path = stream.duckdb_path
    rows = _query(path, "SELECT id, title, length(body), note FROM public_docs ORDER BY id")
    assert rows == [(1, "a2", 200_000, None), (2, "b2", 200_001, None), (3, "c", None, "added")]
    (doc,) = _query(
        path,
        'SELECT tags, nums, meta, amount, exact, "at", d, blob, ok FROM public_docs WHERE id = 1',
    )
    assert json.loads(doc[0]) == ["a b", "c"] and json.loads(doc[1]) == [1, 2]
    assert json.loads(doc[2]) == {"k": [1, 2]}
    assert doc[3] == "123456789.123456789"  # unconstrained numeric -> exact STRING
    assert doc[4] == Decimal("12.5000")
    assert str(doc[5]) == "2026-01-02 01:04:05"  # timestamptz -> UTC timestamp
    assert str(doc[6]) == "2026-01-02" and doc[7] == b"\x01\x02" and doc[8] is True
    types = dict(
        _query(
            path,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'public_docs'",
        )
    )
    assert types["exact"] == "DECIMAL(12,4)" and types["meta"] == "JSON"
    assert types["datastream_metadata"] == "STRUCT(uuid VARCHAR, source_timestamp BIGINT)"
    # no primary key: append with is_deleted
    events = _query(
        path,
        "SELECT kind, payload, datastream_metadata.is_deleted FROM public_events "
        "ORDER BY datastream_metadata.source_timestamp, kind, payload",
    )
    assert sorted(events) == sorted(
        [
            ("k1", "p1", False),
            ("k2", "p2", False),
            ("k1", "p1b", False),
            ("k2", "p2", True),
        ]
    )


def test_append_only_replay_and_per_schema_layout(stream: Stream) -> None:
    random_workload(stream.dsn, seed=21, transactions=40)
    handle = start_replicator(
        stream.dsn,
        stream.duckdb_path,
        config=stream.config(mode="append-only", layout="per-schema", dataset_prefix="ds_"),
    )
    try:
        wait_streaming(handle)
        random_workload(stream.dsn, seed=22, transactions=200)
        execute(stream.dsn, "INSERT INTO products (name, price) VALUES ('last', 1)")
        wait_caught_up(stream.dsn, stream.slot, handle=handle)
    finally:
        handle.stop()
    path = stream.duckdb_path
    for table, cols in (("products", PRODUCT_COLUMNS), ("orders", ORDER_COLUMNS)):
        src = source_rows(stream.dsn, table, cols)
        assert replay_append_log(path, f"ds_public.{table}", cols, "id") == src
    kinds = {
        r[0]
        for r in _query(
            path, "SELECT DISTINCT datastream_metadata.change_type FROM ds_public.products"
        )
    }
    assert kinds == {"INSERT", "UPDATE-INSERT", "UPDATE-DELETE", "DELETE"}


def _fail(stream: Stream, **overrides: object) -> str:
    with pytest.raises(PrerequisiteError) as info:
        Replicator(stream.config(**overrides)).run()
    return str(info.value)


def test_missing_publication_and_privileges(stream: Stream) -> None:
    message = _fail(stream, publication="absent_pub", create_publication=False)
    assert 'CREATE PUBLICATION "absent_pub" FOR TABLE public.products, public.orders' in message
    execute(stream.dsn, "DROP ROLE IF EXISTS ds_reader", "CREATE ROLE ds_reader LOGIN")
    dsn = stream.dsn.replace("postgres@", "ds_reader@")
    reader = Stream(dsn=dsn, duckdb_path=stream.duckdb_path, slot=stream.slot)
    assert 'ALTER ROLE "ds_reader" REPLICATION' in _fail(reader)
    execute(stream.dsn, "ALTER ROLE ds_reader REPLICATION")
    assert "cannot create it" in _fail(reader)  # not the tables' owner
    execute(stream.dsn, "CREATE PUBLICATION hybridshop_pub FOR TABLE products, orders")
    assert 'GRANT SELECT ON "public"."orders" TO "ds_reader"' in _fail(reader)


def test_wal_level_replica_is_refused(tmp_path: Path) -> None:
    server = EmbeddedPostgres(base_dir=tmp_path / "pg", port=free_port())
    server.init()
    with (server.data_dir / "postgresql.auto.conf").open("a") as fh:
        fh.write("wal_level = 'replica'\n")
    dsn = server.start()
    try:
        stream = Stream(dsn=dsn, duckdb_path=tmp_path / "w.duckdb", slot="s")
        message = _fail(stream)
        assert (
            "wal_level is 'replica'" in message
            and "ALTER SYSTEM SET wal_level = logical" in message
        )
    finally:
        server.stop(mode="immediate")


def test_readers_see_fresh_data_while_replicating(stream: Stream) -> None:
    config = stream.config(
        snapshot_path=stream.duckdb_path.with_name("w.read.duckdb"), snapshot_interval_s=0.2
    )
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=config)
    try:
        # A new slot's confirmed LSN is already past the insert while the backfill that
        # copies it is still uncommitted: wait for the stream before counting on it.
        wait_streaming(handle)
        execute(stream.dsn, "INSERT INTO products (name, price) VALUES ('fresh', 3)")
        wait_caught_up(stream.dsn, stream.slot)
        live = handle.reader()
        assert live.execute("SELECT name FROM public_products").fetchall() == [("fresh",)]
        live.close()
        assert config.snapshot_path is not None
        # the copy is refreshed every 0.2 s: wait until it holds the committed row
        rows: list[tuple[object, ...]] = []
        for _ in range(100):
            if config.snapshot_path.exists():
                rows = _query(config.snapshot_path, "SELECT name FROM public_products")
                if rows:
                    break
            handle.thread.join(0.1)
        assert rows == [("fresh",)]
    finally:
        handle.stop()
