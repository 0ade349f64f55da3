"""The replicator: backfill in an exported snapshot, then stream pgoutput into DuckDB.

Why psycopg2: psycopg 3 has no replication protocol support (psycopg issue #71); psycopg2's
``LogicalReplicationConnection`` speaks it (CREATE_REPLICATION_SLOT ... SNAPSHOT 'export',
START_REPLICATION, standby status updates), which polling ``pg_logical_slot_get_binary_changes``
over SQL could not do without re-decoding and without an exported snapshot.

Exactly once: a batch of committed transactions and the end LSN it reaches are committed in
one DuckDB transaction; the slot is acknowledged (flush LSN) only afterwards; after a restart,
transactions whose end LSN is at or below the stored LSN are skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import psycopg2
import psycopg2.extensions
import psycopg2.extras

from hybridshop.datastream import pgoutput as po
from hybridshop.datastream.backfill import BackfillOptions, TableCopy, backfill
from hybridshop.datastream.destination import (
    MERGE,
    SINGLE_DATASET,
    StreamLayout,
    Warehouse,
    warehouse_fault,
)
from hybridshop.datastream.liveness import LivenessReporter
from hybridshop.datastream.source import (
    PrerequisiteError,
    SourceTable,
    TypeCatalog,
    check_prerequisites,
    published_tables,
)
from hybridshop.datastream.statestore import TableState
from hybridshop.datastream.stream import HEARTBEAT_PREFIX, StreamApplier
from hybridshop.db.replication import DEFAULT_PUBLICATION, DEFAULT_SLOT

log = logging.getLogger("hybridshop.datastream")

__all__ = ["HEARTBEAT_PREFIX", "Replicator", "ReplicatorConfig"]
SOURCE_OPTIONS = (
    "-c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=postgres -c extra_float_digits=3"
)


@dataclass
class ReplicatorConfig:
    """Everything a stream needs; defaults match ``hybridshop up``."""

    dsn: str
    duckdb_path: Path
    slot: str = DEFAULT_SLOT
    publication: str = DEFAULT_PUBLICATION
    mode: str = MERGE  # merge | append-only
    layout: str = SINGLE_DATASET  # single | per-schema
    dataset_prefix: str = ""
    create_publication: bool = True
    proto_version: int = 1  # 2 streams large in-progress transactions (PG 14+)
    commit_interval_s: float = 0.2  # latency bound: a batch never waits longer
    max_batch_changes: int = 100_000
    # Bounded memory for any transaction size: raw messages of a transaction past this many
    # bytes wait in a temporary file; a batch writes its pending rows to DuckDB (inside its
    # one transaction) every this many changes.
    txn_memory_bytes: int = 16 * 1024 * 1024
    flush_every_changes: int = 25_000
    # DuckDB's buffer memory while streaming (its default, 80% of RAM, lets one big
    # transaction's row versions grow the process); the backfill keeps DuckDB's default.
    duckdb_memory_limit: str | None = "512MB"
    heartbeat_interval_s: float = 2.0
    snapshot_path: Path | None = None  # reader copy for other processes; None = off
    snapshot_interval_s: float = 1.0
    reconnect_max_s: float = 5.0
    resync: bool = False  # drop the slot and backfill again
    progress: bool = False
    # Backfill: COPY in chunks of this many heap pages (8 kB each) that DuckDB loads while
    # PostgreSQL copies the next one; 0 = one COPY per table. DuckDB threads while loading
    # (None = unchanged): the loader shares the cores with the COPY.
    backfill_chunk_pages: int = 2048
    backfill_duckdb_threads: int | None = None
    table_check_interval_s: float = 2.0  # look for tables added to the publication


@dataclass
class Counters:
    changes_applied: int = 0
    transactions_applied: int = 0
    batches: int = 0
    lsn: int = 0
    last_commit_ts_ms: int | None = None
    caught_up: bool = False
    streaming: bool = False  # backfill done, START_REPLICATION issued
    reconnects: int = 0
    backfill_rows: int = 0
    rejected_changes: int = 0
    error: str | None = None
    phase: str = "starting"  # starting, backfill, streaming, reconnecting, stopped, failed
    stopped_tables: dict[str, str] = field(default_factory=dict)
    backfilled: dict[str, float] = field(default_factory=dict)  # tables -> when (one-table)
    copying: dict[str, int] = field(default_factory=dict)  # copied while streaming: rows so far
    copy_longest_step_s: float = 0.0  # the longest the stream waited for one copied chunk
    started_at: float = field(default_factory=time.time)


class Replicator:
    def __init__(self, config: ReplicatorConfig) -> None:
        self.config = config
        self.counters = Counters()
        self.types = TypeCatalog()
        self._wh: Warehouse | None = None
        self._reporter: LivenessReporter | None = None

    # --- lifecycle ----------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> None:
        """Replicate until ``stop`` is set; reconnects after losing the source."""
        stop = stop or threading.Event()
        layout = StreamLayout(self.config.mode, self.config.layout, self.config.dataset_prefix)
        self._wh = Warehouse(
            self.config.duckdb_path, layout, self.config.slot, self.config.duckdb_memory_limit
        )
        reporter = LivenessReporter(self.config.duckdb_path, self.liveness)
        self._reporter = reporter
        reporter.start()
        delay = 0.2
        first = True
        final = "stopped"
        try:
            while not stop.is_set():
                try:
                    self._session(stop, resync=self.config.resync and first)
                    return
                except (duckdb.Error, OSError) as exc:
                    # the warehouse file failing (full disk, read-only): a clear error
                    # naming the fix, not a traceback; the slot keeps the changes meanwhile
                    fault = warehouse_fault(self.config.duckdb_path, exc)
                    if fault is None:
                        raise
                    raise fault from None
                except psycopg2.Error as exc:
                    # A lost replication stream surfaces as OperationalError, InterfaceError
                    # or a bare DatabaseError ("no COPY in progress"): reconnect in all cases.
                    self.counters.reconnects += 1
                    first = False
                    self.counters.caught_up = False
                    self.counters.streaming = False
                    reporter.error(f"source connection lost: {_first(exc)}")
                    self._set_phase("reconnecting")
                    log.warning(
                        "source connection lost (%s); retrying in %.1fs", _first(exc), delay
                    )
                    self._wh.rollback()
                    stop.wait(delay)
                    delay = min(delay * 2, self.config.reconnect_max_s)
        except BaseException as exc:
            final = "failed"
            self.counters.error = str(exc) or type(exc).__name__
            reporter.error(self.counters.error)
            raise
        finally:
            self._wh.close()
            self.counters.phase = final
            self.counters.streaming = False
            reporter.stop(final)

    def _set_phase(self, phase: str) -> None:
        self.counters.phase = phase
        if self._reporter is not None:
            self._reporter.beat()  # written at once: supervisors see the change

    def liveness(self) -> dict[str, Any]:
        """What the liveness file says about this run (see ``liveness``)."""
        c = self.counters
        return {
            "slot": self.config.slot,
            "phase": c.phase,
            "lsn": po.format_lsn(c.lsn),
            "changes_applied": c.changes_applied,
            "rejected_changes": c.rejected_changes,
            "reconnects": c.reconnects,
            "stopped_tables": dict(c.stopped_tables),
            "backfilled": dict(c.backfilled),
            "copying": dict(c.copying),
            "error": c.error,
        }

    def _connect(self, **kwargs: Any) -> Any:
        return psycopg2.connect(
            self.config.dsn,
            options=SOURCE_OPTIONS,
            application_name="hybridshop-datastream",
            connect_timeout=5,
            **kwargs,
        )

    def _session(self, stop: threading.Event, *, resync: bool) -> None:
        cfg = self.config
        wh = self._wh
        assert wh is not None
        conn = self._connect()
        try:
            check_prerequisites(conn, cfg.publication, create_publication=cfg.create_publication)
            tables = published_tables(conn, cfg.publication, self.types)
            state = wh.state.load(cfg.slot)
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT plugin, active FROM pg_replication_slots WHERE slot_name = %s",
                    (cfg.slot,),
                )
                slot_row = cur.fetchone()
            conn.rollback()
            if slot_row is not None and slot_row[0] != "pgoutput":
                raise PrerequisiteError(
                    f"replication slot {cfg.slot!r} uses plugin {slot_row[0]!r}, not pgoutput. "
                    f"Fix: SELECT pg_drop_replication_slot('{cfg.slot}'); or choose another --slot."
                )
            if resync or state is None or not state.backfill_complete or slot_row is None:
                if slot_row is not None:
                    if slot_row[1]:
                        raise PrerequisiteError(
                            f"replication slot {cfg.slot!r} is in use by another process; stop it "
                            "or choose another --slot"
                        )
                    with conn.cursor() as cur:
                        cur.execute("SELECT pg_drop_replication_slot(%s)", (cfg.slot,))
                    conn.commit()
                self._set_phase("backfill")
                self._backfill(tables)
                state = wh.state.load(cfg.slot)
                assert state is not None
            elif not wh.table_states:
                # a warehouse from before per-table state: its tables were all backfilled
                wh.adopt_tables([(t.schema, t.name) for t in tables])
            self.counters.stopped_tables = {
                t.qualified: t.reason or "" for t in wh.table_states.values() if t.status != "ok"
            }
            conn.autocommit = True
            self._stream(stop, conn, state.lsn)
        finally:
            conn.close()

    # --- backfill -----------------------------------------------------------------------
    def _backfill(self, tables: list[SourceTable]) -> None:
        """The initial backfill: creates the slot; the stream starts at its consistent point."""
        cfg = self.config
        wh = self._wh
        assert wh is not None
        wh.writers.clear()
        wh.table_states = {}

        def on_commit(lsn: int, ts_ms: int) -> None:
            wh.state.start(
                cfg.slot,
                publication=cfg.publication,
                mode=cfg.mode,
                layout=cfg.layout,
                lsn=lsn,
                commit_ts_ms=ts_ms,
                tables=[TableState(t.schema, t.name, backfill_lsn=lsn) for t in tables],
            )

        result = backfill(
            self._connect,
            wh,
            cfg.slot,
            tables,
            options=self.backfill_options(),
            on_commit=on_commit,
        )
        wh.table_states = wh.state.tables(cfg.slot)
        self.counters.stopped_tables.clear()
        self.counters.rejected_changes += result.rejected
        self.counters.backfill_rows = sum(result.rows.values())
        self.counters.lsn = result.lsn

    def backfill_tables(self, conn: Any, names: set[str]) -> dict[str, int]:
        """Copy ``names`` (``schema.table``, published) again, while the slot stays where it
        is: a temporary slot's exported snapshot gives the rows and its consistent point P;
        the stream then skips those tables' changes in transactions ending at or below P
        (they are in the copy) and applies the rest: no gap, no duplicate, and the other
        tables are not copied again. Returns rows per table."""
        cfg = self.config
        wh = self._wh
        assert wh is not None
        tables = published_tables(conn, cfg.publication, self.types, only=names)
        missing = names - {t.qualified for t in tables}
        if missing:
            raise PrerequisiteError(
                f"{', '.join(sorted(missing))} not published by {cfg.publication!r}. Fix: "
                f'ALTER PUBLICATION "{cfg.publication}" ADD TABLE {", ".join(sorted(missing))};'
            )
        for t in tables:
            wh.writers.pop((t.schema, t.name), None)

        def on_commit(lsn: int, _ts_ms: int) -> None:
            for t in tables:
                wh.table_backfilled(t.schema, t.name, lsn)

        temp_slot = f"{cfg.slot[:40]}_bf_{int(time.time() * 1000) % 10**9}"
        result = backfill(
            self._connect,
            wh,
            temp_slot,
            tables,
            options=self.backfill_options(),
            on_commit=on_commit,
            temporary=True,
            state_slot=cfg.slot,
        )
        for t in tables:
            self.counters.stopped_tables.pop(t.qualified, None)
        self.counters.rejected_changes += result.rejected
        self.counters.backfilled[", ".join(sorted(names))] = time.time()
        return result.rows

    def start_copy(self, conn: Any, names: set[str]) -> TableCopy:
        """Start copying ``names`` (``schema.table``, published) while the stream runs: the
        stream loads it a chunk at a time between batches (``TableCopy``)."""
        cfg = self.config
        wh = self._wh
        assert wh is not None
        tables = published_tables(conn, cfg.publication, self.types, only=names)
        missing = names - {t.qualified for t in tables}
        if missing:
            raise PrerequisiteError(
                f"{', '.join(sorted(missing))} not published by {cfg.publication!r}. Fix: "
                f'ALTER PUBLICATION "{cfg.publication}" ADD TABLE {", ".join(sorted(missing))};'
            )
        copy = TableCopy(
            self._connect,
            wh,
            tables,
            self.backfill_options(),
            slot=f"{cfg.slot[:40]}_bf_{int(time.time() * 1000) % 10**9}",
            state_slot=cfg.slot,
        )
        try:
            copy.start()
        except BaseException:
            copy.close()
            raise
        return copy

    def backfill_now(self, names: set[str]) -> dict[str, int]:
        """``hybridshop replicate backfill`` with no replicator running: copy ``names`` into
        the warehouse; the next replicator run streams from the slot and skips what the copy
        holds."""
        cfg = self.config
        layout = StreamLayout(cfg.mode, cfg.layout, cfg.dataset_prefix)
        self._wh = Warehouse(cfg.duckdb_path, layout, cfg.slot)
        conn = self._connect()
        try:
            state = self._wh.state.load(cfg.slot)
            if state is None or not state.backfill_complete:
                raise PrerequisiteError(
                    f"no replication into {cfg.duckdb_path} with slot {cfg.slot!r} yet: run "
                    "`hybridshop replicate` first (it backfills every table)"
                )
            if not self._wh.table_states:
                every = published_tables(conn, cfg.publication, self.types)
                self._wh.adopt_tables([(t.schema, t.name) for t in every])
            return self.backfill_tables(conn, names)
        finally:
            conn.close()
            self._wh.close()

    def backfill_options(self) -> BackfillOptions:
        cfg = self.config
        return BackfillOptions(
            chunk_pages=cfg.backfill_chunk_pages,
            duckdb_threads=cfg.backfill_duckdb_threads,
            progress=cfg.progress,
            tmp_dir=cfg.duckdb_path.parent,
        )

    # --- streaming ----------------------------------------------------------------------
    def _stream(self, stop: threading.Event, conn: Any, start_lsn: int) -> None:
        cfg = self.config
        repl = self._connect(connection_factory=psycopg2.extras.LogicalReplicationConnection)
        try:
            cur = repl.cursor()
            options = {
                "proto_version": str(cfg.proto_version),
                "publication_names": cfg.publication,
                "messages": "true",
            }
            if cfg.proto_version >= 2:
                options["streaming"] = "on"
            cur.start_replication(
                slot_name=cfg.slot,
                decode=False,
                start_lsn=start_lsn,
                options=options,
                status_interval=5,
            )
            cur.send_feedback(write_lsn=start_lsn, flush_lsn=start_lsn, force=True)
            self.counters.streaming = True
            self._set_phase("streaming")
            assert self._wh is not None
            loop = StreamApplier(self, self._wh, conn, cur, start_lsn)
            loop.run(stop)
        finally:
            repl.close()

    def status(self) -> dict[str, Any]:
        c = self.counters
        return {
            "slot": self.config.slot,
            "lsn": po.format_lsn(c.lsn),
            "changes_applied": c.changes_applied,
            "transactions_applied": c.transactions_applied,
            "caught_up": c.caught_up,
            "streaming": c.streaming,
            "last_commit_ts_ms": c.last_commit_ts_ms,
            "reconnects": c.reconnects,
            "backfill_rows": c.backfill_rows,
            "rejected_changes": c.rejected_changes,
            "stopped_tables": dict(c.stopped_tables),
            "copying": dict(c.copying),
            "copy_longest_step_s": c.copy_longest_step_s,
            "backfilled": dict(c.backfilled),
            "phase": c.phase,
            "error": c.error,
        }


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
