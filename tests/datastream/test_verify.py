"""`hybridshop replicate verify` against real PostgreSQL and DuckDB: a faithful warehouse is a
full match for every mapped type and layout; each kind of planted difference is found with
its key, also while writes go on."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import duckdb
import psycopg2

from hybridshop.datastream.service import snapshot_path_for, start_replicator
from hybridshop.datastream.verify import TableResult, VerifyOptions, VerifyReport, verify

from .conftest import Stream, execute, wait_caught_up, wait_streaming


def _verify(stream: Stream, path: Path | None = None, **options: object) -> VerifyReport:
    opts = VerifyOptions(slot=stream.slot, **options)  # type: ignore[arg-type]
    return verify(stream.dsn, path or stream.duckdb_path, opts)


def _table(report: VerifyReport, name: str) -> TableResult:
    return next(t for t in report.tables if t.table == name)


def _seed_products(dsn: str, rows: int) -> None:
    execute(
        dsn,
        "INSERT INTO products (name, price, category, description) SELECT 'p' || g, "
        f"(g % 1000) + 0.99, 'c' || (g % 7), repeat('d', g % 40) FROM generate_series(1, {rows}) g",
    )


def _replicate_once(stream: Stream, **config: object) -> None:
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=stream.config(**config))
    try:
        wait_streaming(handle)
        wait_caught_up(stream.dsn, stream.slot, handle=handle)
    finally:
        handle.stop()


ALL_TYPES = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE everything (
    id int8 PRIMARY KEY, i2 int2, i4 int4, n10 numeric(10,2), n numeric, n50 numeric(50,10),
    f4 float4, f8 float8, m money, b bool, t text, vc varchar(20), c5 char(5), u uuid,
    ip inet, mo mood, by bytea, d date, tm time, tz timetz, ts timestamp, tstz timestamptz,
    iv interval, js json, jb jsonb, ia int4[], ta text[], na numeric[], bt bit(4), vb varbit,
    mac macaddr, net cidr, o oid
);
CREATE TABLE keyed_by_text (code text PRIMARY KEY, qty int4);
CREATE TABLE keyless (a int4, b text);
ALTER TABLE keyless REPLICA IDENTITY FULL;
CREATE PUBLICATION hybridshop_pub FOR TABLE products, orders, everything, keyed_by_text, keyless;
"""

ROW = (
    "INSERT INTO everything VALUES ({id}, -32768, 2147483647, 12.30, '1234.5678901234567890', "
    "'12345678901234567890.0123456789', 1.1, {f8}, '12.34', true, 'tëxt ''q''|1:x', 'v', 'ab', "
    "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '10.0.0.1', 'happy', '\\x00ff10', '2024-02-29', "
    "'23:59:59.999999', '12:00:00+00', '2024-01-02 03:04:05.123456', "
    "'2024-01-02 03:04:05.5+02', '1 year 2 mons 3 days 04:05:06.789', '{{\"b\": 1,  \"a\": [1, 2.50]}}', "
    "'{{\"k\": \"é\", \"n\": null}}', '{{1,2,NULL}}', '{{\"a b\",c}}', '{{1.50,2}}', B'1010', B'101', "
    "'08:00:2b:01:02:03', '10.0.0.0/8', 42)"
)


def _types_workload(dsn: str, first: int, count: int) -> None:
    rng = random.Random(first)
    statements: list[str] = []
    for i in range(first, first + count):
        statements.append(ROW.format(id=i, f8=repr(rng.uniform(-1e9, 1e9))))
    statements += [
        f"UPDATE everything SET f8 = 'NaN', tstz = 'infinity', n = 'NaN' WHERE id = {first}",
        f"UPDATE everything SET t = NULL, by = NULL, iv = '-00:00:01.5' WHERE id = {first + 1}",
        f"INSERT INTO keyed_by_text SELECT 'k' || g || '{first}', g FROM generate_series(1, 50) g",
        "INSERT INTO keyless VALUES (1, 'same'), (1, 'same'), (2, NULL)",
    ]
    execute(dsn, *statements)


def test_full_match_for_every_mapped_type_key_less_and_text_keys(stream: Stream) -> None:
    execute(stream.dsn, ALL_TYPES)
    _types_workload(stream.dsn, 1, 30)  # copied by the backfill
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=stream.config())
    try:
        wait_streaming(handle)
        _types_workload(stream.dsn, 100, 30)  # streamed
        execute(
            stream.dsn, "DELETE FROM keyless WHERE a = 2", "DELETE FROM everything WHERE id = 5"
        )
        wait_caught_up(stream.dsn, stream.slot, handle=handle)
    finally:
        handle.stop()
    report = _verify(stream, chunk_rows=10)  # several key ranges per table
    assert report.ok, report.as_dict()
    everything = _table(report, "public.everything")
    assert everything.source_rows == everything.warehouse_rows == 59
    assert everything.ranges > 3
    assert _table(report, "public.keyless").source_rows == 4  # (1,'same') x4 : a multiset
    assert _table(report, "public.keyed_by_text").source_rows == 100

    # one value of each kind changed in a copy of the warehouse is found, column by column
    copy = stream.duckdb_path.with_name("copy.duckdb")
    changes = {
        "f8": "f8 + 1e-6",
        "tstz": "tstz + INTERVAL 1 microsecond",
        "iv": "iv + INTERVAL 1 day",
        "jb": '\'{"k": "e", "n": null}\'',
        "bt": "'0101'::BLOB",  # bit(4) 1010 is stored as its ASCII digits
        "mac": "'08:00:2b:01:02:04'",
        "by": "'\\x00'::BLOB",
        "c5": "'ab'",  # loses char(5)'s padding
        "ia": "'[1,2]'",
        "n10": "n10 + 0.01",
        "tm": "TIME '23:59:59.999998'",
    }
    for offset, (column, value) in enumerate(changes.items()):
        shutil.copy(stream.duckdb_path, copy)
        con = duckdb.connect(str(copy))
        con.execute(f'UPDATE public_everything SET "{column}" = {value} WHERE id = {110 + offset}')
        con.close()
        result = _table(_verify(stream, copy, tables=("everything",)), "public.everything")
        assert (result.different, result.samples) == (
            1,
            {"different": [str(110 + offset)]},
        ), column


def test_each_planted_difference_is_found_with_its_key(stream: Stream, tmp_path: Path) -> None:
    _seed_products(stream.dsn, 3000)
    _replicate_once(stream)
    copy = tmp_path / "planted.duckdb"
    shutil.copy(stream.duckdb_path, copy)
    con = duckdb.connect(str(copy))
    con.execute("DELETE FROM public_products WHERE id IN (17, 2500)")  # missing
    con.execute("UPDATE public_products SET price = price + 1 WHERE id = 1234")  # different
    con.execute("UPDATE public_products SET description = 'x' WHERE id = 2999")  # different
    con.execute(
        "INSERT INTO public_products SELECT * REPLACE (id + 100000 AS id) FROM public_products "
        "WHERE id = 42"
    )  # extra
    con.execute("INSERT INTO public_products SELECT * FROM public_products WHERE id = 100")  # twice
    con.close()
    # deleted at the source, still present in the warehouse (the replicator is stopped)
    execute(stream.dsn, "DELETE FROM products WHERE id = 777")

    report = _verify(stream, copy, chunk_rows=250)
    products = _table(report, "public.products")
    assert not report.ok and not report.replicator_running
    assert (products.missing, products.extra, products.different) == (2, 3, 2)
    assert sorted(products.samples["missing"], key=int) == ["17", "2500"]
    assert sorted(products.samples["extra"]) == ["100 (duplicated)", "100042", "777"]
    assert sorted(products.samples["different"], key=int) == ["1234", "2999"]
    assert (products.source_rows, products.warehouse_rows) == (2999, 3000)
    assert _table(report, "public.orders").matched
    assert products.ranges_rechecked < products.ranges  # only the differing ranges were re-read

    # the command: a table of the differences, exit code 1; JSON for scripts; 2 on errors
    env = {**os.environ, "DATABASE_URL": stream.dsn, "COLUMNS": "200"}
    base = [
        sys.executable,
        "-m",
        "hybridshop.cli.main",
        "replicate",
        "verify",
        "--slot",
        stream.slot,
    ]
    shown = subprocess.run(
        [*base, "--duckdb", str(copy)], env=env, capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 1, shown.stdout + shown.stderr
    assert "2 missing, 3 extra, 2 different" in shown.stdout
    assert "17, 2500" in shown.stdout or "2500, 17" in shown.stdout
    as_json = subprocess.run(
        [*base, "--duckdb", str(copy), "--json", "--table", "products"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    data = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and [t["table"] for t in data["tables"]] == ["public.products"]
    missing = subprocess.run(
        [*base, "--duckdb", str(tmp_path / "nope.duckdb")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: no warehouse at") and "Traceback" not in missing.stderr


def test_append_only_layout_is_compared_by_its_latest_change_per_key(stream: Stream) -> None:
    """Append-only mode, in the per-schema layout (dataset ds_public)."""
    _seed_products(stream.dsn, 200)
    config = stream.config(mode="append-only", layout="per-schema", dataset_prefix="ds_")
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=config)
    try:
        wait_streaming(handle)
        execute(
            stream.dsn,
            "UPDATE products SET price = price * 2 WHERE id % 3 = 0",
            "DELETE FROM products WHERE id % 10 = 1",
            "UPDATE products SET id = DEFAULT WHERE id = 2",
        )
        wait_caught_up(stream.dsn, stream.slot, handle=handle)
    finally:
        handle.stop()
    report = _verify(stream, dataset_prefix="ds_")
    assert report.ok, report.as_dict()
    assert _table(report, "public.products").destination == "ds_public.products"
    con = duckdb.connect(str(stream.duckdb_path))
    con.execute(  # drop the DELETE of id 11 from the log: the row comes back
        "DELETE FROM ds_public.products WHERE id = 11 AND datastream_metadata.change_type = 'DELETE'"
    )
    con.close()
    products = _table(_verify(stream, dataset_prefix="ds_"), "public.products")
    assert products.samples == {"extra": ["11"]}
    # without the prefix, the tables are not where verify looks: said, not crashed on
    missing = _table(_verify(stream), "public.products")
    assert missing.error == "missing in the warehouse" and missing.missing == 180


def _writes(dsn: str, stop: threading.Event, done: list[int]) -> None:
    """Inserts, updates and deletes on ids above 1000 until stopped."""
    rng = random.Random(5)
    conn = psycopg2.connect(dsn)
    cur = conn.cursor()
    while not stop.is_set():
        cur.execute(
            "INSERT INTO products (name, price) SELECT 'w' || g, 1 FROM generate_series(1, 5) g"
        )
        cur.execute(
            "UPDATE products SET price = price + 1 WHERE id IN (SELECT id FROM products "
            "WHERE id > 1000 ORDER BY random() LIMIT 5)"
        )
        cur.execute(
            "DELETE FROM products WHERE id = (SELECT id FROM products WHERE id > 1000 "
            "ORDER BY random() LIMIT 1)"
        )
        conn.commit()
        done[0] += 1
        time.sleep(rng.uniform(0, 0.01))
    conn.close()


def test_verify_while_writes_go_on(stream: Stream) -> None:
    """A few thousand rows, writes throughout the check: no false difference, and the two
    differences planted in the live warehouse (on rows the writes do not touch) are found."""
    _seed_products(stream.dsn, 5000)
    config = stream.config(snapshot_path=snapshot_path_for(stream.duckdb_path))
    handle = start_replicator(stream.dsn, stream.duckdb_path, config=config)
    stop = threading.Event()
    done = [0]
    writer = threading.Thread(target=_writes, args=(stream.dsn, stop, done), daemon=True)
    try:
        wait_streaming(handle)
        writer.start()
        time.sleep(0.5)
        before = done[0]
        report = _verify(stream, chunk_rows=500)
        assert done[0] > before, "the writes should go on during the check"
        assert report.replicator_running and report.caught_up
        assert report.ok, json.dumps(report.as_dict())

        live = handle.reader()  # same process: a cursor on the replicator's database
        live.execute("DELETE FROM public_products WHERE id = 10")
        live.execute("UPDATE public_products SET name = 'tampered' WHERE id = 20")
        live.close()
        execute(stream.dsn, "SELECT 1")
        report = _verify(stream, chunk_rows=500)
        products = _table(report, "public.products")
        assert products.samples == {"missing": ["10"], "different": ["20"]}, report.as_dict()
        assert (products.missing, products.different, products.extra) == (1, 1, 0)
    finally:
        stop.set()
        if writer.is_alive():
            writer.join()
        handle.stop()


def test_only_what_the_publication_publishes_is_compared(stream: Stream) -> None:
    """Column lists and row filters (PostgreSQL 15+) decide what the source side is."""
    execute(
        stream.dsn,
        "CREATE TABLE docs (id int8 PRIMARY KEY, body text, secret text)",
        "INSERT INTO docs SELECT g, 'b' || g, 's' || g FROM generate_series(1, 40) g",
        "CREATE PUBLICATION docs_pub FOR TABLE docs",
    )
    docs = replace(stream, publication="docs_pub")
    _replicate_once(docs)
    assert _verify(docs).ok
    # publish less: the warehouse built before now holds rows and a column it should not
    execute(stream.dsn, "ALTER PUBLICATION docs_pub SET TABLE docs (id, body) WHERE (id > 10)")
    report = _verify(docs, chunk_rows=10)
    result = _table(report, "public.docs")
    assert (result.source_rows, result.warehouse_rows, result.extra) == (30, 40, 10)
    assert sorted(result.samples["extra"], key=int) == ["1", "2", "3", "4", "5"]
    assert any(
        "public_docs holds columns the publication does not publish: secret" in n
        for n in report.notes
    )
    # a column the warehouse lacks cannot be compared: said, not crashed on
    execute(
        stream.dsn,
        "ALTER TABLE docs ADD COLUMN extra int",
        "ALTER PUBLICATION docs_pub SET TABLE docs",
    )
    result = _table(_verify(docs), "public.docs")
    assert result.error == "columns missing in the warehouse: extra" and not result.matched


def test_canonical_forms_agree_on_random_values(database_url: str) -> None:
    """For thousands of random values per type: PostgreSQL's canonical text of a value equals
    DuckDB's canonical text of what the replicator's own cast made of it."""
    from hybridshop.datastream.replicator import SOURCE_OPTIONS
    from hybridshop.datastream.typemap import TypeInfo, column_type
    from hybridshop.datastream.verify import duck_canonical, pg_canonical

    rng = random.Random(9)
    floats = [struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0] for _ in range(4000)]
    floats = [f for f in floats if math.isfinite(f)] + [0.0, -0.0, 1e15, 1e16, 0.1, 5e-324]
    singles = [struct.unpack("f", struct.pack("I", rng.getrandbits(32)))[0] for _ in range(3000)]
    singles = [f for f in singles if math.isfinite(f)]
    instants = [
        rng.randint(-62135596800, 253402300799) * 10**6 + rng.randint(0, 999999)
        for _ in range(3000)
    ]
    cases: list[tuple[str, int, str, list[object]]] = [
        ("float8", -1, "%s::float8[]", [*floats, float("nan"), float("inf"), float("-inf")]),
        (
            "float4",
            -1,
            "%s::float4[]",
            singles,
        ),
        (
            "numeric",
            ((14 << 16) | 4) + 4,
            "%s::numeric(14,4)[]",
            [rng.randint(-(10**14), 10**14) / 10**4 for _ in range(2000)],
        ),
        (
            "timestamptz",
            -1,
            "(SELECT array_agg(to_timestamp(0) + u * interval '1 microsecond') FROM unnest(%s::int8[]) u)",
            instants,
        ),
        (
            "timestamp",
            -1,
            "(SELECT array_agg(to_timestamp(0) AT TIME ZONE 'UTC' + u * interval '1 microsecond') FROM unnest(%s::int8[]) u)",
            instants,
        ),
        (
            "interval",
            -1,
            "(SELECT array_agg(make_interval(months => m, days => mod(m, 40), secs => m * 1.234567)) FROM unnest(%s::int4[]) m)",
            [rng.randint(-5000, 5000) for _ in range(2000)],
        ),
    ]
    conn = psycopg2.connect(database_url, options=SOURCE_OPTIONS)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        for name, typmod, array_sql, values in cases:
            ctype = column_type(TypeInfo(name, "N"), typmod)
            with conn.cursor() as cur:
                cur.execute(
                    f"SELECT v::text, {pg_canonical('v', ctype)} FROM unnest({array_sql}) v",
                    (values,),
                )
                rows = cur.fetchall()
            texts = [r[0] for r in rows]
            duck = con.execute(
                f"SELECT {duck_canonical(ctype.cast_sql('x'), ctype)} FROM unnest(?) t(x)", [texts]
            ).fetchall()
            bad = [(t, p, d[0]) for (t, p), d in zip(rows, duck, strict=True) if p != d[0]]
            assert not bad, (name, len(rows), bad[:5])
            assert len(rows) >= 1000
    finally:
        conn.close()
        con.close()


def test_a_locked_warehouse_is_waited_for_even_while_the_slot_has_no_holder(
    tmp_path: Path,
) -> None:
    """A starting replicator holds the warehouse's lock but, between its backfill and its
    stream, not the slot: verify waited only when the slot was held, and so failed at once
    ("held by a running replicator that publishes no reader copy") in that gap. The lock
    itself now counts: verify waits for the reader copy."""
    import pytest

    from hybridshop.datastream.verify import VerifyError, open_warehouse

    path = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(path)).close()
    hold = (
        "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
        "print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold, str(path)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        with pytest.raises(VerifyError, match="publishes no reader copy"):
            open_warehouse(path, 0.0)  # no wait asked: the old behaviour, at once
        copy = snapshot_path_for(path)

        def publish() -> None:
            time.sleep(1.0)
            tmp = copy.with_name(copy.name + ".tmp")  # replaced atomically, as the replicator
            con = duckdb.connect(str(tmp))
            con.execute("CREATE TABLE marker AS SELECT 42 AS answer")
            con.close()
            os.replace(tmp, copy)

        threading.Thread(target=publish).start()
        con, read_from = open_warehouse(path, 0.0, locked_wait_s=30)
        try:
            assert read_from == copy and con.execute("SELECT answer FROM marker").fetchone() == (
                42,
            )
        finally:
            con.close()
    finally:
        holder.kill()
        holder.wait()
