"""Symmetric aggregates: sums and averages over products when orders fan them out.

Fixture (a product may have several orders here, unlike the shop, to create the fan-out):
product 1 (home, 20.00) has 3 orders, product 2 (home, 50.00) 1 order, product 3 (books,
10.00) none. Listed value per category: home 70.00, books 10.00 — a naive SUM over the join
says home 110.00 (20 counted three times)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import duckdb
import pytest

from hybridshop.analytics.lookml import Project, compile_query, run_query
from hybridshop.analytics.lookml.transpile import to_duckdb
from hybridshop.analytics.warehouse import create_tables, insert_orders, insert_products

T = datetime(2024, 3, 1, 12)


@pytest.fixture(scope="module")
def fanout_db() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    create_tables(con)
    insert_products(
        con,
        [
            (1, "Lamp", "home", Decimal("20.00"), T, False, T),
            (2, "Chair", "home", Decimal("50.00"), T, False, T),
            (3, "Book", "books", Decimal("10.00"), T, True, T),
        ],
    )
    insert_orders(
        con,
        [
            (1, 1, Decimal("20.00"), T, "api", T),
            (2, 1, Decimal("20.00"), T, "api", T),
            (3, 1, Decimal("20.00"), T, "api", T),
            (4, 2, Decimal("50.00"), T, "api", T),
        ],
    )
    return con


def test_naive_sum_is_wrong_on_this_fixture(fanout_db: duckdb.DuckDBPyConnection) -> None:
    naive = fanout_db.execute(
        to_duckdb(
            "SELECT p.category, SUM(p.price) FROM `x.y.public_products` AS p "
            "LEFT JOIN `x.y.public_orders` AS o ON p.id = o.product_id GROUP BY 1"
        )
    ).fetchall()
    assert dict(naive) == {"home": Decimal("110.00"), "books": Decimal("10.00")}


def test_symmetric_sum_average_and_count(
    project: Project, fanout_db: duckdb.DuckDBPyConnection
) -> None:
    compiled = compile_query(
        project,
        "hybridshop",
        "public_products",
        [
            "public_products.category",
            "public_products.listed_value",
            "public_products.average_price",
            "public_products.count",
            "public_orders.count",
        ],
        sorts=["public_products.category asc"],
    )
    assert compiled.ok, compiled.errors
    assert "SUM(DISTINCT" in compiled.bigquery_sql  # the symmetric form is what is sent
    rows = {r["public_products.category"]: r for r in run_query(compiled, fanout_db).rows}
    assert rows["home"]["public_products.listed_value"] == pytest.approx(70.0)
    assert rows["books"]["public_products.listed_value"] == pytest.approx(10.0)
    assert rows["home"]["public_products.average_price"] == pytest.approx(35.0)
    assert rows["home"]["public_products.count"] == 2
    assert rows["home"]["public_orders.count"] == 4
    assert rows["books"]["public_orders.count"] == 0


def test_no_symmetric_form_without_fanout(
    project: Project, fanout_db: duckdb.DuckDBPyConnection
) -> None:
    compiled = compile_query(
        project,
        "hybridshop",
        "public_products",
        ["public_products.category", "public_products.listed_value"],
    )
    assert "SUM(DISTINCT" not in compiled.bigquery_sql
    assert "COALESCE(SUM(public_products.price), 0)" in compiled.bigquery_sql
    rows = {r["public_products.category"]: r for r in run_query(compiled, fanout_db).rows}
    assert rows["home"]["public_products.listed_value"] == Decimal("70.00")


def test_many_to_one_side_is_deduplicated(
    project: Project, fanout_db: duckdb.DuckDBPyConnection
) -> None:
    """From orders, products are the 'one' side of many_to_one: their sum is symmetric."""
    compiled = compile_query(
        project,
        "hybridshop",
        "public_orders",
        ["public_orders.count", "public_orders.revenue", "public_products.listed_value"],
    )
    assert compiled.ok, compiled.errors
    row = run_query(compiled, fanout_db).rows[0]
    assert row["public_orders.count"] == 4
    assert row["public_orders.revenue"] == Decimal("110.00")  # orders are not fanned out
    assert row["public_products.listed_value"] == pytest.approx(70.0)  # 20 + 50, once each


def test_large_values_do_not_overflow(project: Project) -> None:
    """DECIMAL(38,9) (NUMERIC) keeps the hash sum exact for many rows and big prices."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    create_tables(con)
    con.execute(
        "INSERT INTO public_products SELECT i, 'p', '', 'c', 99999999.99, 'EUR', NULL, true, "
        "TIMESTAMP '2024-01-01', TIMESTAMP '2024-01-01', {'uuid': 'u', 'source_timestamp': 0} "
        "FROM range(1, 20001) t(i)"
    )
    con.execute(
        "INSERT INTO public_orders SELECT i, 1 + i % 20000, 1, 'EUR', TIMESTAMP '2024-01-01', "
        "NULL, 'api', NULL, '', NULL, {'uuid': 'u', 'source_timestamp': 0} FROM range(1, 40001) t(i)"
    )
    compiled = compile_query(
        project,
        "hybridshop",
        "public_products",
        ["public_products.listed_value", "public_orders.count"],
    )
    row = run_query(compiled, con).rows[0]
    assert row["public_orders.count"] == 40000
    assert row["public_products.listed_value"] == pytest.approx(20000 * 99999999.99, rel=1e-12)


def test_lookers_own_md5_form_gives_the_same_numbers(
    project: Project, fanout_db: duckdb.DuckDBPyConnection
) -> None:
    """The DuckDB SQL uses DuckDB's hash() for speed; Looker's MD5 text, transpiled as is,
    must agree (this is what the DECIMAL(38,9) fixes are for)."""
    compiled = compile_query(
        project,
        "hybridshop",
        "public_products",
        [
            "public_products.category",
            "public_products.listed_value",
            "public_products.average_price",
            "public_orders.count",
        ],
        sorts=["public_products.category asc"],
    )
    assert "LOOKER_PK_HASH" not in compiled.bigquery_sql and "MD5" in compiled.bigquery_sql
    assert "HASH(" in compiled.duckdb_sql.upper() and "MD5" not in compiled.duckdb_sql.upper()
    direct = fanout_db.execute(to_duckdb(compiled.bigquery_sql)).fetchall()
    assert direct == [("books", 10.0, 10.0, 0), ("home", 70.0, 35.0, 4)]
    assert [tuple(r.values()) for r in run_query(compiled, fanout_db).rows] == direct


P_JOIN_O = (
    "FROM `x.y.public_products` AS p LEFT JOIN `x.y.public_orders` AS o ON p.id = o.product_id"
)


@pytest.mark.parametrize(
    "where",
    ["", "WHERE p.category = 'home'", "WHERE p.id = 3", "WHERE p.id = 99", "WHERE o.id > 1"],
)
def test_left_join_becomes_inner_only_where_unmatched_rows_count_nothing(
    fanout_db: duckdb.DuckDBPyConnection, where: str
) -> None:
    """Without GROUP BY, a LEFT JOIN's unmatched rows only add NULLs to aggregates of the
    joined side: DuckDB gets an inner join, with the same row (also when nothing matches)."""
    sql = (
        "SELECT COUNT(o.id), COUNT(DISTINCT o.id), COALESCE(SUM(o.price), 0), AVG(o.price * 2),"
        f" MIN(o.purchased_at), MAX(o.price + p.price) {P_JOIN_O} {where} ORDER BY 1 DESC"
    )
    local = to_duckdb(sql)
    assert "LEFT JOIN" not in local and "JOIN public_orders" in local
    as_left = local.replace("JOIN public_orders", "LEFT JOIN public_orders")
    assert fanout_db.execute(local).fetchall() == fanout_db.execute(as_left).fetchall()


@pytest.mark.parametrize(
    "select",
    [
        "COUNT(*)",  # counts the unmatched product
        "COUNT(p.id)",
        "COUNT(o.id), COUNT(DISTINCT p.id)",  # sell-through: the unmatched product is listed
        "SUM(COALESCE(o.price, 0)), COUNT(o.id)",  # not NULL on unmatched rows
        "p.category, COUNT(o.id)",  # a group per category: unmatched rows make groups
    ],
)
def test_left_join_stays_when_unmatched_rows_count(
    fanout_db: duckdb.DuckDBPyConnection, select: str
) -> None:
    group = " GROUP BY 1" if select.startswith("p.category") else ""
    local = to_duckdb(f"SELECT {select} {P_JOIN_O}{group}")
    assert "LEFT JOIN" in local


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COUNT(*) AS c FROM `x.y.public_orders` AS o ORDER BY 1 DESC LIMIT 500",
        "SELECT 1.0 * COUNT(o.id) / NULLIF(COUNT(*), 0) AS r FROM `x.y.public_orders` AS o "
        "ORDER BY 1 DESC LIMIT 500",
        "SELECT MAX(o.price) AS m FROM `x.y.public_orders` AS o WHERE o.id > 99 "
        "ORDER BY 1 DESC LIMIT 1",
    ],
)
def test_single_row_aggregates_need_no_sort(fanout_db: duckdb.DuckDBPyConnection, sql: str) -> None:
    local = to_duckdb(sql)
    assert "ORDER BY" not in local and "LIMIT" not in local
    with_sort = fanout_db.execute(local + "\nORDER BY 1 DESC LIMIT 1").fetchall()
    assert fanout_db.execute(local).fetchall() == with_sort


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT o.channel, COUNT(*) FROM `x.y.public_orders` AS o GROUP BY 1 ORDER BY 2 LIMIT 1",
        "SELECT o.id FROM `x.y.public_orders` AS o ORDER BY 1 LIMIT 2",  # no aggregate
        "SELECT COUNT(*) FROM `x.y.public_orders` AS o LIMIT 0",  # no row at all
        "SELECT o.id, COUNT(*) OVER () FROM `x.y.public_orders` AS o ORDER BY 1 LIMIT 2",
    ],
)
def test_sorts_and_limits_stay_where_rows_can_be_many_or_none(sql: str) -> None:
    local = to_duckdb(sql)
    assert "LIMIT" in local
