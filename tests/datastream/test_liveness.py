"""`replicate status` and `up` learn from the liveness file whether a replicator runs and
what its last error was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from hybridshop.datastream.liveness import liveness_path_for, read_liveness
from hybridshop.datastream.replicator import Replicator
from hybridshop.datastream.service import spawn_replicator, start_replicator
from hybridshop.datastream.source import PrerequisiteError

from .conftest import Stream, wait_streaming

HOLD = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(120)"


def test_running_stopped_failed_and_killed_are_told_apart(stream: Stream) -> None:
    path = stream.duckdb_path
    assert read_liveness(path) == {"running": False, "phase": None, "last_error": None}
    handle = start_replicator(stream.dsn, path, config=stream.config())
    try:
        wait_streaming(handle)
        live = read_liveness(path)
        assert live["running"] and live["phase"] == "streaming" and live["pid"] == os.getpid()
    finally:
        handle.stop()
    live = read_liveness(path)
    assert not live["running"] and live["phase"] == "stopped" and live["last_error"] is None

    with pytest.raises(PrerequisiteError):
        Replicator(stream.config(publication="absent", create_publication=False)).run()
    live = read_liveness(path)
    assert live["phase"] == "failed" and "publication 'absent' does not exist" in live["last_error"]

    proc = spawn_replicator(stream.dsn, path, "--slot", stream.slot)
    try:
        deadline = time.monotonic() + 60
        while read_liveness(path).get("phase") != "streaming":
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    live = read_liveness(path)
    assert not live["running"] and live["phase"] == "dead"  # killed without a word
    assert "does not exist" in live["last_error"]  # the last error is kept
    assert liveness_path_for(path).name == "warehouse.replicator.json"


def test_a_warehouse_held_by_another_process_is_a_clear_error(stream: Stream) -> None:
    from typer.testing import CliRunner

    from hybridshop.cli.main import app

    path = stream.duckdb_path
    runner = CliRunner()
    args = ["replicate", "backfill", "products", "--duckdb", str(path), "--slot", stream.slot]
    result = runner.invoke(app, args, env={"DATABASE_URL": stream.dsn})
    assert result.exit_code == 2 and "error: no replication into" in result.output
    holder = subprocess.Popen(  # another process holds the warehouse's write lock
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        result = runner.invoke(app, args, env={"DATABASE_URL": stream.dsn})
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 2, result.output
    assert "error: " in result.output and "another process holds it" in result.output
    assert "Traceback" not in result.output
