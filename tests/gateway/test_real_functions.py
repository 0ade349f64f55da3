"""The project's real Lambda functions behind the gateway, on a real PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from hybridshop.lambda_functions import FUNCTIONS


@pytest.fixture
def api(make_gateway, database_url: str):
    gateway, _log = make_gateway(
        functions=FUNCTIONS,
        env={"DATABASE_URL": database_url},
        concurrency=8,
        quiet=True,
        max_queue=128,  # the 100 concurrent purchases all reach the database, none shed
        max_wait_s=60.0,
    )
    return gateway


def add_product(url: str, **fields: object) -> dict:
    response = requests.post(
        url + "/products", json={"name": "Desk Lamp", "price": "19.99", **fields}, timeout=30
    )
    assert response.status_code == 201, response.text
    product = response.json()
    assert response.headers["location"] == f"/products/{product['id']}"
    return product


def test_catalog_round_trip(api) -> None:
    product = add_product(api.url, category="lighting")
    assert product["price"] == "19.99" and product["available"] is True
    fetched = requests.get(f"{api.url}/products/{product['id']}", timeout=30)
    assert fetched.status_code == 200 and fetched.json() == product
    listing = requests.get(api.url + "/products", params={"category": "lighting"}, timeout=30)
    assert listing.status_code == 200
    assert [p["id"] for p in listing.json()["items"]] == [product["id"]]
    categories = requests.get(api.url + "/categories", timeout=30).json()["items"]
    assert {"name": "lighting", "available": 1, "total": 1} in categories


def test_purchase_once_then_409(api) -> None:
    product = add_product(api.url)
    url = f"{api.url}/products/{product['id']}/purchase"
    first = requests.post(url, json={"channel": "web"}, timeout=30)
    assert first.status_code == 200, first.text
    assert first.json()["product_id"] == product["id"]
    again = requests.post(url, json={"channel": "web"}, timeout=30)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_sold"


def test_function_errors_and_gateway_404_keep_their_shapes(api) -> None:
    assert requests.get(api.url + "/products/999999", timeout=30).status_code == 404
    bad = requests.get(api.url + "/products", params={"bogus": "1"}, timeout=30)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_failed"
    route = requests.delete(api.url + "/products/1", timeout=30)
    assert route.status_code == 404 and route.json() == {"message": "Not Found"}


def test_concurrent_purchases_of_one_item(api) -> None:
    product = add_product(api.url)
    url = f"{api.url}/products/{product['id']}/purchase"

    def buy(_: int) -> int:
        return requests.post(url, json={}, timeout=60).status_code

    with ThreadPoolExecutor(max_workers=100) as pool:
        statuses = list(pool.map(buy, range(100)))
    assert statuses.count(200) == 1
    assert statuses.count(409) == 99
