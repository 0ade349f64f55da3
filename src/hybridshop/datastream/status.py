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

from hybridshop.datastream.destination import SHADOW_PREFIX
from hybridshop.datastream.liveness import read_liveness
from hybridshop.datastream.pgoutput import format_lsn
from hybridshop.datastream.service import snapshot_path_for
from hybridshop.datastream.statestore import (
    INTERNAL_TABLES,
    read_progress,
    read_rejects,
    read_tables,
)
from hybridshop.db.replication import DEFAULT_WAL_ALARM_MB


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
        state = read_progress(con, slot)
        table_states = read_tables(con, slot)
        tables = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT list_contains(?, "
            "table_name) AND NOT starts_with(table_name, ?) AND database_name = current_database() "
            "ORDER BY 1, 2",
            [list(INTERNAL_TABLES), SHADOW_PREFIX],
        ).fetchall()
        errors = read_rejects(con, slot)
        rows = {}
        for schema, table in tables:
            name = table if schema == "main" else f"{schema}.{table}"
            result = con.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()
            rows[name] = int(result[0]) if result else 0
    finally:
        con.close()
    out: dict[str, Any] = {
        "path": str(duckdb_path),
        "read_from": str(read_from),
        "rows": rows,
        "tables": table_states,
        **errors,
    }
    if state is not None:
        commit_ms = state["last_commit_ts_ms"]
        out.update(
            applied_lsn=format_lsn(int(state["lsn"])),
            last_source_commit=(
                time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(commit_ms / 1000)) + "Z"
                if commit_ms
                else None
            ),
            mode=state["mode"],
            layout=state["layout"],
            changes_applied=state["changes_applied"],
            applied_at=str(state["applied_at"]),
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
    """``replicator``: the liveness file (phase, pid, last error); ``source.replicator``:
    whether a consumer holds the slot (and, when none does, the log's last lines)."""
    info = {
        "replicator": read_liveness(duckdb_path),
        "source": source_status(dsn, slot),
        "destination": destination_status(duckdb_path, slot),
    }
    replicator = info["source"].get("replicator")
    if replicator is not None and not replicator["running"] and log_file is not None:
        replicator["log"] = str(log_file)
        replicator["last_output"] = last_log_lines(log_file)
    return info


def wal_alarm(source: dict[str, Any], alarm_mb: float = DEFAULT_WAL_ALARM_MB) -> str | None:
    """The alarm to raise when the slot retains more WAL than ``alarm_mb``, else None."""
    retained = source.get("wal_retained_bytes")
    if not source.get("exists") or retained is None or retained <= alarm_mb * 1024 * 1024:
        return None
    slot = source.get("slot")
    why = "the replicator is behind" if source.get("active") else "no replicator consumes it"
    return (
        f"slot {slot} retains {retained / 2**20:.1f} MB of WAL (alarm above {alarm_mb:g} MB): "
        f"{why}, and PostgreSQL keeps that WAL until it is consumed, until the disk is full. "
        "Start the replicator (`hybridshop up` or `hybridshop replicate`) or, if this "
        f"warehouse is abandoned, drop the slot: SELECT pg_drop_replication_slot('{slot}');"
    )


def status_exit_code(info: dict[str, Any], wal_alarm_mb: float = DEFAULT_WAL_ALARM_MB) -> int:
    """0 healthy; 1 when changes were rejected, tables are stopped, the slot retains more WAL
    than ``wal_alarm_mb``, or the replicator's last run failed (scripts can alert on it);
    expected failures exit 2 before getting here."""
    live = info.get("replicator", {})
    dst = info.get("destination", {})
    if dst.get("rejected_changes", 0) or stopped_tables(info):
        return 1
    if wal_alarm(info.get("source", {}), wal_alarm_mb):
        return 1
    return 1 if live.get("phase") in ("failed", "dead") else 0


def stopped_tables(info: dict[str, Any]) -> dict[str, str]:
    """Tables stopped by a schema change: from the warehouse's state when it can be read
    (it is the truth, e.g. after `replicate backfill`), else from the liveness file."""
    tables = info.get("destination", {}).get("tables")
    if tables:
        return {t: v.get("reason") or "" for t, v in tables.items() if v.get("status") != "ok"}
    return dict(info.get("replicator", {}).get("stopped_tables") or {})
