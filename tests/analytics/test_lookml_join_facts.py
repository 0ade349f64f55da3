"""Join facts: the cheaper DuckDB plan runs only where the data makes it give the same rows.

On the known warehouse every order has its product and no product has two orders (as in
the shop), so the sales tiles may INNER JOIN and the catalog counts skip COUNT(DISTINCT).
On a warehouse with an order whose product is missing and a product sold twice, both facts
are false: the Looker-shaped SQL runs, and the cheaper SQL would indeed have been wrong.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hybridshop.analytics.lookml import JoinFacts, Project, compile_element, run_query
from hybridshop.analytics.lookml.runner import open_read_only
from hybridshop.analytics.render.warehouse import WarehouseFile
from hybridshop.analytics.warehouse import insert_orders

from .conftest import ALL_DATES, fill_known

T = datetime(2024, 1, 6, 12)


def _every_tile(project: Project) -> list[tuple[str, str]]:
    return [
        (d.name, e.name)
        for d in project.dashboards.values()
        for e in d.elements
        if e.type != "text"
    ]


def _rows(result: Any) -> list[tuple[Any, ...]]:
    return sorted((tuple(r.items()) for r in result.rows), key=repr)


@pytest.fixture(scope="module")
def broken_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("broken") / "broken.duckdb"
    con = duckdb.connect(str(path))
    fill_known(con)
    insert_orders(
        con,
        [
            (6, 99, Decimal("7.00"), T, "api", T),  # product 99 does not exist
            (7, 1, Decimal("20.00"), T, "api", T),  # the lamp sold a second time
        ],
    )
    con.close()
    return str(path)


def test_bigquery_sql_is_untouched_and_the_assumption_is_local(project: Project) -> None:
    by_category = compile_element(project, "sales", "revenue_by_category", ALL_DATES)
    assert "LEFT JOIN" in by_category.bigquery_sql  # what Looker sends, unchanged
    assert "LEFT JOIN" in by_category.duckdb_sql
    assert [f.kind for f in by_category.assumes] == ["all_matched"]
    assert "INNER JOIN" in (by_category.assumed_sql or "")
    listed = compile_element(project, "catalog", "listed_vs_sold", ALL_DATES)
    assert "COUNT(DISTINCT public_products.id)" in listed.bigquery_sql
    assert "COUNT(DISTINCT public_products.id)" in listed.duckdb_sql
    assert [f.kind for f in listed.assumes] == ["no_fanout"]
    assert "DISTINCT" not in (listed.assumed_sql or "")
    assert "LEFT JOIN" in (listed.assumed_sql or "")  # unsold listings still count
    # a query without joins assumes nothing
    revenue = compile_element(project, "sales", "revenue", ALL_DATES)
    assert revenue.assumes == [] and revenue.assumed_sql is None


def test_facts_hold_on_the_shop_like_warehouse_and_change_no_number(
    project: Project, known: duckdb.DuckDBPyConnection
) -> None:
    facts = JoinFacts()
    assumed = set()
    for dashboard, element in _every_tile(project):
        compiled = compile_element(project, dashboard, element, ALL_DATES)
        plain = run_query(compiled, known)
        fast = run_query(compiled, known, facts)
        assert _rows(fast) == _rows(plain), (dashboard, element)
        if fast.sql == compiled.assumed_sql and compiled.assumed_sql is not None:
            assumed.add(f"{dashboard}/{element}")
        assert plain.sql == compiled.duckdb_sql
    assert set(facts.known().values()) == {True}
    assert {
        "sales/revenue_by_category",
        "sales/top_products",
        "catalog/listed_vs_sold",
        "catalog/sell_through_rate",
    } <= assumed


def test_facts_fail_on_orphans_and_fan_out_and_the_looker_sql_runs(
    project: Project, broken_db: str
) -> None:
    con = open_read_only(broken_db)
    try:
        facts = JoinFacts()
        for dashboard, element in _every_tile(project):
            compiled = compile_element(project, dashboard, element, ALL_DATES)
            result = run_query(compiled, con, facts)
            assert result.sql == compiled.duckdb_sql, (dashboard, element)
            assert _rows(result) == _rows(run_query(compiled, con))
        assert facts.known() and set(facts.known().values()) == {False}

        # and the cheaper SQL would have given other numbers: the facts are what decides
        by_category = compile_element(project, "sales", "revenue_by_category", ALL_DATES)
        looker = {r[0]: r[1] for r in con.execute(by_category.duckdb_sql).fetchall()}
        inner = {r[0]: r[1] for r in con.execute(by_category.assumed_sql).fetchall()}
        assert looker[None] == Decimal("7.00") and None not in inner  # the orphan order
        listed = compile_element(project, "catalog", "listed_vs_sold", ALL_DATES)
        looker_counts = {r[0]: r[1] for r in con.execute(listed.duckdb_sql).fetchall()}
        fast_counts = {r[0]: r[1] for r in con.execute(listed.assumed_sql).fetchall()}
        assert looker_counts["home"] == 2 and fast_counts["home"] == 3  # the lamp twice
    finally:
        con.close()


def test_each_warehouse_copy_checks_its_own_facts(tmp_path: Path, project: Project) -> None:
    """The read copy is replaced, never written: a fact of the old copy is not reused."""
    path = tmp_path / "warehouse.read.duckdb"
    con = duckdb.connect(str(path))
    fill_known(con)
    con.close()
    wh = WarehouseFile(path, min_check_interval_s=0.0)
    compiled = compile_element(project, "sales", "revenue_by_category", ALL_DATES)
    try:
        with wh.cursor() as cur:
            first = run_query(compiled, cur, wh.facts_for(cur))
        assert first.sql == compiled.assumed_sql
        assert None not in {r["public_products.category"] for r in first.rows}
        # the replicator's next copy has an order whose product is not (yet) there
        new = tmp_path / "next.duckdb"
        con = duckdb.connect(str(new))
        fill_known(con)
        insert_orders(con, [(6, 99, Decimal("7.00"), T, "api", T)])
        con.close()
        new.replace(path)
        with wh.cursor() as cur:
            second = run_query(compiled, cur, wh.facts_for(cur))
        assert second.sql == compiled.duckdb_sql
        by_category = {r["public_products.category"]: r for r in second.rows}
        assert by_category[None]["public_orders.revenue"] == Decimal("7.00")
    finally:
        wh.close()


def test_an_unknown_cursor_has_no_facts(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.read.duckdb"
    con = duckdb.connect(str(path))
    fill_known(con)
    con.close()
    wh = WarehouseFile(path)
    try:
        other = duckdb.connect()
        assert wh.facts_for(other) is None
        other.close()
    finally:
        wh.close()


def test_a_fact_that_cannot_be_checked_is_false(project: Project, known_db: str) -> None:
    """A fact query that fails (say, a table the copy lacks) never breaks the tile."""
    con = open_read_only(known_db)
    try:
        compiled = compile_element(project, "sales", "revenue_by_category", ALL_DATES)
        (fact,) = compiled.assumes
        broken = replace(fact, sql=fact.sql.replace("public_products", "no_such_table"))
        compiled.assumes = [broken]
        facts = JoinFacts()
        result = run_query(compiled, con, facts)
        assert result.sql == compiled.duckdb_sql
        assert facts.known() == {broken.sql: False}
    finally:
        con.close()
