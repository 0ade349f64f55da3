"""Every tile of the three dashboards on the known warehouse (tests/analytics/conftest.py),
against values computed by hand from that table."""

from __future__ import annotations

import time
from datetime import UTC, date
from decimal import Decimal
from typing import Any

import duckdb
import pytest

from hybridshop.analytics.lookml import Project, compile_element, run_query

from .conftest import ALL_DATES, ORDER_SOURCE, PRODUCT_SOURCE, XSS

D = Decimal


def rows(
    project: Project,
    con: duckdb.DuckDBPyConnection,
    dashboard: str,
    element: str,
    filters: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    compiled = compile_element(project, dashboard, element, ALL_DATES | (filters or {}))
    assert compiled.ok, compiled.errors
    return run_query(compiled, con).rows


def one(
    project: Project,
    con: duckdb.DuckDBPyConnection,
    dashboard: str,
    element: str,
    filters: dict[str, str] | None = None,
) -> Any:
    (row,) = rows(project, con, dashboard, element, filters)
    (value,) = row.values()
    return value


# --- Sales ------------------------------------------------------------------------------
def test_sales_single_values(project: Project, known: duckdb.DuckDBPyConnection) -> None:
    assert one(project, known, "sales", "revenue") == D("410.00")  # 20+50+10+300+30
    assert one(project, known, "sales", "orders") == 5
    assert one(project, known, "sales", "average_order_value") == pytest.approx(82.0)


def test_sales_category_filter_listens(project: Project, known: duckdb.DuckDBPyConnection) -> None:
    assert one(project, known, "sales", "revenue", {"category": "music"}) == D("330.00")
    assert one(project, known, "sales", "orders", {"category": "home,books"}) == 3
    assert one(project, known, "sales", "average_order_value", {"category": "-music"}) == (
        pytest.approx(80 / 3)
    )


def test_sales_date_filter_listens(project: Project, known: duckdb.DuckDBPyConnection) -> None:
    # orders on 2024-01-03 (10.00) and 2024-01-04 (50.00)
    assert one(project, known, "sales", "revenue", {"date": "2024-01-03 to 2024-01-05"}) == D(
        "60.00"
    )
    # Monday week of 2024-01-08: orders on the 9th (30) and 10th (300)
    assert one(project, known, "sales", "orders", {"date": "after 2024-01-08"}) == 2
    assert one(project, known, "sales", "revenue", {"date": "2023"}) == 0


def test_sales_revenue_over_time_is_filled(
    project: Project, known: duckdb.DuckDBPyConnection
) -> None:
    got = [
        (r["public_orders.purchased_date"], r["public_orders.revenue"], r["public_orders.count"])
        for r in rows(project, known, "sales", "revenue_over_time")
    ]
    assert got == [
        (date(2024, 1, 1), D("20.00"), 1),
        (date(2024, 1, 2), None, None),
        (date(2024, 1, 3), D("10.00"), 1),
        (date(2024, 1, 4), D("50.00"), 1),
        (date(2024, 1, 5), None, None),
        (date(2024, 1, 6), None, None),
        (date(2024, 1, 7), None, None),
        (date(2024, 1, 8), None, None),
        (date(2024, 1, 9), D("30.00"), 1),
        (date(2024, 1, 10), D("300.00"), 1),
    ]


def test_sales_revenue_by_category(project: Project, known: duckdb.DuckDBPyConnection) -> None:
    got = [
        (r["public_products.category"], r["public_orders.revenue"])
        for r in rows(project, known, "sales", "revenue_by_category")
    ]
    assert got == [("music", D("330.00")), ("home", D("70.00")), ("books", D("10.00"))]


def test_sales_weekly_revenue_pivoted_by_category(
    project: Project, known: duckdb.DuckDBPyConnection
) -> None:
    compiled = compile_element(project, "sales", "weekly_revenue_by_category", ALL_DATES)
    result = run_query(compiled, known)
    assert result.pivot_values == [("books",), ("home",), ("music",)]
    wide = result.wide_rows()
    assert [r["public_orders.purchased_week"] for r in wide] == ["2024-01-01", "2024-01-08"]
    assert wide[0]["public_orders.revenue|home"] == D("70.00")
    assert wide[0]["public_orders.revenue|books"] == D("10.00")
    assert wide[0]["public_orders.revenue|music"] is None
    assert wide[1]["public_orders.revenue|music"] == D("330.00")


def test_sales_orders_by_hour(project: Project, known: duckdb.DuckDBPyConnection) -> None:
    got = [
        (r["public_orders.purchased_hour_of_day"], r["public_orders.count"])
        for r in rows(project, known, "sales", "orders_by_hour")
    ]
    assert got == [(6, 1), (11, 1), (12, 1), (14, 1), (20, 1)]


def test_sales_top_products(project: Project, known: duckdb.DuckDBPyConnection) -> None:
    got = [
        (r["public_products.name"], r["public_orders.revenue"])
        for r in rows(project, known, "sales", "top_products")
    ]
    assert got == [
        ("Guitar", D("300.00")),
        ("Chair", D("50.00")),
        (XSS, D("30.00")),
        ("Lamp", D("20.00")),
        ("Book", D("10.00")),
    ]


def test_text_tile_has_no_query(project: Project) -> None:
    compiled = compile_element(project, "sales", "about")
    assert compiled.errors == [] and compiled.duckdb_sql is None
    assert "Datastream" in (project.dashboards["sales"].element("about").body_text or "")


# --- Catalog ----------------------------------------------------------------------------
def test_catalog_single_values(project: Project, known: duckdb.DuckDBPyConnection) -> None:
    assert one(project, known, "catalog", "items_listed") == 6
    assert one(project, known, "catalog", "items_sold") == 5
    assert one(project, known, "catalog", "sell_through_rate") == pytest.approx(5 / 6)
    # hours from listing to sale: 4, 48, 2, 60, 6 -> median 6
    assert one(project, known, "catalog", "median_hours_to_sale") == pytest.approx(6.0)
    assert one(project, known, "catalog", "median_hours_to_sale", {"category": "home"}) in (
        4.0,
        48.0,
    )  # two values: BigQuery's approximate median returns one of them
    assert one(project, known, "catalog", "sell_through_rate", {"category": "books"}) == 0.5


def test_catalog_listed_vs_sold(project: Project, known: duckdb.DuckDBPyConnection) -> None:
    got = {
        r["public_products.category"]: (r["public_products.count"], r["public_orders.items_sold"])
        for r in rows(project, known, "catalog", "listed_vs_sold")
    }
    assert got == {"home": (2, 2), "books": (2, 1), "music": (2, 2)}


def test_catalog_new_listings_filled(project: Project, known: duckdb.DuckDBPyConnection) -> None:
    got = [
        (r["public_products.created_date"].day, r["public_products.count"])
        for r in rows(project, known, "catalog", "new_listings")
    ]
    assert got == [(1, 1), (2, 1), (3, 1), (4, None), (5, 1), (6, None), (7, None), (8, 1), (9, 1)]


def test_catalog_price_distribution(project: Project, known: duckdb.DuckDBPyConnection) -> None:
    compiled = compile_element(project, "catalog", "price_distribution", ALL_DATES)
    result = run_query(compiled, known)
    got = [
        (r["public_products.price_tier"], r["public_products.category"], r["public_products.count"])
        for r in result.rows
    ]
    # tiers in tier order, not alphabetical: Pen 5, Lamp 20 / Book 10, img 30, Chair 50, Guitar 300
    assert [t for t, _, _ in got] == [
        "Below 10",
        "10 to 24",
        "10 to 24",
        "25 to 49",
        "50 to 99",
        "250 or Above",
    ]
    assert sorted(got) == sorted(
        [
            ("Below 10", "books", 1),
            ("10 to 24", "home", 1),
            ("10 to 24", "books", 1),
            ("25 to 49", "music", 1),
            ("50 to 99", "home", 1),
            ("250 or Above", "music", 1),
        ]
    )


def test_catalog_price_vs_time_to_sale(project: Project, known: duckdb.DuckDBPyConnection) -> None:
    got = [
        (
            r["public_products.category"],
            r["public_orders.average_order_value"],
            r["public_orders.median_hours_to_sale"],
        )
        for r in rows(project, known, "catalog", "price_vs_time_to_sale")
    ]
    # music: orders of 300 and 30 (60 h, 6 h); home: 20 and 50 (4 h, 48 h); books: 10 (2 h)
    assert [(c, a) for c, a, _ in got] == [
        ("music", pytest.approx(165.0)),
        ("home", pytest.approx(35.0)),
        ("books", pytest.approx(10.0)),
    ]
    medians = {c: m for c, _, m in got}
    assert medians["books"] == pytest.approx(2.0)
    assert medians["music"] in (6.0, 60.0) and medians["home"] in (4.0, 48.0)


def test_catalog_unsold_listings(project: Project, known: duckdb.DuckDBPyConnection) -> None:
    got = rows(project, known, "catalog", "unsold_listings")
    assert [(r["public_products.name"], r["public_products.price"]) for r in got] == [
        ("Pen", D("5.00"))
    ]


def test_catalog_date_filter_on_listing_date(
    project: Project, known: duckdb.DuckDBPyConnection
) -> None:
    # listed from 2024-01-05: Pen, Guitar, img -> 3 listed, 2 sold
    assert one(project, known, "catalog", "items_listed", {"date": "after 2024-01-05"}) == 3
    assert one(project, known, "catalog", "items_sold", {"date": "after 2024-01-05"}) == 2


# --- Pipeline health --------------------------------------------------------------------
def test_pipeline_freshness(project: Project, known: duckdb.DuckDBPyConnection) -> None:
    now = time.time()
    latest_order = max(ORDER_SOURCE.values()).replace(tzinfo=UTC).timestamp()
    latest_product = max(PRODUCT_SOURCE.values()).replace(tzinfo=UTC).timestamp()
    orders_f = one(project, known, "pipeline_health", "orders_freshness")
    products_f = one(project, known, "pipeline_health", "products_freshness")
    assert orders_f == pytest.approx(now - latest_order, abs=5)
    assert products_f == pytest.approx(now - latest_product, abs=5)
    # the products' latest change (12:06) is 8 h 56 min older than the orders' (21:02)
    assert products_f - orders_f == pytest.approx(8 * 3600 + 56 * 60, abs=2)


def test_pipeline_rows(project: Project, known: duckdb.DuckDBPyConnection) -> None:
    assert one(project, known, "pipeline_health", "orders_rows") == 5
    assert one(project, known, "pipeline_health", "products_rows") == 6
    assert one(project, known, "pipeline_health", "orders_rows", {"category": "music"}) == 2


def test_pipeline_changes_per_minute(project: Project, known: duckdb.DuckDBPyConnection) -> None:
    day = {"date": "2024-01-10"}
    got = [
        (r["public_orders.source_minute"], r["public_orders.count"])
        for r in rows(project, known, "pipeline_health", "order_changes_per_minute", day)
    ]
    # orders 1..5 at 21:00 + id // 2 minutes: 21:00 x1, 21:01 x2, 21:02 x2
    assert got == [("2024-01-10 21:00", 1), ("2024-01-10 21:01", 2), ("2024-01-10 21:02", 2)]
    got = [
        (r["public_products.source_minute"], r["public_products.count"])
        for r in rows(project, known, "pipeline_health", "product_changes_per_minute", day)
    ]
    assert got == [(f"2024-01-10 12:0{i}", 1) for i in range(1, 7)]
    # default "24 hours" relative to now: nothing from 2024
    compiled = compile_element(project, "pipeline_health", "order_changes_per_minute")
    assert run_query(compiled, known).rows == []


def test_pipeline_latest_changes(project: Project, known: duckdb.DuckDBPyConnection) -> None:
    got = [
        (
            r["public_products.category"],
            r["public_products.count"],
            r["public_products.latest_change"].strftime("%F %T"),
        )
        for r in rows(project, known, "pipeline_health", "latest_changes")
    ]
    # products 3, 4 books (12:03, 12:04); 1, 2 home; 5, 6 music
    assert got == [
        ("books", 2, "2024-01-10 12:04:00"),
        ("home", 2, "2024-01-10 12:02:00"),
        ("music", 2, "2024-01-10 12:06:00"),
    ]


def test_every_element_compiles_with_defaults(
    project: Project, known: duckdb.DuckDBPyConnection
) -> None:
    for dash in project.dashboards.values():
        for el in dash.elements:
            compiled = compile_element(project, dash.name, el.name)
            assert compiled.errors == [], (dash.name, el.name)
            if el.type != "text":
                run_query(compiled, known)  # runs (default date ranges: no 2024 rows)


def test_layout_is_newspaper_grid(project: Project) -> None:
    assert set(project.dashboards) == {"sales", "catalog", "pipeline_health"}
    for dash in project.dashboards.values():
        assert dash.layout == "newspaper"
        assert {f.name for f in dash.filters} == {"date", "category"}
        for el in dash.elements:
            assert el.col >= 0 and el.col + el.width <= 24, (dash.name, el.name)
            assert el.height > 0


def test_per_schema_layout_through_table_map(project: Project, known_db: str) -> None:
    """Datastream's dataset-per-schema layout (`--layout per-schema --dataset-prefix ds_`):
    the same tiles with the tables mapped to ds_public.products / ds_public.orders."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"ATTACH '{known_db}' AS src (READ_ONLY)")
    con.execute("CREATE SCHEMA ds_public")
    con.execute("CREATE TABLE ds_public.products AS SELECT * FROM src.public_products")
    con.execute("CREATE TABLE ds_public.orders AS SELECT * FROM src.public_orders")
    con.execute("DETACH src")
    tables = {"public_products": "ds_public.products", "public_orders": "ds_public.orders"}
    compiled = compile_element(project, "sales", "revenue_by_category", ALL_DATES, table_map=tables)
    assert "ds_public.orders" in (compiled.duckdb_sql or "")
    got = [
        (r["public_products.category"], r["public_orders.revenue"])
        for r in run_query(compiled, con).rows
    ]
    assert got == [("music", D("330.00")), ("home", D("70.00")), ("books", D("10.00"))]
