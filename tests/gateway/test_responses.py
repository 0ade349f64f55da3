"""Mapping function results to HTTP responses (payload 2.0), over real HTTP."""

from __future__ import annotations

import pytest
import requests

from hybridshop.gateway.responses import MappingError, map_result

from .handlers.behaviours import PNG_BYTES
from .test_events import raw_request


def test_shortcut_value_becomes_200_json(shared_gateway) -> None:
    gateway, _ = shared_gateway
    response = requests.get(gateway.url + "/b/shortcut", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"hello": "world", "n": [1, 2]}
    response = requests.get(gateway.url + "/b/string", timeout=10)
    assert response.status_code == 200
    assert response.json() == "just a string"


def test_status_headers_and_each_cookie_as_set_cookie(shared_gateway) -> None:
    gateway, _ = shared_gateway
    status, headers, body = raw_request(gateway.url, "GET", "/b/cookies", [])
    assert status == 201
    assert body == b"made"
    assert ("x-custom", "1") in headers
    assert ("content-type", "text/plain") in headers
    assert [v for k, v in headers if k.lower() == "set-cookie"] == ["a=1; Path=/", "b=2; HttpOnly"]
    assert any(k == "apigw-requestid" for k, _ in headers)


def test_base64_response_body_is_decoded(shared_gateway) -> None:
    gateway, _ = shared_gateway
    response = requests.get(gateway.url + "/b/binary", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content == PNG_BYTES


@pytest.mark.parametrize("what", ["unserialisable", "badstatus"])
def test_unmappable_result_is_500(shared_gateway, what: str) -> None:
    gateway, _ = shared_gateway
    response = requests.get(gateway.url + f"/b/{what}", timeout=10)
    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error"}


def test_empty_body_and_head(shared_gateway) -> None:
    gateway, _ = shared_gateway
    response = requests.get(gateway.url + "/b/stderr", timeout=10)
    assert response.status_code == 204 and response.content == b""
    response = requests.head(gateway.url + "/echo", timeout=10)
    assert response.status_code == 200 and response.content == b""
    assert int(response.headers["content-length"]) > 0


@pytest.mark.parametrize(
    "payload",
    [
        '{"statusCode": 200, "body": {"not": "a string"}}',
        '{"statusCode": 200, "body": "%%%", "isBase64Encoded": true}',
        '{"statusCode": 99}',
        '{"statusCode": 200, "headers": ["x"]}',
        "not json",
    ],
)
def test_map_result_rejects_malformed(payload: str) -> None:
    with pytest.raises(MappingError):
        map_result(payload)


def test_map_result_rules() -> None:
    response = map_result('{"statusCode": "201", "headers": {"n": 1, "b": true}}')
    assert response.status == 201 and response.body == b""
    assert response.headers == [("n", "1"), ("b", "true")]
    response = map_result("[1, 2]")
    assert (response.status, response.body) == (200, b"[1, 2]")
    assert response.header("Content-Type") == "application/json"
