"""The changes of one source transaction, in bounded memory whatever its size.

pgoutput v1 sends a transaction whole at its commit; v2 (``streaming=on``) sends a large one
early in Stream Start/Stop blocks. Either way the replicator holds a transaction until it can
apply it atomically. The raw messages (a few hundred bytes each, far smaller than decoded
rows) are kept in memory up to ``memory_bytes``; past that they go to a temporary file next to
the warehouse, read back in order when the transaction is applied, and deleted afterwards.
Decoding happens once, at apply time. Rows of aborted subtransactions (v2 Stream Abort) are
dropped while reading.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from hybridshop.datastream import pgoutput as po

_LEN = struct.Struct("!I")
_XID = struct.Struct("!I")
DEFAULT_MEMORY_BYTES = 16 * 1024 * 1024

Change = po.Relation | po.Insert | po.Update | po.Delete | po.Truncate


@dataclass
class TxnBuffer:
    xid: int
    streamed: bool = False  # messages carry their (sub)transaction id (v2 stream blocks)
    spill_dir: Path | None = None
    memory_bytes: int = DEFAULT_MEMORY_BYTES
    commit_lsn: int = 0
    end_lsn: int = 0
    commit_ts_us: int = 0
    count: int = 0  # messages held (aborted subtransactions included until read)
    _mem: list[bytes] = field(default_factory=list)
    _mem_bytes: int = 0
    _file: IO[bytes] | None = None
    _aborted: set[int] = field(default_factory=set)

    @property
    def spilled(self) -> bool:
        return self._file is not None

    def add(self, payload: bytes) -> None:
        """One raw change message (Relation, Insert, Update, Delete, Truncate)."""
        self.count += 1
        if self._file is None:
            self._mem.append(payload)
            self._mem_bytes += len(payload) + 64
            if self._mem_bytes > self.memory_bytes:
                self._spill()
            return
        self._file.write(_LEN.pack(len(payload)))
        self._file.write(payload)

    def _spill(self) -> None:
        # lives as long as the transaction is held; close() removes it
        self._file = tempfile.TemporaryFile(dir=self.spill_dir, prefix="hybridshop-txn-")  # noqa: SIM115
        for payload in self._mem:
            self._file.write(_LEN.pack(len(payload)))
            self._file.write(payload)
        self._mem = []
        self._mem_bytes = 0

    def abort_subtransaction(self, subxid: int) -> None:
        self._aborted.add(subxid)

    def _payloads(self) -> Iterator[bytes]:
        if self._file is None:
            yield from self._mem
            return
        f = self._file
        f.flush()
        f.seek(0)
        read = f.read
        while True:
            header = read(4)
            if not header:
                return
            (length,) = _LEN.unpack(header)
            yield read(length)

    def changes(self) -> Iterator[Change]:
        """The transaction's changes in order, decoded (readable again, e.g. after a retry)."""
        streamed, aborted = self.streamed, self._aborted
        decode = po.decode
        for payload in self._payloads():
            if aborted and streamed and _XID.unpack_from(payload, 1)[0] in aborted:
                continue
            msg = decode(payload, in_stream=streamed)
            yield msg  # type: ignore[misc]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._mem = []
