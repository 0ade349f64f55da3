"""Functional tests: Flask's test client -> real local gateway -> real handlers -> PostgreSQL."""

from __future__ import annotations

import logging
import re
import time

import pytest
from flask.testing import FlaskClient

from hybridshop.gateway.server import LocalGateway
from hybridshop.web import create_app
from hybridshop.web.settings import WebSettings

from .conftest import Catalog, csrf_from, purchase_key_from


def _product_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'<li class="card[^"]*" data-product-id="(\d+)"', html)]


def _buy(client: FlaskClient, product_id: int) -> tuple[int, str, str]:
    page = client.get(f"/products/{product_id}").get_data(as_text=True)
    resp = client.post(
        f"/products/{product_id}/buy",
        data={"csrf_token": csrf_from(page), "purchase_key": purchase_key_from(page)},
    )
    return resp.status_code, resp.headers.get("Location", ""), resp.get_data(as_text=True)


def test_catalog_lists_products_newest_first_with_prices(client: FlaskClient, catalog: Catalog):
    lamp = catalog.add("Brass desk lamp", "1234.5", category="home")
    mug = catalog.add("Stoneware mug", "9.99", category="kitchen", currency="USD")
    resp = client.get("/")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert _product_ids(html) == [mug["id"], lamp["id"]]
    assert "€1,234.50" in html and "$9.99" in html
    # the category list comes from GET /categories with live counts
    assert re.search(r"Home <span class=\"count\">1</span>", html)


def test_category_filter_and_search(client: FlaskClient, catalog: Catalog):
    chair = catalog.add("Oak chair", category="furniture")
    catalog.add("Oak spoon", category="kitchen")
    catalog.add("Pine table", category="furniture")
    assert len(_product_ids(client.get("/?category=furniture").get_data(as_text=True))) == 2
    found = _product_ids(client.get("/?q=oak&category=furniture").get_data(as_text=True))
    assert found == [chair["id"]]
    empty = client.get("/?q=zebra").get_data(as_text=True)
    assert _product_ids(empty) == [] and "No products match" in empty


def test_bad_filter_is_a_clear_400_not_a_500(client: FlaskClient, catalog: Catalog):
    catalog.add("Anything")
    resp = client.get("/?category=NOT+A+SLUG!")
    assert resp.status_code == 400
    assert 'role="alert"' in resp.get_data(as_text=True)


def test_pagination_walks_every_product_once(client: FlaskClient, catalog: Catalog):
    made = [catalog.add(f"Item {i:02d}")["id"] for i in range(30)]
    first = client.get("/").get_data(as_text=True)
    page1 = _product_ids(first)
    m = re.search(r'rel="next" href="([^"]+)"', first)
    assert m, "no next-page link with 30 products"
    second = client.get(m.group(1).replace("&amp;", "&")).get_data(as_text=True)
    page2 = _product_ids(second)
    assert len(page1) == 24 and len(page2) == 6
    assert sorted(page1 + page2) == sorted(made)
    assert 'rel="next"' not in second and "First page" in second


def test_product_page_and_unknown_product_404(client: FlaskClient, catalog: Catalog):
    p = catalog.add("Linen shirt", "45", description="Line one\nLine two", category="fashion")
    html = client.get(f"/products/{p['id']}").get_data(as_text=True)
    assert "Linen shirt" in html and "€45.00" in html and "Buy now" in html
    missing = client.get("/products/987654")
    assert missing.status_code == 404
    assert "find that page" in missing.get_data(as_text=True)


def test_xss_product_name_is_escaped_everywhere(client: FlaskClient, catalog: Catalog):
    p = catalog.add("<script>alert(1)</script>", description='"><img src=x onerror=alert(2)>')
    for path in ("/", f"/products/{p['id']}"):
        html = client.get(path).get_data(as_text=True)
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<img src=x" not in html


def test_buy_confirms_order_and_item_shows_sold(client: FlaskClient, catalog: Catalog):
    p = catalog.add("Vintage camera", "120.00")
    status, location, _ = _buy(client, p["id"])
    assert status == 303 and re.fullmatch(r"/orders/\d+", location)
    confirmation = client.get(location).get_data(as_text=True)
    assert "Your order is confirmed" in confirmation and "Vintage camera" in confirmation
    assert "€120.00" in confirmation
    assert catalog.get(p["id"])["available"] is False
    product_page = client.get(f"/products/{p['id']}").get_data(as_text=True)
    assert "This item has been sold" in product_page and "Buy now" not in product_page
    assert "Sold out" in client.get("/").get_data(as_text=True)
    orders = client.get("/orders").get_data(as_text=True)
    assert location in orders and "Vintage camera" in orders


def test_second_buyer_gets_sold_message(app, catalog: Catalog):
    p = catalog.add("Last teapot")
    alice, bob = app.test_client(), app.test_client()
    alice_page = alice.get(f"/products/{p['id']}").get_data(as_text=True)
    bob_page = bob.get(f"/products/{p['id']}").get_data(as_text=True)
    results = []
    for c, page in ((alice, alice_page), (bob, bob_page)):
        r = c.post(
            f"/products/{p['id']}/buy",
            data={"csrf_token": csrf_from(page), "purchase_key": purchase_key_from(page)},
        )
        results.append((r.status_code, r.get_data(as_text=True)))
    assert results[0][0] == 303
    assert results[1][0] == 409
    assert "just been sold to someone else" in results[1][1]
    assert "This item has been sold" in results[1][1]
    assert "Last teapot" not in bob.get("/orders").get_data(as_text=True)


def test_double_submit_of_one_form_buys_once(client: FlaskClient, catalog: Catalog):
    """The purchase key travels in the form: a resubmission is the same purchase, not a 409."""
    p = catalog.add("Silver ring")
    page = client.get(f"/products/{p['id']}").get_data(as_text=True)
    form = {"csrf_token": csrf_from(page), "purchase_key": purchase_key_from(page)}
    first = client.post(f"/products/{p['id']}/buy", data=form)
    second = client.post(f"/products/{p['id']}/buy", data=form)
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert client.get("/orders").get_data(as_text=True).count("Silver ring") == 1


def test_buy_without_csrf_or_key_is_rejected(client: FlaskClient, catalog: Catalog):
    p = catalog.add("Guarded vase")
    page = client.get(f"/products/{p['id']}").get_data(as_text=True)
    no_csrf = client.post(f"/products/{p['id']}/buy", data={"purchase_key": "a" * 32})
    assert no_csrf.status_code == 400 and "form expired" in no_csrf.get_data(as_text=True)
    bad_key = client.post(
        f"/products/{p['id']}/buy", data={"csrf_token": csrf_from(page), "purchase_key": "x"}
    )
    assert bad_key.status_code == 400
    assert catalog.get(p["id"])["available"] is True


def test_buy_unknown_product_is_404(client: FlaskClient, catalog: Catalog):
    p = catalog.add("Real item")
    page = client.get(f"/products/{p['id']}").get_data(as_text=True)
    resp = client.post(
        "/products/999999/buy",
        data={"csrf_token": csrf_from(page), "purchase_key": purchase_key_from(page)},
    )
    assert resp.status_code == 404


def test_foreign_order_page_is_404(app, client: FlaskClient, catalog: Catalog):
    p = catalog.add("Private purchase")
    _, location, _ = _buy(client, p["id"])
    assert app.test_client().get(location).status_code == 404


def test_add_product_shows_api_errors_beside_fields_and_keeps_values(
    client: FlaskClient, catalog: Catalog
):
    form_page = client.get("/manage/products/new").get_data(as_text=True)
    token = csrf_from(form_page)
    bad = client.post(
        "/manage/products/new",
        data={"csrf_token": token, "name": "Walnut bowl", "price": "12.345", "category": "home"},
    )
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422
    m = re.search(r'<p class="field-error" id="e-price" data-field="price">([^<]+)</p>', html)
    assert m and m.group(1).strip(), "no message beside the price field"
    assert 'value="Walnut bowl"' in html and 'value="12.345"' in html and 'value="home"' in html
    assert 'id="e-name"' not in html
    good = client.post(
        "/manage/products/new",
        data={"csrf_token": token, "name": "Walnut bowl", "price": "12.35", "category": "home"},
    )
    assert good.status_code == 303
    product_page = client.get(good.headers["Location"]).get_data(as_text=True)
    assert "Walnut bowl" in product_page and "€12.35" in product_page
    assert "is now in the catalog" in product_page


def test_add_product_without_csrf_is_rejected(client: FlaskClient, gateway: LocalGateway):
    resp = client.post("/manage/products/new", data={"name": "Sneaky", "price": "1"})
    assert resp.status_code == 400
    assert "Sneaky" not in client.get("/").get_data(as_text=True)


def test_api_down_gives_friendly_503_and_a_log_line(
    client: FlaskClient, catalog: Catalog, gateway: LocalGateway, caplog: pytest.LogCaptureFixture
):
    catalog.add("Soon unreachable")
    assert client.get("/").status_code == 200
    gateway.stop()
    with caplog.at_level(logging.WARNING, logger="hybridshop.web"):
        resp = client.get("/")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 503
    assert "reach our catalog" in html and "Traceback" not in html
    assert any("503" in r.getMessage() for r in caplog.records)


def test_wrong_identity_is_a_503_not_a_500(gateway: LocalGateway, catalog: Catalog, caplog):
    """Without an ID token the API's JWT authorizer says 401: a deployment error, logged."""
    app = create_app(WebSettings(api_base_url=gateway.url, environment="development"))
    with caplog.at_level(logging.ERROR, logger="hybridshop.web"):
        resp = app.test_client().get("/")
    assert resp.status_code == 503
    assert any("refused the shop's identity" in r.getMessage() for r in caplog.records)


def test_security_headers_and_no_inline_script(client: FlaskClient, catalog: Catalog):
    p = catalog.add("Headers check")
    resp = client.get(f"/products/{p['id']}")
    csp = resp.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    html = resp.get_data(as_text=True)
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
    assert " style=" not in html and "http://" not in html.split("</head>")[0]
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_static_assets_are_served_from_the_package(client: FlaskClient, gateway: LocalGateway):
    html = client.get("/orders").get_data(as_text=True)
    assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', html)
    assert any(a.endswith(".css") for a in assets) and any(a.endswith(".js") for a in assets)
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


def test_health_and_readiness(client: FlaskClient, gateway: LocalGateway):
    assert client.get("/health").get_json() == {"status": "ok"}
    assert client.get("/ready").status_code == 200
    gateway.stop()
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 503


def test_reads_are_retried_with_backoff_before_the_503(caplog: pytest.LogCaptureFixture):
    """Nothing listens on the API port: the GET is tried 1 + get_retries times, then 503."""
    from hybridshop.db.embedded import free_port

    settings = WebSettings(
        api_base_url=f"http://127.0.0.1:{free_port()}", environment="development", get_retries=2
    )
    client = create_app(settings).test_client()
    with caplog.at_level(logging.WARNING, logger="hybridshop.web"):
        resp = client.get("/products/1")
    assert resp.status_code == 503
    assert any("failed after 3 attempt(s)" in r.getMessage() for r in caplog.records)


def test_a_throttled_api_gives_the_friendly_503_after_a_retry(
    tmp_path, caplog: pytest.LogCaptureFixture
):
    """The gateway sheds load (429 + Retry-After) while its one environment is busy: the shop
    retries, then shows its "try again" page, never the gateway's raw message."""
    import threading

    import requests

    from hybridshop.gateway.server import GatewayConfig
    from hybridshop.lambda_functions import FunctionSpec

    spec = FunctionSpec(
        name="Slow", module=f"{__package__}.slow_api", routes=("GET /products/{id}",)
    )
    gateway = LocalGateway(
        GatewayConfig(
            port=0, functions=(spec,), concurrency=1, max_queue=0, state_dir=tmp_path, quiet=True
        )
    )
    gateway.start()
    try:
        assert requests.get(gateway.url + "/products/1", timeout=30).status_code == 404  # warm
        busy = threading.Thread(
            target=requests.get, args=(gateway.url + "/products/slow",), kwargs={"timeout": 30}
        )
        busy.start()
        deadline = time.monotonic() + 20
        while gateway.health()["functions"]["Slow"]["idle"] != 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        settings = WebSettings(api_base_url=gateway.url, environment="development", get_retries=1)
        with caplog.at_level(logging.WARNING, logger="hybridshop.web"):
            resp = create_app(settings).test_client().get("/products/1")
        html = resp.get_data(as_text=True)
        assert resp.status_code == 503
        assert "Too Many Requests" not in html and "Traceback" not in html
        assert any("429" in r.getMessage() for r in caplog.records)
        assert gateway.health()["functions"]["Slow"]["throttled"] == 2  # tried, then retried
        busy.join(timeout=30)
    finally:
        gateway.stop()
