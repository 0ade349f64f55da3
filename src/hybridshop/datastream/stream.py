"""Streaming: decode pgoutput, batch committed transactions, apply them exactly once.

A batch of committed transactions and the end LSN it reaches are committed in one DuckDB
transaction; the slot is acknowledged (flush LSN) only afterwards; after a restart,
transactions whose end LSN is at or below the stored LSN are skipped.

Receiving and applying overlap: while one batch is decoded and written to DuckDB on the
applier's thread, this thread keeps reading the stream (so the walsender keeps decoding WAL
on the other core instead of waiting for a full socket), buffering the next batch. One batch
is in flight at a time; the replication connection is used by this thread only (reads,
acknowledgements), the catalog connection and the warehouse by whichever thread holds the
batch, and nothing else touches them while a batch is in flight.
"""

from __future__ import annotations

import concurrent.futures
import logging
import select
import threading
import time
from typing import TYPE_CHECKING, Any

import psycopg2

from hybridshop.datastream import pgoutput as po
from hybridshop.datastream.backfill import TableCopy
from hybridshop.datastream.destination import (
    VALUE_ERRORS,
    DestColumn,
    TableWriter,
    Warehouse,
    change_sequence_number,
)
from hybridshop.datastream.requests import requests_path_for, take_requests
from hybridshop.datastream.source import key_columns, publication_table_names
from hybridshop.datastream.txnbuffer import TxnBuffer
from hybridshop.datastream.typemap import column_type

if TYPE_CHECKING:
    from hybridshop.datastream.replicator import Replicator

log = logging.getLogger("hybridshop.datastream")

HEARTBEAT_PREFIX = "hybridshop.datastream.heartbeat"
_CHANGE_KINDS = frozenset(b"IUDT")
KEYLESS_REASON = (
    "the table has no primary key and no replica identity, so only its INSERTs are "
    "replicated (append-only, as Datastream does). Fix: ALTER TABLE ... ADD PRIMARY KEY (...); "
    "or ALTER TABLE ... REPLICA IDENTITY FULL; then `hybridshop replicate backfill <table>`"
)


class StreamApplier:
    """One START_REPLICATION session: decode, batch, apply, acknowledge."""

    def __init__(self, rep: Replicator, wh: Warehouse, conn: Any, cur: Any, start_lsn: int) -> None:
        self.rep = rep
        self.cfg = rep.config
        self.wh = wh
        self.conn = conn  # a normal connection: catalog lookups and heartbeats
        self.cur = cur
        self.applied_lsn = start_lsn
        self.relations: dict[int, po.Relation] = {}  # as received
        # as applied (in commit order, on the applier's thread): what writers are built from
        self.applied_relations: dict[int, po.Relation] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="apply")
        self.inflight: concurrent.futures.Future[int] | None = None
        self.inflight_batch: tuple[list[TxnBuffer], int] = ([], start_lsn)
        self.queued_lsn = start_lsn  # the end of the last batch handed to the applier
        self.by_relid: dict[int, TableWriter] = {}
        self.current: TxnBuffer | None = None
        self.ready: list[TxnBuffer] = []
        self.ready_changes = 0
        self.ready_since = 0.0
        self.streams: dict[int, TxnBuffer] = {}
        self.in_stream: int | None = None
        self.heartbeat: tuple[int, int] | None = None  # (lsn, source ms) received, unsaved
        self.heartbeat_due = time.monotonic()
        self.heartbeat_ok = True
        self.tables_due = time.monotonic() + self.cfg.table_check_interval_s
        self.keepalive_at = time.monotonic()
        self.requests_path = requests_path_for(self.cfg.duckdb_path)
        self.copy: TableCopy | None = None  # tables being copied between batches

    def run(self, stop: threading.Event) -> None:
        try:
            self._run(stop)
        finally:
            if self.inflight is not None:  # failing: let the batch end before the rollback
                concurrent.futures.wait([self.inflight])
                self.inflight = None
            self._pool.shutdown(wait=True)
            if self.copy is not None:  # unfinished: copied again next time (see TableCopy)
                self.copy.close()
                self.copy = None
                self.rep.counters.copying.clear()

    def _run(self, stop: threading.Event) -> None:
        read = self.cur.read_message
        self.wh.drop_shadows()  # of a copy a crash interrupted
        self.check_tables()  # tables added to the publication while we were stopped
        while not stop.is_set():
            msg = read()
            if msg is not None:
                self.handle(msg.payload)
                if self.inflight is not None and self.inflight.done():
                    self.collect()
                if self.ready and (
                    self.ready_changes >= self.cfg.max_batch_changes
                    or time.monotonic() - self.ready_since >= self.cfg.commit_interval_s
                ):
                    if self.copy is not None:  # a busy stream copies too, a chunk a batch
                        self.apply()
                        self.copy_step()
                    elif self.inflight is None:
                        self.submit()
                    elif self.ready_changes >= 2 * self.cfg.max_batch_changes:
                        self.collect()  # the applier is behind: wait for it, then go on
                        self.submit()
                    if time.monotonic() >= self.tables_due:  # a busy stream checks too
                        self.apply()
                        self.check_tables()
                        self.tables_due = time.monotonic() + self.cfg.table_check_interval_s
                continue
            # Nothing buffered from the server right now.
            if self.inflight is not None:
                if not self.inflight.done():
                    # the applier works: listen to the stream meanwhile
                    select.select([self.cur], [], [], 0.002)
                    continue
                self.collect()
            if self.ready or self.heartbeat is not None:
                if self.copy is None and self.ready:
                    self.submit()
                    continue
                self.apply()
            # Caught up with what the server sent, nothing in flight.
            self.confirm_sent()
            self.rep.counters.caught_up = self.current is None and not self.streams
            now = time.monotonic()
            if now >= self.heartbeat_due:
                self.emit_heartbeat()
                self.heartbeat_due = now + self.cfg.heartbeat_interval_s
            if now >= self.tables_due or self.requests_path.exists():
                self.check_tables()
                self.tables_due = time.monotonic() + self.cfg.table_check_interval_s
            if self.cfg.snapshot_path is not None:
                self.wh.publish_snapshot(self.cfg.snapshot_path, self.cfg.snapshot_interval_s)
            wait = self.cfg.commit_interval_s
            if self.copy is not None:
                # between stream messages, the copy goes on (a chunk, then look again)
                wait = 0.0 if self.copy_step() else min(wait, 0.01)
            select.select([self.cur], [], [], wait)
        if self.ready or self.inflight is not None:
            self.apply()

    def copy_step(self) -> bool:
        """Load one chunk of the running copy; finish it after its last. True if there is
        more to do at once."""
        copy = self.copy
        assert copy is not None
        writers = self.wh.writers
        loaded = copy.step()
        if self.wh.writers is not writers or not self.wh.writers:
            self.by_relid.clear()  # a chunk's retry rolled back: writers are rebuilt
        c = self.rep.counters
        c.copying = {t.qualified: n for t, n in zip(copy.tables, copy.rows, strict=True)}
        c.copy_longest_step_s = max(c.copy_longest_step_s, copy.longest_step_s)
        if copy.done:
            if self.ready or self.heartbeat is not None:
                self.apply()  # every change received so far is then applied or held
            self.finish_copy(copy)
            return False
        return loaded

    def check_tables(self) -> None:
        """Backfill the tables the publication gained (Datastream backfills added objects)
        and those asked for by ``hybridshop replicate backfill`` (the requests file)."""
        if self.copy is not None:
            return  # one copy at a time; requests wait for it
        published = publication_table_names(self.conn, self.cfg.publication)
        known = {f"{s}.{t}" for s, t in self.wh.table_states}
        wanted = published - known
        requested = take_requests(self.requests_path)
        wanted |= requested & published
        for name in sorted(requested - published):
            log.error("backfill of %s asked for, but it is not published; ignored", name)
        if not wanted:
            return
        if self.ready or self.heartbeat is not None:
            self.apply()
        self.copy = self.rep.start_copy(self.conn, wanted)
        self.rep.counters.copying = dict.fromkeys(sorted(t.qualified for t in self.copy.tables), 0)

    def finish_copy(self, copy: TableCopy) -> None:
        """The copy is complete: apply the changes held for it (transactions ending after
        its snapshot, up to what the stream has applied) to the shadows, swap them in and
        record the snapshot's point, in one DuckDB transaction."""
        wh = self.wh
        shadows = {w.source: w for w in copy.shadows}
        by_relid: dict[int, TableWriter] = {}
        held = copy.held
        assert held is not None
        flush_every = self.cfg.flush_every_changes
        wh.begin()
        try:
            for shadow in shadows.values():
                shadow.careful = True  # a value DuckDB cannot hold is rejected, not fatal
            pending = 0
            for ts_ms, commit_lsn, seq, change in held:
                relids = change.relids if type(change) is po.Truncate else [change.relid]
                if type(change) is po.Relation:
                    shadow = by_relid[change.relid] = shadows[(change.namespace, change.name)]
                    wh.evolve(shadow, self.dest_columns(change))
                    shadow.keyless = change.replica_identity != "f" and not any(
                        c.is_key for c in shadow.columns
                    )
                    continue
                for relid in relids:
                    writer = by_relid.get(relid)
                    if writer is None:
                        rel = self.applied_relations.get(relid) or self.relations[relid]
                        writer = shadows.get((rel.namespace, rel.name))
                        if writer is None:
                            continue  # a TRUNCATE of this and other tables
                        by_relid[relid] = writer
                    self._change_to(writer, change, ts_ms, commit_lsn, seq)
                pending += 1
                if pending >= flush_every:
                    for shadow in shadows.values():
                        wh.write(shadow)
                    pending = 0
            for shadow in shadows.values():
                wh.write(shadow)
            self.rep.counters.rejected_changes += wh.save_rejects(self.cfg.slot, shadows.values())
            for shadow in shadows.values():
                wh.swap_in(shadow, copy.lsn)
            wh.commit()
        except BaseException:
            wh.rollback()
            self.reset_writers()
            raise
        finally:
            for shadow in shadows.values():
                shadow.careful = wh.careful
        copy.close()
        self.copy = None
        self.by_relid.clear()  # the copied tables' writers were replaced
        c = self.rep.counters
        c.copying.clear()
        c.rejected_changes += copy.rejected
        for t in copy.tables:
            c.stopped_tables.pop(t.qualified, None)
        names = ", ".join(sorted(t.qualified for t in copy.tables))
        c.backfilled[names] = time.time()
        log.info(
            "backfilled %s while streaming: %s rows, %d changes held meanwhile, longest "
            "pause of the stream %.0f ms",
            names,
            ", ".join(str(n) for n in copy.rows),
            held.count,
            copy.longest_step_s * 1000,
        )

    # --- intake -------------------------------------------------------------------------
    def handle(self, payload: bytes) -> None:
        kind = payload[0]
        if kind in _CHANGE_KINDS:  # I U D T: kept raw, decoded when applied
            target = self.streams[self.in_stream] if self.in_stream is not None else self.current
            if target is not None:
                target.add(payload)
            return
        msg = po.decode(payload, in_stream=self.in_stream is not None)
        if isinstance(msg, po.Relation):
            self.relations[msg.relid] = msg
            target = self.streams[self.in_stream] if self.in_stream is not None else self.current
            if target is not None:
                target.add(payload)
        elif isinstance(msg, po.Begin):
            self.current = self._buffer(msg.xid, streamed=False)
        elif isinstance(msg, po.Commit):
            txn, self.current = self.current, None
            if txn is not None:
                self._committed(txn, msg.commit_lsn, msg.end_lsn, msg.commit_ts_us)
        elif isinstance(msg, po.Message):
            if not msg.transactional and msg.prefix == HEARTBEAT_PREFIX:
                self.heartbeat = (msg.lsn, int(msg.content.decode() or 0))
        elif isinstance(msg, po.StreamStart):
            self.in_stream = msg.xid
            if msg.xid not in self.streams:
                self.streams[msg.xid] = self._buffer(msg.xid, streamed=True)
        elif isinstance(msg, po.StreamStop):
            self.in_stream = None
        elif isinstance(msg, po.StreamCommit):
            txn = self.streams.pop(msg.xid, None) or self._buffer(msg.xid, streamed=True)
            self._committed(txn, msg.commit_lsn, msg.end_lsn, msg.commit_ts_us)
        elif isinstance(msg, po.StreamAbort):
            if msg.subxid == msg.xid:
                aborted = self.streams.pop(msg.xid, None)
                if aborted is not None:
                    aborted.close()
            elif msg.xid in self.streams:
                self.streams[msg.xid].abort_subtransaction(msg.subxid)
        # Type and Origin messages need nothing: types come from the catalog.

    def _buffer(self, xid: int, *, streamed: bool) -> TxnBuffer:
        return TxnBuffer(
            xid,
            streamed=streamed,
            spill_dir=self.cfg.duckdb_path.parent,
            memory_bytes=self.cfg.txn_memory_bytes,
        )

    def _committed(self, txn: TxnBuffer, commit_lsn: int, end_lsn: int, ts_us: int) -> None:
        last = self.ready[-1].end_lsn if self.ready else max(self.applied_lsn, self.queued_lsn)
        if end_lsn <= last:
            txn.close()
            return  # already applied before a restart: exactly once
        txn.commit_lsn, txn.end_lsn, txn.commit_ts_us = commit_lsn, end_lsn, ts_us
        if not self.ready:
            self.ready_since = time.monotonic()
        self.ready.append(txn)
        self.ready_changes += txn.count

    # --- apply --------------------------------------------------------------------------
    def writer(self, relid: int) -> TableWriter:
        writer = self.by_relid.get(relid)
        if writer is None:
            rel = self.applied_relations.get(relid)
            if rel is None:  # sent in a transaction skipped as already applied
                rel = self.relations[relid]
            writer = self.wh.attach_table(rel.namespace, rel.name, self.dest_columns(rel))
            self.by_relid[relid] = writer
        return writer

    def dest_columns(self, rel: po.Relation) -> list[DestColumn]:
        """The destination columns of a Relation. Keys come from the catalog by the rule the
        backfill uses (``source.key_columns``), not from the Relation's flags, which mark
        every column under REPLICA IDENTITY FULL."""
        info = self.rep.types.get(self.conn, {c.type_oid for c in rel.columns})
        keys = key_columns(self.conn, rel.relid)
        return [
            DestColumn(c.name, column_type(info[c.type_oid], c.typmod), c.name in keys)
            for c in rel.columns
        ]

    def apply(self) -> None:
        """Apply everything received and committed, and wait until it is (and acknowledged)."""
        self.collect()
        self.submit()
        self.collect()

    def submit(self) -> None:
        """Hand the ready transactions (and the last heartbeat) to the applier's thread as
        one batch; ``collect`` acknowledges it once DuckDB has committed it."""
        assert self.inflight is None
        ready, self.ready, self.ready_changes = self.ready, [], 0
        heartbeat, self.heartbeat = self.heartbeat, None
        lsn = ready[-1].end_lsn if ready else self.applied_lsn
        if heartbeat is not None:
            lsn = max(lsn, heartbeat[0])
        if lsn <= self.applied_lsn and not ready:
            return
        self.queued_lsn = lsn
        self.inflight_batch = (ready, lsn)
        self.inflight = self._pool.submit(self._apply_now, ready, heartbeat, lsn)

    def collect(self) -> None:
        """Wait for the batch in flight (keeping the walsender's connection alive), then
        acknowledge it: only what DuckDB has durably committed. Its failure is raised here."""
        future = self.inflight
        if future is None:
            return
        while True:
            try:
                changes = future.result(timeout=1.0)
                break
            except concurrent.futures.TimeoutError:
                self.keepalive()
        self.inflight = None
        ready, lsn = self.inflight_batch
        self.inflight_batch = ([], lsn)
        for txn in ready:
            txn.close()  # spill files go now
        self.applied_lsn = lsn
        self.cur.send_feedback(write_lsn=lsn, flush_lsn=lsn, force=True)
        c = self.rep.counters
        c.lsn = lsn
        c.changes_applied += changes
        c.transactions_applied += len(ready)
        c.batches += 1
        if ready:
            c.last_commit_ts_ms = ready[-1].commit_ts_us // 1000

    def _apply_now(
        self, ready: list[TxnBuffer], heartbeat: tuple[int, int] | None, lsn: int
    ) -> int:
        """The applier's thread: one batch into DuckDB (see ``_apply_batch``)."""
        held = self.copy.held if self.copy is not None else None
        mark = held.mark() if held is not None else None
        try:
            changes = self._apply_batch(ready, heartbeat, lsn)
        except VALUE_ERRORS as exc:
            if held is not None and mark is not None:
                held.rewind(mark)  # the batch is taken again, its held changes too
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
        return changes

    def reset_writers(self) -> None:
        """Forget the in-memory writers (after a rollback): they are rebuilt from the
        warehouse's catalog, so columns added by the rolled-back batch are added again."""
        self.wh.writers.clear()
        self.by_relid.clear()

    def _apply_batch(
        self, ready: list[TxnBuffer], heartbeat: tuple[int, int] | None, lsn: int
    ) -> int:
        """Apply ``ready`` and reach ``lsn`` in one DuckDB transaction. Pending rows are
        written every ``flush_every_changes`` changes inside it, so a transaction of any
        size is applied atomically in bounded memory."""
        wh = self.wh
        flush_every = self.cfg.flush_every_changes
        wh.begin()
        try:
            changes = 0
            pending = 0
            for txn in ready:
                ts_ms = txn.commit_ts_us // 1000
                for seq, change in enumerate(txn.changes()):
                    self.apply_change(change, ts_ms, txn.commit_lsn, seq, txn.end_lsn)
                    pending += 1
                    if pending >= flush_every:
                        wh.flush_writers()
                        pending = 0
                changes += txn.count
            self.rep.counters.rejected_changes += wh.flush(self.cfg.slot)
            wh.state.advance(
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

    def apply_change(
        self, change: Any, ts_ms: int, commit_lsn: int, seq: int, end_lsn: int
    ) -> None:
        kind = type(change)
        copy = self.copy
        if copy is not None and end_lsn > copy.lsn:
            self._hold(copy, change, ts_ms, commit_lsn, seq)
        if kind is po.Relation:
            writer = self.by_relid.get(change.relid)
            columns = self.dest_columns(change)
            if writer is None:
                writer = self.wh.attach_table(change.namespace, change.name, columns)
                self.by_relid[change.relid] = writer
            else:
                self.wh.evolve(writer, columns)
            writer.keyless = change.replica_identity != "f" and not any(c.is_key for c in columns)
            if writer.stopped:
                self.rep.counters.stopped_tables[writer.qualified] = writer.stopped
            self.applied_relations[change.relid] = change
            return
        if kind is po.Truncate:
            for relid in change.relids:
                writer = self.writer(relid)
                known = writer.source in self.wh.table_states
                if known and not writer.stopped and end_lsn > writer.skip_through:
                    self.wh.truncate(writer, ts_ms, change_sequence_number(commit_lsn, 2 * seq + 1))
            return
        writer = self.writer(change.relid)
        if writer.stopped or end_lsn <= writer.skip_through:
            return  # stopped (schema change), or already in the table's later snapshot
        if writer.source not in self.wh.table_states:
            # Added to the publication and not backfilled yet: its backfill (a snapshot taken
            # after this transaction) holds this change, or the copy running holds it.
            if copy is None or writer.source not in copy.sources:
                self.tables_due = 0.0
            return
        self._change_to(writer, change, ts_ms, commit_lsn, seq)

    def _hold(self, copy: TableCopy, change: Any, ts_ms: int, commit_lsn: int, seq: int) -> None:
        """Keep a change of a table being copied for its copy (``finish_copy``)."""
        relids = change.relids if type(change) is po.Truncate else [change.relid]
        for relid in relids:
            rel = (
                change
                if type(change) is po.Relation
                else self.applied_relations.get(relid) or self.relations.get(relid)
            )
            if rel is not None and (rel.namespace, rel.name) in copy.sources:
                copy.hold((ts_ms, commit_lsn, seq, change))
                return

    def _change_to(
        self, writer: TableWriter, change: Any, ts_ms: int, commit_lsn: int, seq: int
    ) -> None:
        """One Insert, Update, Delete or Truncate into ``writer``."""
        kind = type(change)
        cs = change_sequence_number(commit_lsn, 2 * seq + 1)
        if kind is po.Truncate:
            self.wh.truncate(writer, ts_ms, cs)
        elif kind is po.Insert:
            writer.insert(change.new, ts_ms, cs)
        elif kind is po.Update:
            if writer.keyless:
                writer.reject_change("UPDATE", change.new, cs, KEYLESS_REASON)
                return
            # an UPDATE-DELETE row only when the old key is sent (the key may have changed)
            old = change.old
            cs_delete = cs if old is None else change_sequence_number(commit_lsn, 2 * seq)
            writer.update(old, change.new, ts_ms, cs, cs_delete)
        elif kind is po.Delete:
            if writer.keyless:
                writer.reject_change("DELETE", change.old, cs, KEYLESS_REASON)
                return
            writer.delete(change.old, ts_ms, cs)

    def confirm_sent(self) -> None:
        """With nothing received and unapplied, confirm the position the walsender says it
        has sent (its keepalive's WAL end), as PostgreSQL's own apply worker does when it has
        no pending transaction. WAL the publication does not cover (other tables, vacuum,
        checkpoints) then stops holding the slot back until the next heartbeat; a
        transaction still being received or staged is never skipped over (for logical
        replication a data message's WAL end is its own position, never further)."""
        if self.ready or self.current is not None or self.streams or self.heartbeat:
            return
        if self.inflight is not None:
            return
        sent = int(self.cur.wal_end or 0)
        if sent > self.applied_lsn:
            self.applied_lsn = sent
            self.cur.send_feedback(write_lsn=sent, flush_lsn=sent, force=True)
            self.rep.counters.lsn = sent

    def keepalive(self) -> None:
        """While this thread waits for a long batch nothing is read from the stream, so
        psycopg2 sends no status: without one for ``wal_sender_timeout`` (60 s) the
        walsender drops the connection. Report the position already applied (never more)
        every 10 s."""
        now = time.monotonic()
        if now - self.keepalive_at >= 10.0:
            self.cur.send_feedback(
                write_lsn=self.applied_lsn, flush_lsn=self.applied_lsn, force=True
            )
            self.keepalive_at = now

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


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
