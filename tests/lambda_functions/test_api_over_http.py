"""The API end to end: the real handlers behind the local API Gateway, over real HTTP."""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import psycopg2
import pytest

from hybridshop.gateway.server import GatewayConfig, LocalGateway


@pytest.fixture
def gateway(database_url: str) -> Iterator[LocalGateway]:
    gw = LocalGateway(
        GatewayConfig(
            port=0,
            env={"DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"},
            quiet=True,
            # every one of the 200 concurrent purchases must reach the database (none shed):
            # that is what proves the purchase sells once
            max_queue=256,
            max_wait_s=60.0,
        )
    )
    gw.start()
    yield gw
    gw.stop()


def request(
    url: str, method: str, path: str, body: str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    parsed = urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        raw = response.read()
        data = json.loads(raw) if raw else None
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


def _count(dsn: str, table: str) -> int:
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table}")
        n = cur.fetchone()[0]
    conn.close()
    return n


def test_catalog_over_http(gateway: LocalGateway) -> None:
    status, headers, created = request(
        gateway.url,
        "POST",
        "/products",
        json.dumps({"name": "Desk Lamp", "price": "24.90"}),
        {"Content-Type": "application/json"},
    )
    assert status == 201
    assert headers["location"] == f"/products/{created['id']}"
    status, _, page = request(gateway.url, "GET", "/products?limit=5")
    assert status == 200
    assert [p["name"] for p in page["items"]] == ["Desk Lamp"]
    status, _, spec = request(gateway.url, "GET", "/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.1")
    status, _, body = request(gateway.url, "DELETE", "/products")
    assert (status, body) == (404, {"message": "Not Found"})


def test_200_concurrent_purchases_sell_exactly_once(
    gateway: LocalGateway, database_url: str
) -> None:
    _, _, product = request(
        gateway.url,
        "POST",
        "/products",
        json.dumps({"name": "Limited Print", "price": 80}),
        {"Content-Type": "application/json"},
    )
    barrier = threading.Barrier(200)
    statuses: list[int] = []
    lock = threading.Lock()

    def buy() -> None:
        barrier.wait()
        status, _, _ = request(gateway.url, "POST", f"/products/{product['id']}/purchase")
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=buy) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counter(statuses) == {200: 1, 409: 199}
    assert _count(database_url, "orders") == 1


BAD_REQUESTS: list[tuple[str, str, str | None, dict[str, str], int, str]] = [
    ("POST", "/products", "{", {"Content-Type": "application/json"}, 400, "not valid JSON"),
    (
        "POST",
        "/products",
        '{"name": "x", "price": NaN}',
        {"Content-Type": "application/json"},
        400,
        "not valid JSON",
    ),
    (
        "POST",
        "/products",
        '{"name": "x", "price": "1e999"}',
        {"Content-Type": "application/json"},
        422,
        "at most",
    ),
    (
        "POST",
        "/products",
        '{"name": "x", "price": true}',
        {"Content-Type": "application/json"},
        422,
        "boolean",
    ),
    (
        "POST",
        "/products",
        '{"name": "' + "y" * 300 + '", "price": 1}',
        {"Content-Type": "application/json"},
        422,
        "at most 200",
    ),
    (
        "POST",
        "/products",
        '{"name": "x", "price": 1, "id": 5}',
        {"Content-Type": "application/json"},
        422,
        "unknown field",
    ),
    (
        "POST",
        "/products",
        "name=x&price=1",
        {"Content-Type": "application/x-www-form-urlencoded"},
        415,
        "application/json",
    ),
    ("POST", "/products/abc/purchase", None, {}, 400, "positive integer"),
    ("POST", "/products/99999999999999999999/purchase", None, {}, 400, "out of range"),
    (
        "POST",
        "/products/1/purchase",
        '{"channel": "Web Shop"}',
        {"Content-Type": "application/json"},
        422,
        "lowercase",
    ),
    ("GET", "/products?limit=1000", None, {}, 422, "1 to 100"),
    ("GET", "/products?cursor=zzz", None, {}, 400, "cursor"),
    ("GET", "/products/0", None, {}, 400, "positive integer"),
]


@pytest.mark.parametrize(("method", "path", "body", "headers", "status", "fragment"), BAD_REQUESTS)
def test_bad_requests_are_clear_4xx_and_write_nothing(
    gateway: LocalGateway,
    database_url: str,
    method: str,
    path: str,
    body: str | None,
    headers: dict[str, str],
    status: int,
    fragment: str,
) -> None:
    got, response_headers, data = request(gateway.url, method, path, body, headers)
    assert got == status
    assert response_headers["content-type"] == "application/json"
    error = data["error"]
    assert fragment in error["message"] or any(
        fragment in d["message"] for d in error.get("details", [])
    )
    assert "Traceback" not in json.dumps(data)
    assert _count(database_url, "products") == 0
    assert _count(database_url, "orders") == 0
