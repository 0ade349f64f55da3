"""The dashboards in headless Chromium (Debian's package, driven by Playwright).

Every page is watched: a console error, an uncaught exception, a JavaScript dialog (an XSS
that ran) or a request to anything but 127.0.0.1 fails the test. Screenshots go to
artifacts/screenshots/dashboards-*.png.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from hybridshop.analytics.render import DashboardServer, make_dashboard_server
from web.conftest import SCREENSHOTS, Catalog, start_gateway

from .render_support import XSS, Shop, demo_shop, make_project, write_warehouse

pytestmark = pytest.mark.browser
DASHBOARDS = ["sales", "catalog", "pipeline_health", "render_check"]


class Watch:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.foreign: list[str] = []

    def attach(self, page: Any) -> Any:
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

        def on_dialog(d: Any) -> None:
            self.dialogs.append(d.message)
            d.dismiss()

        def on_request(r: Any) -> None:
            url = urlparse(r.url)
            if url.scheme in {"data", "blob", "about"}:
                return
            if url.scheme == "file" or url.hostname == "127.0.0.1":
                return
            self.foreign.append(r.url)

        page.on("dialog", on_dialog)
        page.on("request", on_request)
        return page

    def check(self) -> None:
        assert self.errors == [], f"console errors: {self.errors}"
        assert self.dialogs == [], f"a script ran a dialog: {self.dialogs}"
        assert self.foreign == [], f"requests left 127.0.0.1: {self.foreign}"


@pytest.fixture
def watch() -> Iterator[Watch]:
    w = Watch()
    yield w
    w.check()


@pytest.fixture
def new_page(browser: Any, watch: Watch) -> Iterator[Any]:
    contexts: list[Any] = []

    def make(base_url: str | None = None, **kwargs: Any) -> Any:
        kwargs.setdefault("viewport", {"width": 1440, "height": 1000})
        ctx = browser.new_context(base_url=base_url, accept_downloads=True, **kwargs)
        ctx.set_default_timeout(15_000)
        contexts.append(ctx)
        return watch.attach(ctx.new_page())

    yield make
    for ctx in contexts:
        ctx.close()


@pytest.fixture
def shop() -> Shop:
    return demo_shop()


@pytest.fixture
def warehouse(tmp_path: Path, shop: Shop) -> Path:
    path = tmp_path / "warehouse.read.duckdb"
    write_warehouse(path, shop)
    return path


@pytest.fixture
def server(warehouse: Path, tmp_path: Path) -> Iterator[DashboardServer]:
    srv = make_dashboard_server(
        warehouse, "127.0.0.1", 0, project_dir=make_project(tmp_path / "looker")
    )
    srv.start()
    yield srv
    srv.stop()


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"dashboards-{name}.png"), full_page=True)


def wait_rendered(page: Any) -> None:
    """Every chart tile with rows has been drawn by vega-embed."""
    page.wait_for_function(
        """() => {
            const d = JSON.parse(document.getElementById('dashboard-data').textContent);
            const want = d.tiles.filter(t => t.kind === 'chart' && !t.errors.length && t.rows.length).length;
            return document.querySelectorAll('[data-testid=chart][data-rendered]').length >= want
                && document.querySelectorAll('[data-testid=tile]').length === d.tiles.length;
        }"""
    )


def single_value(page: Any, tile: str) -> str:
    return str(page.locator(f'[data-tile="{tile}"] [data-testid=single-value]').inner_text())


def test_each_dashboard_renders_clean(server: DashboardServer, new_page: Any):
    page = new_page(server.url)
    page.goto("/")
    names = page.get_by_test_id("dashboard-link").all_inner_texts()
    assert any("Sales" in n for n in names) and any("Pipeline" in n for n in names)
    shot(page, "00-index")
    for i, name in enumerate(DASHBOARDS, start=1):
        page.goto(f"/dashboards/{name}")
        wait_rendered(page)
        assert page.get_by_test_id("tile-error").count() == 0, page.get_by_test_id(
            "tile-error"
        ).all_inner_texts()
        assert "public_orders" in page.get_by_test_id("freshness").inner_text()
        assert page.get_by_test_id("last-updated").inner_text().startswith("Updated ")
        shot(page, f"{i:02d}-{name}")


def test_xss_product_name_is_text_in_tiles_and_tooltips(server: DashboardServer, new_page: Any):
    page = new_page(server.url)
    page.goto("/dashboards/render_check")
    wait_rendered(page)
    table = page.locator('[data-tile="orders_table"] [data-testid=table]')
    assert XSS in table.locator("td").all_inner_texts()
    # the bar chart's axis label is SVG text
    labels = page.locator('[data-tile="top_products"] svg text').all_text_contents()
    assert XSS in labels
    assert page.locator("img[src=x]").count() == 0
    # hover the XSS product's bar: vega-embed's tooltip shows the name as text
    bars = page.locator('[data-tile="top_products"] svg path[role="graphics-symbol"]')
    found = False
    for i in range(bars.count()):
        bars.nth(i).hover()
        tip = page.locator("#vg-tooltip-element")
        if tip.count() and XSS in tip.inner_text():
            found = True
            assert tip.locator("img").count() == 0
            shot(page, "10-xss-tooltip")
            break
    assert found, "no tooltip showed the product name"


def test_filters_edit_the_url_and_the_tiles(server: DashboardServer, new_page: Any):
    page = new_page(server.url)
    page.goto("/dashboards/render_check")
    wait_rendered(page)
    assert single_value(page, "revenue") == "€462.40"
    box = page.get_by_test_id("filter-category")
    box.fill("kitchen")
    box.press("Enter")
    page.wait_for_url(re.compile(r".*\?category=kitchen$"))
    page.wait_for_function(
        "() => document.querySelector('[data-tile=revenue] [data-testid=single-value]').textContent === '€173.40'"
    )
    # the date range picker writes a Looker expression into the URL
    page.locator('[data-filter="date"] select.preset').select_option("7 days")
    page.wait_for_url(re.compile(r".*date=7\+days.*"))
    # the demo orders are 17 to 20 days old: none in the last 7 days
    page.wait_for_function(
        "() => document.querySelector('[data-tile=revenue] [data-testid=single-value]').textContent === '€0.00'"
    )
    shot(page, "11-filtered")
    # a shared URL opens with the same filters
    other = new_page(server.url)
    other.goto("/dashboards/render_check?category=kitchen")
    wait_rendered(other)
    assert single_value(other, "revenue") == "€173.40"
    assert other.get_by_test_id("filter-category").input_value() == "kitchen"
    page.go_back()
    page.wait_for_function(
        "() => document.querySelector('[data-tile=revenue] [data-testid=single-value]').textContent === '€173.40'"
    )


def test_show_sql_and_download_csv(server: DashboardServer, new_page: Any):
    page = new_page(server.url)
    page.goto("/dashboards/sales")
    wait_rendered(page)
    tile = (
        page.locator("[data-testid=tile]").filter(has=page.locator("[data-testid=show-sql]")).first
    )
    tile.hover()
    tile.get_by_test_id("show-sql").click()
    dialog = page.get_by_test_id("sql-dialog")
    assert dialog.is_visible()
    bigquery = page.get_by_test_id("sql-bigquery").inner_text()
    duck = page.get_by_test_id("sql-duckdb").inner_text()
    assert "`" in bigquery and "public_orders" in bigquery  # BigQuery's quoted table path
    assert "public_orders" in duck and "`" not in duck
    shot(page, "12-show-sql")
    page.locator("#sql-close").click()
    with page.expect_download() as info:
        page.locator('[data-tile="render_check"]').count()  # noop: keep the page busy-free
        tile.get_by_test_id("download-csv").click()
    path = info.value.path()
    text = Path(path).read_text()
    assert text.splitlines()[0]  # a header row of labels
    assert info.value.suggested_filename.startswith("sales-")


def test_warehouse_change_appears_without_reload(
    server: DashboardServer, warehouse: Path, shop: Shop, new_page: Any
):
    page = new_page(server.url)
    page.goto("/dashboards/render_check")
    wait_rendered(page)
    page.evaluate("() => { window.__sameDocument = true; }")
    assert single_value(page, "orders_count") == "7"
    shop.buy(12, shop.orders[-1].purchased_at + dt.timedelta(hours=1))
    write_warehouse(warehouse, shop)  # as the replicator publishes its read copy
    page.wait_for_function(
        "() => document.querySelector('[data-tile=orders_count] [data-testid=single-value]').textContent === '8'",
        timeout=10_000,
    )
    assert page.evaluate("() => window.__sameDocument") is True  # no reload happened
    assert single_value(page, "revenue") == "€522.40"


def test_exported_html_opens_with_no_network(
    server: DashboardServer, tmp_path: Path, new_page: Any
):
    from hybridshop.analytics.render.export import export_dashboards

    out = tmp_path / "export"
    export_dashboards(server.service, out, ["render_check"], png=False)
    page = new_page()
    page.route(re.compile(r"^(?!file:).*"), lambda route: route.abort())
    page.goto((out / "render_check.html").as_uri())
    wait_rendered(page)
    assert page.get_by_test_id("live").inner_text() == "Exported"
    assert XSS in page.locator('[data-tile="orders_table"] td').all_inner_texts()
    shot(page, "13-exported-html")


@pytest.fixture
def stack(database_url: str, tmp_path: Path) -> Iterator[tuple[Catalog, DashboardServer]]:
    """The real API, the real replicator publishing its read copy, and the dashboards."""
    from datastream.conftest import drop_slot
    from hybridshop.datastream.replicator import ReplicatorConfig
    from hybridshop.datastream.service import snapshot_path_for, start_replicator

    gateway = start_gateway(database_url, tmp_path / "state")
    catalog = Catalog(gateway)
    warehouse = tmp_path / "warehouse.duckdb"
    slot = f"s_{uuid.uuid4().hex[:10]}"
    cfg = ReplicatorConfig(
        dsn=database_url,
        duckdb_path=warehouse,
        slot=slot,
        heartbeat_interval_s=0.5,
        snapshot_path=snapshot_path_for(warehouse),
        snapshot_interval_s=0.3,
    )
    handle = start_replicator(database_url, warehouse, config=cfg)
    dashboards = make_dashboard_server(snapshot_path_for(warehouse), "127.0.0.1", 0).start()
    try:
        yield catalog, dashboards
    finally:
        dashboards.stop()
        handle.stop()
        catalog.session.close()
        gateway.stop()
        drop_slot(database_url, slot)


def test_purchase_through_the_api_appears_in_sales(
    stack: tuple[Catalog, DashboardServer], new_page: Any
):
    catalog, dashboards = stack
    teapot = catalog.add("Cast iron teapot", "58.50", category="kitchen")
    catalog.add("Wool scarf", "25.00", category="fashion")
    page = new_page(dashboards.url)
    page.goto("/dashboards/sales")  # the replicator may not have published yet: tiles wait
    page.evaluate("() => { window.__sameDocument = true; }")
    page.wait_for_function(
        "() => document.querySelector('[data-tile=orders] [data-testid=single-value]')?.textContent === '0'",
        timeout=20_000,
    )
    resp = catalog.session.post(
        f"{catalog.url}/products/{teapot['id']}/purchase",
        headers=catalog._headers(),
        json={},
        timeout=10,
    )
    assert resp.status_code in (200, 201), resp.text
    started = time.monotonic()
    page.wait_for_function(
        "() => document.querySelector('[data-tile=orders] [data-testid=single-value]').textContent === '1'",
        timeout=15_000,
    )
    seen_after = time.monotonic() - started
    assert page.evaluate("() => window.__sameDocument") is True
    assert single_value(page, "revenue") == "€58.50"
    shot(page, "14-sales-after-purchase")
    assert seen_after < 15
