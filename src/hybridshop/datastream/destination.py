"""The DuckDB warehouse: tables in Datastream's BigQuery layout, applied exactly once.

Each batch of source transactions and the LSN it reaches are committed in one DuckDB
transaction (``_datastream_state``), so a crash either keeps both or neither. Changes are
staged through one temp table per flush: the rows arrive as PostgreSQL text, DuckDB casts them
vectorised, fills unchanged TOAST values from the current destination rows, then merges or
appends them.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybridshop.datastream.pgoutput import UNCHANGED, Tuple, Value, format_lsn
from hybridshop.datastream.source import PrerequisiteError
from hybridshop.datastream.statestore import OK, STOPPED, Reject, StateStore, TableState
from hybridshop.datastream.typemap import ColumnType, pg_array_to_json

log = logging.getLogger("hybridshop.datastream")

MERGE = "merge"
SHADOW_PREFIX = "__backfill_"  # a table being copied while the stream runs
APPEND_ONLY = "append-only"
SINGLE_DATASET = "single"
DATASET_PER_SCHEMA = "per-schema"

_META = {
    "merge": "STRUCT(uuid VARCHAR, source_timestamp BIGINT)",
    "merge-nopk": "STRUCT(uuid VARCHAR, source_timestamp BIGINT, is_deleted BOOLEAN)",
    "append": (
        "STRUCT(uuid VARCHAR, source_timestamp BIGINT, change_sequence_number VARCHAR, "
        "change_type VARCHAR, sort_keys VARCHAR[])"
    ),
}


def _value_errors() -> tuple[type[BaseException], ...]:
    import duckdb

    return (duckdb.ConversionException, duckdb.InvalidInputException, duckdb.OutOfRangeException)


# What DuckDB raises for a value its type cannot hold (CAST failures, our error() for BC).
VALUE_ERRORS = _value_errors()


class SchemaChangeError(RuntimeError):
    """A source schema change Datastream does not support (drop, type change, reorder)."""


def q(name: str) -> str:
    """Quote an identifier for DuckDB."""
    return '"' + name.replace('"', '""') + '"'


def change_sequence_number(commit_lsn: int, seq: int) -> str:
    """Fixed-width hex so that string order is change order (commit LSN, then position)."""
    return f"{commit_lsn:016X}{seq:08X}"


@dataclass
class DestColumn:
    name: str
    ctype: ColumnType
    is_key: bool


@dataclass
class StreamLayout:
    mode: str = MERGE  # merge | append-only
    layout: str = SINGLE_DATASET  # single | per-schema
    dataset_prefix: str = ""

    def table_ref(self, schema: str, table: str) -> tuple[str, str]:
        """(DuckDB schema, table) as Datastream names them in BigQuery."""
        if self.layout == DATASET_PER_SCHEMA:
            return f"{self.dataset_prefix}{schema}", table
        return "main", f"{schema}_{table}"


@dataclass(slots=True)
class _Change:
    op: str  # I, U, D (merge: final image per key) / change_type (append)
    row: list[Value]
    ts_ms: int
    cs: str
    lookup_key: tuple[Value, ...] | None = None  # where unchanged TOAST values live


@dataclass
class TableWriter:
    """Pending changes of one destination table inside the current batch."""

    source: tuple[str, str]
    schema: str
    name: str
    columns: list[DestColumn]
    style: str  # merge | merge-nopk | append
    pending_merge: dict[tuple[Value, ...], _Change] = field(default_factory=dict)
    pending_append: list[_Change] = field(default_factory=list)
    images: dict[tuple[Value, ...], list[Value]] = field(default_factory=dict)
    truncate_first: bool = False
    rows_applied: int = 0
    # Careful mode: values are cast with TRY_CAST and changes holding a value the destination
    # cannot store are rejected (``rejects``) instead of failing the whole batch.
    careful: bool = False
    rejects: list[Reject] = field(default_factory=list)
    # Changes of transactions ending at or below this LSN are already in the table (it was
    # copied in a snapshot taken there); a stopped table takes no changes (see ``evolve``).
    skip_through: int = 0
    stopped: str | None = None
    _unchanged_cols: list[int] = field(default_factory=list)

    keyless: bool = False  # no primary key, no replica identity: inserts only
    _keys_cache: tuple[list[DestColumn], str, list[int]] | None = None

    @property
    def ref(self) -> str:
        return f"{q(self.schema)}.{q(self.name)}"

    @property
    def qualified(self) -> str:
        return f"{self.source[0]}.{self.source[1]}"

    def reject_change(self, op: str, row: Sequence[Value], cs: str, reason: str) -> None:
        """Record a change this table cannot take (not applied)."""
        self.rejects.append(
            Reject(
                self.qualified,
                self.key_json(row),
                "",
                "",
                reason,
                format_lsn(int(cs[:16], 16)),
                op,
            )
        )

    @property
    def key_idx(self) -> list[int]:
        """Positions of the key columns (computed once per column list and style: it is
        asked for every change)."""
        cached = self._keys_cache
        if cached is not None and cached[0] is self.columns and cached[1] == self.style:
            return cached[2]
        keys = [i for i, c in enumerate(self.columns) if c.is_key]
        if not keys and self.style != "merge":
            keys = list(range(len(self.columns)))  # no key: the whole row identifies it
        self._keys_cache = (self.columns, self.style, keys)
        return keys

    def _key(self, row: Sequence[Value]) -> tuple[Value, ...]:
        keys = self.key_idx
        if len(keys) == 1:
            return (row[keys[0]],)
        return tuple(row[i] for i in keys)

    def _resolve(self, row: Tuple, old_key: tuple[Value, ...]) -> Tuple:
        """Fill unchanged TOAST values from an earlier image of the row in this batch."""
        if UNCHANGED not in row:
            return row
        image = self.images.get(old_key)
        if image is None:
            return row
        return [image[i] if v is UNCHANGED else v for i, v in enumerate(row)]

    # --- change intake (order matters; called in commit order) -------------------------
    def insert(self, row: Tuple, ts_ms: int, cs: str) -> None:
        key = self._key(row)
        self._record(key, _Change("INSERT", row, ts_ms, cs, key))

    def update(self, old: Tuple | None, new: Tuple, ts_ms: int, cs: str, cs_delete: str) -> None:
        new_key = self._key(new)
        old_key = self._key(old) if old is not None and self.style != "merge-nopk" else new_key
        if old is not None and not old_key_only(old, self.key_idx) and UNCHANGED in new:
            # a full old row (REPLICA IDENTITY FULL) carries the TOASTed values itself
            new = [old[i] if v is UNCHANGED else v for i, v in enumerate(new)]
        new = self._resolve(new, old_key)
        if self.style == "merge-nopk":
            self._record(new_key, _Change("INSERT", new, ts_ms, cs, None))
            return
        if old_key != new_key:
            assert old is not None
            self._record(old_key, _Change("UPDATE-DELETE", list(old), ts_ms, cs_delete, old_key))
            self.images.pop(old_key, None)
        self._record(new_key, _Change("UPDATE-INSERT", new, ts_ms, cs, old_key))

    def delete(self, old: Tuple, ts_ms: int, cs: str) -> None:
        key = self._key(old)
        self.images.pop(key, None)
        self._record(key, _Change("DELETE", list(old), ts_ms, cs, key))

    def _record(self, key: tuple[Value, ...], change: _Change) -> None:
        if change.op in ("INSERT", "UPDATE-INSERT"):
            self.images[key] = change.row
        if self.style != "merge" or self.careful:  # _chained, inlined: once per change
            self.pending_append.append(change)
        else:
            self.pending_merge[key] = change

    @property
    def _chained(self) -> bool:
        """Changes kept in order, every one staged. Merge keeps only each key's last image,
        except in careful mode: a rejected change must leave the key at its last change that
        was not rejected (an INSERT then a rejected UPDATE keeps the INSERT), so every image
        is staged and the last one left after rejecting wins (``_last_per_key``).

        Each staged row is one event, as in Datastream's layout: a key change is an
        UPDATE-DELETE of the old key and an UPDATE-INSERT of the new one, and rejecting the
        new image does not keep the old key alive (the source no longer has it). So the
        result is the same whichever batches the changes fall into: for every key, its last
        event that was not rejected."""
        return self.style != "merge" or self.careful

    def has_pending(self) -> bool:
        return bool(self.pending_merge or self.pending_append or self.truncate_first)

    # --- writing ------------------------------------------------------------------------
    def flush(self, con: Any) -> None:
        changes = self.pending_append if self._chained else list(self.pending_merge.values())
        if self.truncate_first and self.style != "append":
            con.execute(f"DELETE FROM {self.ref}")
        self.truncate_first = False
        if changes:
            self._stage(con, changes)
            self._fill_unchanged(con, changes)
            if self.style == "merge":
                self._merge(con)
            else:
                self._append(con)
            self.rows_applied += len(changes)
        self.pending_merge.clear()
        self.pending_append.clear()

    def end_batch(self) -> None:
        self.images.clear()

    def _stage(self, con: Any, changes: list[_Change]) -> None:
        ncols = len(self.columns)
        # rows -> columns at C speed (zip); rows shorter than the columns (written before a
        # column was added) are padded with NULL first
        rows = [
            c.row if len(c.row) == ncols else [*c.row[:ncols], *[None] * (ncols - len(c.row))]
            for c in changes
        ]
        col_lists: list[list[Any]] = [list(col) for col in zip(*rows, strict=True)]
        if not col_lists:
            col_lists = [[] for _ in range(ncols)]
        unchanged: dict[int, list[bool]] = {}
        for i, cells in enumerate(col_lists):
            if UNCHANGED in cells:
                unchanged[i] = [v is UNCHANGED for v in cells]
                col_lists[i] = [None if v is UNCHANGED else v for v in cells]
        for i, column in enumerate(self.columns):
            if column.ctype.is_array:
                elem = column.ctype.array_elem
                col_lists[i] = [pg_array_to_json(v, elem) for v in col_lists[i]]
        params: list[Any] = [*col_lists]
        selects = []
        for i, col in enumerate(self.columns):
            if self.careful and col.ctype.needs_cast:
                selects.append(f"{col.ctype.try_cast_sql(f'c{i}')} AS {q(col.name)}")
                selects.append(f"c{i} AS __r{i}")
            else:
                selects.append(f"{col.ctype.cast_sql(f'c{i}')} AS {q(col.name)}")
        # Typed VARCHAR even when every value of a column is NULL or an unchanged TOAST value
        # (a Python list of None alone would make a column of DuckDB type NULL).
        unnests = [f"unnest(CAST(${i + 1} AS VARCHAR[])) AS c{i}" for i in range(ncols)]
        extra = {
            "__op": [c.op for c in changes],
            "__ts": [c.ts_ms for c in changes],
            "__cs": [c.cs for c in changes],
            "__seq": list(range(len(changes))),
        }
        for i, flags in unchanged.items():
            extra[f"__u{i}"] = flags
        key_idx = self.key_idx if unchanged else []
        for pos in range(len(key_idx)):
            extra[f"__lk{pos}"] = [
                (c.lookup_key[pos] if c.lookup_key is not None else None) for c in changes
            ]
        for name, values in extra.items():
            params.append(values)
            unnests.append(f"unnest(${len(params)}) AS {name}")
            if name.startswith("__lk"):
                column = self.columns[key_idx[int(name[4:])]]
                cast = column.ctype.try_cast_sql if self.careful else column.ctype.cast_sql
                selects.append(f"{cast(f'CAST({name} AS VARCHAR)')} AS {name}")
            else:
                selects.append(name)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE __stage AS SELECT "
            + ", ".join(selects)
            + " FROM (SELECT "
            + ", ".join(unnests)
            + ")",
            params,
        )
        self._unchanged_cols = sorted(unchanged)
        if self.careful:
            self._reject(con, changes)
            if self.style == "merge":
                self._last_per_key(con)

    def _last_per_key(self, con: Any) -> None:
        """Careful merge: of the images of one key left after rejecting, the last wins."""
        part = ", ".join(q(self.columns[i].name) for i in self.key_idx)
        con.execute(
            "DELETE FROM __stage WHERE __seq IN (SELECT __seq FROM __stage QUALIFY "
            f"row_number() OVER (PARTITION BY {part} ORDER BY __seq DESC) > 1)"
        )

    def _reject(self, con: Any, changes: list[_Change]) -> None:
        """Careful mode: take the changes holding a value the destination type cannot store
        out of ``__stage`` and record them (one ``Reject`` per offending column)."""
        bad: set[int] = set()
        for i, col in enumerate(self.columns):
            if not col.ctype.needs_cast:
                continue
            rows = con.execute(
                f"SELECT __seq, __r{i} FROM __stage WHERE __r{i} IS NOT NULL AND {q(col.name)} IS NULL"
            ).fetchall()
            for seq, value in rows:
                change = changes[int(seq)]
                self.rejects.append(
                    Reject(
                        f"{self.source[0]}.{self.source[1]}",
                        self.key_json(change.row),
                        col.name,
                        str(value),
                        col.ctype.reject_reason(str(value)),
                        format_lsn(int(change.cs[:16], 16)),
                        change.op,
                    )
                )
                bad.add(int(seq))
        if bad:
            con.execute("DELETE FROM __stage WHERE list_contains($1, __seq)", [sorted(bad)])

    def key_json(self, row: Sequence[Value]) -> str:
        import json

        return json.dumps(
            {
                self.columns[i].name: (None if row[i] is UNCHANGED else row[i])
                for i in self.key_idx
                if i < len(row)
            }
        )

    def _fill_unchanged(self, con: Any, changes: list[_Change]) -> None:
        """Unchanged TOAST values not seen in this batch: copy them from the destination row."""
        if not self._unchanged_cols:
            return
        keys = self.key_idx
        if self.style == "merge":
            source = self.ref
        else:
            order = "datastream_metadata.change_sequence_number DESC"
            part = ", ".join(q(self.columns[i].name) for i in keys)
            source = (
                f"(SELECT * FROM {self.ref} QUALIFY row_number() OVER "
                f"(PARTITION BY {part} ORDER BY {order}) = 1)"
            )
        match = " AND ".join(
            f"d.{q(self.columns[i].name)} = s.__lk{pos}" for pos, i in enumerate(keys)
        )
        for i in self._unchanged_cols:
            col = q(self.columns[i].name)
            con.execute(
                f"UPDATE __stage AS s SET {col} = d.{col} FROM {source} AS d "
                f"WHERE s.__u{i} AND {match}"
            )

    def _key_match(self, left: str, right: str) -> str:
        return " AND ".join(
            f"{left}.{q(self.columns[i].name)} = {right}.{q(self.columns[i].name)}"
            for i in self.key_idx
        )

    def _cols(self) -> str:
        return ", ".join(q(c.name) for c in self.columns)

    def _merge(self, con: Any) -> None:
        con.execute(
            f"DELETE FROM {self.ref} AS t USING __stage AS s WHERE {self._key_match('t', 's')}"
        )
        con.execute(
            f"INSERT INTO {self.ref} ({self._cols()}, datastream_metadata) SELECT {self._cols()}, "
            "struct_pack(uuid := CAST(uuid() AS VARCHAR), source_timestamp := __ts) "
            "FROM __stage WHERE __op <> 'DELETE' AND __op <> 'UPDATE-DELETE'"
        )

    def _append(self, con: Any) -> None:
        if self.style == "merge-nopk":
            meta = (
                "struct_pack(uuid := CAST(uuid() AS VARCHAR), source_timestamp := __ts, "
                "is_deleted := __op = 'DELETE')"
            )
        else:
            meta = _append_meta("__ts", "__cs", "__op")
        con.execute(
            f"INSERT INTO {self.ref} ({self._cols()}, datastream_metadata) "
            f"SELECT {self._cols()}, {meta} FROM __stage ORDER BY __seq"
        )

    def truncate(self, con: Any, ts_ms: int, cs: str) -> None:
        """Merge: empty the mirror. Append-only: a DELETE row for every live key, so that
        replaying the change log still yields the source state."""
        if self.style != "append":
            self.pending_merge.clear()
            self.pending_append.clear()
            self.truncate_first = True
            self.images.clear()
            return
        self.flush(con)
        self.images.clear()
        part = ", ".join(q(self.columns[i].name) for i in self.key_idx)
        meta = _append_meta("CAST($1 AS BIGINT)", "CAST($2 AS VARCHAR)", "'DELETE'")
        con.execute(
            f"INSERT INTO {self.ref} ({self._cols()}, datastream_metadata) "
            f"SELECT {self._cols()}, {meta} "
            f"FROM (SELECT * FROM {self.ref} QUALIFY row_number() OVER (PARTITION BY {part} "
            "ORDER BY datastream_metadata.change_sequence_number DESC) = 1) "
            "WHERE datastream_metadata.change_type IN ('INSERT', 'UPDATE-INSERT')",
            [ts_ms, cs],
        )


_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")


def exact_widening(before: str, after: str) -> bool:
    """True if every value of DuckDB type ``before`` converts exactly to ``after`` and reads
    the same as the source's new type would send it."""
    if before == after:
        return True
    b, a = _DECIMAL.fullmatch(before), _DECIMAL.fullmatch(after)
    if b and a:
        bp, bs, ap, as_ = (int(x) for x in (*b.groups(), *a.groups()))
        return as_ >= bs and ap - as_ >= bp - bs
    if before == "BIGINT" and a:
        return int(a.group(1)) - int(a.group(2)) >= 19
    if (before, after) in (("DATE", "TIMESTAMP"), ("BIGINT", "VARCHAR")):
        return True
    # numeric(p,s) -> numeric / numeric(p>38): exact digits as text
    return bool(b) and after == "VARCHAR"


def old_key_only(old: Sequence[Value], key_idx: list[int]) -> bool:
    """True if an old tuple holds only the key (REPLICA IDENTITY DEFAULT/INDEX)."""
    return all(v is None for i, v in enumerate(old) if i not in key_idx)


def _append_meta(ts: str, cs: str, op: str) -> str:
    return (
        f"struct_pack(uuid := CAST(uuid() AS VARCHAR), source_timestamp := {ts}, "
        f"change_sequence_number := {cs}, change_type := {op}, "
        f"sort_keys := [substr({cs}, 1, 16), substr({cs}, 17)])"
    )


class WarehouseUnavailable(PrerequisiteError):
    """The warehouse file cannot be opened or written (held by another process, read-only,
    disk full). Nothing is lost: the replication slot keeps every change the warehouse has
    not committed, and the next run catches up once the cause is fixed. The message says
    what to do."""


_FILE_FIXES = (
    (
        ("no space left", "disk quota", "file too large"),
        "free disk space on its file system (or raise the file size limit)",
    ),
    (
        ("read-only file system", "permission denied", "operation not permitted"),
        "make the file and its folder writable by this user (chmod u+w; as root, "
        "chattr -i if it is immutable; remount read-write)",
    ),
)
_FILE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}


def warehouse_fault(
    path: Path, exc: BaseException, *, opening: bool = False
) -> WarehouseUnavailable | None:
    """What a failure on the warehouse file means, as a fix (DuckDB reports a full disk as
    a failed commit, a lock or a denied open as an I/O error); None when ``exc`` is not
    about the file. ``opening``: ``exc`` came from opening it, so it is about the file."""
    import duckdb

    detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if opening and not isinstance(exc, (OSError, duckdb.Error)):
        return None
    if not opening:
        if isinstance(exc, OSError) and exc.errno not in _FILE_ERRNOS:
            return None
        if not isinstance(exc, (OSError, duckdb.Error)):
            return None
    lowered = detail.lower()
    if isinstance(exc, duckdb.IOException) and "lock" in lowered:
        from hybridshop.datastream.liveness import read_liveness

        live = read_liveness(path)
        who = f" (replicator pid {live.get('pid')})" if live.get("running") else ""
        return WarehouseUnavailable(
            f"cannot open {path}: another process holds it{who}. Stop it, or pass another "
            f"--duckdb. ({detail})"
        )
    for needles, fix in _FILE_FIXES:
        if any(n in lowered for n in needles):
            return WarehouseUnavailable(
                f"cannot write the warehouse {path}: {detail}. Fix: {fix}; the replication "
                "slot keeps every change until then, and the replicator catches up when it "
                "runs again."
            )
    if "not a valid duckdb" in lowered:
        return WarehouseUnavailable(
            f"cannot use the warehouse {path}: {detail} Fix: move it aside; the replicator "
            "then copies every table again into a new one."
        )
    if opening or isinstance(exc, (OSError, duckdb.IOException)):
        return WarehouseUnavailable(f"cannot use the warehouse {path}: {detail}")
    return None


class Warehouse:
    """The one writing connection to the DuckDB file."""

    def __init__(
        self, path: Path, layout: StreamLayout, slot: str = "", memory_limit: str | None = None
    ) -> None:
        import duckdb

        self.path = path
        self.layout = layout
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._con = duckdb.connect(str(path))
        except (duckdb.IOException, OSError) as exc:
            raise warehouse_fault(path, exc, opening=True) or exc from None
        self._con.execute("SET TimeZone = 'UTC'")
        row = self._con.execute("SELECT current_setting('memory_limit')").fetchone()
        self._default_memory_limit = str(row[0]) if row else None
        if memory_limit is not None:
            self._con.execute(f"SET memory_limit = {_setting_literal(memory_limit)}")
        self.state = StateStore(self._con)
        self.slot = slot
        self.table_states: dict[tuple[str, str], TableState] = self.state.tables(slot)
        self.writers: dict[tuple[str, str], TableWriter] = {}
        self.careful = False
        self._settings_after_rollback: dict[str, object] = {}
        self._snapshot_at = 0.0
        self._snapshot_dirty = True

    def close(self) -> None:
        self._con.close()

    # --- batches ------------------------------------------------------------------------
    def flush(self, slot: str) -> int:
        """Write every writer's pending changes and rejected ones (inside the batch's
        transaction); returns the number of rejected changes."""
        self.flush_writers()
        return self.save_rejects(slot)

    def flush_writers(self) -> None:
        """Write pending changes (mid-batch too: later changes then find the rows they need,
        unchanged TOAST values included, in the destination table)."""
        for writer in self.writers.values():
            if writer.has_pending():
                writer.flush(self._con)
            writer.end_batch()
        self._snapshot_dirty = True

    def truncate(self, writer: TableWriter, ts_ms: int, cs: str) -> None:
        writer.truncate(self._con, ts_ms, cs)

    # --- tables -------------------------------------------------------------------------
    def style_for(self, columns: Sequence[DestColumn]) -> str:
        if self.layout.mode == APPEND_ONLY:
            return "append"
        return "merge" if any(c.is_key for c in columns) else "merge-nopk"

    def create_table(self, schema: str, table: str, columns: list[DestColumn]) -> TableWriter:
        """(Re)create the destination table of one source table, empty."""
        dschema, dname = self.layout.table_ref(schema, table)
        style = self.style_for(columns)
        self._con.execute(f"CREATE SCHEMA IF NOT EXISTS {q(dschema)}")
        cols = ", ".join(f"{q(c.name)} {c.ctype.duckdb}" for c in columns)
        self._con.execute(
            f"CREATE OR REPLACE TABLE {q(dschema)}.{q(dname)} ({cols}, "
            f"datastream_metadata {_META[style]})"
        )
        writer = TableWriter((schema, table), dschema, dname, list(columns), style)
        self._register(writer)
        return writer

    def attach_table(self, schema: str, table: str, columns: list[DestColumn]) -> TableWriter:
        """The writer of a source table, from a Relation: creates the destination table if
        there is none, else compares it with the source (``evolve``)."""
        writer = self.writers.get((schema, table))
        if writer is None:
            dschema, dname = self.layout.table_ref(schema, table)
            if not self._dest_schema(dschema, dname):
                return self.create_table(schema, table, columns)
            writer = TableWriter((schema, table), dschema, dname, [], self.style_for(columns))
            self._register(writer)
        self.evolve(writer, columns)
        return writer

    def _register(self, writer: TableWriter) -> None:
        writer.careful = self.careful
        known = self.table_states.get(writer.source)
        if known is not None:
            writer.skip_through = known.backfill_lsn
            writer.stopped = known.reason if known.status == STOPPED else None
        self.writers[writer.source] = writer

    def _dest_schema(self, dschema: str, dname: str) -> list[tuple[str, str]]:
        """The destination table's columns as DuckDB has them (name, type), metadata included."""
        rows = self._con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [dschema, dname],
        ).fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]

    def evolve(self, writer: TableWriter, columns: list[DestColumn]) -> bool:
        """Compare a source Relation with the destination table as it is in DuckDB (always:
        after a restart too, and before the table's first change).

        Followed: columns added at the end, and type changes that keep every value exact
        (``exact_widening``: numeric(10,2) -> numeric(12,4), int -> numeric, date ->
        timestamp). Anything else (a dropped, renamed or reordered column, a narrowing or
        lossy type change, a key change that changes the layout) stops this table only: its
        changes are no longer written (never a rounded value), the other tables keep
        flowing, and the reason says what to run. Returns False when the table is stopped."""
        if writer.stopped:
            return False
        actual = self._dest_schema(writer.schema, writer.name)
        meta = dict(actual).get("datastream_metadata")
        old = [(n, t) for n, t in actual if n != "datastream_metadata"]
        new = [(c.name, c.ctype.duckdb) for c in columns]
        where = f"{writer.source[0]}.{writer.source[1]}"
        style = self.style_for(columns)
        problem = None
        if meta is not None and meta != _META[style]:
            problem = (
                "its key changed (primary key or replica identity), which changes the layout "
                f"from {meta} to {_META[style]}"
            )
        elif [n for n, _ in new[: len(old)]] != [n for n, _ in old]:
            problem = (
                f"columns {[n for n, _ in old]} became {[n for n, _ in new]} (dropped, renamed "
                "or reordered; only columns added at the end are followed, as in Datastream)"
            )
        else:
            for (name, before), (_, after) in zip(old, new, strict=False):
                if before != after and not exact_widening(before, after):
                    problem = (
                        f"column {name} changed from {before} to {after}, which would not keep "
                        "every value exact"
                    )
                    break
        if writer.has_pending():  # changes before the Relation still have the old layout
            writer.flush(self._con)
        if problem is not None:
            self.stop_table(writer, f"unsupported schema change on {where}: {problem}")
            return False
        for (name, before), (_, after) in zip(old, new, strict=False):
            if before != after:
                log.info("%s: widening %s from %s to %s", where, name, before, after)
                self._con.execute(f"ALTER TABLE {writer.ref} ALTER COLUMN {q(name)} TYPE {after}")
        for column in columns[len(old) :]:
            log.info("%s: adding column %s %s", where, column.name, column.ctype.duckdb)
            self._con.execute(
                f"ALTER TABLE {writer.ref} ADD COLUMN {q(column.name)} {column.ctype.duckdb}"
            )
        writer.columns = list(columns)
        writer.style = style
        return True

    def stop_table(self, writer: TableWriter, problem: str) -> None:
        """Stop writing one table (recorded in the state store, in the batch's transaction)."""
        table = f"{writer.source[0]}.{writer.source[1]}"
        reason = (
            f"{problem}. Its changes are not applied from here on (the other tables keep "
            f"flowing). Fix: `hybridshop replicate backfill {table}` copies it again with its "
            "new schema."
        )
        log.error("%s", reason)
        writer.stopped = reason
        writer.pending_merge.clear()
        writer.pending_append.clear()
        known = self.table_states.get(writer.source)
        state = TableState(
            writer.source[0],
            writer.source[1],
            STOPPED,
            reason,
            known.backfill_lsn if known is not None else 0,
        )
        self.table_states[writer.source] = state
        self.state.set_table(self.slot, state)

    # --- copies while streaming (backfill.TableCopy) -------------------------------------
    def create_shadow(self, schema: str, table: str, columns: list[DestColumn]) -> TableWriter:
        """An empty table, next to the destination table of ``schema.table``, that a copy
        fills while the stream runs (readers keep the table as it was meanwhile); not
        registered: the stream's writer of the table stays the current one."""
        dschema, dname = self.layout.table_ref(schema, table)
        style = self.style_for(columns)
        name = SHADOW_PREFIX + dname
        self._con.execute(f"CREATE SCHEMA IF NOT EXISTS {q(dschema)}")
        cols = ", ".join(f"{q(c.name)} {c.ctype.duckdb}" for c in columns)
        self._con.execute(
            f"CREATE OR REPLACE TABLE {q(dschema)}.{q(name)} ({cols}, "
            f"datastream_metadata {_META[style]})"
        )
        return TableWriter((schema, table), dschema, name, list(columns), style)

    def write(self, writer: TableWriter) -> None:
        """Write the pending changes of a writer that is not registered (a shadow)."""
        if writer.has_pending():
            writer.flush(self._con)
        writer.end_batch()

    def swap_in(self, shadow: TableWriter, lsn: int) -> None:
        """The shadow replaces the destination table, whose changes are streamed after
        ``lsn`` from here on (in the caller's transaction)."""
        dname = shadow.name[len(SHADOW_PREFIX) :]
        self._con.execute(f"DROP TABLE IF EXISTS {q(shadow.schema)}.{q(dname)}")
        self._con.execute(f"ALTER TABLE {shadow.ref} RENAME TO {q(dname)}")
        shadow.name = dname
        self.writers.pop(shadow.source, None)
        self.table_backfilled(*shadow.source, lsn)
        shadow.careful = self.careful
        shadow.stopped = None
        shadow.skip_through = lsn
        self.writers[shadow.source] = shadow

    def drop_shadows(self) -> None:
        """Shadows left by a copy that did not finish (a crash): nothing refers to them."""
        rows = self._con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() "
            "WHERE database_name = current_database() AND starts_with(table_name, ?)",
            [SHADOW_PREFIX],
        ).fetchall()
        for dschema, name in rows:
            self._con.execute(f"DROP TABLE {q(str(dschema))}.{q(str(name))}")

    def adopt_tables(self, tables: list[tuple[str, str]]) -> None:
        """Record per-table state for the tables a warehouse already holds (written before
        per-table state existed): they were backfilled with the slot."""
        for schema, table in tables:
            if self._dest_schema(*self.layout.table_ref(schema, table)):
                state = TableState(schema, table)
                self.table_states[(schema, table)] = state
                self.state.set_table(self.slot, state)

    def table_backfilled(self, schema: str, table: str, lsn: int) -> None:
        """``schema.table`` was copied again at ``lsn``: stream its changes after it."""
        state = TableState(schema, table, OK, None, lsn)
        self.table_states[(schema, table)] = state
        self.state.set_table(self.slot, state)
        writer = self.writers.get((schema, table))
        if writer is not None:
            writer.stopped = None
            writer.skip_through = lsn

    def load_csv(
        self,
        writer: TableWriter,
        csv_paths: Path | Sequence[Path],
        ts_ms: int,
        cs_prefix: str,
        seq_offset: int = 0,
    ) -> int:
        """Append backfill rows from PostgreSQL COPY CSV files (NULL written as \\N) in
        one vectorised INSERT; returns the number of rows. ``seq_offset`` = rows of the same
        table already loaded from earlier chunks (append-only change sequence numbers).

        In careful mode (``writer.careful``) the files go through a VARCHAR temp table first
        so that rows with values the destination cannot hold are rejected, not loaded."""
        cols = ", ".join(f"{q(f'c{i}')}: 'VARCHAR'" for i in range(len(writer.columns)))
        selects = ", ".join(
            c.ctype.backfill_cast_sql(q(f"c{i}"), try_cast=writer.careful)
            for i, c in enumerate(writer.columns)
        )
        if writer.style == "merge":
            meta = f"struct_pack(uuid := CAST(uuid() AS VARCHAR), source_timestamp := {ts_ms})"
        elif writer.style == "merge-nopk":
            meta = (
                f"struct_pack(uuid := CAST(uuid() AS VARCHAR), source_timestamp := {ts_ms}, "
                "is_deleted := false)"
            )
        else:
            number = f"row_number() OVER () + {int(seq_offset)}"
            seq = "'" + cs_prefix + "' || lpad(printf('%X', " + number + "), 8, '0')"
            meta = _append_meta(str(ts_ms), seq, "'INSERT'")
        reader = (
            f"read_csv(?, header = false, columns = {{{cols}}}, nullstr = '\\N', "
            "allow_quoted_nulls = false, quote = '\"', escape = '\"', delim = ',', "
            "auto_detect = false, strict_mode = true)"
        )
        files = [[str(csv_paths)] if isinstance(csv_paths, Path) else [str(p) for p in csv_paths]]
        if not writer.careful:
            row = self._con.execute(
                f"INSERT INTO {writer.ref} SELECT {selects}, {meta} FROM {reader}", files
            ).fetchone()
            return int(row[0]) if row else 0
        self._con.execute(
            f"CREATE OR REPLACE TEMP TABLE __bf AS SELECT row_number() OVER () - 1 AS __n, * "
            f"FROM {reader}",
            files,
        )
        bad: set[int] = set()
        for i, col in enumerate(writer.columns):
            if not col.ctype.needs_cast:
                continue
            keys = ", ".join(q(f"c{k}") for k in writer.key_idx)
            found = self._con.execute(
                f"SELECT __n, {q(f'c{i}')}, {keys} FROM __bf WHERE {q(f'c{i}')} IS NOT NULL "
                f"AND {col.ctype.backfill_cast_sql(q(f'c{i}'), try_cast=True)} IS NULL"
            ).fetchall()
            for n, value, *key in found:
                row_values: list[Value] = [None] * len(writer.columns)
                for k, v in zip(writer.key_idx, key, strict=True):
                    row_values[k] = v
                writer.rejects.append(
                    Reject(
                        f"{writer.source[0]}.{writer.source[1]}",
                        writer.key_json(row_values),
                        col.name,
                        str(value),
                        col.ctype.reject_reason(str(value)),
                        format_lsn(int(cs_prefix, 16)),
                        "INSERT",
                    )
                )
                bad.add(int(n))
        if bad:
            self._con.execute("DELETE FROM __bf WHERE list_contains($1, __n)", [sorted(bad)])
        if writer.style == "append":
            number = f"__n + 1 + {int(seq_offset)}"
            seq = "'" + cs_prefix + "' || lpad(printf('%X', " + number + "), 8, '0')"
            meta = _append_meta(str(ts_ms), seq, "'INSERT'")
        row = self._con.execute(
            f"INSERT INTO {writer.ref} SELECT {selects}, {meta} FROM __bf"
        ).fetchone()
        self._con.execute("DROP TABLE __bf")
        return (int(row[0]) if row else 0) + len(bad)

    def save_rejects(self, slot: str, writers: Iterable[TableWriter] | None = None) -> int:
        """Record every writer's rejected changes (or those of ``writers``; inside the
        batch's transaction)."""
        chosen = list(self.writers.values() if writers is None else writers)
        rejects = [r for w in chosen for r in w.rejects]
        for writer in chosen:
            writer.rejects.clear()
        if not rejects:
            return 0
        self.state.record_rejects(slot, rejects)
        for r in rejects:
            log.warning(
                "rejected %s on %s %s: column %s = %.80r (%s) at %s",
                r.change_type,
                r.table,
                r.key,
                r.column,
                r.value,
                r.reason,
                r.lsn,
            )
        return len(rejects)

    def set_careful(self, careful: bool) -> None:
        self.careful = careful
        for writer in self.writers.values():
            writer.careful = careful

    @contextlib.contextmanager
    def bulk_load(self, threads: int | None = None) -> Iterator[None]:
        """Settings for the backfill's big appends, restored afterwards.

        Not preserving the CSV's row order (backfill rows have no order in Datastream
        either) lets DuckDB's threads write row groups independently: about 1.5x faster on
        1,000,000 rows. Optimistic writes stay on: the row groups are compressed while the
        COPY still runs; with them off the INSERT looks faster but the commit then writes
        the WAL and checkpoints (compresses) everything at the end.
        """
        names = ["preserve_insertion_order", "threads", "memory_limit"]
        before: dict[str, object] = {}
        for name in names:
            row = self._con.execute(f"SELECT current_setting('{name}')").fetchone()
            assert row is not None
            before[name] = row[0]
        self._con.execute("SET preserve_insertion_order = false")
        if self._default_memory_limit is not None:  # the backfill loads at full speed
            self._con.execute(f"SET memory_limit = {_setting_literal(self._default_memory_limit)}")
        if threads is not None:
            self._con.execute(f"SET threads = {int(threads)}")
        try:
            yield
        finally:
            import duckdb

            try:
                self._restore_settings(before)
            except duckdb.TransactionException:
                # the load failed inside the transaction: restore after its rollback
                self._settings_after_rollback = before

    def _restore_settings(self, settings: dict[str, object]) -> None:
        for name, value in settings.items():
            self._con.execute(f"SET {name} = {_setting_literal(value)}")

    def begin(self) -> None:
        self._con.execute("BEGIN TRANSACTION")

    def commit(self) -> None:
        self._con.execute("COMMIT")

    def rollback(self) -> None:
        import duckdb

        with contextlib.suppress(duckdb.Error):  # nothing to roll back after a failed commit
            self._con.execute("ROLLBACK")
        if self._settings_after_rollback:
            self._restore_settings(self._settings_after_rollback)
            self._settings_after_rollback = {}
        for writer in self.writers.values():
            writer.pending_merge.clear()
            writer.pending_append.clear()
            writer.truncate_first = False
            writer.rejects.clear()
            writer.end_batch()
        self.table_states = self.state.tables(self.slot)
        self.writers.clear()  # rebuilt from the catalog: a rolled-back ALTER is undone too

    def row_counts(self) -> dict[str, int]:
        return {
            f"{w.schema}.{w.name}" if w.schema != "main" else w.name: writer_count(self._con, w)
            for w in self.writers.values()
        }

    # --- readers ------------------------------------------------------------------------
    def publish_snapshot(self, target: Path, min_interval_s: float) -> bool:
        """Copy the warehouse to ``target`` (atomically replaced) for other processes.

        DuckDB lets one process write a file and blocks others from opening it meanwhile, so
        other processes (dashboards, a user's duckdb CLI) read this copy instead. It is
        refreshed at most every ``min_interval_s`` (and never more than a quarter of the
        time, so copying cannot starve replication).
        """
        now = time.monotonic()
        if not self._snapshot_dirty or now - self._snapshot_at < min_interval_s:
            return False
        started = time.monotonic()
        tmp = target.with_name(target.name + ".tmp")
        tmp.unlink(missing_ok=True)
        self._con.execute("ATTACH ? AS __snapshot", [str(tmp)])
        try:
            self._con.execute("COPY FROM DATABASE " + _db_name(self._con) + " TO __snapshot")
        finally:
            self._con.execute("DETACH __snapshot")
        os.replace(tmp, target)
        took = time.monotonic() - started
        self._snapshot_at = time.monotonic() + 3 * took
        self._snapshot_dirty = False
        return True


def _setting_literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _db_name(con: Any) -> str:
    row = con.execute("SELECT current_database()").fetchone()
    return q(str(row[0]))


def writer_count(con: Any, writer: TableWriter) -> int:
    row = con.execute(f"SELECT count(*) FROM {writer.ref}").fetchone()
    return int(row[0])


def dest_columns(items: Iterable[tuple[str, ColumnType, bool]]) -> list[DestColumn]:
    return [DestColumn(name, ctype, is_key) for name, ctype, is_key in items]
