"""``hybridshop replicate status``: what the slot and the warehouse say, from outside.

Works whether the replicator runs or not: source figures come from ``pg_replication_slots`` /
``pg_stat_replication``; destination figures from the DuckDB file, or from its reader copy
while the replicator holds the file's write lock.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg2

from hybridshop.datastream.destination import STATE_TABLE
from hybridshop.datastream.pgoutput import format_lsn
from hybridshop.datastream.service import snapshot_path_for


def source_status(dsn: str, slot: str) -> dict[str, Any]:
    conn = psycopg2.connect(dsn, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT s.active, s.confirmed_flush_lsn::text, "
                "pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint, "
                "pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint, "
                "extract(epoch FROM r.flush_lag)::float8, s.wal_status, s.active_pid, "
                "r.application_name, r.backend_start "
                "FROM pg_replication_slots s LEFT JOIN pg_stat_replication r "
                "ON r.pid = s.active_pid WHERE s.slot_name = %s",
                (slot,),
            )
            row = cur.fetchone()
    finally:
        conn.close()
    if row is None:
        return {"slot": slot, "exists": False, "replicator": {"running": False}}
    active, confirmed, lag_bytes, retained, flush_lag, wal_status, pid, app, since = row
    return {
        "slot": slot,
        "exists": True,
        "active": active,
        # a consumer holds the slot: the server process serving it, and who it is
        "replicator": (
            {"running": True, "walsender_pid": pid, "application": app, "since": str(since)}
            if active
            else {"running": False}
        ),
        "confirmed_lsn": confirmed,
        "lag_bytes": lag_bytes,
        # pg_stat_replication clears flush_lag once the consumer has caught up
        "lag_seconds": float(flush_lag) if flush_lag is not None else (0.0 if active else None),
        "wal_retained_bytes": retained,
        "wal_status": wal_status,
    }


def destination_status(duckdb_path: Path, slot: str) -> dict[str, Any]:
    import duckdb

    if not duckdb_path.exists():
        return {"path": str(duckdb_path), "exists": False}
    read_from = duckdb_path
    try:
        con = duckdb.connect(str(duckdb_path), read_only=True)
    except duckdb.IOException:  # the replicator holds the write lock: read its copy
        read_from = snapshot_path_for(duckdb_path)
        if not read_from.exists():
            return {"path": str(duckdb_path), "exists": True, "locked": True}
        con = duckdb.connect(str(read_from), read_only=True)
    try:
        state = con.execute(
            f"SELECT lsn, last_commit_ts_ms, mode, layout, changes_applied, applied_at "
            f"FROM {STATE_TABLE} WHERE slot = ?",
            [slot],
        ).fetchone()
        tables = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE table_name <> ? "
            "AND database_name = current_database() ORDER BY 1, 2",
            [STATE_TABLE],
        ).fetchall()
        rows = {}
        for schema, table in tables:
            name = table if schema == "main" else f"{schema}.{table}"
            result = con.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()
            rows[name] = int(result[0]) if result else 0
    finally:
        con.close()
    out: dict[str, Any] = {"path": str(duckdb_path), "read_from": str(read_from), "rows": rows}
    if state is not None:
        lsn, commit_ms, mode, layout, changes, applied_at = state
        out.update(
            applied_lsn=format_lsn(int(lsn)),
            last_source_commit=(
                time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(commit_ms / 1000)) + "Z"
                if commit_ms
                else None
            ),
            mode=mode,
            layout=layout,
            changes_applied=changes,
            applied_at=str(applied_at),
        )
    return out


def last_log_lines(log_file: Path, lines: int = 3) -> list[str]:
    """The replicator's last output lines (``hybridshop up`` writes <state>/logs/replicator.log):
    when it is not running, they usually say why it stopped."""
    try:
        with log_file.open("rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 16384))
            text = fh.read().decode(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def gather_status(
    dsn: str, duckdb_path: Path, slot: str, log_file: Path | None = None
) -> dict[str, Any]:
    info = {
        "source": source_status(dsn, slot),
        "destination": destination_status(duckdb_path, slot),
    }
    replicator = info["source"].get("replicator")
    if replicator is not None and not replicator["running"] and log_file is not None:
        replicator["log"] = str(log_file)
        replicator["last_output"] = last_log_lines(log_file)
    return info
