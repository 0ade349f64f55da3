"""Aggregate awareness: tiles an ``aggregate_table`` covers read it, with the same rows.

Every tile of the three dashboards gives the same rows with the aggregates (run_query with
a ``JoinFacts``: materialized once per copy) and without them (Looker's base query), on the
known warehouse and on a randomized one (orphan orders, products sold twice, NULL
categories and times, seconds everywhere); a query the aggregates do not cover falls back;
a new read copy is materialized anew, so a tile never reads a stale aggregate.
"""

from __future__ import annotations

import os
import random
import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hybridshop.analytics.lookml import (
    JoinFacts,
    Project,
    compile_element,
    compile_query,
    default_project_path,
    load_project,
    run_query,
    validate_project,
)
from hybridshop.analytics.lookml.runner import open_read_only
from hybridshop.analytics.render.warehouse import WarehouseFile
from hybridshop.analytics.warehouse import create_tables, insert_orders, insert_products

from .conftest import ALL_DATES, fill_known

NOW = datetime(2024, 1, 12, 13, 27, 5, tzinfo=UTC)


@pytest.fixture
def copy(known_db: str) -> Any:
    """The known warehouse opened as the dashboards open a read copy (attached read-only in
    an in-memory database, where the aggregates are materialized)."""
    con = open_read_only(known_db)
    yield con
    con.close()


FILTER_SETS: list[dict[str, str]] = [
    ALL_DATES,
    {},  # the dashboards' defaults, relative to NOW
    {"date": "7 days"},
    {"date": "2024-01-03 to 2024-01-05", "category": "home,books"},
    {"category": "-home"},
    {"date": "after 2024-01-04 10:30"},  # not on the hourly grain: falls back
]
AGGREGATE_MARK = "-- aggregate awareness: reads aggregate_table"


def _tiles(project: Project) -> list[tuple[str, str]]:
    return [
        (d.name, e.name)
        for d in project.dashboards.values()
        for e in d.elements
        if e.type != "text"
    ]


def _rows(result: Any) -> list[tuple[Any, ...]]:
    return sorted((tuple(r.items()) for r in result.rows), key=repr)


def _compare_every_tile(project: Project, con: Any) -> set[str]:
    """Assert each tile's rows are the same both ways; return the tiles that used one."""
    facts = JoinFacts()
    used: set[str] = set()
    for filters in FILTER_SETS:
        for dash, element in _tiles(project):
            compiled = compile_element(project, dash, element, filters, now=NOW)
            if not compiled.ok:
                continue
            if "CURRENT_TIMESTAMP" in (compiled.duckdb_sql or "").upper():
                assert compiled.aggregate is None  # now - latest change: moves by itself
                continue
            base = run_query(compiled, con)  # no facts: Looker's base query
            fast = run_query(compiled, con, facts)
            assert _rows(fast) == _rows(base), (dash, element, filters, fast.sql)
            assert [tuple(r) for r in fast.rows] == [tuple(r) for r in base.rows]  # same keys
            if fast.sql.startswith(AGGREGATE_MARK):
                used.add(f"{dash}/{element}")
            assert AGGREGATE_MARK not in base.sql
    return used


COVERED = {
    "sales/revenue",
    "sales/orders",
    "sales/revenue_over_time",
    "sales/revenue_by_category",
    "sales/weekly_revenue_by_category",
    "sales/orders_by_hour",
    "catalog/items_listed",
    "catalog/new_listings",
    "pipeline_health/orders_rows",
    "pipeline_health/products_rows",
}


def test_every_tile_same_rows_on_the_known_warehouse(project: Project, copy: Any) -> None:
    assert _compare_every_tile(project, copy) == COVERED


def test_a_connection_that_cannot_hold_them_falls_back(
    project: Project, known: duckdb.DuckDBPyConnection
) -> None:
    # duckdb.connect(file, read_only=True) has no in-memory catalog to materialize into
    compiled = compile_element(project, "sales", "orders", ALL_DATES, now=NOW)
    facts = JoinFacts()
    result = run_query(compiled, known, facts)
    assert AGGREGATE_MARK not in result.sql and result.rows == [{"public_orders.count": 5}]


def _random_warehouse(con: Any, seed: int) -> None:
    rng = random.Random(seed)
    create_tables(con)
    start = datetime(2024, 1, 1)
    categories = ["home", "books", "music", "toys", None]
    products = []
    for pid in range(1, 301):
        created = start + timedelta(seconds=rng.randrange(14 * 86400))
        products.append(
            (
                pid,
                f"P{pid}",
                rng.choice(categories),
                Decimal(rng.randrange(100, 50000)) / 100,
                created if rng.random() > 0.02 else None,
                rng.random() < 0.3,
                created or start,
            )
        )
    insert_products(con, products)
    orders = []
    for oid in range(1, 401):
        pid = rng.randrange(1, 305)  # 301..304 do not exist: orphan orders
        at = start + timedelta(seconds=rng.randrange(14 * 86400))
        orders.append(
            (
                oid,
                pid,
                Decimal(rng.randrange(100, 50000)) / 100 if rng.random() > 0.02 else None,
                at if rng.random() > 0.02 else None,
                rng.choice(["api", "web"]),
                at,
            )
        )
    insert_orders(con, orders)


@pytest.mark.parametrize("seed", [7, 2024])
def test_every_tile_same_rows_on_a_randomized_warehouse(project: Project, seed: int) -> None:
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    _random_warehouse(con, seed)
    assert _compare_every_tile(project, con) == COVERED
    con.close()


def test_bigquery_sql_is_untouched(project: Project) -> None:
    compiled = compile_element(project, "sales", "revenue_over_time", ALL_DATES, now=NOW)
    assert compiled.aggregate is not None
    assert "hybridshop_agg" not in (compiled.bigquery_sql or "")
    assert "hybridshop_agg" not in (compiled.duckdb_sql or "")
    assert compiled.aggregate.table.name == "sales_hourly_by_category"
    assert compiled.aggregate.materialize_sql.startswith("CREATE OR REPLACE TABLE memory.main.")


@pytest.mark.parametrize(
    ("fields", "filters", "why"),
    [
        (["public_orders.average_order_value"], {}, "average does not re-aggregate"),
        (["public_orders.channel", "public_orders.count"], {}, "channel is not in it"),
        (["public_orders.revenue"], {"public_orders.channel": "web"}, "filter not in it"),
        (["public_orders.purchased_minute", "public_orders.count"], {}, "finer than hourly"),
        (["public_orders.revenue"], {"public_orders.purchased_date": "after 2024-01-03 10:30"}, ""),
        (["public_products.count"], {}, "a joined view's count does not add up"),
        (["public_orders.latest_change"], {}, "not a measure of the aggregate"),
    ],
)
def test_queries_not_covered_fall_back(
    project: Project,
    copy: Any,
    fields: list[str],
    filters: dict[str, str],
    why: str,
) -> None:
    compiled = compile_query(project, "hybridshop", "public_orders", fields, filters=filters)
    assert compiled.ok, compiled.errors
    assert compiled.aggregate is None, why
    result = run_query(compiled, copy, JoinFacts())
    assert AGGREGATE_MARK not in result.sql


def test_covered_at_the_grain_and_derived_timeframes(project: Project) -> None:
    for fields, filters in [
        (["public_orders.revenue"], {"public_orders.purchased_date": "after 2024-01-03 10:00"}),
        (["public_orders.purchased_month", "public_orders.count"], {}),
        (["public_orders.purchased_day_of_week", "public_orders.revenue"], {}),
        (["public_orders.count"], {"public_products.category": "-NULL"}),
    ]:
        compiled = compile_query(project, "hybridshop", "public_orders", fields, filters=filters)
        assert compiled.aggregate is not None, (fields, filters)


def _planted_project(tmp_path: Path, aggregate: str) -> Project:
    root = tmp_path / "looker"
    shutil.copytree(default_project_path(), root)
    model = root / "hybridshop.model.lkml"
    text = model.read_text()
    anchor = "  # Aggregate awareness: orders and revenue"
    model.write_text(text.replace(anchor, aggregate + "\n" + anchor, 1))
    return load_project(root)


def test_exact_grain_reads_non_reaggregatable_measures(tmp_path: Path, copy: Any) -> None:
    project = _planted_project(
        tmp_path,
        """  aggregate_table: aov_by_category {
    query: {
      dimensions: [public_products.category]
      measures: [public_orders.average_order_value, public_orders.median_hours_to_sale]
    }
    materialization: { datagroup_trigger: datastream_change }
  }""",
    )
    assert validate_project(project) == []
    exact = compile_element(project, "catalog", "price_vs_time_to_sale", {"date": ""}, now=NOW)
    assert exact.aggregate is not None and exact.aggregate.table.name == "aov_by_category"
    fast, base = run_query(exact, copy, JoinFacts()), run_query(exact, copy)
    assert fast.sql.startswith(AGGREGATE_MARK) and _rows(fast) == _rows(base)
    # a coarser query (no category) cannot average the category averages
    coarse = compile_query(
        project, "hybridshop", "public_orders", ["public_orders.average_order_value"]
    )
    assert coarse.aggregate is None


def test_planted_aggregate_errors(tmp_path: Path) -> None:
    project = _planted_project(
        tmp_path,
        """  aggregate_table: broken {
    query: {
      dimensions: [public_orders.purchased_dat]
      measures: [public_orders.count]
    }
    materialization: { datagroup_trigger: no_such_group }
  }""",
    )
    text = (project.root / "hybridshop.model.lkml").read_text()
    line = text[: text.index("aggregate_table: broken")].count("\n") + 1
    messages = [str(e) for e in validate_project(project)]
    assert any(
        m.startswith(f"hybridshop.model.lkml:{line}: public_orders::broken:")
        and "no_such_group" in m
        for m in messages
    ), messages
    assert any(
        m.startswith(f"hybridshop.model.lkml:{line}:") and "public_orders.purchased_dat" in m
        for m in messages
    ), messages


def test_a_new_read_copy_is_materialized_anew(project: Project, tmp_path: Path) -> None:
    path = tmp_path / "warehouse.read.duckdb"

    def publish(extra_orders: int) -> None:
        staging = tmp_path / "staging.duckdb"
        staging.unlink(missing_ok=True)
        con = duckdb.connect(str(staging))
        fill_known(con)
        at = datetime(2024, 1, 6, 12)
        insert_orders(
            con,
            [(100 + i, 4, Decimal("5.00"), at, "api", at) for i in range(extra_orders)],
        )
        con.close()
        os.replace(staging, path)  # as the replicator publishes a read copy

    publish(0)
    warehouse = WarehouseFile(path, min_check_interval_s=0)
    compiled = compile_element(project, "sales", "orders", ALL_DATES, now=NOW)
    assert compiled.aggregate is not None
    try:
        with warehouse.cursor() as cur:
            first_facts = warehouse.facts_for(cur)
            first = run_query(compiled, cur, first_facts)
        assert first.sql.startswith(AGGREGATE_MARK)
        assert first.rows == [{"public_orders.count": 5}]
        assert first_facts is not None and compiled.aggregate.local_table in (
            first_facts.aggregate_ms
        )
        with warehouse.cursor() as cur:  # same copy: the same materialization
            assert warehouse.facts_for(cur) is first_facts
            again = run_query(compiled, cur, warehouse.facts_for(cur))
        assert again.rows == first.rows
        publish(3)
        with warehouse.cursor() as cur:
            facts = warehouse.facts_for(cur)
            assert facts is not None and facts is not first_facts
            assert facts.aggregate_ms == {}  # nothing materialized on the new copy yet
            fresh = run_query(compiled, cur, facts)
        assert fresh.sql.startswith(AGGREGATE_MARK)
        assert fresh.rows == [{"public_orders.count": 8}]
        assert compiled.aggregate.local_table in facts.aggregate_ms
    finally:
        warehouse.close()


def test_no_materialization_on_a_file_opened_per_request(project: Project, known_db: str) -> None:
    warehouse = WarehouseFile(Path(known_db), hold_open=False)
    compiled = compile_element(project, "sales", "orders", ALL_DATES, now=NOW)
    try:
        with warehouse.cursor() as cur:
            result = run_query(compiled, cur, warehouse.facts_for(cur))
        assert AGGREGATE_MARK not in result.sql
        assert result.rows == [{"public_orders.count": 5}]
    finally:
        warehouse.close()


def test_show_sql_shows_the_aggregate_that_ran(project: Project, tmp_path: Path) -> None:
    from hybridshop.analytics.render.service import DashboardService

    path = tmp_path / "warehouse.read.duckdb"
    con = duckdb.connect(str(path))
    fill_known(con)
    con.close()
    warehouse = WarehouseFile(path, min_check_interval_s=0)
    service = DashboardService(warehouse, load_project=lambda _dir: project, now=NOW)
    try:
        covered = service.tile("sales", "revenue_by_category", ALL_DATES)
        assert not covered.errors
        assert (covered.duckdb_sql or "").startswith(AGGREGATE_MARK)
        assert "hybridshop_agg" not in (covered.bigquery_sql or "")  # Looker's SQL
        base = service.tile("sales", "average_order_value", ALL_DATES)
        assert not base.errors and AGGREGATE_MARK not in (base.duckdb_sql or "")
    finally:
        warehouse.close()
