"""The shop against hostile browsers and hostile data: CSRF on every state-changing route
(found from the app's url_map, so a new form is covered without editing this file), hostile
product text rendered as text, SQL-injection strings kept literally, no open redirect, and
error pages that say nothing about the machine behind them.
"""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import psycopg2.errors
import pytest
from flask import Flask
from flask.testing import FlaskClient

from hybridshop.gateway.server import LocalGateway
from hybridshop.web import create_app

from .conftest import Api, TestIssuer, csrf_from, db_rows, shop_settings

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
CSRF_REFUSAL = "Your form expired or came from somewhere else"

HOSTILE_TEXT = [
    "<img src=x onerror=alert(1)>",
    '"><script>alert(2)</script>',
    "'><svg/onload=alert(3)>",
    "</textarea><script>alert(4)</script>",
    "{{ 7*7 }} {% raw %}",  # template injection: must not be evaluated
]
SQL_INJECTION = [
    "'; DROP TABLE products; --",
    "1' OR '1'='1",
    'Robert"); DELETE FROM orders; --',
    "x' UNION SELECT id, name FROM products --",
    "\\'; SELECT pg_sleep(5); --",
]


def _state_changing_rules(app: Flask) -> list[Any]:
    return [
        r
        for r in app.url_map.iter_rules()
        if r.methods and r.methods & STATE_CHANGING and r.endpoint != "static"
    ]


def _url(app: Flask, rule: Any, product_id: int) -> str:
    values = {arg: product_id for arg in rule.arguments}
    path: str = app.url_map.bind("localhost").build(rule.endpoint, values)
    return path


def _counts(db: str) -> tuple[int, int]:
    rows = db_rows(db, "SELECT (SELECT count(*) FROM products), (SELECT count(*) FROM orders)")
    return int(rows[0][0]), int(rows[0][1])


# -- CSRF --------------------------------------------------------------------------------------


def test_every_state_changing_route_is_found(shop_app: Flask):
    """The enumeration itself can fail: the shop's known forms must be among the rules."""
    endpoints = {r.endpoint for r in _state_changing_rules(shop_app)}
    assert {"storefront.buy", "manage.create_product", "manage.sign_in", "manage.logout"} <= (
        endpoints
    )


def test_csrf_refuses_every_state_changing_route(shop_app: Flask, api: Api, module_db: str):
    product = api.add(name="csrf target")
    rules = _state_changing_rules(shop_app)
    client = shop_app.test_client()
    token = csrf_from(client.get("/manage/products/new").get_data(as_text=True))
    other = shop_app.test_client()
    other_token = csrf_from(other.get("/").get_data(as_text=True) + _form_of(other))
    before = _counts(module_db)
    form = {
        "name": "csrf forged item",
        "price": "1.00",
        "purchase_key": "0" * 32,
        "token": "x" * 32,
        "next": "/",
    }
    for rule in rules:
        url = _url(shop_app, rule, product["id"])
        for method in sorted(rule.methods & STATE_CHANGING):
            attempts: list[dict[str, Any]] = [
                {"data": form},  # no token
                {"data": {**form, "csrf_token": ""}},
                {"data": {**form, "csrf_token": "forged"}},
                {"data": {**form, "csrf_token": other_token}},  # another session's token
                {"json": {**form, "csrf_token": token}},  # JSON/fetch: no form field
                {"query_string": {"csrf_token": token}, "data": form},  # token in the URL
            ]
            for attempt in attempts:
                resp = client.open(url, method=method, **attempt)
                body = resp.get_data(as_text=True)
                assert resp.status_code == 400, (method, url, attempt, resp.status_code)
                assert CSRF_REFUSAL in body, (method, url)
    assert _counts(module_db) == before, "a refused form still changed the catalog"
    # control: with this session's token the same forms get past the CSRF check
    for rule in rules:
        url = _url(shop_app, rule, product["id"])
        for method in sorted(rule.methods & STATE_CHANGING):
            resp = client.open(url, method=method, data={**form, "csrf_token": token})
            assert CSRF_REFUSAL not in resp.get_data(as_text=True), (method, url)


def _form_of(client: FlaskClient) -> str:
    return client.get("/manage/products/new").get_data(as_text=True)


def test_session_cookie_is_not_sent_cross_site(shop_app: Flask):
    resp = shop_app.test_client().get("/manage/products/new")
    cookie = resp.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie, cookie
    assert "form-action 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Frame-Options"] == "DENY"


# -- hostile text ------------------------------------------------------------------------------


def _assert_inert(body: str, payload: str, where: str) -> None:
    """Shown (once entities are decoded) but never present as markup; text without markup
    characters (a template expression) is shown exactly as typed, never evaluated."""
    if set(payload) & set("<>\"'&"):
        assert payload not in body, f"{payload!r} rendered raw in {where}"
    else:
        assert payload in body, f"{payload!r} was altered (evaluated?) in {where}"
    assert payload in html.unescape(body), f"{payload!r} missing (escaped) from {where}"


def test_hostile_names_and_descriptions_render_as_text(shop_app: Flask, api: Api):
    client = shop_app.test_client()
    for i, payload in enumerate(HOSTILE_TEXT):
        product = api.add(name=f"{payload} #{i}", description=f"desc {payload}", price="3.00")
        name = f"{payload} #{i}"
        page = client.get(f"/products/{product['id']}")
        assert page.status_code == 200
        body = page.get_data(as_text=True)
        _assert_inert(body, name, "the product page")
        _assert_inert(body, f"desc {payload}", "the product page description")
        catalog = client.get("/").get_data(as_text=True)
        _assert_inert(catalog, name, "the catalog")
        search = client.get("/", query_string={"q": payload}).get_data(as_text=True)
        if "<" in payload:
            assert payload not in search, "the search box reflected the query raw"
        # buy it: the confirmation and "my orders" show the name too
        key = _purchase_key(body)
        token = csrf_from(body)
        bought = client.post(
            f"/products/{product['id']}/buy", data={"csrf_token": token, "purchase_key": key}
        )
        assert bought.status_code == 303, bought.get_data(as_text=True)[:300]
        order_page = client.get(bought.headers["Location"]).get_data(as_text=True)
        _assert_inert(order_page, name, "the order confirmation")
        _assert_inert(client.get("/orders").get_data(as_text=True), name, "my orders")
    # the add form re-rendered with the hostile values after a validation error
    form = client.get("/manage/products/new").get_data(as_text=True)
    payload = HOSTILE_TEXT[1]
    resp = client.post(
        "/manage/products/new",
        data={"csrf_token": csrf_from(form), "name": payload, "price": "not a price"},
    )
    assert resp.status_code == 422
    _assert_inert(resp.get_data(as_text=True), payload, "the re-rendered form")


def _purchase_key(body: str) -> str:
    import re

    m = re.search(r'name="purchase_key" value="([0-9a-f]{32})"', body)
    assert m, "no purchase form"
    return m.group(1)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        'https://x.test/a.png" onerror="alert(1)',
    ],
)
def test_script_image_urls_are_refused_by_the_api(url: str, api: Api):
    resp = api.request("POST", "/products", json={"name": "pic", "price": "1", "image_url": url})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["details"][0]["field"] == "image_url"


def test_a_script_url_cannot_reach_the_database_by_another_path(
    shop_app: Flask, module_db: str, api: Api
):
    """Defence in depth: a row written around the API (an import, a console) cannot hold a
    javascript: URL (a CHECK constraint), and the shop only ever puts https URLs in src."""
    product = api.add(name="legacy row", image_url="http://insecure.test/p.png")
    with pytest.raises(psycopg2.errors.CheckViolation):
        db_rows(
            module_db,
            "UPDATE products SET image_url = %s WHERE id = %s RETURNING id",
            "javascript:alert(1)",
            product["id"],
        )
    body = shop_app.test_client().get(f"/products/{product['id']}").get_data(as_text=True)
    assert "insecure.test" not in body
    assert "placeholder.svg" in body


# -- SQL injection -----------------------------------------------------------------------------


def test_sql_injection_strings_are_stored_and_returned_literally(api: Api, module_db: str):
    ids = []
    for i, s in enumerate(SQL_INJECTION):
        product = api.add(name=f"{s} {i}", description=s)
        ids.append(product["id"])
        got = api.request("GET", f"/products/{product['id']}").json()
        assert got["name"] == f"{s} {i}" and got["description"] == s
    stored = db_rows(module_db, "SELECT description FROM products WHERE id = ANY(%s)", ids)
    assert sorted(r[0] for r in stored) == sorted(SQL_INJECTION)
    # the tables are still there and whole
    assert db_rows(module_db, "SELECT to_regclass('products'), to_regclass('orders')")[0] == (
        "products",
        "orders",
    )
    # as search terms and filters: matched literally, never "all rows"
    total = len(api.request("GET", "/products", params={"limit": "100"}).json()["items"])
    for s in SQL_INJECTION:
        resp = api.request("GET", "/products", params={"q": s, "limit": "100"})
        assert resp.status_code == 200, resp.text
        names = [p["name"] for p in resp.json()["items"]]
        assert names and all(s.lower() in n.lower() for n in names), (s, names)
        assert len(names) < total
        resp = api.request("GET", "/products", params={"category": s})
        assert resp.status_code in (200, 400, 422), resp.text
        if resp.status_code == 200:
            assert resp.json()["items"] == []
    for bad_id in ("1 OR 1=1", "1;DROP TABLE products", "1'--"):
        resp = api.request("GET", f"/products/{bad_id}")
        assert resp.status_code in (400, 404), (bad_id, resp.text)


# -- open redirect -----------------------------------------------------------------------------

OFF_SITE = [
    "https://evil.test/",
    "//evil.test/",
    "///evil.test/",
    "/\\evil.test/",
    "\\\\evil.test/",
    "http:evil.test",
    "https:/evil.test",
    "javascript:alert(1)",
    " //evil.test",
    "/\t/evil.test",
    "/%09/evil.test",
]
ADMIN = "seller-token-for-tests-0123456789"


def _off_site(location: str) -> bool:
    parts = urlsplit(location)
    return bool(parts.scheme or parts.netloc) and parts.netloc not in ("", "localhost")


@pytest.fixture(scope="module")
def guarded_app(gateway: LocalGateway, issuer: TestIssuer) -> Flask:
    return create_app(shop_settings(gateway, issuer, admin_token=ADMIN))


@pytest.mark.parametrize("target", OFF_SITE)
def test_sign_in_never_redirects_off_site(target: str, guarded_app: Flask):
    client = guarded_app.test_client()
    page = client.get("/manage/login", query_string={"next": target})
    body = page.get_data(as_text=True)
    resp = client.post(
        "/manage/login", data={"csrf_token": csrf_from(body), "token": ADMIN, "next": target}
    )
    assert resp.status_code == 303
    location = resp.headers["Location"]
    assert not _off_site(location), location
    assert location.startswith("/") and not location.startswith("//") and "\\" not in location
    # already signed in: the GET form redirects at once, same rule
    again = client.get("/manage/login", query_string={"next": target})
    assert again.status_code == 303 and not _off_site(again.headers["Location"])
    assert not again.headers["Location"].startswith("//")


def test_sign_in_keeps_a_local_next(guarded_app: Flask):
    client = guarded_app.test_client()
    first = client.get("/manage/products/new")
    assert first.status_code == 303 and first.headers["Location"].startswith("/manage/login")
    page = client.get(first.headers["Location"]).get_data(as_text=True)
    resp = client.post(
        "/manage/login",
        data={"csrf_token": csrf_from(page), "token": ADMIN, "next": "/manage/products/new"},
    )
    assert resp.headers["Location"] == "/manage/products/new"


def test_no_route_redirects_off_site_on_any_parameter(shop_app: Flask, api: Api):
    product = api.add(name="redirect probe")
    client = shop_app.test_client()
    params = {k: "https://evil.test/" for k in ("next", "redirect", "url", "return", "to", "r")}
    for rule in shop_app.url_map.iter_rules():
        if rule.endpoint == "static" or "GET" not in (rule.methods or ()):
            continue
        url = _url(shop_app, rule, product["id"])
        resp = client.get(url, query_string=params)
        assert not _off_site(resp.headers.get("Location", "")), (url, resp.headers["Location"])


# -- error pages -------------------------------------------------------------------------------

LEAKS = [
    "Traceback",
    "Werkzeug",
    "werkzeug",
    "flask",
    "Flask",
    "Python",
    "site-packages",
    ".py",
    "/work/",
    "/tmp/",
    "127.0.0.1",
    "DATABASE_URL",
    "SECRET_KEY",
    "psycopg",
    "postgres",
    "hybridshop.",
]


class _BrokenApi:
    """An API that fails the way a broken deployment does: 500 with a stack and secrets in
    the body, HTML instead of JSON, a 400 with a raw SQL error."""

    BODY = json.dumps(
        {
            "error": {"code": "internal", "message": "Traceback: /srv/app/db.py password=hunter2"},
            "trace": "File /opt/venv/lib/python3.11/site-packages/psycopg2",
        }
    )

    def __init__(self) -> None:
        broken = self
        self.mode = "500"

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                status, ctype, body = {
                    "500": (500, "application/json", broken.BODY),
                    "html": (200, "text/html", "<html>Traceback /srv/app.py</html>"),
                    "502": (502, "text/plain", "upstream postgres at 10.0.0.5 password=hunter2"),
                    # 200 with JSON of the wrong shape: the shop's own code fails (500 path)
                    "shape": (
                        200,
                        "application/json",
                        json.dumps(
                            {"items": 5, "next_cursor": [], "id": "x", "name": {}, "price": [1]}
                        ),
                    ),
                }[broken.mode]
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture(scope="module")
def broken_api() -> Iterator[_BrokenApi]:
    b = _BrokenApi()
    yield b
    b.server.shutdown()
    b.server.server_close()


def _assert_says_nothing(body: str, where: str, extra: tuple[str, ...] = ()) -> None:
    for leak in (*LEAKS, *extra):
        assert leak not in body, f"{where} reveals {leak!r}"


def test_error_pages_reveal_nothing(shop_app: Flask, api: Api, gateway: LocalGateway):
    client = shop_app.test_client()
    product = api.add(name="error page probe")
    port = urlsplit(gateway.url).port
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", "/no/such/page", {}, 404),
        ("GET", "/products/999999999", {}, 404),
        ("GET", "/products/../../etc/passwd", {}, 404),
        ("GET", "/orders/424242", {}, 404),
        ("GET", f"/products/{product['id']}/buy", {}, 405),
        ("DELETE", "/", {}, 400),  # refused by the CSRF check before routing
        ("POST", "/manage/products/new", {"data": {"name": "x" * (70 * 1024)}}, 413),
    ]
    for method, path, kwargs, status in cases:
        resp = client.open(path, method=method, **kwargs)
        body = resp.get_data(as_text=True)
        assert resp.status_code == status, (method, path, resp.status_code)
        assert 'class="error-page"' in body, (method, path)
        _assert_says_nothing(body, f"{method} {path}", (str(port), str(shop_app.secret_key)))


@pytest.mark.parametrize("mode", ["500", "html", "502", "shape"])
def test_a_failing_api_gives_the_friendly_page_only(
    mode: str, broken_api: _BrokenApi, issuer: TestIssuer, gateway: LocalGateway
):
    broken_api.mode = mode
    app = create_app(shop_settings(gateway, issuer, api_base_url=broken_api.url, api_audience=""))
    client = app.test_client()
    for path in ("/", "/products/1", "/ready"):
        resp = client.get(path)
        body = resp.get_data(as_text=True)
        if mode == "shape":  # whatever the shop makes of it, never a trace
            assert resp.status_code in (200, 500, 503), (mode, path, resp.status_code)
        else:
            assert resp.status_code == 503, (mode, path, resp.status_code)
        _assert_says_nothing(body, f"{path} with a {mode} API", ("hunter2", "10.0.0.5", "/srv"))
