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

import contextlib
import logging
import queue
import select
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import psycopg2
import psycopg2.extensions
import psycopg2.extras

from hybridshop.datastream import pgoutput as po
from hybridshop.datastream.destination import (
    MERGE,
    SINGLE_DATASET,
    STATE_TABLE,
    DestColumn,
    StreamLayout,
    TableWriter,
    Warehouse,
    change_sequence_number,
)
from hybridshop.datastream.liveness import LivenessReporter
from hybridshop.datastream.source import (
    PrerequisiteError,
    SourceTable,
    TypeCatalog,
    check_prerequisites,
    copy_table,
    lock_tables,
    page_ranges,
    published_tables,
)
from hybridshop.db.replication import DEFAULT_PUBLICATION, DEFAULT_SLOT

log = logging.getLogger("hybridshop.datastream")

HEARTBEAT_PREFIX = "hybridshop.datastream.heartbeat"
# What DuckDB raises for a value its type cannot hold (CAST failures, our error() for BC).
VALUE_ERRORS = (
    duckdb.ConversionException,
    duckdb.InvalidInputException,
    duckdb.OutOfRangeException,
)
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
    started_at: float = field(default_factory=time.time)


class Replicator:
    def __init__(self, config: ReplicatorConfig) -> None:
        self.config = config
        self.counters = Counters()
        self.types = TypeCatalog()
        self._wh: Warehouse | None = None

    # --- lifecycle ----------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> None:
        """Replicate until ``stop`` is set; reconnects after losing the source."""
        stop = stop or threading.Event()
        layout = StreamLayout(self.config.mode, self.config.layout, self.config.dataset_prefix)
        self._wh = Warehouse(self.config.duckdb_path, layout)
        reporter = LivenessReporter(self.config.duckdb_path, self.liveness)
        reporter.start()
        delay = 0.2
        first = True
        final = "stopped"
        try:
            while not stop.is_set():
                try:
                    self._session(stop, resync=self.config.resync and first)
                    return
                except psycopg2.Error as exc:
                    # A lost replication stream surfaces as OperationalError, InterfaceError
                    # or a bare DatabaseError ("no COPY in progress"): reconnect in all cases.
                    self.counters.reconnects += 1
                    first = False
                    self.counters.caught_up = False
                    self.counters.streaming = False
                    self.counters.phase = "reconnecting"
                    reporter.error(f"source connection lost: {_first(exc)}")
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
            state = wh.state(cfg.slot)
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
                self.counters.phase = "backfill"
                self._backfill(tables)
                state = wh.state(cfg.slot)
                assert state is not None
            conn.autocommit = True
            self._stream(stop, conn, state.lsn)
        finally:
            conn.close()

    # --- backfill -----------------------------------------------------------------------
    def _backfill(self, tables: list[SourceTable]) -> None:
        """Create the slot with an exported snapshot and COPY every table inside it, so the
        stream starts exactly where the copy ends: no gap, no duplicate.

        A value DuckDB cannot hold fails the fast load; the backfill then starts over with
        checked casts that reject (and record) the rows holding one."""
        try:
            self._backfill_once(tables, careful=False)
            return
        except VALUE_ERRORS as exc:
            log.warning(
                "backfill found a value DuckDB cannot store (%s); copying again "
                "and rejecting those rows",
                _first(exc),
            )
        self._drop_slot()
        self._backfill_once(tables, careful=True)

    def _drop_slot(self) -> None:
        conn = self._connect()
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                # the walsender that created it may take a moment to release it
                for _ in range(100):
                    cur.execute(
                        "SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                        (self.config.slot,),
                    )
                    row = cur.fetchone()
                    if row is None:
                        return
                    if not row[0]:
                        cur.execute("SELECT pg_drop_replication_slot(%s)", (self.config.slot,))
                        return
                    time.sleep(0.05)
        finally:
            conn.close()

    def _backfill_once(self, tables: list[SourceTable], *, careful: bool) -> None:
        cfg = self.config
        wh = self._wh
        assert wh is not None
        repl = self._connect(connection_factory=psycopg2.extras.LogicalReplicationConnection)
        snap = self._connect()
        try:
            rcur = repl.cursor()
            rcur.execute(
                f"CREATE_REPLICATION_SLOT \"{cfg.slot}\" LOGICAL pgoutput (SNAPSHOT 'export')"
            )
            _slot, consistent_point, snapshot_name, _plugin = rcur.fetchone()
            lsn = po.parse_lsn(consistent_point)
            snap.set_session(
                isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True
            )
            with snap.cursor() as cur:
                cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot_name,))
                cur.execute("SELECT (extract(epoch FROM now()) * 1000)::bigint")
                (ts_ms,) = cur.fetchone()
            log.info(
                "slot %s created at %s; backfilling %d tables",
                cfg.slot,
                consistent_point,
                len(tables),
            )
            lock_tables(snap, tables)
            jobs = [
                (index, table, pages)
                for index, table in enumerate(tables)
                for pages in page_ranges(snap, table, cfg.backfill_chunk_pages)
            ]
            wh.begin()
            try:
                wh.writers.clear()
                wh.set_careful(careful)
                writers = [wh.create_table(t.schema, t.name, _dest(t)) for t in tables]
                rows = [0] * len(tables)
                with (
                    tempfile.TemporaryDirectory(dir=cfg.duckdb_path.parent) as tmp,
                    _ChunkCopier(snap, jobs, Path(tmp), len(tables)) as copier,
                    _progress(cfg.progress, [t.qualified for t in tables], copier.copied),
                    wh.bulk_load(cfg.backfill_duckdb_threads),
                ):
                    for batch in copier:
                        index = batch[0].table
                        rows[index] += wh.load_csv(
                            writers[index],
                            [chunk.path for chunk in batch],
                            int(ts_ms),
                            f"{lsn:016X}",
                            seq_offset=rows[index],
                        )
                        for chunk in batch:
                            chunk.path.unlink()
                        if batch[-1].last:
                            log.info("backfilled %s: %d rows", tables[index].qualified, rows[index])
                total = sum(rows)
                self.counters.rejected_changes += wh.save_rejects(cfg.slot)
                wh.con.execute(f"DELETE FROM {STATE_TABLE} WHERE slot = ?", [cfg.slot])
                wh.con.execute(
                    f"INSERT INTO {STATE_TABLE} VALUES (?, ?, ?, ?, ?, true, ?, NULL, "
                    "now()::TIMESTAMP, 0)",
                    [cfg.slot, cfg.publication, cfg.mode, cfg.layout, lsn, int(ts_ms)],
                )
                wh.commit()
            except BaseException:
                wh.rollback()
                raise
            finally:
                wh.set_careful(False)
            snap.commit()
            self.counters.backfill_rows = total
            self.counters.lsn = lsn
        finally:
            snap.close()
            repl.close()

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
            self.counters.phase = "streaming"
            assert self._wh is not None
            loop = _StreamLoop(self, self._wh, conn, cur, start_lsn)
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
            "phase": c.phase,
            "error": c.error,
        }


def _dest(table: SourceTable) -> list[DestColumn]:
    return [DestColumn(c.name, c.ctype, c.is_key) for c in table.columns]


class _StreamLoop:
    """One START_REPLICATION session: decode, batch, apply, acknowledge."""

    def __init__(self, rep: Replicator, wh: Warehouse, conn: Any, cur: Any, start_lsn: int) -> None:
        self.rep = rep
        self.cfg = rep.config
        self.wh = wh
        self.conn = conn  # a normal connection: catalog lookups and heartbeats
        self.cur = cur
        self.applied_lsn = start_lsn
        self.relations: dict[int, po.Relation] = {}
        self.by_relid: dict[int, TableWriter] = {}
        self.current: po.Transaction | None = None
        self.ready: list[po.Transaction] = []
        self.ready_changes = 0
        self.ready_since = 0.0
        self.streams: dict[int, po.Transaction] = {}
        self.in_stream: int | None = None
        self.heartbeat: tuple[int, int] | None = None  # (lsn, source ms) received, unsaved
        self.heartbeat_due = time.monotonic()
        self.heartbeat_ok = True

    def run(self, stop: threading.Event) -> None:
        read = self.cur.read_message
        while not stop.is_set():
            msg = read()
            if msg is not None:
                self.handle(msg.payload)
                if self.ready and (
                    self.ready_changes >= self.cfg.max_batch_changes
                    or time.monotonic() - self.ready_since >= self.cfg.commit_interval_s
                ):
                    self.apply()
                continue
            # Nothing buffered from the server: we are caught up with what it sent.
            if self.ready or self.heartbeat is not None:
                self.apply()
            self.rep.counters.caught_up = self.current is None and not self.streams
            now = time.monotonic()
            if now >= self.heartbeat_due:
                self.emit_heartbeat()
                self.heartbeat_due = now + self.cfg.heartbeat_interval_s
            if self.cfg.snapshot_path is not None:
                self.wh.publish_snapshot(self.cfg.snapshot_path, self.cfg.snapshot_interval_s)
            wait = self.cfg.commit_interval_s
            select.select([self.cur], [], [], wait)
        if self.ready:
            self.apply()

    # --- intake -------------------------------------------------------------------------
    def handle(self, payload: bytes) -> None:
        msg = po.decode(payload, in_stream=self.in_stream is not None)
        if isinstance(msg, po.Insert | po.Update | po.Delete | po.Truncate | po.Relation):
            if isinstance(msg, po.Relation):
                self.relations[msg.relid] = msg
            target = self.streams[self.in_stream] if self.in_stream is not None else self.current
            if target is not None:
                target.changes.append(msg)
        elif isinstance(msg, po.Begin):
            self.current = po.Transaction(msg.xid)
        elif isinstance(msg, po.Commit):
            txn, self.current = self.current, None
            if txn is not None:
                self._committed(txn, msg.commit_lsn, msg.end_lsn, msg.commit_ts_us)
        elif isinstance(msg, po.Message):
            if not msg.transactional and msg.prefix == HEARTBEAT_PREFIX:
                self.heartbeat = (msg.lsn, int(msg.content.decode() or 0))
        elif isinstance(msg, po.StreamStart):
            self.in_stream = msg.xid
            self.streams.setdefault(msg.xid, po.Transaction(msg.xid))
        elif isinstance(msg, po.StreamStop):
            self.in_stream = None
        elif isinstance(msg, po.StreamCommit):
            txn = self.streams.pop(msg.xid, po.Transaction(msg.xid))
            self._committed(txn, msg.commit_lsn, msg.end_lsn, msg.commit_ts_us)
        elif isinstance(msg, po.StreamAbort):
            if msg.subxid == msg.xid:
                self.streams.pop(msg.xid, None)
            elif msg.xid in self.streams:
                txn = self.streams[msg.xid]
                txn.changes = [c for c in txn.changes if c.xid != msg.subxid]
        # Type and Origin messages need nothing: types come from the catalog.

    def _committed(self, txn: po.Transaction, commit_lsn: int, end_lsn: int, ts_us: int) -> None:
        last = self.ready[-1].end_lsn if self.ready else self.applied_lsn
        if end_lsn <= last:
            return  # already applied before a restart: exactly once
        txn.commit_lsn, txn.end_lsn, txn.commit_ts_us = commit_lsn, end_lsn, ts_us
        if not self.ready:
            self.ready_since = time.monotonic()
        self.ready.append(txn)
        self.ready_changes += len(txn.changes)

    # --- apply --------------------------------------------------------------------------
    def writer(self, relid: int) -> TableWriter:
        writer = self.by_relid.get(relid)
        if writer is None:
            rel = self.relations[relid]
            writer = self.wh.attach_table(rel.namespace, rel.name, self.dest_columns(rel))
            self.by_relid[relid] = writer
        return writer

    def dest_columns(self, rel: po.Relation) -> list[DestColumn]:
        info = self.rep.types.get(self.conn, {c.type_oid for c in rel.columns})
        from hybridshop.datastream.typemap import column_type

        return [
            DestColumn(c.name, column_type(info[c.type_oid], c.typmod), c.is_key)
            for c in rel.columns
        ]

    def apply(self) -> None:
        ready, self.ready, self.ready_changes = self.ready, [], 0
        heartbeat, self.heartbeat = self.heartbeat, None
        lsn = ready[-1].end_lsn if ready else self.applied_lsn
        if heartbeat is not None:
            lsn = max(lsn, heartbeat[0])
        if lsn <= self.applied_lsn and not ready:
            return
        try:
            changes = self._apply_batch(ready, heartbeat, lsn)
        except VALUE_ERRORS as exc:
            # A value the warehouse cannot hold (NaN in a DECIMAL, a timestamp past 294247,
            # a date before year 1): do it again with checked casts, rejecting and recording
            # the changes that hold one; the rest of the batch is applied as usual.
            log.warning("batch holds a value DuckDB cannot store (%s); rejecting it", _first(exc))
            self.reset_writers()
            self.wh.set_careful(True)
            try:
                changes = self._apply_batch(ready, heartbeat, lsn)
            finally:
                self.wh.set_careful(False)
        self.applied_lsn = lsn
        # Acknowledge only what DuckDB has durably committed.
        self.cur.send_feedback(write_lsn=lsn, flush_lsn=lsn, force=True)
        c = self.rep.counters
        c.lsn = lsn
        c.changes_applied += changes
        c.transactions_applied += len(ready)
        c.batches += 1
        if ready:
            c.last_commit_ts_ms = ready[-1].commit_ts_us // 1000

    def reset_writers(self) -> None:
        """Forget the in-memory writers (after a rollback): they are rebuilt from the
        warehouse's catalog, so columns added by the rolled-back batch are added again."""
        self.wh.writers.clear()
        self.by_relid.clear()

    def _apply_batch(
        self, ready: list[po.Transaction], heartbeat: tuple[int, int] | None, lsn: int
    ) -> int:
        wh = self.wh
        wh.begin()
        try:
            changes = 0
            for txn in ready:
                ts_ms = txn.commit_ts_us // 1000
                for seq, change in enumerate(txn.changes):
                    self.apply_change(change, ts_ms, txn.commit_lsn, seq)
                changes += len(txn.changes)
            for writer in wh.writers.values():
                if writer.has_pending():
                    writer.flush(wh.con)
                writer.end_batch()
            self.rep.counters.rejected_changes += wh.save_rejects(self.cfg.slot)
            wh.save_state(
                self.cfg.slot,
                lsn,
                commit_ts_ms=ready[-1].commit_ts_us // 1000 if ready else None,
                heartbeat_ts_ms=heartbeat[1] if heartbeat else None,
                changes=changes,
            )
            wh.commit()
        except BaseException:
            wh.rollback()
            raise
        return changes

    def apply_change(self, change: Any, ts_ms: int, commit_lsn: int, seq: int) -> None:
        kind = type(change)
        cs = change_sequence_number(commit_lsn, 2 * seq + 1)
        if kind is po.Insert:
            self.writer(change.relid).insert(change.new, ts_ms, cs)
        elif kind is po.Update:
            cs_delete = change_sequence_number(commit_lsn, 2 * seq)
            self.writer(change.relid).update(change.old, change.new, ts_ms, cs, cs_delete)
        elif kind is po.Delete:
            self.writer(change.relid).delete(change.old, ts_ms, cs)
        elif kind is po.Truncate:
            for relid in change.relids:
                self.writer(relid).truncate(self.wh.con, ts_ms, cs)
        elif kind is po.Relation:
            writer = self.by_relid.get(change.relid)
            columns = self.dest_columns(change)
            if writer is None:
                self.by_relid[change.relid] = self.wh.attach_table(
                    change.namespace, change.name, columns
                )
            else:
                self.wh.evolve(writer, columns)

    def emit_heartbeat(self) -> None:
        """A non-transactional WAL message: its arrival proves everything before it was
        sent, so the slot can advance even when no published table changes."""
        if not self.heartbeat_ok:
            return
        try:
            with self.conn.cursor() as cur:
                cur.execute(
                    "SELECT pg_logical_emit_message(false, %s, "
                    "((extract(epoch FROM clock_timestamp()) * 1000)::bigint)::text)",
                    (HEARTBEAT_PREFIX,),
                )
        except psycopg2.errors.InsufficientPrivilege:
            log.warning(
                "cannot write heartbeats (pg_logical_emit_message denied); the slot "
                "still advances with every replicated change"
            )
            self.heartbeat_ok = False


@dataclass
class _Chunk:
    table: int  # index into the backfilled tables
    path: Path
    last: bool  # the table's last chunk


class _ChunkCopier:
    """Runs the snapshot COPYs on its own thread, one file per page range, so that
    PostgreSQL produces chunk n+1 while DuckDB loads chunk n (psycopg2 and DuckDB both
    release the GIL while they work). The COPY never waits for the loader: at most the
    table's CSV is on disk, as with one file per table.

    Iterating yields the chunks in order; a COPY failure is re-raised there. Leaving the
    ``with`` block early cancels the running COPY.
    """

    def __init__(
        self,
        conn: Any,
        jobs: list[tuple[int, SourceTable, tuple[int, int | None]]],
        tmp: Path,
        tables: int,
    ) -> None:
        self.conn, self.jobs, self.tmp = conn, jobs, tmp
        self._queue: queue.Queue[_Chunk | BaseException | None] = queue.Queue()
        self._stop = threading.Event()
        self._done = [0] * tables  # bytes of finished chunks, per table
        self._current: tuple[int, Path] | None = None
        self._thread = threading.Thread(target=self._run, name="backfill-copy", daemon=True)

    def __enter__(self) -> _ChunkCopier:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():
            self._stop.set()
            with contextlib.suppress(psycopg2.Error):
                self.conn.cancel()
            self._thread.join()

    def __iter__(self) -> Iterator[list[_Chunk]]:
        """Batches of finished chunks of one table: one chunk while the COPY keeps up with
        the loader, everything waiting once it has run ahead (after the COPY ends, the rest
        of the table is one multi-file read that DuckDB parallelises)."""
        pending: _Chunk | BaseException | None = None
        held = False
        while True:
            if held:
                item, held = pending, False
            else:
                item = self._get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            batch = [item]
            while True:
                try:
                    pending = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(pending, _Chunk) and pending.table == item.table:
                    batch.append(pending)
                    continue
                held = True
                break
            yield batch

    def _get(self) -> _Chunk | BaseException | None:
        while True:
            try:
                return self._queue.get(timeout=0.5)
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    raise RuntimeError("the backfill COPY thread ended without a result") from None

    def copied(self, table: int) -> int:
        """Bytes of ``table`` copied so far (finished chunks plus the one being written)."""
        current = self._current
        extra = 0
        if current is not None and current[0] == table:
            with contextlib.suppress(OSError):
                extra = current[1].stat().st_size
        return self._done[table] + extra

    def _put(self, item: _Chunk | BaseException | None) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for n, (index, table, pages) in enumerate(self.jobs):
                if self._stop.is_set():
                    return
                path = self.tmp / f"{table.relid}.{n}.csv"
                self._current = (index, path)
                with path.open("wb") as out:
                    copy_table(self.conn, table, out, pages)
                self._done[index] += path.stat().st_size
                self._current = None
                if not self._put(_Chunk(index, path, pages[1] is None)):
                    return
            self._put(None)
        except Exception as exc:  # noqa: BLE001 - re-raised by the consuming thread
            self._put(exc)


class _progress:
    """Per-table backfill progress (bytes copied), drawn by rich when asked for."""

    def __init__(self, enabled: bool, labels: list[str], copied: Callable[[int], int]) -> None:
        self.enabled, self.labels, self.copied = enabled, labels, copied
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _progress:
        if self.enabled:
            self._thread = threading.Thread(target=self._draw, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _draw(self) -> None:
        from rich.progress import DownloadColumn, Progress, SpinnerColumn, TextColumn

        with Progress(
            SpinnerColumn(), TextColumn("backfill {task.description}"), DownloadColumn()
        ) as bar:
            tasks = [bar.add_task(label, total=None) for label in self.labels]
            while True:
                stopping = self._stop.wait(0.2)
                for index, task in enumerate(tasks):
                    bar.update(task, completed=self.copied(index))
                if stopping:
                    return


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
