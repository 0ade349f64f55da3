"""Exactly once under crashes: SIGKILL of the replicator process, PostgreSQL restarts."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import psycopg2

from hybridshop.datastream.liveness import read_liveness
from hybridshop.datastream.service import spawn_replicator, start_replicator
from hybridshop.db.embedded import EmbeddedPostgres, free_port
from hybridshop.db.migrate import apply_migrations

from .conftest import (
    PRODUCT_COLUMNS,
    Stream,
    dest_rows,
    replay_append_log,
    source_rows,
    wait_caught_up,
)
from .test_merge import assert_same, assert_verified, random_workload


def _load(dsn: str, stop: threading.Event, seed: int) -> None:
    """Steady writes while the replicator is being killed."""
    rng = random.Random(seed)
    conn = psycopg2.connect(dsn)
    cur = conn.cursor()
    while not stop.is_set():
        cur.execute(
            "INSERT INTO products (name, price) SELECT 'k' || g, %s FROM generate_series(1, %s) g",
            (rng.randint(1, 500), rng.randint(1, 20)),
        )
        cur.execute(
            "UPDATE products SET price = price + 1 WHERE id IN "
            "(SELECT id FROM products ORDER BY random() LIMIT 3)"
        )
        if rng.random() < 0.3:
            cur.execute(
                "UPDATE products SET id = DEFAULT WHERE id = (SELECT max(id) FROM products "
                "WHERE id NOT IN (SELECT product_id FROM orders))"
            )
        if rng.random() < 0.2:
            cur.execute(
                "DELETE FROM products WHERE id = (SELECT min(id) FROM products "
                "WHERE id NOT IN (SELECT product_id FROM orders))"
            )
        conn.commit()
        time.sleep(0.005)
    conn.close()


def _wait_slot_active(stream: Stream, proc: subprocess.Popen[bytes], log: Path) -> None:
    conn = psycopg2.connect(stream.dsn)
    conn.autocommit = True
    deadline = time.monotonic() + 60
    with conn.cursor() as cur:
        while True:
            cur.execute(
                "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (stream.slot,)
            )
            row = cur.fetchone()
            if row is not None and row[0]:
                break
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the replicator never started streaming"
            time.sleep(0.05)
    conn.close()


def _kill_loop(stream: Stream, mode: str, tmp_path: Path, kills: int) -> None:
    stop = threading.Event()
    writer = threading.Thread(target=_load, args=(stream.dsn, stop, 7), daemon=True)
    writer.start()
    rng = random.Random(11)
    args = ("--slot", stream.slot, "--mode", mode, "--commit-interval", "0.05")
    log = tmp_path / "replicator.log"
    try:
        for kill in range(kills):
            proc = spawn_replicator(stream.dsn, stream.duckdb_path, *args, log_file=log)
            if kill == 0:
                # On a busy machine every run could die before its backfill commits and
                # nothing would be streamed: let the first one reach the stream.
                _wait_slot_active(stream, proc, log)
            # Kill it once it works (its liveness file says backfill or streaming), not while
            # Python starts: on a loaded machine a fixed delay would only ever kill imports.
            deadline = time.monotonic() + 60
            while read_liveness(stream.duckdb_path).get("phase") not in ("backfill", "streaming"):
                assert proc.poll() is None, log.read_text()[-2000:]
                assert time.monotonic() < deadline, "replicator did not start"
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.8))  # sometimes mid-backfill, mostly mid-stream
            assert proc.poll() is None, log.read_text()[-2000:]
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    finally:
        stop.set()
        writer.join()
    proc = spawn_replicator(stream.dsn, stream.duckdb_path, *args, log_file=log)
    try:
        wait_caught_up(stream.dsn, stream.slot, timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def test_sigkill_merge_mode_converges(stream: Stream, tmp_path: Path) -> None:
    random_workload(stream.dsn, seed=3, transactions=40)
    _kill_loop(stream, "merge", tmp_path, kills=10)
    src = source_rows(stream.dsn, "products", PRODUCT_COLUMNS)
    assert len(src) > 100
    assert dest_rows(stream.duckdb_path, "public_products", PRODUCT_COLUMNS) == src
    assert_verified(stream)


def test_sigkill_append_only_has_no_duplicate_changes(stream: Stream, tmp_path: Path) -> None:
    _kill_loop(stream, "append-only", tmp_path, kills=10)
    src = source_rows(stream.dsn, "products", PRODUCT_COLUMNS)
    assert replay_append_log(stream.duckdb_path, "public_products", PRODUCT_COLUMNS, "id") == src
    assert_verified(stream)  # compares the latest change per key
    con = duckdb.connect(str(stream.duckdb_path), read_only=True)
    dup = con.execute(
        "SELECT count(*) FROM (SELECT id, datastream_metadata.change_sequence_number, "
        "datastream_metadata.change_type, count(*) c FROM public_products GROUP BY ALL "
        "HAVING c > 1)"
    ).fetchone()
    changes = con.execute("SELECT count(*) FROM public_products").fetchone()
    con.close()
    assert dup == (0,)
    assert changes is not None and changes[0] > len(src)  # updates/deletes were logged too


def test_postgres_restart_while_streaming(tmp_path: Path) -> None:
    server = EmbeddedPostgres(base_dir=tmp_path / "pg", port=free_port())
    dsn = server.start()
    try:
        conn = psycopg2.connect(dsn)
        apply_migrations(conn)
        conn.close()
        stream = Stream(dsn=dsn, duckdb_path=tmp_path / "w.duckdb", slot="restart_slot")
        handle = start_replicator(dsn, stream.duckdb_path, config=stream.config())
        try:
            random_workload(dsn, seed=4, transactions=50)
            wait_caught_up(dsn, stream.slot)
            server.stop(mode="fast")
            time.sleep(0.5)
            server.start()
            random_workload(dsn, seed=5, transactions=50)
            assert handle.is_alive(), handle.status()
            wait_caught_up(dsn, stream.slot, timeout=60)
            assert handle.status()["reconnects"] >= 1
        finally:
            handle.stop()
        assert_same(stream)
    finally:
        server.stop(mode="immediate")


def test_backfill_while_writes_continue(stream: Stream) -> None:
    """Rows committed during the COPY are either in the snapshot or in the stream, once."""
    execute_rows = psycopg2.connect(stream.dsn)
    with execute_rows, execute_rows.cursor() as cur:
        cur.execute(
            "INSERT INTO products (name, price) SELECT 'b' || g, 1 FROM generate_series(1, 50000) g"
        )
    execute_rows.close()
    stop = threading.Event()
    writer = threading.Thread(target=_load, args=(stream.dsn, stop, 9), daemon=True)
    writer.start()
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=stream.config())
    try:
        time.sleep(2.0)
        stop.set()
        writer.join()
        wait_caught_up(stream.dsn, stream.slot, timeout=60)
    finally:
        stop.set()
        handle.stop()
    assert handle.status()["backfill_rows"] > 0
    src = source_rows(stream.dsn, "products", PRODUCT_COLUMNS)
    assert dest_rows(stream.duckdb_path, "public_products", PRODUCT_COLUMNS) == src
    assert_verified(stream)


def test_module_entry_point_reports_prerequisite_errors(stream: Stream) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hybridshop.datastream",
            "--dsn",
            stream.dsn,
            "--duckdb",
            str(stream.duckdb_path),
            "--slot",
            stream.slot,
            "--publication",
            "nope",
            "--no-create-publication",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert 'CREATE PUBLICATION "nope"' in result.stderr
