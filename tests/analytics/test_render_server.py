"""The dashboards server over HTTP on loopback, on a real DuckDB warehouse file."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import pytest
import requests

from hybridshop.analytics.render import DashboardServer, make_dashboard_server

from .render_support import T0, XSS, Shop, demo_shop, make_project, write_warehouse

T = TypeVar("T")
BROKEN = """\
- dashboard: broken_one
  title: Broken one
  layout: newspaper
  elements:
  - name: broken
    title: Broken tile
    type: looker_column
    model: hybridshop
    explore: public_orders
    fields: [public_orders.nope]
    row: 0
    col: 0
    width: 12
    height: 6
  - name: fine
    title: Fine tile
    type: single_value
    model: hybridshop
    explore: public_orders
    fields: [public_orders.count]
    row: 0
    col: 12
    width: 12
    height: 6
"""


@pytest.fixture
def shop() -> Shop:
    return demo_shop()


@pytest.fixture
def warehouse(tmp_path: Path, shop: Shop) -> Path:
    path = tmp_path / "warehouse.read.duckdb"
    write_warehouse(path, shop)
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "looker", [("broken.dashboard.lookml", BROKEN)])


@pytest.fixture
def server(warehouse: Path, project: Path) -> Iterator[DashboardServer]:
    srv = make_dashboard_server(warehouse, "127.0.0.1", 0, project_dir=project)
    srv.start()
    yield srv
    srv.stop()


def wait_for(read: Callable[[], T], ok: Callable[[T], bool], timeout: float = 5.0) -> T:
    deadline = time.monotonic() + timeout
    value = read()
    while not ok(value) and time.monotonic() < deadline:
        time.sleep(0.1)
        value = read()
    return value


def get(server: DashboardServer, path: str, **kw: object) -> requests.Response:
    return requests.get(server.url + path, timeout=30, **kw)  # type: ignore[arg-type]


def tiles(server: DashboardServer, query: str = "") -> dict[str, dict]:
    resp = get(server, "/api/dashboards/render_check" + query)
    assert resp.status_code == 200, resp.text
    return {t["name"]: t for t in resp.json()["tiles"]}


def test_index_lists_dashboards_and_project_problems(server: DashboardServer):
    resp = get(server, "/")
    assert resp.status_code == 200
    assert "Render check" in resp.text and "Broken one" in resp.text
    assert 'href="/dashboards/render_check"' in resp.text
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]


def test_health_is_the_path_the_rest_of_the_stack_uses(server: DashboardServer):
    resp = get(server, "/health")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}  # the shop's /health body
    assert get(server, "/healthz").status_code == 404


def test_every_tile_type_with_hand_computed_values(server: DashboardServer, shop: Shop):
    t = tiles(server)
    assert {x["kind"] for x in t.values()} == {"text", "single_value", "chart", "table"}
    total = shop.revenue()
    assert total == Decimal("462.40")  # 99 + 58.50 + 25 + 120 + 39.90 + 75 + 45
    assert t["revenue"]["text"][0]["f0"] == "€462.40"
    assert t["orders_count"]["text"][0]["f0"] == "7"
    assert t["revenue"]["layout"] == {"row": 0, "col": 8, "width": 8, "height": 4}
    # charts: Vega-Lite specs with the formatted value next to each number
    by_cat = {r["xl"]: r["y"] for r in t["revenue_by_category"]["spec"]["data"]["values"]}
    assert by_cat == {"home": 219.0, "kitchen": 173.4, "fashion": 70.0}
    assert t["revenue_by_category"]["spec"]["mark"]["type"] == "bar"
    assert t["top_products"]["spec"]["encoding"]["y"]["field"] == "xl"  # Looker's bar is horizontal
    assert t["share"]["spec"]["mark"]["type"] == "arc"
    line = t["revenue_by_day"]["spec"]
    assert line["encoding"]["x"]["type"] == "temporal"
    days = [(T0 + dt.timedelta(days=d)).strftime("%Y-%m-%dT00:00:00Z") for d in range(4)]
    by_day = {r["x"]: r["y"] for r in line["data"]["values"]}
    assert by_day == {days[0]: 157.5, days[1]: 145.0, days[2]: 39.9, days[3]: 120.0}
    assert t["orders_area"]["spec"]["mark"]["type"] == "area"
    assert t["prices"]["spec"]["mark"]["type"] == "point"
    table = t["orders_table"]
    assert [c["label"] for c in table["columns"]] == ["Id", "Product", "Category", "Revenue"]
    assert table["text"][0] == {"f0": "1", "f1": XSS, "f2": "home", "f3": "€99.00"}
    assert t["intro"]["body_text"].startswith("**Bold**")
    for tile in t.values():
        assert tile["errors"] == []
        if tile["kind"] != "text":
            assert tile["sql"]["bigquery"] and tile["sql"]["duckdb"]


def test_filters_from_the_url(server: DashboardServer, shop: Shop):
    t = tiles(server, "?category=kitchen")
    assert t["revenue"]["text"][0]["f0"] == f"€{shop.revenue('kitchen'):,.2f}" == "€173.40"
    t = tiles(server, "?category=kitchen,fashion")
    assert t["revenue"]["text"][0]["f0"] == "€243.40"
    page = get(server, "/dashboards/render_check?category=kitchen")
    data = json.loads(
        re.search(
            r'<script type="application/json" id="dashboard-data">(.*?)</script>', page.text, re.S
        ).group(1)  # type: ignore[union-attr]
    )
    assert {f["name"]: f["value"] for f in data["dashboard"]["filters"]} == {
        "date": "",
        "category": "kitchen",
    }
    # the category filter offers the field's values from the warehouse (Looker's suggestions)
    category = next(f for f in data["dashboard"]["filters"] if f["name"] == "category")
    assert category["suggestions"] == ["fashion", "home", "kitchen"]


def test_xss_name_never_reaches_html_unescaped(server: DashboardServer):
    page = get(server, "/dashboards/render_check")
    assert page.status_code == 200
    assert XSS not in page.text  # only as \u003cimg... inside the JSON data block
    assert "\\u003cimg src=x onerror=alert(1)\\u003e" in page.text
    assert page.text.count("</script>") == page.text.count("<script")


def test_download_csv(server: DashboardServer, warehouse: Path, shop: Shop):
    resp = get(server, "/api/dashboards/render_check/tiles/orders_table.csv?category=home")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/csv")
    assert "render_check-orders_table.csv" in resp.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(resp.text)))
    assert rows[0] == ["Id", "Product", "Category", "Revenue"]
    assert rows[1:] == [["1", XSS, "home", "99.0"], ["4", "Brass lamp", "home", "120.0"]]
    # a cell that a spreadsheet would run as a formula is neutralised
    shop.products[0].name = '=HYPERLINK("http://x")'
    shop.buy(1, shop.orders[-1].purchased_at + dt.timedelta(hours=1))
    write_warehouse(warehouse, shop)
    text = wait_for(
        lambda: (
            get(server, "/api/dashboards/render_check/tiles/orders_table.csv?category=home").text
        ),
        lambda t: "HYPERLINK" in t,
    )
    assert "'=HYPERLINK" in text
    assert get(server, "/api/dashboards/render_check/tiles/nope.csv").status_code == 404


def test_warehouse_change_moves_the_version_and_the_tiles(
    server: DashboardServer, warehouse: Path, shop: Shop
):
    state = get(server, "/api/state").json()
    tables = {t["table"]: t for t in state["tables"]}
    assert tables["public_orders"]["rows"] == 7 and tables["public_products"]["rows"] == 12
    before = state["version"]
    shop.buy(12, shop.orders[-1].purchased_at + dt.timedelta(hours=2))
    write_warehouse(warehouse, shop)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        state = get(server, "/api/state").json()
        if state["version"] != before:
            break
        time.sleep(0.1)
    assert state["version"] != before
    # the view was computed a moment ago: recomputed within its refresh interval (1 s)
    revenue = wait_for(lambda: tiles(server)["revenue"]["text"][0]["f0"], lambda v: v != "€462.40")
    assert revenue == "€522.40"


def test_broken_element_is_a_clear_error_and_the_rest_renders(server: DashboardServer):
    resp = get(server, "/api/dashboards/broken_one")
    assert resp.status_code == 200
    t = {x["name"]: x for x in resp.json()["tiles"]}
    assert t["broken"]["errors"] and re.match(
        r"dashboards/broken\.dashboard\.lookml:\d+: ", t["broken"]["errors"][0]
    )
    assert "public_orders.nope" in t["broken"]["errors"][0]
    assert t["fine"]["errors"] == [] and t["fine"]["text"][0]["f0"] == "7"
    assert get(server, "/api/dashboards/broken_one/tiles/broken.csv").status_code == 409


def test_unknown_dashboard_is_404(server: DashboardServer):
    resp = get(server, "/dashboards/nope")
    assert resp.status_code == 404
    assert "no dashboard" in resp.text
    assert get(server, "/api/dashboards/nope").status_code == 404
    evil = get(server, "/dashboards/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert evil.status_code == 404 and "<script>alert" not in evil.text


def test_no_warehouse_yet_still_renders(tmp_path: Path, project: Path):
    srv = make_dashboard_server(tmp_path / "missing.duckdb", "127.0.0.1", 0, project_dir=project)
    srv.start()
    try:
        assert "No warehouse yet" in get(srv, "/").text
        resp = get(srv, "/api/dashboards/render_check")
        assert resp.status_code == 200
        t = {x["name"]: x for x in resp.json()["tiles"]}
        assert "no warehouse at" in t["revenue"]["errors"][0]
        assert t["intro"]["errors"] == []
        assert get(srv, "/api/state").json()["error"]
    finally:
        srv.stop()


def test_vega_bundle_served_from_the_package(server: DashboardServer):
    resp = get(server, "/static/vega-bundle.js")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/javascript")
    assert "window.vegaEmbed" in resp.text
    again = get(server, "/static/vega-bundle.js", headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status_code == 304
    assert get(server, "/static/dashboard.js").status_code == 200


def test_editing_the_lookml_reloads_the_dashboard(server: DashboardServer, project: Path):
    path = project / "dashboards" / "render_check.dashboard.lookml"
    path.write_text(path.read_text().replace("title: Render check", "title: Render check v2", 1))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if "Render check v2" in get(server, "/dashboards/render_check").text:
            break
        time.sleep(0.3)
    assert "Render check v2" in get(server, "/dashboards/render_check").text


def test_a_bad_filter_expression_is_a_clear_tile_error(server: DashboardServer):
    resp = get(server, "/api/dashboards/sales?date=bananas")
    assert resp.status_code == 200
    errors = [e for t in resp.json()["tiles"] for e in t["errors"]]
    assert errors and all("'bananas'" in e and "(dashboard filter 'date')" in e for e in errors)
    assert get(server, "/dashboards/sales?date=bananas").status_code == 200


def test_only_loopback_host_names_are_answered(server: DashboardServer):
    # DNS rebinding: a page on evil.example resolving to 127.0.0.1 must not read the data
    resp = get(server, "/api/state", headers={"Host": "evil.example"})
    assert resp.status_code == 421
    assert (
        get(server, "/api/state", headers={"Host": f"localhost:{server.port}"}).status_code == 200
    )


def test_replaced_copies_are_closed_once_their_queries_end(warehouse: Path, shop: Shop):
    from hybridshop.analytics.render.warehouse import WarehouseFile

    wf = WarehouseFile(warehouse, min_check_interval_s=0)
    try:
        with wf.cursor() as old:
            first = old.execute("SELECT count(*) FROM public_orders").fetchone()
            shop.buy(12, shop.orders[-1].purchased_at + dt.timedelta(hours=1))
            write_warehouse(warehouse, shop)
            assert wf.state().tables[0].rows == 8  # the new copy is open...
            # ...and the query running on the old one still reads its consistent copy
            assert old.execute("SELECT count(*) FROM public_orders").fetchone() == first
            assert len(wf._retired) == 1
        assert wf._retired == []  # closed with its last cursor
    finally:
        wf.close()


def test_a_warehouse_no_replicator_writes_is_not_held_open(tmp_path: Path, shop: Shop):
    """Serving warehouse.duckdb itself must not stop a replicator from opening it later."""
    import subprocess
    import sys

    from hybridshop.analytics.render.warehouse import WarehouseFile

    path = tmp_path / "warehouse.duckdb"
    write_warehouse(path, shop)
    wf = WarehouseFile(path, min_check_interval_s=0)
    try:
        assert wf.state().tables[0].rows == 7
        with wf.cursor() as cur:
            assert cur.execute("SELECT count(*) FROM public_orders").fetchone() == (7,)
        writer = (
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
            "c.execute('CREATE TABLE written_by_another_process (x INT)'); c.close()"
        )
        done = subprocess.run(
            [sys.executable, "-c", writer, str(path)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert wf.state().version != "none"  # and it reads the file again after the change
    finally:
        wf.close()


def test_many_pages_polling_one_view_run_its_queries_once(warehouse: Path, project: Path):
    from concurrent.futures import ThreadPoolExecutor

    from hybridshop.analytics.lookml import run_query

    runs: list[str] = []

    def counting_run(compiled, cursor):  # type: ignore[no-untyped-def]
        runs.append(compiled.element)
        return run_query(compiled, cursor)

    srv = make_dashboard_server(
        warehouse, "127.0.0.1", 0, project_dir=project, run_query=counting_run
    )
    srv.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            pages = list(pool.map(lambda _: get(srv, "/api/dashboards/render_check"), range(8)))
        assert all(p.status_code == 200 for p in pages)
        assert sorted(runs) == sorted(set(runs))  # every tile's query ran once for 8 pages
    finally:
        srv.stop()


def test_an_unchanged_warehouse_never_runs_a_query_twice(warehouse: Path, shop: Shop):
    """Query results are cached by (DuckDB SQL, warehouse version), even with the page cache
    off; a new version runs them again; a query reading the clock (freshness) always runs."""
    from hybridshop.analytics.lookml import run_query

    runs: list[str] = []

    def counting_run(compiled, cursor):  # type: ignore[no-untyped-def]
        runs.append(compiled.element)
        return run_query(compiled, cursor)

    srv = make_dashboard_server(
        warehouse, "127.0.0.1", 0, run_query=counting_run, cache_ttl_s=0.0, min_refresh_s=0.0
    )
    srv.start()
    try:
        first = get(srv, "/api/dashboards/pipeline_health").json()
        ran_first = sorted(runs)
        clock = {"orders_freshness", "products_freshness"}
        assert clock <= set(ran_first)
        runs.clear()
        second = get(srv, "/api/dashboards/pipeline_health").json()
        assert sorted(runs) == sorted(clock)  # only the tiles whose result moves with time
        rows = {t["name"]: t["rows"] for t in first["tiles"] if t["name"] not in clock}
        assert rows == {t["name"]: t["rows"] for t in second["tiles"] if t["name"] not in clock}
        runs.clear()
        before = get(srv, "/api/state").json()["version"]
        shop.buy(12, shop.orders[-1].purchased_at + dt.timedelta(hours=2))
        write_warehouse(warehouse, shop)
        wait_for(lambda: get(srv, "/api/state").json()["version"], lambda v: v != before)
        third = get(srv, "/api/dashboards/pipeline_health").json()
        assert sorted(runs) == ran_first  # a new version: every query again
        rows_of = {t["name"]: t["rows"] for t in third["tiles"]}
        assert rows_of["orders_rows"] != rows["orders_rows"]
        srv.service.clear_results()
        runs.clear()
        get(srv, "/api/dashboards/pipeline_health")
        assert sorted(runs) == ran_first  # cold again
    finally:
        srv.stop()
