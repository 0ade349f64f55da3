"""Golden timeframe values (shared/reference/looker.md): epoch milliseconds through LookML's
dimension_group SQL, BigQuery → DuckDB, in UTC with Monday weeks."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from hybridshop.analytics.lookml import Project, compile_query, run_query
from hybridshop.analytics.warehouse import create_tables, insert_orders

GOLDEN = {
    # ms: (date, week, quarter, year, hour_of_day, day_of_week, day_of_week_index, time)
    1704585600000: (
        date(2024, 1, 7),
        "2024-01-01",
        "2024-01",
        2024,
        0,
        "Sunday",
        6,
        "2024-01-07 00:00:00",
    ),
    1704672000000: (
        date(2024, 1, 8),
        "2024-01-08",
        "2024-01",
        2024,
        0,
        "Monday",
        0,
        "2024-01-08 00:00:00",
    ),
    1735603200000: (
        date(2024, 12, 31),
        "2024-12-30",
        "2024-10",
        2024,
        0,
        "Tuesday",
        1,
        "2024-12-31 00:00:00",
    ),
    1735700400000: (
        date(2025, 1, 1),
        "2024-12-30",
        "2025-01",
        2025,
        3,
        "Wednesday",
        2,
        "2025-01-01 03:00:00",
    ),
}
FRAMES = [
    "date",
    "week",
    "quarter",
    "year",
    "hour_of_day",
    "day_of_week",
    "day_of_week_index",
    "time",
]


@pytest.fixture(scope="module")
def golden_db() -> duckdb.DuckDBPyConnection:
    from datetime import UTC, datetime

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    create_tables(con)
    rows = []
    for i, ms in enumerate(GOLDEN, start=1):
        ts = datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)
        rows.append((i, i, 1, ts, "api", ms))  # purchased_at = source_timestamp
    insert_orders(con, rows)
    return con


@pytest.mark.parametrize("frame", FRAMES)
def test_purchased_timeframes(
    project: Project, golden_db: duckdb.DuckDBPyConnection, frame: str
) -> None:
    compiled = compile_query(
        project,
        "hybridshop",
        "public_orders",
        ["public_orders.id", f"public_orders.purchased_{frame}"],
        sorts=["public_orders.id asc"],
    )
    assert compiled.ok, compiled.errors
    rows = run_query(compiled, golden_db).rows
    got = [r[f"public_orders.purchased_{frame}"] for r in rows]
    assert got == [v[FRAMES.index(frame)] for v in GOLDEN.values()]


def test_source_timestamp_is_epoch_milliseconds(
    project: Project, golden_db: duckdb.DuckDBPyConnection
) -> None:
    compiled = compile_query(
        project,
        "hybridshop",
        "public_orders",
        ["public_orders.id", "public_orders.source_time", "public_orders.source_date"],
        sorts=["public_orders.id asc"],
    )
    rows = run_query(compiled, golden_db).rows
    assert [r["public_orders.source_time"] for r in rows] == [v[7] for v in GOLDEN.values()]
    assert [r["public_orders.source_date"] for r in rows] == [v[0] for v in GOLDEN.values()]


def test_session_time_zone_does_not_shift_results(
    project: Project, golden_db: duckdb.DuckDBPyConnection
) -> None:
    """run_query sets the connection to UTC whatever it was."""
    golden_db.execute("SET TimeZone = 'America/Los_Angeles'")
    compiled = compile_query(
        project,
        "hybridshop",
        "public_orders",
        ["public_orders.id", "public_orders.source_time"],
        sorts=["public_orders.id asc"],
    )
    rows = run_query(compiled, golden_db).rows
    assert rows[3]["public_orders.source_time"] == "2025-01-01 03:00:00"
