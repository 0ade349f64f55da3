"""Decoder for the ``pgoutput`` logical replication protocol (versions 1 and 2).

Pure functions over the raw ``XLogData`` payloads, so they can be tested without a server and
stay fast: one ``struct.unpack_from`` per field, values kept as text (the replicator casts them
in DuckDB, where a vectorised cast beats a per-value Python conversion).

Reference: PostgreSQL docs, "Logical Replication Message Formats".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

# Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
PG_EPOCH_OFFSET_US: Final = 946_684_800_000_000


class _Unchanged:
    """Marker for an unchanged TOASTed value (``'u'``): the destination keeps its current value."""

    _instance: _Unchanged | None = None

    def __new__(cls) -> _Unchanged:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = _Unchanged()

Value = str | None | _Unchanged
Tuple = list[Value]


class ProtocolError(RuntimeError):
    """A message we cannot decode: the stream is not pgoutput or uses an unknown version."""


@dataclass(slots=True)
class Column:
    name: str
    type_oid: int
    typmod: int
    is_key: bool


@dataclass(slots=True)
class Begin:
    final_lsn: int
    commit_ts_us: int  # Unix epoch microseconds
    xid: int


@dataclass(slots=True)
class Commit:
    commit_lsn: int
    end_lsn: int
    commit_ts_us: int


@dataclass(slots=True)
class Relation:
    relid: int
    namespace: str
    name: str
    replica_identity: str  # d, n, f, i
    columns: list[Column]
    xid: int | None = None


@dataclass(slots=True)
class TypeMsg:
    oid: int
    namespace: str
    name: str
    xid: int | None = None


@dataclass(slots=True)
class Insert:
    relid: int
    new: Tuple
    xid: int | None = None


@dataclass(slots=True)
class Update:
    relid: int
    new: Tuple
    old: Tuple | None = None  # key ('K') or full old row ('O'); None if the key did not change
    old_is_key_only: bool = True
    xid: int | None = None


@dataclass(slots=True)
class Delete:
    relid: int
    old: Tuple
    old_is_key_only: bool = True
    xid: int | None = None


@dataclass(slots=True)
class Truncate:
    relids: list[int]
    cascade: bool
    restart_identity: bool
    xid: int | None = None


@dataclass(slots=True)
class Message:
    transactional: bool
    lsn: int
    prefix: str
    content: bytes
    xid: int | None = None


@dataclass(slots=True)
class Origin:
    lsn: int
    name: str


@dataclass(slots=True)
class StreamStart:
    xid: int
    first_segment: bool


@dataclass(slots=True)
class StreamStop:
    pass


@dataclass(slots=True)
class StreamCommit:
    xid: int
    commit_lsn: int
    end_lsn: int
    commit_ts_us: int


@dataclass(slots=True)
class StreamAbort:
    xid: int
    subxid: int


Decoded = (
    Begin
    | Commit
    | Relation
    | TypeMsg
    | Insert
    | Update
    | Delete
    | Truncate
    | Message
    | Origin
    | StreamStart
    | StreamStop
    | StreamCommit
    | StreamAbort
)

_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_U32 = struct.Struct("!I")
_I64 = struct.Struct("!q")
_U64 = struct.Struct("!Q")
_BEGIN = struct.Struct("!QqI")
_COMMIT = struct.Struct("!BQQq")
_STREAM_COMMIT = struct.Struct("!IBQQq")


def pg_ts_to_unix_us(pg_us: int) -> int:
    return pg_us + PG_EPOCH_OFFSET_US


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def _cstring(buf: bytes, pos: int) -> tuple[str, int]:
    end = buf.index(b"\x00", pos)
    return buf[pos:end].decode(), end + 1


def _tuple(buf: bytes, pos: int) -> tuple[Tuple, int]:
    (ncols,) = _I16.unpack_from(buf, pos)
    pos += 2
    values: Tuple = []
    append = values.append
    unpack_len = _I32.unpack_from
    for _ in range(ncols):
        kind = buf[pos]
        pos += 1
        if kind == 116 or kind == 98:  # 't' text, 'b' binary (we never ask for binary)
            (length,) = unpack_len(buf, pos)
            pos += 4
            append(buf[pos : pos + length].decode())
            pos += length
        elif kind == 110:  # 'n'
            append(None)
        elif kind == 117:  # 'u'
            append(UNCHANGED)
        else:
            raise ProtocolError(f"unknown tuple column kind {chr(kind)!r}")
    return values, pos


def decode(buf: bytes, *, in_stream: bool = False) -> Decoded:
    """Decode one pgoutput message. ``in_stream``: inside a v2 Stream Start/Stop block, where
    data messages carry the (sub)transaction id first."""
    kind = buf[0]
    pos = 1
    xid: int | None = None
    if in_stream and kind in b"RYIUDTM":
        (xid,) = _U32.unpack_from(buf, pos)
        pos += 4
    if kind == 73:  # 'I'
        (relid,) = _U32.unpack_from(buf, pos)
        new, _ = _tuple(buf, pos + 5)  # skip relid and the 'N' marker
        return Insert(relid, new, xid)
    if kind == 85:  # 'U'
        (relid,) = _U32.unpack_from(buf, pos)
        pos += 4
        old: Tuple | None = None
        key_only = True
        marker = buf[pos]
        if marker in (75, 79):  # 'K' or 'O'
            key_only = marker == 75
            old, pos = _tuple(buf, pos + 1)
            marker = buf[pos]
        if marker != 78:
            raise ProtocolError("update without a new tuple")
        new, _ = _tuple(buf, pos + 1)
        return Update(relid, new, old, key_only, xid)
    if kind == 68:  # 'D'
        (relid,) = _U32.unpack_from(buf, pos)
        marker = buf[pos + 4]
        old_row, _ = _tuple(buf, pos + 5)
        return Delete(relid, old_row, marker == 75, xid)
    if kind == 66:  # 'B'
        final_lsn, ts, bxid = _BEGIN.unpack_from(buf, pos)
        return Begin(final_lsn, pg_ts_to_unix_us(ts), bxid)
    if kind == 67:  # 'C'
        _flags, commit_lsn, end_lsn, ts = _COMMIT.unpack_from(buf, pos)
        return Commit(commit_lsn, end_lsn, pg_ts_to_unix_us(ts))
    if kind == 82:  # 'R'
        (relid,) = _U32.unpack_from(buf, pos)
        namespace, pos = _cstring(buf, pos + 4)
        name, pos = _cstring(buf, pos)
        ident = chr(buf[pos])
        (ncols,) = _I16.unpack_from(buf, pos + 1)
        pos += 3
        columns = []
        for _ in range(ncols):
            flags = buf[pos]
            col_name, pos = _cstring(buf, pos + 1)
            (type_oid,) = _U32.unpack_from(buf, pos)
            (typmod,) = _I32.unpack_from(buf, pos + 4)
            pos += 8
            columns.append(Column(col_name, type_oid, typmod, bool(flags & 1)))
        return Relation(relid, namespace or "pg_catalog", name, ident, columns, xid)
    if kind == 89:  # 'Y'
        (oid,) = _U32.unpack_from(buf, pos)
        namespace, pos = _cstring(buf, pos + 4)
        name, pos = _cstring(buf, pos)
        return TypeMsg(oid, namespace, name, xid)
    if kind == 84:  # 'T'
        (nrels,) = _I32.unpack_from(buf, pos)
        options = buf[pos + 4]
        relids = list(struct.unpack_from(f"!{nrels}I", buf, pos + 5))
        return Truncate(relids, bool(options & 1), bool(options & 2), xid)
    if kind == 77:  # 'M'
        flags = buf[pos]
        (lsn,) = _U64.unpack_from(buf, pos + 1)
        prefix, pos = _cstring(buf, pos + 9)
        (length,) = _I32.unpack_from(buf, pos)
        return Message(bool(flags & 1), lsn, prefix, bytes(buf[pos + 4 : pos + 4 + length]), xid)
    if kind == 79:  # 'O'
        (lsn,) = _U64.unpack_from(buf, pos)
        name, _ = _cstring(buf, pos + 8)
        return Origin(lsn, name)
    if kind == 83:  # 'S'
        (sxid,) = _U32.unpack_from(buf, pos)
        return StreamStart(sxid, buf[pos + 4] == 1)
    if kind == 69:  # 'E'
        return StreamStop()
    if kind == 99:  # 'c'
        sxid, _flags, commit_lsn, end_lsn, ts = _STREAM_COMMIT.unpack_from(buf, pos)
        return StreamCommit(sxid, commit_lsn, end_lsn, pg_ts_to_unix_us(ts))
    if kind == 65:  # 'A'
        sxid, subxid = struct.unpack_from("!II", buf, pos)
        return StreamAbort(sxid, subxid)
    raise ProtocolError(f"unknown pgoutput message type {chr(kind)!r}")
