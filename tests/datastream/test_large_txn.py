"""Bounded memory for any transaction size: a transaction's raw messages spill to a file past
a memory budget, a batch writes its rows every N changes inside its one DuckDB transaction,
and the result is the same as applying it whole (v1 and v2, TOAST values, aborted
subtransactions)."""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

import pytest

from hybridshop.datastream import pgoutput as po
from hybridshop.datastream.service import start_replicator
from hybridshop.datastream.txnbuffer import TxnBuffer

from .conftest import (
    PRODUCT_COLUMNS,
    Stream,
    dest_rows,
    execute,
    source_rows,
    wait_caught_up,
    wait_streaming,
)

CAPTURED = json.loads((Path(__file__).parent / "captured" / "pgoutput.json").read_text())


def test_buffer_spills_and_drops_aborted_subtransactions(tmp_path: Path) -> None:
    """The captured v2 stream: a transaction streamed in blocks with a rolled-back
    savepoint; held in a buffer of 1 kB, it spills and reads back without the savepoint."""
    buffer = TxnBuffer(0, streamed=True, spill_dir=tmp_path, memory_bytes=1024)
    in_stream = False
    for h in CAPTURED["proto_v2"]:
        payload = bytes.fromhex(h)
        msg = po.decode(payload, in_stream=in_stream)
        if isinstance(msg, po.StreamStart):
            in_stream, buffer.xid = True, msg.xid
        elif isinstance(msg, po.StreamStop):
            in_stream = False
        elif isinstance(msg, po.StreamAbort):
            buffer.abort_subtransaction(msg.subxid)
        elif in_stream and payload[:1] in (b"I", b"R"):
            buffer.add(payload)
    # on disk (an unnamed temporary file: nothing is left behind even after a kill -9)
    assert buffer.spilled
    names = [c.new[1] for c in buffer.changes() if isinstance(c, po.Insert)]
    assert names[-1] == "last" and not any(str(n).startswith("r") for n in names)
    assert names == [c.new[1] for c in buffer.changes() if isinstance(c, po.Insert)]  # again
    buffer.close()


@pytest.mark.parametrize("proto_version", [1, 2])
def test_large_transaction_in_small_memory_equals_the_source(
    stream: Stream, proto_version: int
) -> None:
    rng = random.Random(proto_version)
    long = "".join(rng.choices(string.ascii_letters, k=5000))  # TOASTed: sent as unchanged
    execute(
        stream.dsn,
        (
            "INSERT INTO products (name, price, description) SELECT 'p' || g, 1, %s "
            "FROM generate_series(1, 3000) g",
            (long,),
        ),
    )
    config = stream.config(
        proto_version=proto_version, txn_memory_bytes=64 * 1024, flush_every_changes=997
    )
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=config)
    try:
        wait_streaming(handle)
        execute(
            stream.dsn,
            "SET logical_decoding_work_mem = '64kB'",  # v2: streamed while in progress
            "UPDATE products SET price = price + 1",  # 3,000 rows, description unchanged
            "UPDATE products SET available = false WHERE id % 3 = 0",  # same rows again
            "INSERT INTO products (name, price) SELECT 'n' || g, 2 FROM generate_series(1, 2000) g",
            "DELETE FROM products WHERE id % 7 = 0",
        )
        wait_caught_up(stream.dsn, stream.slot, handle=handle, timeout=120)
    finally:
        handle.stop()
    status = handle.status()
    assert status["error"] is None and status["transactions_applied"] == 1
    src = source_rows(stream.dsn, "products", PRODUCT_COLUMNS)
    assert dest_rows(stream.duckdb_path, "public_products", PRODUCT_COLUMNS) == src
