"""The security suite's parts: a real OIDC issuer on loopback that the tests control, the real
local API Gateway running the real Lambda handlers with its JWT authorizer trusting that
issuer (as the cloud's trusts Google), a real PostgreSQL database, and the real Flask shop.

The issuer also answers as the GCE/Cloud Run metadata server (``/computeMetadata/...``), so
the shop fetches its ID tokens exactly as on Cloud Run. Owning the issuer lets the tests
sign whatever an attacker could present (expired, wrong audience, another key, ``alg:
none``...) with nothing but public interfaces: HTTP, the gateway's config, the app factory.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import psycopg2
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from jwt.algorithms import RSAAlgorithm

from conftest import create_database
from hybridshop.db.embedded import EmbeddedPostgres
from hybridshop.gateway.authorizer import JwtAuthorizerConfig
from hybridshop.gateway.server import GatewayConfig, LocalGateway
from hybridshop.web import create_app
from hybridshop.web.settings import WebSettings

AUDIENCE = "hybridshop-api"
SHOP = "shop@hybridshop.test"  # the shop's service account: may read, buy and add
BUYER = "buyer-service@hybridshop.test"  # another allowed caller: may read and buy, not add
MALLORY = "mallory@evil.test"  # signed by the trusted issuer, but nobody we allow
KID = "test-key-1"
IDENTITY_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TestIssuer:
    """An OpenID issuer + metadata server on loopback, with the private key in the test."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.requests = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, status: int, body: str, ctype: str = "application/json") -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                issuer.requests += 1
                url = urlsplit(self.path)
                if url.path == "/.well-known/openid-configuration":
                    self._send(200, json.dumps({"issuer": issuer.url, "jwks_uri": issuer.jwks}))
                elif url.path == "/jwks.json":
                    jwk = json.loads(RSAAlgorithm.to_jwk(issuer.key.public_key()))
                    jwk.update(kid=KID, use="sig", alg="RS256")
                    self._send(200, json.dumps({"keys": [jwk]}))
                elif url.path == IDENTITY_PATH:
                    if self.headers.get("Metadata-Flavor") != "Google":
                        self._send(403, "Missing required header: Metadata-Flavor\n", "text/plain")
                        return
                    audience = parse_qs(url.query).get("audience", [""])[0]
                    self._send(200, issuer.token(aud=audience), "text/plain")
                else:
                    self._send(404, "{}")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def jwks(self) -> str:
        return self.url + "/jwks.json"

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": SHOP,
            "email": SHOP,
            "iat": now,
            "exp": now + 600,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, key: Any = None, headers: dict[str, Any] | None = None, **claims: Any) -> str:
        """A token signed RS256 with the issuer's key (or ``key``), claims overridable;
        a claim set to None is left out."""
        return jwt.encode(
            self.claims(**claims),
            key or self.key,
            algorithm="RS256",
            headers={"kid": KID, **(headers or {})},
        )

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A compact JWS built by hand (for tokens no library would sign)."""
    return ".".join(
        (
            b64url(json.dumps(header).encode()),
            b64url(json.dumps(claims).encode()),
            b64url(signature),
        )
    )


@pytest.fixture(scope="session")
def issuer() -> Iterator[TestIssuer]:
    i = TestIssuer()
    yield i
    i.stop()


@pytest.fixture(scope="module")
def module_db(pg: EmbeddedPostgres) -> str:
    """One migrated database for a module's gateway (tests use distinct product names)."""
    return create_database(pg)


def start_secure_gateway(
    database_url: str, issuer: TestIssuer, state_dir: Path, **env: str
) -> LocalGateway:
    gateway = LocalGateway(
        GatewayConfig(
            port=0,
            env={
                "DATABASE_URL": database_url,
                "LOG_LEVEL": "WARNING",
                "ALLOWED_CALLERS": f"{SHOP},{BUYER}",
                "ALLOWED_SELLERS": SHOP,
                **env,
            },
            concurrency=1,
            authorizer=JwtAuthorizerConfig(issuer=issuer.url, audiences=(AUDIENCE,)),
            state_dir=state_dir,
            quiet=True,
            log=lambda line: None,
        )
    )
    gateway.start()
    return gateway


@pytest.fixture(scope="module")
def gateway(
    module_db: str, issuer: TestIssuer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalGateway]:
    """The API with the JWT authorizer on, trusting ``issuer``; shop + buyer allowed."""
    gw = start_secure_gateway(module_db, issuer, tmp_path_factory.mktemp("gw"))
    yield gw
    gw.stop()


class Api:
    """Raw HTTP to the gateway, authenticated as a given subject of the trusted issuer."""

    def __init__(self, gateway: LocalGateway, issuer: TestIssuer) -> None:
        self.url = gateway.url
        self.issuer = issuer
        self.session = requests.Session()

    def request(
        self, method: str, path: str, *, subject: str | None = SHOP, **kwargs: Any
    ) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if subject is not None and "Authorization" not in headers:
            token = self.issuer.token(sub=subject, email=subject)
            headers["Authorization"] = f"Bearer {token}"
        return self.session.request(method, self.url + path, headers=headers, timeout=10, **kwargs)

    def add(self, **fields: Any) -> dict[str, Any]:
        body = {"price": "9.99", **fields}
        resp = self.request("POST", "/products", json=body)
        assert resp.status_code == 201, resp.text
        product: dict[str, Any] = resp.json()
        return product


@pytest.fixture(scope="module")
def api(gateway: LocalGateway, issuer: TestIssuer) -> Iterator[Api]:
    a = Api(gateway, issuer)
    yield a
    a.session.close()


def shop_settings(gateway: LocalGateway, issuer: TestIssuer, **overrides: Any) -> WebSettings:
    values: dict[str, Any] = {
        "api_base_url": gateway.url,
        "api_audience": AUDIENCE,
        "environment": "development",
        "metadata_server_url": issuer.url,
        "get_retries": 0,
    }
    values.update(overrides)
    return WebSettings(**values)


@pytest.fixture(scope="module")
def shop_app(gateway: LocalGateway, issuer: TestIssuer) -> Flask:
    """The shop (development, catalog management open), reaching the secured API."""
    return create_app(shop_settings(gateway, issuer))


def csrf_from(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def db_rows(database_url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())
    finally:
        conn.close()


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright (as tests/web does)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium", pytrace=False)
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()
