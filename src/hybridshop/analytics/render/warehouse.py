"""Where the dashboards read from: a DuckDB warehouse file, its version and its freshness.

The replicator owns ``warehouse.duckdb``; other processes read ``warehouse.read.duckdb``,
the copy it replaces atomically about once a second (docs/datastream.md). ``WarehouseFile``
opens whichever file it is given read-only, notices when it was replaced (a new inode or
mtime) and then opens the new one, so a page polling ``version()`` sees purchases within a
couple of seconds. The version is the replicator's count of applied changes when the file
has ``_datastream_state`` (heartbeats then do not count as changes), else the file's
identity.

Connections are never closed under a running query: a replaced copy is closed when its last
cursor is (each copy is its own DuckDB instance with its own cache, so they are not kept).

Each opened copy has its own ``JoinFacts`` (what its data lets DuckDB assume, see
``lookml.compiler.JoinFact``): a copy is never written after it is opened (the replicator
replaces the file), so a fact checked once holds for every query on that copy.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from hybridshop.analytics.lookml.runner import ALIAS, JoinFacts, apply_settings, open_read_only

RETIRE_AFTER_S = 120.0  # a replaced copy still in use after this is closed anyway


class WarehouseUnavailable(RuntimeError):
    """The warehouse file does not exist yet or cannot be opened (message says what to do)."""


@dataclass(frozen=True)
class TableFreshness:
    """One Datastream table: rows and the source commit time of its newest change."""

    table: str
    rows: int
    latest_source_ms: int | None

    def to_dict(self, now_ms: int) -> dict[str, Any]:
        lag = None if self.latest_source_ms is None else max(0, now_ms - self.latest_source_ms)
        return {
            "table": self.table,
            "rows": self.rows,
            "latest_source_ms": self.latest_source_ms,
            "age_s": None if lag is None else round(lag / 1000, 1),
        }


@dataclass(frozen=True)
class WarehouseState:
    """What the page shows in its header and polls for changes."""

    version: str
    tables: list[TableFreshness] = field(default_factory=list)
    last_change_ms: int | None = None  # the newest source commit applied, if known
    checked_at_ms: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "tables": [t.to_dict(self.checked_at_ms) for t in self.tables],
            "last_change_ms": self.last_change_ms,
            "checked_at_ms": self.checked_at_ms,
            "error": self.error,
        }


def _now_ms() -> int:
    return int(time.time() * 1000)


class WarehouseFile:
    """A DuckDB file opened read-only, re-opened when the file is replaced.

    ``cursor()`` gives a cursor (its ``TimeZone`` set to UTC, the file as its default
    catalog) on the newest copy;
    ``state()`` is cheap (one ``stat`` unless the file changed) and is what the page polls.
    """

    def __init__(
        self, path: Path, *, min_check_interval_s: float = 0.25, hold_open: bool | None = None
    ) -> None:
        self.path = Path(path)
        # A read copy is held open between requests. Any other file (a warehouse.duckdb no
        # replicator writes yet) is opened per request, so a replicator started later in
        # another process can still take it for writing.
        self._hold = self.path.stem.endswith(".read") if hold_open is None else hold_open
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._identity: tuple[int, int, int] | None = None
        self._retired: list[tuple[float, duckdb.DuckDBPyConnection]] = []
        self._in_use: dict[int, int] = {}  # id(connection) -> open cursors
        self._facts: dict[int, JoinFacts] = {}  # id(connection) -> what its data allows
        self._cursor_facts: dict[int, JoinFacts] = {}  # id(open cursor) -> its copy's facts
        self._state: WarehouseState | None = None
        self._checked_at = 0.0
        self._min_check = min_check_interval_s

    # --- connections ----------------------------------------------------------------
    def _file_identity(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _refresh(self) -> bool:
        """Re-open when the file changed; True when a new copy was opened."""
        identity = self._file_identity()
        if identity is None:
            if self._con is None:
                raise WarehouseUnavailable(
                    f"no warehouse at {self.path} yet: start `hybridshop up` (or `hybridshop "
                    "replicate`) and the replicator will create it"
                )
            return False  # being replaced right now: keep reading the old copy
        if identity == self._identity and self._con is not None:
            return False
        try:
            con = open_read_only(self.path)
        except duckdb.Error as exc:
            if self._con is not None:
                return False  # keep the previous copy; try again at the next check
            raise WarehouseUnavailable(
                f"cannot open {self.path}: {exc}. While a replicator writes a warehouse, "
                "open its read copy (warehouse.read.duckdb) instead"
            ) from None
        if self._con is not None:
            self._retired.append((time.monotonic(), self._con))
        self._con, self._identity = con, identity
        self._close_retired()
        return True

    def _close_retired(self) -> None:
        now = time.monotonic()
        keep = []
        for retired_at, con in self._retired:
            if not self._in_use.get(id(con)) or now - retired_at > RETIRE_AFTER_S:
                self._in_use.pop(id(con), None)
                self._facts.pop(id(con), None)
                with contextlib.suppress(duckdb.Error):
                    con.close()
            else:
                keep.append((retired_at, con))
        self._retired = keep

    @contextlib.contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor on the newest copy (raises ``WarehouseUnavailable`` if there is none)."""
        with self._lock:
            self._refresh()
            con = self._con
            assert con is not None
            cur = con.cursor()
            self._in_use[id(con)] = self._in_use.get(id(con), 0) + 1
            self._cursor_facts[id(cur)] = self._facts.setdefault(id(con), JoinFacts())
        try:
            cur.execute(f"USE {ALIAS}")
            apply_settings(cur)
            yield cur
        finally:
            cur.close()
            with self._lock:
                self._cursor_facts.pop(id(cur), None)
                self._in_use[id(con)] -= 1
                if con is not self._con:
                    self._close_retired()
                else:
                    self._release_if_idle()

    def facts_for(self, cursor: Any) -> JoinFacts | None:
        """The ``JoinFacts`` of the copy an open ``cursor()`` reads (None for another)."""
        with self._lock:
            return self._cursor_facts.get(id(cursor))

    def forget_facts(self) -> None:
        """Check every fact again (a cold render, for the benchmark)."""
        with self._lock:
            for con_id in list(self._facts):
                self._facts[con_id] = JoinFacts()
            for cur_id in list(self._cursor_facts):
                self._cursor_facts[cur_id] = JoinFacts()

    def _release_if_idle(self) -> None:
        if self._hold or self._con is None or self._in_use.get(id(self._con)):
            return
        self._in_use.pop(id(self._con), None)
        self._facts.pop(id(self._con), None)
        with contextlib.suppress(duckdb.Error):
            self._con.close()
        self._con = None  # the identity stays: state() knows whether the file changed

    def close(self) -> None:
        with self._lock:
            for _, con in self._retired:
                with contextlib.suppress(duckdb.Error):
                    con.close()
            self._retired.clear()
            self._facts.clear()
            if self._con is not None:
                self._con.close()
            self._con, self._identity, self._state = None, None, None

    # --- version and freshness -------------------------------------------------------
    def state(self) -> WarehouseState:
        """The current version and per-table freshness (recomputed only on a new copy)."""
        with self._lock:
            now = time.monotonic()
            if self._state is not None and now - self._checked_at < self._min_check:
                return self._state
            self._checked_at = now
            unchanged = (
                self._state is not None
                and not self._state.error
                and self._file_identity() == self._identity
            )
            if unchanged and self._state is not None:
                self._state = WarehouseState(
                    self._state.version, self._state.tables, self._state.last_change_ms, _now_ms()
                )
                return self._state
            try:
                changed = self._refresh()
            except WarehouseUnavailable as exc:
                self._state = WarehouseState(
                    version="none", checked_at_ms=_now_ms(), error=str(exc)
                )
                return self._state
            if changed or self._state is None or self._state.error:
                assert self._con is not None
                cur = self._con.cursor()
                cur.execute(f"USE {ALIAS}")
                try:
                    self._state = read_state(cur, fallback_version=_identity_str(self._identity))
                finally:
                    cur.close()
                    self._release_if_idle()
            else:
                self._state = WarehouseState(
                    self._state.version,
                    self._state.tables,
                    self._state.last_change_ms,
                    _now_ms(),
                )
            return self._state


def _identity_str(identity: tuple[int, int, int] | None) -> str:
    return "none" if identity is None else "f" + "-".join(str(x) for x in identity)


def read_state(cur: Any, *, fallback_version: str) -> WarehouseState:
    """Version and freshness of the warehouse open on ``cur``.

    Tables are those with a ``datastream_metadata`` column (Datastream's layout); freshness
    is the newest ``source_timestamp`` (epoch milliseconds of the source commit).
    """
    tables = cur.execute(
        "SELECT table_schema, table_name FROM information_schema.columns "
        "WHERE column_name = 'datastream_metadata' AND table_catalog = current_database() "
        "ORDER BY table_schema, table_name"
    ).fetchall()
    fresh: list[TableFreshness] = []
    for schema, name in tables:
        ref = f'"{schema}"."{name}"'
        rows, latest = cur.execute(
            f"SELECT count(*), max(datastream_metadata.source_timestamp) FROM {ref}"
        ).fetchone()
        label = name if schema == "main" else f"{schema}.{name}"
        fresh.append(TableFreshness(label, int(rows), None if latest is None else int(latest)))
    version, last_change = fallback_version, None
    has_state = cur.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_name = '_datastream_state' AND table_catalog = current_database()"
    ).fetchone()[0]
    if has_state:
        applied, last_commit = cur.execute(
            "SELECT coalesce(sum(changes_applied), 0), max(last_commit_ts_ms) FROM _datastream_state"
        ).fetchone()
        version = f"c{int(applied)}"
        last_change = None if last_commit is None else int(last_commit)
    if last_change is None:
        known = [t.latest_source_ms for t in fresh if t.latest_source_ms is not None]
        last_change = max(known) if known else None
    if not has_state:
        # a warehouse without replicator state (a fixture, a user's file): its content decides
        version = fallback_version + "-" + "-".join(f"{t.rows}.{t.latest_source_ms}" for t in fresh)
    return WarehouseState(version, fresh, last_change, _now_ms())
