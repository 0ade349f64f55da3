"""End to end in headless Chromium (Debian's package) driven by Playwright.

Every page load is watched: a console error, an uncaught exception or a JavaScript dialog
(an XSS that ran) fails the test, unless the test expects that exact HTTP status.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from hybridshop.gateway.server import LocalGateway
from hybridshop.web import WebServer

from .conftest import Catalog, screenshot

pytestmark = pytest.mark.browser


class Watch:
    """Console errors, page errors and dialogs seen by one browser context."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.allowed_statuses: set[int] = set()

    def attach(self, page: Any) -> Any:
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

        def on_dialog(d: Any) -> None:
            self.dialogs.append(d.message)
            d.dismiss()

        page.on("dialog", on_dialog)
        return page

    def check(self) -> None:
        unexpected = [
            e for e in self.errors if not any(f"status of {s} " in e for s in self.allowed_statuses)
        ]
        assert unexpected == [], f"console errors: {unexpected}"
        assert self.dialogs == [], f"a script ran a dialog: {self.dialogs}"


@pytest.fixture
def watch() -> Iterator[Watch]:
    w = Watch()
    yield w
    w.check()


@pytest.fixture
def new_page(browser: Any, live_shop: WebServer, watch: Watch) -> Iterator[Any]:
    """Factory: each call is a fresh browser context (its own cookies = its own shopper)."""
    contexts: list[Any] = []

    def make(**kwargs: Any) -> Any:
        ctx = browser.new_context(base_url=live_shop.url, **kwargs)
        ctx.set_default_timeout(10_000)
        contexts.append(ctx)
        return watch.attach(ctx.new_page())

    yield make
    for ctx in contexts:
        ctx.close()


def test_browse_buy_then_item_shows_sold(new_page: Any, catalog: Catalog):
    catalog.add("Ceramic vase", "34.00", category="home", description="Hand thrown, blue glaze.")
    teapot = catalog.add("Cast iron teapot", "58.50", category="kitchen")
    catalog.add("Wool scarf", "25.00", category="fashion")
    page = new_page(viewport={"width": 1280, "height": 900})
    page.goto("/")
    assert page.locator(".card").count() == 3
    screenshot(page, "01-catalog")
    page.locator(".category-list").get_by_role("link", name=re.compile("^Kitchen")).click()
    page.wait_for_url("**/?category=kitchen")
    assert page.locator(".card").count() == 1
    page.get_by_role("link", name=re.compile("Cast iron teapot")).click()
    page.wait_for_url(f"**/products/{teapot['id']}")
    screenshot(page, "02-product")
    page.get_by_role("button", name="Buy now").click()
    page.wait_for_url(re.compile(r".*/orders/\d+$"))
    assert "Your order is confirmed" in page.locator("h1").inner_text()
    assert page.get_by_test_id("order-product").inner_text() == "Cast iron teapot"
    screenshot(page, "03-order-confirmation")
    page.get_by_role("link", name="Continue shopping").click()
    sold_card = page.locator(f'.card[data-product-id="{teapot["id"]}"]')
    assert "is-sold" in (sold_card.get_attribute("class") or "")
    assert sold_card.locator(".badge-sold").inner_text() == "Sold out"
    screenshot(page, "04-catalog-with-sold-item")
    page.get_by_test_id("nav-orders").click()
    assert "Cast iron teapot" in page.get_by_test_id("orders-table").inner_text()
    screenshot(page, "05-my-orders")


def test_two_shoppers_race_for_one_item(new_page: Any, catalog: Catalog, watch: Watch):
    item = catalog.add("One-off painting", "400.00", category="art")
    alice, bob = new_page(), new_page()
    for p in (alice, bob):
        p.goto(f"/products/{item['id']}")
    # Both click before either answer arrives.
    alice.get_by_role("button", name="Buy now").click(no_wait_after=True)
    bob.get_by_role("button", name="Buy now").click(no_wait_after=True)
    for p in (alice, bob):
        p.wait_for_load_state("load")
        p.wait_for_function("() => !document.querySelector('.buy-form button[disabled]')")
    watch.allowed_statuses.add(409)  # the loser's page is served with 409 Conflict
    outcomes = []
    for p in (alice, bob):
        if re.search(r"/orders/\d+$", p.url):
            outcomes.append("bought")
        else:
            assert "just been sold to someone else" in p.get_by_test_id("problem").inner_text()
            assert p.get_by_test_id("sold-status").is_visible()
            assert p.get_by_role("button", name="Buy now").count() == 0
            outcomes.append("sold")
            screenshot(p, "06-sold-to-someone-else")
    assert sorted(outcomes) == ["bought", "sold"]
    assert catalog.get(item["id"])["available"] is False


def test_add_product_with_invalid_price_then_fix_it(new_page: Any, watch: Watch):
    page = new_page()
    page.goto("/manage/products/new")
    page.get_by_label("Name").fill("Handmade oak cutting board")
    page.get_by_label("Price").fill("-5")
    page.get_by_label("Category").fill("kitchen")
    page.get_by_label("Description").fill("Oiled, 40 x 25 cm.")
    watch.allowed_statuses.add(422)
    page.get_by_role("button", name="Add product").click()
    error = page.locator("#e-price")
    assert error.is_visible() and error.inner_text().strip()
    price = page.get_by_label("Price")
    assert price.get_attribute("aria-invalid") == "true"
    assert price.get_attribute("aria-describedby") == "e-price"
    assert page.get_by_label("Name").input_value() == "Handmade oak cutting board"
    assert page.get_by_label("Description").input_value() == "Oiled, 40 x 25 cm."
    screenshot(page, "07-add-product-error")
    price.fill("39.90")
    page.get_by_role("button", name="Add product").click()
    page.wait_for_url(re.compile(r".*/products/\d+$"))
    assert page.locator("h1").inner_text() == "Handmade oak cutting board"
    page.goto("/?category=kitchen")
    assert page.locator(".card-title").all_inner_texts() == ["Handmade oak cutting board"]


def test_api_stopped_shows_503_page(
    new_page: Any, catalog: Catalog, gateway: LocalGateway, watch: Watch
):
    catalog.add("Anything")
    page = new_page()
    page.goto("/")
    gateway.stop()
    watch.allowed_statuses.add(503)
    resp = page.goto("/")
    assert resp is not None and resp.status == 503
    assert "taking a short break" in page.locator("h1").inner_text()
    screenshot(page, "08-api-down-503")


def test_xss_name_renders_as_text_and_pages_are_clean(new_page: Any, catalog: Catalog):
    evil = catalog.add("<script>alert(1)</script>", description="<img src=x onerror=alert(2)>")
    catalog.add("Plain notebook", "4.20", category="stationery")
    page = new_page(viewport={"width": 390, "height": 844})  # phone-sized: responsive layout
    for path in ("/", f"/products/{evil['id']}", "/orders", "/manage/products/new", "/?q=note"):
        page.goto(path)
        page.wait_for_load_state("load")
    page.goto(f"/products/{evil['id']}")
    assert page.locator("h1").inner_text() == "<script>alert(1)</script>"
    assert page.locator(".description").inner_text() == "<img src=x onerror=alert(2)>"
    screenshot(page, "09-xss-as-text-mobile")
    page.goto("/")
    assert "<script>alert(1)</script>" in page.locator(".card-title").all_inner_texts()
    # keyboard users see where they are: the focused link gets a visible focus ring
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    shadow = page.evaluate("() => getComputedStyle(document.activeElement).boxShadow")
    assert shadow and shadow != "none"
