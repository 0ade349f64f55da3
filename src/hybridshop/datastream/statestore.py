"""Replication progress, kept in the warehouse itself: the one module that knows its tables.

Contract (as supabase/etl's StateStore): the position written here is committed in the same
DuckDB transaction as the rows it covers, so after a crash the warehouse and its position
agree; the slot is acknowledged only after that commit. Three tables:

- ``_datastream_state``: one row per slot: publication, mode, layout, the end LSN applied
  (``lsn``), whether the initial backfill completed, last source commit / heartbeat, counters.
- ``_datastream_tables``: one row per replicated source table: ``ok`` or ``stopped`` (with the
  reason and the command that fixes it), and ``backfill_lsn``, the consistent point of the
  snapshot its rows were copied in: the stream skips the table's changes at or below it.
- ``_datastream_errors``: changes the warehouse could not hold (table, key, column, value,
  reason, LSN), like Datastream's error reporting; the stream goes on.

Every write names its columns. Readers in other processes use the ``read_*`` functions on a
read-only connection of the file (or its reader copy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STATE_TABLE = "_datastream_state"
TABLES_TABLE = "_datastream_tables"
ERRORS_TABLE = "_datastream_errors"
INTERNAL_TABLES = (STATE_TABLE, TABLES_TABLE, ERRORS_TABLE)

OK = "ok"
STOPPED = "stopped"


@dataclass
class State:
    slot: str
    lsn: int
    backfill_complete: bool
    last_commit_ts_ms: int | None
    last_heartbeat_ts_ms: int | None
    publication: str | None = None
    mode: str | None = None
    layout: str | None = None


@dataclass
class TableState:
    schema: str
    table: str
    status: str = OK  # ok | stopped
    reason: str | None = None
    backfill_lsn: int = 0

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"


@dataclass
class Reject:
    """A change the warehouse cannot hold (Datastream's "events that could not be written"):
    not applied, recorded in ``_datastream_errors``; the stream goes on."""

    table: str  # source schema.table
    key: str  # JSON object of the key columns (the whole row for key-less tables)
    column: str
    value: str
    reason: str
    lsn: str  # commit LSN of the source transaction (backfill: the snapshot's consistent point)
    change_type: str


class StateStore:
    """Reads and writes replication progress through the warehouse's own connection; call
    the writing methods inside the transaction of the rows they describe."""

    def __init__(self, con: Any) -> None:
        self._con = con
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (slot VARCHAR PRIMARY KEY, "
            "publication VARCHAR, mode VARCHAR, layout VARCHAR, lsn UBIGINT, "
            "backfill_complete BOOLEAN, last_commit_ts_ms BIGINT, last_heartbeat_ts_ms BIGINT, "
            "applied_at TIMESTAMP, changes_applied BIGINT)"
        )
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLES_TABLE} (slot VARCHAR, source_schema VARCHAR, "
            "source_table VARCHAR, status VARCHAR, reason VARCHAR, backfill_lsn UBIGINT, "
            "updated_at TIMESTAMP, PRIMARY KEY (slot, source_schema, source_table))"
        )
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {ERRORS_TABLE} (slot VARCHAR, source_table VARCHAR, "
            "key VARCHAR, column_name VARCHAR, value VARCHAR, reason VARCHAR, lsn VARCHAR, "
            "change_type VARCHAR, recorded_at TIMESTAMP)"
        )

    # --- progress -----------------------------------------------------------------------
    def load(self, slot: str) -> State | None:
        row = self._con.execute(
            f"SELECT lsn, backfill_complete, last_commit_ts_ms, last_heartbeat_ts_ms, "
            f"publication, mode, layout FROM {STATE_TABLE} WHERE slot = ?",
            [slot],
        ).fetchone()
        if row is None:
            return None
        return State(slot, int(row[0]), bool(row[1]), row[2], row[3], row[4], row[5], row[6])

    def start(
        self,
        slot: str,
        *,
        publication: str,
        mode: str,
        layout: str,
        lsn: int,
        commit_ts_ms: int,
        tables: list[TableState],
    ) -> None:
        """A completed initial backfill at ``lsn``: forget everything known about ``slot``."""
        con = self._con
        con.execute(f"DELETE FROM {STATE_TABLE} WHERE slot = ?", [slot])
        con.execute(f"DELETE FROM {TABLES_TABLE} WHERE slot = ?", [slot])
        con.execute(
            f"INSERT INTO {STATE_TABLE} (slot, publication, mode, layout, lsn, backfill_complete, "
            "last_commit_ts_ms, last_heartbeat_ts_ms, applied_at, changes_applied) "
            "VALUES (?, ?, ?, ?, ?, true, ?, NULL, now()::TIMESTAMP, 0)",
            [slot, publication, mode, layout, lsn, commit_ts_ms],
        )
        for table in tables:
            self.set_table(slot, table)

    def advance(
        self,
        slot: str,
        lsn: int,
        *,
        commit_ts_ms: int | None,
        heartbeat_ts_ms: int | None,
        changes: int,
    ) -> None:
        """Record the end LSN a batch reaches."""
        self._con.execute(
            f"UPDATE {STATE_TABLE} SET lsn = ?, applied_at = now()::TIMESTAMP, "
            "last_commit_ts_ms = coalesce(?, last_commit_ts_ms), "
            "last_heartbeat_ts_ms = coalesce(?, last_heartbeat_ts_ms), "
            "changes_applied = changes_applied + ? WHERE slot = ?",
            [lsn, commit_ts_ms, heartbeat_ts_ms, changes, slot],
        )

    # --- tables -------------------------------------------------------------------------
    def tables(self, slot: str) -> dict[tuple[str, str], TableState]:
        rows = self._con.execute(
            f"SELECT source_schema, source_table, status, reason, backfill_lsn "
            f"FROM {TABLES_TABLE} WHERE slot = ?",
            [slot],
        ).fetchall()
        return {(r[0], r[1]): TableState(r[0], r[1], r[2], r[3], int(r[4] or 0)) for r in rows}

    def set_table(self, slot: str, table: TableState) -> None:
        self._con.execute(
            f"INSERT OR REPLACE INTO {TABLES_TABLE} (slot, source_schema, source_table, status, "
            "reason, backfill_lsn, updated_at) VALUES (?, ?, ?, ?, ?, ?, now()::TIMESTAMP)",
            [slot, table.schema, table.table, table.status, table.reason, table.backfill_lsn],
        )

    # --- rejected changes ---------------------------------------------------------------
    def record_rejects(self, slot: str, rejects: list[Reject]) -> None:
        if not rejects:
            return
        self._con.executemany(
            f"INSERT INTO {ERRORS_TABLE} (slot, source_table, key, column_name, value, reason, "
            "lsn, change_type, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP)",
            [
                [slot, r.table, r.key, r.column, r.value[:10_000], r.reason, r.lsn, r.change_type]
                for r in rejects
            ],
        )


# --- readers (other processes; a read-only connection) -------------------------------------
def _has_table(con: Any, name: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? "
        "AND database_name = current_database()",
        [name],
    ).fetchone()
    return bool(row and row[0])


def read_progress(con: Any, slot: str) -> dict[str, Any] | None:
    if not _has_table(con, STATE_TABLE):
        return None
    row = con.execute(
        f"SELECT lsn, last_commit_ts_ms, mode, layout, changes_applied, applied_at "
        f"FROM {STATE_TABLE} WHERE slot = ?",
        [slot],
    ).fetchone()
    if row is None:
        return None
    names = ("lsn", "last_commit_ts_ms", "mode", "layout", "changes_applied", "applied_at")
    return dict(zip(names, row, strict=True))


def read_tables(con: Any, slot: str) -> dict[str, dict[str, Any]]:
    if not _has_table(con, TABLES_TABLE):
        return {}
    rows = con.execute(
        f"SELECT source_schema || '.' || source_table, status, reason, backfill_lsn "
        f"FROM {TABLES_TABLE} WHERE slot = ? ORDER BY 1",
        [slot],
    ).fetchall()
    return {r[0]: {"status": r[1], "reason": r[2], "backfill_lsn": r[3]} for r in rows}


def read_rejects(con: Any, slot: str, sample: int = 20) -> dict[str, Any]:
    """Rejected changes: their count and the latest ``sample``."""
    if not _has_table(con, ERRORS_TABLE):
        return {"rejected_changes": 0, "rejected": []}
    (count,) = con.execute(
        f"SELECT count(*) FROM {ERRORS_TABLE} WHERE slot = ?", [slot]
    ).fetchone() or (0,)
    rows = con.execute(
        f"SELECT source_table, key, column_name, value, reason, lsn, change_type, recorded_at "
        f"FROM {ERRORS_TABLE} WHERE slot = ? ORDER BY recorded_at DESC, lsn DESC LIMIT ?",
        [slot, sample],
    ).fetchall()
    names = ("table", "key", "column", "value", "reason", "lsn", "change_type", "recorded_at")
    return {
        "rejected_changes": int(count),
        "rejected": [dict(zip(names, r, strict=True)) for r in rows],
    }
