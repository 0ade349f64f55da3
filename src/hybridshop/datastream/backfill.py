"""Backfill: copy tables inside an exported snapshot into the warehouse, no gap, no duplicate.

``CREATE_REPLICATION_SLOT ... (SNAPSHOT 'export')`` returns a consistent point and a snapshot
that sees exactly the transactions committed before it. Copying the tables in that snapshot
and streaming the slot from that point (or, for a table backfilled later with a temporary
slot, skipping that table's changes up to that point) gives each change exactly once.

The copy runs in heap page ranges on its own thread while DuckDB loads the ranges already
copied (see docs/datastream.md); all tables and the state that goes with them are committed in
one DuckDB transaction (``on_commit``).
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from hybridshop.datastream import pgoutput as po
from hybridshop.datastream.destination import VALUE_ERRORS, DestColumn, TableWriter, Warehouse
from hybridshop.datastream.source import SourceTable, copy_table, lock_tables, page_ranges

log = logging.getLogger("hybridshop.datastream")


@dataclass
class BackfillOptions:
    chunk_pages: int = 2048  # COPY in page ranges of this size; 0 = one COPY per table
    duckdb_threads: int | None = None
    progress: bool = False
    tmp_dir: Path | None = None  # where the CSV chunks wait (next to the warehouse)


@dataclass
class BackfillResult:
    lsn: int  # the snapshot's consistent point
    ts_ms: int  # source time of the snapshot
    rows: dict[str, int]  # loaded rows per source table
    rejected: int


def dest_columns(table: SourceTable) -> list[DestColumn]:
    return [DestColumn(c.name, c.ctype, c.is_key) for c in table.columns]


def backfill(
    connect: Callable[..., Any],
    wh: Warehouse,
    slot: str,
    tables: list[SourceTable],
    *,
    options: BackfillOptions,
    on_commit: Callable[[int, int], None],
    temporary: bool = False,
    state_slot: str | None = None,
) -> BackfillResult:
    """Create ``slot`` with an exported snapshot (``temporary``: dropped with the session, for
    a table added later) and copy ``tables`` in it; ``on_commit(lsn, ts_ms)`` writes the state
    in the same DuckDB transaction.

    A value DuckDB cannot hold fails the fast load; the copy then starts over with checked
    casts that reject (and record) the rows holding one."""
    args = (connect, wh, slot, tables, options, on_commit, temporary, state_slot or slot)
    try:
        return _backfill_once(*args, careful=False)
    except VALUE_ERRORS as exc:
        log.warning(
            "backfill found a value DuckDB cannot store (%s); copying again and rejecting "
            "those rows",
            str(exc).strip().splitlines()[0],
        )
    drop_slot(connect, slot)
    return _backfill_once(*args, careful=True)


def drop_slot(connect: Callable[..., Any], slot: str) -> None:
    """Drop ``slot`` if it exists, waiting for a walsender that just used it to let go."""
    conn = connect()
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            for _ in range(100):
                cur.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,))
                row = cur.fetchone()
                if row is None:
                    return
                if not row[0]:
                    cur.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                    return
                time.sleep(0.05)
    finally:
        conn.close()


def _backfill_once(
    connect: Callable[..., Any],
    wh: Warehouse,
    slot: str,
    tables: list[SourceTable],
    options: BackfillOptions,
    on_commit: Callable[[int, int], None],
    temporary: bool,
    state_slot: str,
    *,
    careful: bool,
) -> BackfillResult:
    repl = connect(connection_factory=psycopg2.extras.LogicalReplicationConnection)
    snap = connect()
    try:
        rcur = repl.cursor()
        kind = "TEMPORARY LOGICAL" if temporary else "LOGICAL"
        rcur.execute(f"CREATE_REPLICATION_SLOT \"{slot}\" {kind} pgoutput (SNAPSHOT 'export')")
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
            "slot %s created at %s; backfilling %s",
            slot,
            consistent_point,
            ", ".join(t.qualified for t in tables),
        )
        lock_tables(snap, tables)
        jobs = [
            (index, table, pages)
            for index, table in enumerate(tables)
            for pages in page_ranges(snap, table, options.chunk_pages)
        ]
        wh.begin()
        try:
            wh.set_careful(careful)
            writers = [wh.create_table(t.schema, t.name, dest_columns(t)) for t in tables]
            rows = [0] * len(tables)
            with (
                tempfile.TemporaryDirectory(dir=options.tmp_dir) as tmp,
                _ChunkCopier(snap, jobs, Path(tmp), len(tables)) as copier,
                _progress(options.progress, [t.qualified for t in tables], copier.copied),
                wh.bulk_load(options.duckdb_threads),
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
            rejected = wh.save_rejects(state_slot)
            on_commit(lsn, int(ts_ms))
            wh.commit()
        except BaseException:
            wh.rollback()
            raise
        finally:
            wh.set_careful(False)
        snap.commit()
        loaded = {t.qualified: n for t, n in zip(tables, rows, strict=True)}
        return BackfillResult(lsn, int(ts_ms), loaded, rejected)
    finally:
        snap.close()
        repl.close()


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

    def take(self) -> _Chunk | bool | None:
        """The next finished chunk without waiting: a chunk, False while the COPY is still
        writing it, None after the last one. A COPY failure is raised."""
        try:
            item = self._queue.get_nowait()
        except queue.Empty:
            if not self._thread.is_alive() and self._queue.empty():
                raise RuntimeError("the backfill COPY thread ended without a result") from None
            return False
        if isinstance(item, BaseException):
            raise item
        return item

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


class ChangeSpool:
    """Changes held in order on disk (bounded memory), read back once: the stream's changes
    of a table being copied, applied to its copy when the copy is complete."""

    def __init__(self, tmp_dir: Path | None) -> None:
        # lives as long as the copy; close() removes it
        self._file: IO[bytes] = tempfile.TemporaryFile(dir=tmp_dir, prefix="hybridshop-held-")  # noqa: SIM115
        self.count = 0

    def add(self, item: tuple[Any, ...]) -> None:
        pickle.dump(item, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self.count += 1

    def mark(self) -> tuple[int, int]:
        return self._file.tell(), self.count

    def rewind(self, mark: tuple[int, int]) -> None:
        """Forget what was added after ``mark`` (a batch rolled back and applied again)."""
        self._file.seek(mark[0])
        self._file.truncate()
        self.count = mark[1]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        self._file.flush()
        self._file.seek(0)
        for _ in range(self.count):
            yield pickle.load(self._file)  # noqa: S301 - our own file, written just above

    def close(self) -> None:
        self._file.close()


@dataclass
class TableCopy:
    """A backfill of tables added to the publication (or asked for) while the stream runs,
    copied a chunk at a time between stream batches, so the other tables' changes keep
    flowing: the stream pauses for one chunk's load, never for the whole copy.

    Exactly once, as for the blocking ``backfill``: a temporary slot's exported snapshot
    gives the rows and its consistent point P. Chunks load into a shadow table
    (``Warehouse.create_shadow``: readers keep the table as it was, or none, until the copy
    is complete). Meanwhile the stream holds (``hold``, on disk) the copied tables' changes
    of transactions ending after P; ``finish`` applies them to the shadow, swaps it in and
    records P (the stream then skips those tables' changes at or below P) in one DuckDB
    transaction. A crash before that leaves the table as it was (a new table: not
    replicated yet, so it is copied again from a new snapshot), whatever the slot
    acknowledged meanwhile: the held changes are all after P and every later snapshot
    holds them."""

    connect: Callable[..., Any]
    wh: Warehouse
    tables: list[SourceTable]
    options: BackfillOptions
    slot: str  # the temporary slot's name
    state_slot: str
    lsn: int = 0
    ts_ms: int = 0
    rows: list[int] = field(default_factory=list)
    rejected: int = 0
    shadows: list[TableWriter] = field(default_factory=list)
    held: ChangeSpool | None = None
    done: bool = False
    chunks_loaded: int = 0
    longest_step_s: float = 0.0  # the longest pause of the stream for one chunk
    _snap: Any = None
    _copier: _ChunkCopier | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def sources(self) -> set[tuple[str, str]]:
        return {(t.schema, t.name) for t in self.tables}

    def start(self) -> None:
        repl = self.connect(connection_factory=psycopg2.extras.LogicalReplicationConnection)
        self._snap = snap = self.connect()
        try:
            rcur = repl.cursor()
            rcur.execute(
                f'CREATE_REPLICATION_SLOT "{self.slot}" TEMPORARY LOGICAL pgoutput '
                "(SNAPSHOT 'export')"
            )
            _slot, consistent_point, snapshot_name, _plugin = rcur.fetchone()
            self.lsn = po.parse_lsn(consistent_point)
            snap.set_session(
                isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True
            )
            with snap.cursor() as cur:
                cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot_name,))
                cur.execute("SELECT (extract(epoch FROM now()) * 1000)::bigint")
                (ts_ms,) = cur.fetchone()
            self.ts_ms = int(ts_ms)
        finally:
            # The snapshot now lives in ``snap``'s transaction: the slot (kept only for its
            # consistent point) goes, holding no WAL while the copy runs.
            repl.close()
        log.info(
            "backfilling %s while streaming, from the snapshot at %s",
            ", ".join(t.qualified for t in self.tables),
            consistent_point,
        )
        lock_tables(snap, self.tables)
        jobs = [
            (index, table, pages)
            for index, table in enumerate(self.tables)
            for pages in page_ranges(snap, table, self._step_pages())
        ]
        self.rows = [0] * len(self.tables)
        self.wh.begin()
        try:
            self.shadows = [
                self.wh.create_shadow(t.schema, t.name, dest_columns(t)) for t in self.tables
            ]
            self.wh.commit()
        except BaseException:
            self.wh.rollback()
            raise
        self.held = ChangeSpool(self.options.tmp_dir)
        self._tmp = tempfile.TemporaryDirectory(dir=self.options.tmp_dir)
        self._copier = _ChunkCopier(snap, jobs, Path(self._tmp.name), len(self.tables))
        self._copier.__enter__()

    def _step_pages(self) -> int:
        """Pages per step: the stream waits for one step's load, so a quarter of the
        blocking backfill's ranges (512 pages, 4 MB, by default)."""
        pages = self.options.chunk_pages
        return pages if pages <= 0 else max(1, pages // 4)

    def hold(self, item: tuple[Any, ...]) -> None:
        """A change of a copied table in a transaction ending after P (see ``finish``)."""
        assert self.held is not None
        self.held.add(item)

    def step(self) -> bool:
        """Load the next chunk if the COPY has finished it, in its own DuckDB transaction;
        True if one was loaded. Sets ``done`` after the last."""
        assert self._copier is not None
        chunk = self._copier.take()
        if chunk is None:
            self.done = True
            return False
        if chunk is False:
            return False
        assert isinstance(chunk, _Chunk)
        started = time.monotonic()
        writer = self.shadows[chunk.table]
        try:
            self._load(writer, chunk)
        except VALUE_ERRORS as exc:
            log.warning(
                "%s: a chunk holds a value DuckDB cannot store (%s); loading it with checked casts",
                self.tables[chunk.table].qualified,
                str(exc).strip().splitlines()[0],
            )
            writer.careful = True
            try:
                self._load(writer, chunk)
            finally:
                writer.careful = False
        chunk.path.unlink()
        self.chunks_loaded += 1
        if chunk.last:
            log.info(
                "copied %s: %d rows", self.tables[chunk.table].qualified, self.rows[chunk.table]
            )
        self.longest_step_s = max(self.longest_step_s, time.monotonic() - started)
        return True

    def _load(self, writer: TableWriter, chunk: _Chunk) -> None:
        wh = self.wh
        wh.begin()
        try:
            with wh.bulk_load(self.options.duckdb_threads):
                n = wh.load_csv(
                    writer,
                    [chunk.path],
                    self.ts_ms,
                    f"{self.lsn:016X}",
                    seq_offset=self.rows[chunk.table],
                )
            self.rejected += wh.save_rejects(self.state_slot, [writer])
            wh.commit()
        except BaseException:
            writer.rejects.clear()
            wh.rollback()
            raise
        self.rows[chunk.table] += n

    def close(self) -> None:
        """End the copy (finished or not): the COPY thread, the snapshot, the held changes."""
        if self._copier is not None:
            self._copier.__exit__(None, None, None)
            self._copier = None
        if self._snap is not None:
            with contextlib.suppress(psycopg2.Error):
                self._snap.close()
            self._snap = None
        if self.held is not None:
            self.held.close()
            self.held = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


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
