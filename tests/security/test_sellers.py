"""Who may add products: in the shop, a seller signed in with ``SHOP_ADMIN_TOKEN`` (nobody in
production without one, anybody in development without one, with a banner saying so); in
the API, the identities of ``ALLOWED_SELLERS`` (AddProduct only)."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hybridshop.gateway.server import LocalGateway
from hybridshop.lambda_functions.settings import FunctionSettings
from hybridshop.web import create_app
from hybridshop.web.settings import SettingsError, WebSettings

from .conftest import BUYER, MALLORY, SHOP, Api, TestIssuer, csrf_from, db_rows, shop_settings

ADMIN = "a-long-seller-token-for-the-tests"
BANNER = 'data-testid="catalog-open"'
SELL_LINK = 'href="/manage/products/new"'


def _app(gateway: LocalGateway, issuer: TestIssuer, **overrides: object) -> Flask:
    return create_app(shop_settings(gateway, issuer, **overrides))


def _production(gateway: LocalGateway, issuer: TestIssuer, **overrides: object) -> Flask:
    return _app(gateway, issuer, environment="production", secret_key="k" * 40, **overrides)


def _sign_in(client: FlaskClient, token: str) -> int:
    page = client.get("/manage/login").get_data(as_text=True)
    resp = client.post("/manage/login", data={"csrf_token": csrf_from(page), "token": token})
    return resp.status_code


def _add_via_form(client: FlaskClient, name: str, product_id: int) -> int:
    """POST the add form with this session's CSRF token (taken from a product page)."""
    page = client.get(f"/products/{product_id}").get_data(as_text=True)
    resp = client.post(
        "/manage/products/new", data={"csrf_token": csrf_from(page), "name": name, "price": "5"}
    )
    return resp.status_code


def test_development_without_a_token_is_open_and_says_so(shop_app: Flask):
    client = shop_app.test_client()
    page = client.get("/").get_data(as_text=True)
    assert BANNER in page and "SHOP_ADMIN_TOKEN" in page and SELL_LINK in page
    assert client.get("/manage/products/new").status_code == 200


def test_production_without_a_token_has_no_catalog_management(
    gateway: LocalGateway, issuer: TestIssuer, module_db: str, api: Api
):
    some = api.add(name="some product")["id"]
    client = _production(gateway, issuer).test_client()
    page = client.get("/").get_data(as_text=True)
    assert BANNER not in page and SELL_LINK not in page
    for path in ("/manage/products/new", "/manage/login"):
        assert client.get(path).status_code == 404, path
    assert _add_via_form(client, "prod open item", some) == 404
    assert db_rows(module_db, "SELECT count(*) FROM products WHERE name = 'prod open item'") == [
        (0,)
    ]


@pytest.mark.parametrize("environment", ["development", "production"])
def test_with_a_token_only_a_signed_in_seller_adds(
    environment: str, gateway: LocalGateway, issuer: TestIssuer, module_db: str, api: Api
):
    some = api.add(name="some product")["id"]
    extra = {"secret_key": "k" * 40}
    app = _app(gateway, issuer, environment=environment, admin_token=ADMIN, **extra)
    client = app.test_client()
    assert BANNER not in client.get("/").get_data(as_text=True)
    name = f"seller item {environment}"
    # not signed in: the form and the POST send you to sign in; nothing is added
    resp = client.get("/manage/products/new")
    assert resp.status_code == 303 and resp.headers["Location"].startswith("/manage/login")
    assert _add_via_form(client, name, some) == 303
    # wrong tokens: refused, still not signed in
    for wrong in ("", ADMIN[:-1], ADMIN + "x", ADMIN.upper(), " " + ADMIN):
        assert _sign_in(client, wrong) == 403, wrong
    assert client.get("/manage/products/new").status_code == 303
    count = "SELECT count(*) FROM products WHERE name = %s"
    assert db_rows(module_db, count, name) == [(0,)]
    # the right token: the form works end to end
    assert _sign_in(client, ADMIN) == 303
    assert client.get("/manage/products/new").status_code == 200
    assert "Sign out" in client.get("/").get_data(as_text=True)
    assert _add_via_form(client, name, some) == 303
    assert db_rows(module_db, count, name) == [(1,)]
    # a new token (rotated) signs every seller out, even with the same session key
    rotated = _app(
        gateway, issuer, environment=environment, admin_token=ADMIN + "-rotated", **extra
    )
    other = rotated.test_client()
    name_ = app.config["SESSION_COOKIE_NAME"]
    cookie = client.get_cookie(name_)
    assert cookie is not None
    other.set_cookie(name_, cookie.value)  # the same browser, after the redeploy
    assert other.get("/").status_code == 200
    assert other.get("/manage/products/new").status_code == 303
    # sign out
    page = client.get("/").get_data(as_text=True)
    assert client.post("/manage/logout", data={"csrf_token": csrf_from(page)}).status_code == 303
    assert client.get("/manage/products/new").status_code == 303


def test_a_short_admin_token_is_refused_at_start():
    with pytest.raises(SettingsError, match="SHOP_ADMIN_TOKEN"):
        WebSettings(admin_token="short").validated()
    env = {"SHOP_ENV": "development", "SHOP_ADMIN_TOKEN": ADMIN}
    assert WebSettings.from_env(env).admin_token == ADMIN


def test_api_only_sellers_may_add(api: Api, module_db: str):
    for subject, status in ((SHOP, 201), (BUYER, 403), (MALLORY, 403)):
        resp = api.request(
            "POST", "/products", subject=subject, json={"name": f"by {subject}", "price": "1"}
        )
        assert resp.status_code == status, (subject, resp.text)
    resp = api.request("POST", "/products", subject=BUYER, json={"name": "x", "price": "1"})
    assert resp.json()["error"] == {
        "code": "forbidden",
        "message": "this caller may not add products",
    }
    # the buyer can still read and buy: it is a caller, just not a seller
    product = api.add(name="for the buyer")
    assert api.request("GET", "/products", subject=BUYER).status_code == 200
    bought = api.request("POST", f"/products/{product['id']}/purchase", subject=BUYER, json={})
    assert bought.status_code == 200, bought.text
    assert db_rows(module_db, "SELECT count(*) FROM products WHERE name LIKE 'by %%'") == [(1,)]


def test_function_settings_read_allowed_sellers():
    env = {"DATABASE_URL": "postgresql://x@127.0.0.1/db", "ALLOWED_SELLERS": f" {SHOP}, ,a@b "}
    assert FunctionSettings.from_env(env).allowed_sellers == frozenset({SHOP, "a@b"})
    assert FunctionSettings.from_env({"DATABASE_URL": "postgresql://x@h/db"}).allowed_sellers == (
        frozenset()
    )
