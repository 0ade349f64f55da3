"""The warehouse file failing under the replicator (read-only, full), and the slot's position
when the source writes WAL the publication does not cover.

A full disk is made real with the kernel's file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored):
DuckDB's writes then fail with EFBIG exactly where they would fail with ENOSPC.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hybridshop.datastream.destination import Warehouse, WarehouseUnavailable, warehouse_fault
from hybridshop.datastream.service import start_replicator

from .conftest import Stream, execute, wait_caught_up, wait_streaming
from .test_merge import assert_same


def _replicator(stream: Stream, log: Path, **popen: object) -> subprocess.Popen[bytes]:
    """``python -m hybridshop.datastream`` as ``hybridshop up`` runs it."""
    args = [sys.executable, "-m", "hybridshop.datastream", "--dsn", stream.dsn]
    args += ["--duckdb", str(stream.duckdb_path), "--slot", stream.slot]
    args += ["--commit-interval", "0.05"]
    out = log.open("ab")
    return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, **popen)  # type: ignore[call-overload,no-any-return]


def _replicate_once(stream: Stream) -> None:
    """Backfill and stream until caught up, in this process, then stop (the slot stays)."""
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=stream.config())
    try:
        wait_streaming(handle)
        wait_caught_up(stream.dsn, stream.slot, handle=handle)
    finally:
        handle.stop()


def _read_only(path: Path, on: bool) -> None:
    """Root ignores file modes: the immutable attribute stops it; mode bits otherwise."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True)
    else:
        path.chmod(0o444 if on else 0o644)


def _products(dsn: str, n: int, tag: str) -> None:
    execute(
        dsn,
        (
            "INSERT INTO products (name, price, description) "
            "SELECT %s || g, 10 + g %% 90, repeat('d', 200) FROM generate_series(1, %s) g",
            (tag, n),
        ),
    )


def test_a_read_only_warehouse_is_a_clear_error_and_the_next_run_catches_up(
    stream: Stream, tmp_path: Path
) -> None:
    log = tmp_path / "replicator.log"
    _products(stream.dsn, 50, "before ")
    _replicate_once(stream)
    _products(stream.dsn, 50, "while read-only ")
    _read_only(stream.duckdb_path, True)
    try:
        proc = _replicator(stream, log)
        assert proc.wait(timeout=60) == 2, log.read_text()
    finally:
        _read_only(stream.duckdb_path, False)
    said = log.read_text()
    assert "error: cannot write the warehouse" in said and str(stream.duckdb_path) in said
    assert "Fix: make the file and its folder writable" in said
    assert "Traceback" not in said
    proc = _replicator(stream, log)  # fixed: it streams what the slot kept
    try:
        wait_caught_up(stream.dsn, stream.slot, timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert_same(stream)


def _file_size_limit(limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past it fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


def test_a_full_warehouse_disk_stops_the_replicator_clearly_and_it_catches_up_once_freed(
    stream: Stream, tmp_path: Path
) -> None:
    log = tmp_path / "replicator.log"
    _replicate_once(stream)
    limit = stream.duckdb_path.stat().st_size + 256 * 1024
    proc = _replicator(stream, log, preexec_fn=lambda: _file_size_limit(limit))
    try:
        deadline = time.monotonic() + 90
        while proc.poll() is None:  # writes until the "disk" is full
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            _products(stream.dsn, 400, "filling ")
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    said = log.read_text()
    assert proc.returncode == 2, said[-3000:]
    assert "error: cannot write the warehouse" in said and "File too large" in said, said[-3000:]
    assert "Fix: free disk space" in said
    assert "Traceback" not in said
    proc = _replicator(stream, log)  # space freed: nothing lost, nothing applied twice
    try:
        wait_caught_up(stream.dsn, stream.slot, timeout=90)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert_same(stream)


def test_a_warehouse_that_cannot_be_opened_names_the_fix(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-folder"
    folder.write_text("a file where the warehouse's folder should be")
    with pytest.raises(WarehouseUnavailable) as raised:
        Warehouse(folder / "warehouse.duckdb", layout=None)  # type: ignore[arg-type]
    assert "cannot use the warehouse" in str(raised.value) or "cannot write" in str(raised.value)
    assert warehouse_fault(tmp_path, ValueError("unrelated")) is None
    assert warehouse_fault(tmp_path, OSError(104, "Connection reset by peer")) is None


def test_wal_the_publication_does_not_cover_does_not_hold_the_slot_back(stream: Stream) -> None:
    """With no heartbeat due, the slot still passes WAL written to other tables: the
    replicator confirms the position the walsender says it has sent (its keepalive) once
    nothing is pending, as PostgreSQL's own subscriber does. Before, the slot (and `replicate
    status`'s lag) waited for the next heartbeat."""
    execute(stream.dsn, "CREATE TABLE scratch_not_published (x int)")
    handle = start_replicator(
        stream.dsn, stream.duckdb_path, config=stream.config(heartbeat_interval_s=3600)
    )
    try:
        wait_streaming(handle)
        for round_ in range(3):
            execute(stream.dsn, f"INSERT INTO scratch_not_published VALUES ({round_})")
            wait_caught_up(stream.dsn, stream.slot, timeout=15, handle=handle)
        _products(stream.dsn, 5, "published ")  # and a published change after it still flows
        wait_caught_up(stream.dsn, stream.slot, timeout=15, handle=handle)
    finally:
        handle.stop()
    assert_same(stream)


def test_status_alarms_on_wal_retained_behind_a_stopped_replicator(stream: Stream) -> None:
    import json

    from typer.testing import CliRunner

    from hybridshop.cli.main import app

    _replicate_once(stream)
    args = ["replicate", "status", "--duckdb", str(stream.duckdb_path), "--slot", stream.slot]
    env = {"DATABASE_URL": stream.dsn}
    runner = CliRunner()
    quiet = runner.invoke(app, [*args, "--wal-alarm-mb", "64"], env=env)
    assert quiet.exit_code == 0 and "ALARM" not in quiet.output, quiet.output
    _products(stream.dsn, 3000, "kept for the slot ")  # the stopped replicator does not consume
    loud = runner.invoke(app, [*args, "--wal-alarm-mb", "0.1"], env=env)
    assert loud.exit_code == 1, loud.output
    first = loud.output.splitlines()[0]
    assert first.startswith("ALARM") and f"slot {stream.slot} retains" in first, loud.output
    assert "no replicator consumes it" in first and "pg_drop_replication_slot" in first
    as_json = runner.invoke(app, [*args, "--wal-alarm-mb", "0.1", "--json"], env=env)
    assert as_json.exit_code == 1
    assert "retains" in json.loads(as_json.output)["alarms"][0]
