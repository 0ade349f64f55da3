"""Fixtures for the web shop: the REAL local gateway running the REAL Lambda handlers
against a fresh PostgreSQL database per test, and the shop in front of it.

The shop authenticates with ID tokens from the gateway's local issuer (the stand-in for
Google's metadata server), and the gateway's JWT authorizer checks them, as in production.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from hybridshop.gateway.authorizer import JwtAuthorizerConfig
from hybridshop.gateway.server import GatewayConfig, LocalGateway
from hybridshop.web import WebServer, create_app, start_web
from hybridshop.web.settings import WebSettings
from hybridshop.web.tokens import IdTokenSource

AUDIENCE = "hybridshop-api"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


def start_gateway(database_url: str, state_dir: Path) -> LocalGateway:
    gateway = LocalGateway(
        GatewayConfig(
            port=0,
            env={"DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"},
            concurrency=4,
            authorizer=JwtAuthorizerConfig.local((AUDIENCE,)),
            local_issuer=True,
            state_dir=state_dir,
            quiet=True,
        )
    )
    gateway.start()
    return gateway


@pytest.fixture
def gateway(database_url: str, tmp_path: Path) -> Iterator[LocalGateway]:
    gw = start_gateway(database_url, tmp_path / "state")
    yield gw
    gw.stop()


def metadata_url(gateway: LocalGateway) -> str:
    return gateway.metadata_url


@pytest.fixture
def settings(gateway: LocalGateway) -> WebSettings:
    return WebSettings(
        api_base_url=gateway.url,
        api_audience=AUDIENCE,
        environment="development",
        metadata_server_url=metadata_url(gateway),
        get_retries=1,
    )


@pytest.fixture
def app(settings: WebSettings) -> Flask:
    return create_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class Catalog:
    """Writes test data through the real API (with a real token), never into the DB."""

    def __init__(self, gateway: LocalGateway) -> None:
        self.url = gateway.url
        self.session = requests.Session()
        self.tokens = IdTokenSource(metadata_url(gateway), AUDIENCE, session=self.session)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.token()}"}

    def add(self, name: str, price: str = "19.99", **fields: Any) -> dict[str, Any]:
        resp = self.session.post(
            f"{self.url}/products",
            json={"name": name, "price": price, **fields},
            headers=self._headers(),
            timeout=10,
        )
        assert resp.status_code == 201, resp.text
        product: dict[str, Any] = resp.json()
        return product

    def get(self, product_id: int) -> dict[str, Any]:
        resp = self.session.get(
            f"{self.url}/products/{product_id}", headers=self._headers(), timeout=10
        )
        assert resp.status_code == 200, resp.text
        product: dict[str, Any] = resp.json()
        return product


@pytest.fixture
def catalog(gateway: LocalGateway) -> Iterator[Catalog]:
    c = Catalog(gateway)
    yield c
    c.session.close()


@pytest.fixture
def live_shop(gateway: LocalGateway) -> Iterator[WebServer]:
    """The shop on a real loopback port (what `hybridshop up` starts), for the browser."""
    server = start_web(
        gateway.url, "127.0.0.1", 0, audience=AUDIENCE, metadata_url=metadata_url(gateway)
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run the browser install step of .ci/run "
            "(apt-get install -y chromium)",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def csrf_from(html: str) -> str:
    import re

    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def purchase_key_from(html: str) -> str:
    import re

    m = re.search(r'name="purchase_key" value="([0-9a-f]{32})"', html)
    assert m, "no purchase key in the page"
    return m.group(1)


os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
