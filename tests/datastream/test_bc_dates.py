"""Dates before year 1: BigQuery cannot hold them, and DuckDB's TIMESTAMP cast would silently
turn '… BC' into AD. The replicator must refuse them with a message, never store a wrong value."""

from __future__ import annotations

import datetime

import duckdb
import pytest

from hybridshop.datastream.typemap import TypeInfo, column_type


@pytest.mark.parametrize(
    ("pg_name", "ad_text", "expected"),
    [
        ("timestamp", "0044-03-15 10:00:00", datetime.datetime(44, 3, 15, 10, 0)),
        ("timestamptz", "0044-03-15 10:00:00+00", datetime.datetime(44, 3, 15, 10, 0)),
        ("date", "0044-03-15", datetime.date(44, 3, 15)),
    ],
)
def test_bc_values_are_refused_and_ad_values_kept(
    pg_name: str, ad_text: str, expected: object
) -> None:
    column = column_type(TypeInfo(pg_name, "D"), -1)
    db = duckdb.connect()
    for sql in (column.cast_sql("v"), column.backfill_cast_sql("v")):
        assert db.execute(f"SELECT {sql} FROM (SELECT ?::VARCHAR AS v)", [ad_text]).fetchone() == (
            expected,
        )
        with pytest.raises(duckdb.Error, match="before year 1"):
            db.execute(f"SELECT {sql} FROM (SELECT ?::VARCHAR AS v)", [ad_text + " BC"]).fetchone()
