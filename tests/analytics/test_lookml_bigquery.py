"""The BigQuery side: the metric view files and running compiled tiles on BigQuery.

BigQuery cannot be reached from here, so ``StandInBigQueryClient`` plays it: it records the
SQL it is sent, checks that it parses as BigQuery SQL, and answers by running it through the
same BigQuery → DuckDB path on the known warehouse. Named as what it is: a stand-in."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot
from typer.testing import CliRunner

from hybridshop.analytics import bigquery as bq
from hybridshop.analytics.lookml import Project, compile_element, compile_query, run_query
from hybridshop.analytics.lookml.transpile import to_duckdb
from hybridshop.cli.main import app

from .conftest import ALL_DATES

VIEWS = bq.load_views()


def test_view_files_exist_one_per_metric() -> None:
    assert set(VIEWS) == {
        "daily_sales",
        "revenue_by_category",
        "catalog_sell_through",
        "table_freshness",
        "changes_per_minute",
    }


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_view_parses_as_bigquery_and_names_tables_for_templatefile(name: str) -> None:
    sql = VIEWS[name]
    tables = re.findall(r"`([^`]+)`", sql)
    assert tables and all(
        t in ("${project}.${dataset}.public_orders", "${project}.${dataset}.public_products")
        for t in tables
    ), tables
    # Terraform's templatefile() only interpolates ${project} / ${dataset}: nothing else.
    assert not re.search(r"\$\{(?!project\}|dataset\})", sql) and "%{" not in sql
    rendered = bq.render(sql, "my-project", "hybridshop")
    (tree,) = sqlglot.parse(rendered, read="bigquery")
    assert isinstance(tree, sqlglot.exp.Query)  # a view body: one query, no DDL


def _tile(
    project: Project,
    con: duckdb.DuckDBPyConnection,
    dashboard: str,
    element: str,
    filters: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    compiled = compile_element(project, dashboard, element, filters or {"date": ""})
    assert compiled.ok, compiled.errors
    return run_query(compiled, con).rows


def _view(con: duckdb.DuckDBPyConnection, name: str) -> list[dict[str, Any]]:
    cur = con.execute(bq.view_to_duckdb(VIEWS[name]))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def test_revenue_by_category_view_matches_the_tile(
    project: Project, known: duckdb.DuckDBPyConnection
) -> None:
    view = {r["category"]: r["revenue"] for r in _view(known, "revenue_by_category")}
    tile = {
        r["public_products.category"]: r["public_orders.revenue"]
        for r in _tile(project, known, "sales", "revenue_by_category")
    }
    assert (
        view
        == tile
        == {"music": Decimal("330.00"), "home": Decimal("70.00"), "books": Decimal("10.00")}
    )


def test_daily_sales_view_matches_the_tile(
    project: Project, known: duckdb.DuckDBPyConnection
) -> None:
    by_day: dict[Any, list[Any]] = {}
    for r in _view(known, "daily_sales"):
        day = by_day.setdefault(r["purchase_date"], [Decimal(0), 0])
        day[0] += r["revenue"]
        day[1] += r["orders"]
    tile = {
        r["public_orders.purchased_date"]: [r["public_orders.revenue"], r["public_orders.count"]]
        for r in _tile(project, known, "sales", "revenue_over_time")
        if r["public_orders.count"] is not None
    }
    assert by_day == tile and len(tile) == 5


def test_catalog_view_matches_the_tiles(project: Project, known: duckdb.DuckDBPyConnection) -> None:
    view = {r["category"]: r for r in _view(known, "catalog_sell_through")}
    listed = {
        r["public_products.category"]: r for r in _tile(project, known, "catalog", "listed_vs_sold")
    }
    avg_price = compile_query(
        project,
        "hybridshop",
        "public_products",
        ["public_products.category", "public_products.average_price"],
    )
    prices = {
        r["public_products.category"]: r["public_products.average_price"]
        for r in run_query(avg_price, known).rows
    }
    for cat in ("home", "books", "music"):
        rate = _tile(project, known, "catalog", "sell_through_rate", {"date": "", "category": cat})[
            0
        ]["public_products.sell_through_rate"]
        assert view[cat]["sell_through_rate"] == rate
        assert view[cat]["average_list_price"] == pytest.approx(float(prices[cat]))
        assert view[cat]["items_listed"] == listed[cat]["public_products.count"]
        assert view[cat]["items_sold"] == listed[cat]["public_orders.items_sold"]
    for cat, median in (("books", 2.0), ("music", 6.0)):
        assert view[cat]["median_hours_to_sale"] == pytest.approx(median)
        got = _tile(
            project, known, "catalog", "median_hours_to_sale", {"date": "", "category": cat}
        )
        assert got[0]["public_orders.median_hours_to_sale"] == pytest.approx(median)


def test_freshness_views_match_the_tiles(
    project: Project, known: duckdb.DuckDBPyConnection
) -> None:
    view = {r["table_name"]: r for r in _view(known, "table_freshness")}
    assert (
        view["public_orders"]["row_count"]
        == _tile(project, known, "pipeline_health", "orders_rows")[0]["public_orders.count"]
        == 5
    )
    assert view["public_products"]["row_count"] == 6
    tile = _tile(project, known, "pipeline_health", "orders_freshness")[0]
    assert view["public_orders"]["freshness_seconds"] == pytest.approx(
        tile["public_orders.freshness_seconds"], abs=2
    )
    changes = {
        (r["table_name"], r["change_minute"].strftime("%F %H:%M")): r["changes"]
        for r in _view(known, "changes_per_minute")
    }
    tile_rows = _tile(
        project, known, "pipeline_health", "order_changes_per_minute", {"date": "2024-01-10"}
    )
    assert {k[1]: v for k, v in changes.items() if k[0] == "public_orders"} == {
        r["public_orders.source_minute"]: r["public_orders.count"] for r in tile_rows
    }


def test_local_views_can_be_created(known_db: str, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "w.duckdb"
    shutil.copy(known_db, copy)
    con = duckdb.connect(str(copy))
    assert bq.create_local_views(con) == sorted(VIEWS)
    assert con.execute("SELECT SUM(revenue) FROM revenue_by_category").fetchone() == (
        Decimal("410.00"),
    )


# --- running tiles on BigQuery --------------------------------------------------------
@dataclass
class _Field:
    name: str


@dataclass
class _Row:
    data: tuple[Any, ...]

    def values(self) -> tuple[Any, ...]:
        return self.data


@dataclass
class _Result:
    schema: list[_Field]
    rows: list[_Row]

    def __iter__(self) -> Any:
        return iter(self.rows)


@dataclass
class _Job:
    result_: _Result

    def result(self) -> _Result:
        return self.result_


@dataclass
class StandInBigQueryClient:
    """Stand-in for google.cloud.bigquery.Client (BigQuery is unreachable from here)."""

    warehouse: duckdb.DuckDBPyConnection
    sent: list[str] = field(default_factory=list)

    def query(self, sql: str, job_config: Any = None) -> _Job:
        self.sent.append(sql)
        sqlglot.parse_one(sql, read="bigquery")  # what BigQuery receives must be BigQuery SQL
        cur = self.warehouse.execute(to_duckdb(sql))
        names = [_Field(d[0]) for d in cur.description]
        return _Job(_Result(names, [_Row(r) for r in cur.fetchall()]))


def test_runner_sends_the_compiled_sql_to_the_target_dataset(
    project: Project, known: duckdb.DuckDBPyConnection
) -> None:
    client = StandInBigQueryClient(known)
    runner = bq.BigQueryRunner.from_target("prod-project.analytics", client=client)
    compiled = compile_element(project, "sales", "revenue_over_time", ALL_DATES)
    rows = runner.run(compiled)
    (sent,) = client.sent
    assert "`prod-project.analytics.public_orders`" in sent
    assert "`prod-project.analytics.public_products`" not in sent  # no join needed
    assert "my-gcp-project" not in sent
    assert sent == compiled.bigquery_sql.replace(
        "my-gcp-project.hybridshop", "prod-project.analytics"
    )
    # shaped like the local result: filled dates included
    assert rows == run_query(compiled, known).rows and len(rows) == 10


def test_runner_rejects_bad_targets() -> None:
    for bad in ("nodot", "a.b", "Project.ds", "p-roject.d s", "proj.ds;drop"):
        with pytest.raises(ValueError, match=r"PROJECT\.DATASET"):
            bq.BigQueryRunner.from_target(bad)


def test_runner_without_the_extra_says_what_to_install(project: Project) -> None:
    try:
        import google.cloud.bigquery  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("google-cloud-bigquery is installed: the missing-extra message cannot show")
    runner = bq.BigQueryRunner.from_target("my-project.hybridshop")
    compiled = compile_element(project, "sales", "revenue", ALL_DATES)
    with pytest.raises(RuntimeError, match=r"hybridshop\[bigquery\]"):
        runner.run(compiled)


def test_cli_query_bigquery_uses_the_runner(
    project: Project, known: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = StandInBigQueryClient(known)
    real = bq.BigQueryRunner.from_target
    monkeypatch.setattr(
        bq.BigQueryRunner,
        "from_target",
        classmethod(lambda cls, target: real(target, client=client)),
    )
    result = CliRunner().invoke(
        app,
        [
            "dashboards",
            "query",
            "sales",
            "revenue",
            "--json",
            "--bigquery",
            "prod-project.analytics",
            "--filter",
            "date=2024-01-01 to 2024-02-01",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [{"public_orders.revenue": 410.0}]
    assert "`prod-project.analytics.public_orders`" in client.sent[0]
