"""A rejected change inside a batch must cost only itself: an INSERT and a later UPDATE of the
same key in one batch, the UPDATE holding a value DuckDB cannot store, lost the INSERT too
(only the last image of each key was staged, and it was rejected). Seeded random workloads
of inserts, updates, key changes and deletes, some holding such values, are compared with a
model of the source in which exactly the changes holding one are left out."""

from __future__ import annotations

import datetime as dt
import json
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg2
import pytest

from hybridshop.datastream.service import start_replicator

from .conftest import Stream, execute, wait_caught_up, wait_streaming

BASE = dt.datetime(2026, 1, 1)
TOO_LATE = "294250-01-01 00:00:00"  # PostgreSQL holds it; DuckDB's TIMESTAMP ends in 294247

Row = tuple[str, str]  # (amount, at) as PostgreSQL sends them


def _query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _bad(row: Row) -> list[str]:
    """The columns of a row image the warehouse cannot hold."""
    return [name for name, v in zip(("amount", "at"), row, strict=True) if v in ("NaN", TOO_LATE)]


class Model:
    """The source table, and what the warehouse must hold: every change applied except
    those whose new image holds a value DuckDB cannot store (rejected, row left as it was).
    A key change is two events, as in Datastream's layout (UPDATE-DELETE of the old key,
    UPDATE-INSERT of the new): a rejected new image still removes the old key, which the
    source no longer has. So the result does not depend on how changes fall into batches."""

    def __init__(self) -> None:
        self.source: dict[int, Row] = {}
        self.expected: dict[int, Row] = {}
        self.rejected: list[tuple[int, str]] = []  # (key, column) of each rejected change

    def insert(self, key: int, row: Row) -> None:
        self.source[key] = row
        self._write(key, None, row)

    def update(self, key: int, new_key: int, row: Row) -> None:
        del self.source[key]
        self.source[new_key] = row
        self._write(new_key, key, row)

    def delete(self, key: int) -> None:
        del self.source[key]
        self.expected.pop(key, None)

    def _write(self, key: int, old_key: int | None, row: Row) -> None:
        if old_key is not None and old_key != key:
            self.expected.pop(old_key, None)
        bad = _bad(row)
        if bad:
            self.rejected += [(key, column) for column in bad]
            return
        self.expected[key] = row


def _value(rng: random.Random) -> Row:
    amount = "NaN" if rng.random() < 0.15 else f"{Decimal(rng.randint(-99999, 99999)) / 100:.2f}"
    at = TOO_LATE if rng.random() < 0.1 else str(BASE + dt.timedelta(seconds=rng.randint(0, 9999)))
    return amount, at


def workload(dsn: str, model: Model, rng: random.Random, transactions: int) -> None:
    """Transactions of 1-6 statements; each statement's effect is applied to the model once
    its transaction commits."""
    conn = psycopg2.connect(dsn)
    cur = conn.cursor()
    next_key = max([0, *model.source]) + 1
    for _ in range(transactions):
        staged = Model()
        staged.source, staged.expected = dict(model.source), dict(model.expected)
        for _ in range(rng.randint(1, 6)):
            op = rng.random()
            keys = sorted(staged.source)
            if op < 0.35 or not keys:
                # new keys, and now and then the key of a row this transaction just deleted
                key, next_key = next_key, next_key + 1
                row = _value(rng)
                cur.execute("INSERT INTO ledger VALUES (%s, %s, %s)", (key, *row))
                staged.insert(key, row)
                if rng.random() < 0.5:  # the same key again within the batch
                    row = _value(rng)
                    cur.execute("UPDATE ledger SET amount = %s, at = %s WHERE id = %s", (*row, key))
                    staged.update(key, key, row)
            elif op < 0.7:
                key = rng.choice(keys)
                amount, at = staged.source[key]
                if rng.random() < 0.5:
                    amount = _value(rng)[0]
                else:
                    at = _value(rng)[1]
                cur.execute(
                    "UPDATE ledger SET amount = %s, at = %s WHERE id = %s", (amount, at, key)
                )
                staged.update(key, key, (amount, at))
            elif op < 0.82:
                key = rng.choice(keys)
                new_key, next_key = next_key, next_key + 1
                row = _value(rng) if rng.random() < 0.5 else staged.source[key]
                cur.execute(
                    "UPDATE ledger SET id = %s, amount = %s, at = %s WHERE id = %s",
                    (new_key, *row, key),
                )
                staged.update(key, new_key, row)
            else:
                key = rng.choice(keys)
                cur.execute("DELETE FROM ledger WHERE id = %s", (key,))
                staged.delete(key)
                if rng.random() < 0.3:  # and insert it again in the same transaction
                    row = _value(rng)
                    cur.execute("INSERT INTO ledger VALUES (%s, %s, %s)", (key, *row))
                    staged.insert(key, row)
        if rng.random() < 0.1:
            conn.rollback()
            continue
        conn.commit()
        model.source, model.expected = staged.source, staged.expected
        model.rejected += staged.rejected
    conn.close()


def _warehouse(path: Path, mode: str) -> dict[int, Row]:
    if mode == "merge":
        sql = 'SELECT id, amount, "at" FROM public_ledger'
    else:  # the append-only log replayed: the latest change of each key wins
        sql = (
            'SELECT id, amount, "at" FROM (SELECT * FROM public_ledger QUALIFY row_number() OVER '
            "(PARTITION BY id ORDER BY datastream_metadata.change_sequence_number DESC) = 1) "
            "WHERE datastream_metadata.change_type IN ('INSERT', 'UPDATE-INSERT')"
        )
    rows = _query(path, sql)
    return {int(r[0]): (f"{r[1]:.2f}", str(r[2])) for r in rows}


def _source(dsn: str) -> dict[int, Row]:
    conn = psycopg2.connect(dsn, options="-c DateStyle=ISO")
    with conn.cursor() as cur:
        cur.execute("SELECT id, amount::text, at::text FROM ledger")
        rows = {int(r[0]): (r[1], r[2]) for r in cur.fetchall()}
    conn.close()
    return rows


@pytest.mark.parametrize(
    ("mode", "seed", "flush_every"),
    [("merge", 1, 25_000), ("merge", 2, 7), ("append-only", 3, 25_000), ("append-only", 4, 7)],
)
def test_rejected_changes_cost_only_themselves(
    stream: Stream, mode: str, seed: int, flush_every: int
) -> None:
    stream.publication = "ledger_pub"
    execute(
        stream.dsn,
        "CREATE TABLE ledger (id int PRIMARY KEY, amount numeric(10,2), at timestamp)",
        "CREATE PUBLICATION ledger_pub FOR TABLE ledger",
    )
    rng = random.Random(seed)
    model = Model()
    config = stream.config(mode=mode, flush_every_changes=flush_every)
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=config)
    try:
        wait_streaming(handle)
        workload(stream.dsn, model, rng, transactions=80)  # small batches, as they come
        wait_caught_up(stream.dsn, stream.slot, handle=handle)
    finally:
        handle.stop()
    # stopped meanwhile: the next run gets everything in one batch
    workload(stream.dsn, model, rng, transactions=150)
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=config)
    try:
        wait_streaming(handle)
        wait_caught_up(stream.dsn, stream.slot, handle=handle)
    finally:
        handle.stop()
    assert handle.status()["error"] is None
    assert model.source == _source(stream.dsn)  # the model is right about the source
    assert model.rejected and model.expected != model.source  # the workload had bad values
    assert _warehouse(stream.duckdb_path, mode) == model.expected
    errors = _query(stream.duckdb_path, "SELECT key, column_name FROM _datastream_errors")
    recorded = sorted((int(json.loads(str(k))["id"]), str(c)) for k, c in errors)
    # A rejected change is recorded when it is written; a batch without another bad value
    # may never stage one that a later change of its key replaced.
    assert set(recorded) <= set(model.rejected)
    assert len(recorded) <= len(model.rejected)


def test_insert_then_rejected_update_in_one_batch_keeps_the_insert(stream: Stream) -> None:
    stream.publication = "ledger_pub"
    execute(
        stream.dsn,
        "CREATE TABLE ledger (id int PRIMARY KEY, amount numeric(10,2), at timestamp)",
        "CREATE PUBLICATION ledger_pub FOR TABLE ledger",
    )
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=stream.config())
    try:
        wait_streaming(handle)
        wait_caught_up(stream.dsn, stream.slot, handle=handle)
    finally:
        handle.stop()
    execute(
        stream.dsn,
        "INSERT INTO ledger VALUES (1, 1.50, '2026-01-01'), (2, 2.50, '2026-01-01')",
        "UPDATE ledger SET amount = 'NaN' WHERE id = 1",
        f"UPDATE ledger SET at = '{TOO_LATE}' WHERE id = 2",
        "UPDATE ledger SET id = 3, amount = 'NaN' WHERE id = 2",  # a rejected key change
        "INSERT INTO ledger VALUES (4, 'NaN', '2026-01-01')",  # a rejected INSERT ...
        "UPDATE ledger SET amount = 4.50 WHERE id = 4",  # ... then a good UPDATE
    )
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=stream.config())
    try:
        wait_streaming(handle)
        wait_caught_up(stream.dsn, stream.slot, handle=handle)
    finally:
        handle.stop()
    assert handle.status()["error"] is None
    # 1 keeps its INSERT; 2 moved to 3 (gone from the source), whose image was rejected
    assert _warehouse(stream.duckdb_path, "merge") == {
        1: ("1.50", "2026-01-01 00:00:00"),
        4: ("4.50", "2026-01-01 00:00:00"),
    }
    errors = _query(
        stream.duckdb_path,
        "SELECT key, column_name, value, change_type FROM _datastream_errors ORDER BY lsn, key, column_name",
    )
    assert [(json.loads(str(e[0]))["id"], e[1], e[2], e[3]) for e in errors] == [
        ("1", "amount", "NaN", "UPDATE-INSERT"),
        ("2", "at", TOO_LATE, "UPDATE-INSERT"),
        ("3", "amount", "NaN", "UPDATE-INSERT"),
        ("3", "at", TOO_LATE, "UPDATE-INSERT"),
        ("4", "amount", "NaN", "INSERT"),
    ]
