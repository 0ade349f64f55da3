"""The payload-2.0 event the functions receive, checked over real HTTP against AWS's shape.

The reference structure is AWS's documented example event (also Powertools'
``tests/events/apiGatewayProxyV2Event.json``): the same keys, and no key with a null value.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import time
from typing import Any
from urllib.parse import urlsplit

import requests

from hybridshop.gateway.events import HttpRequest, build_event, format_request_time

# Key structure of AWS's example 2.0 event (optional keys listed separately).
AWS_TOP_LEVEL = {
    "version",
    "routeKey",
    "rawPath",
    "rawQueryString",
    "headers",
    "requestContext",
    "isBase64Encoded",
}
AWS_OPTIONAL_TOP_LEVEL = {
    "cookies",
    "queryStringParameters",
    "pathParameters",
    "body",
    "stageVariables",
}
AWS_REQUEST_CONTEXT = {
    "accountId",
    "apiId",
    "domainName",
    "domainPrefix",
    "http",
    "requestId",
    "routeKey",
    "stage",
    "time",
    "timeEpoch",
}
AWS_HTTP = {"method", "path", "protocol", "sourceIp", "userAgent"}


def raw_request(
    url: str, method: str, target: str, headers: list[tuple[str, str]], body: bytes | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Send a request with exact (repeated) headers, which requests cannot do."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


def echo_event(
    url: str, method: str, target: str, headers: list[tuple[str, str]], body: bytes | None = None
) -> dict[str, Any]:
    status, _, payload = raw_request(url, method, target, headers, body)
    assert status == 200, payload
    return json.loads(payload)["event"]


def assert_no_nulls(value: Any, where: str = "event") -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            assert item is not None, f"{where}.{key} is null"
            assert_no_nulls(item, f"{where}.{key}")


def test_event_has_aws_shape_and_no_nulls(shared_gateway) -> None:
    gateway, _ = shared_gateway
    event = echo_event(gateway.url, "GET", "/echo/42?a=1", [("User-Agent", "probe/1.0")])
    assert AWS_TOP_LEVEL <= set(event) <= AWS_TOP_LEVEL | AWS_OPTIONAL_TOP_LEVEL
    ctx = event["requestContext"]
    assert set(ctx) == AWS_REQUEST_CONTEXT  # no authorizer without a JWT authorizer
    assert set(ctx["http"]) == AWS_HTTP
    assert_no_nulls(event)
    assert event["version"] == "2.0"
    assert event["routeKey"] == ctx["routeKey"] == "ANY /echo/{id}"
    assert event["rawPath"] == ctx["http"]["path"] == "/echo/42"
    assert event["rawQueryString"] == "a=1"
    assert event["pathParameters"] == {"id": "42"}
    assert ctx["stage"] == "$default"
    assert ctx["http"] == {
        "method": "GET",
        "path": "/echo/42",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "probe/1.0",
    }
    assert re.fullmatch(r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000", ctx["time"])
    assert abs(ctx["timeEpoch"] / 1000 - time.time()) < 30
    assert ctx["domainName"] == "127.0.0.1"
    assert ctx["domainPrefix"] == "127"
    assert event["isBase64Encoded"] is False


def test_absent_values_are_omitted_not_null(shared_gateway) -> None:
    gateway, _ = shared_gateway
    event = echo_event(gateway.url, "GET", "/echo", [])
    for key in ("cookies", "queryStringParameters", "pathParameters", "body", "stageVariables"):
        assert key not in event, key
    assert "authorizer" not in event["requestContext"]
    assert event["rawQueryString"] == ""


def test_headers_lowercased_repeats_joined_cookies_moved(shared_gateway) -> None:
    gateway, _ = shared_gateway
    event = echo_event(
        gateway.url,
        "GET",
        "/echo/1",
        [
            ("X-Mixed-Case", "one"),
            ("X-Repeat", "a"),
            ("x-repeat", "b"),
            ("Cookie", "session=abc; theme=dark"),
            ("Cookie", "lang=en"),
        ],
    )
    headers = event["headers"]
    assert all(name == name.lower() for name in headers)
    assert headers["x-mixed-case"] == "one"
    assert headers["x-repeat"] == "a,b"
    assert "cookie" not in headers
    assert event["cookies"] == ["session=abc", "theme=dark", "lang=en"]
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-port"] == str(gateway.port)
    assert headers["x-amzn-trace-id"].startswith("Root=1-")


def test_query_parameters_decoded_and_repeats_joined(shared_gateway) -> None:
    gateway, _ = shared_gateway
    event = echo_event(gateway.url, "GET", "/echo/1?tag=a&tag=b&q=caf%C3%A9+au+lait&empty=", [])
    assert event["rawQueryString"] == "tag=a&tag=b&q=caf%C3%A9+au+lait&empty="
    assert event["queryStringParameters"] == {"tag": "a,b", "q": "café au lait", "empty": ""}


def test_path_parameters_from_route_template(shared_gateway) -> None:
    gateway, _ = shared_gateway
    event = echo_event(gateway.url, "GET", "/echo/7/items/caf%C3%A9", [])
    assert event["routeKey"] == "GET /echo/{id}/items/{item}"
    assert event["pathParameters"] == {"id": "7", "item": "café"}
    event = echo_event(gateway.url, "GET", "/files/a/b/c.txt", [])
    assert event["routeKey"] == "GET /files/{path+}"
    assert event["pathParameters"] == {"path": "a/b/c.txt"}


def test_request_ids_unique_and_returned_in_header(shared_gateway) -> None:
    gateway, _ = shared_gateway
    seen = set()
    with requests.Session() as session:
        for _ in range(5):
            response = session.get(gateway.url + "/echo")
            rid = response.json()["event"]["requestContext"]["requestId"]
            assert response.headers["apigw-requestid"] == rid
            seen.add(rid)
    assert len(seen) == 5


def test_text_body_passed_as_is(shared_gateway) -> None:
    gateway, _ = shared_gateway
    body = json.dumps({"name": "Lamp", "price": "19.99"}).encode()
    event = echo_event(gateway.url, "POST", "/echo", [("Content-Type", "application/json")], body)
    assert event["body"] == body.decode()
    assert event["isBase64Encoded"] is False
    assert event["headers"]["content-type"] == "application/json"


def test_binary_body_base64_encoded(shared_gateway) -> None:
    gateway, _ = shared_gateway
    body = bytes(range(256))
    event = echo_event(gateway.url, "PUT", "/echo/1", [("Content-Type", "image/png")], body)
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body
    # Text content type but bytes that are not UTF-8: still base64, never mangled.
    event = echo_event(gateway.url, "POST", "/echo", [("Content-Type", "text/plain")], b"\xff\xfe")
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\xfe"


def test_chunked_request_body(shared_gateway) -> None:
    gateway, _ = shared_gateway
    response = requests.post(
        gateway.url + "/echo",
        data=iter([b"hello ", b"world"]),
        headers={"Content-Type": "text/plain"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["event"]["body"] == "hello world"


def test_unknown_route_and_wrong_method_are_gateway_404(shared_gateway) -> None:
    gateway, _log = shared_gateway
    for method, path in (
        ("GET", "/nope"),
        ("DELETE", "/b"),
        ("GET", "/echo/1/items"),
        ("POST", "/echo/1/items/2"),
    ):
        response = requests.request(method, gateway.url + path, timeout=10)
        assert response.status_code == 404, path
        assert response.json() == {"message": "Not Found"}
        assert response.headers["apigw-requestid"]


def test_build_event_time_format_and_authorizer_block() -> None:
    request = HttpRequest(
        method="GET", target="/x", headers=[("Host", "api.example.com")], received_at=1583348638.390
    )
    event = build_event(
        request,
        route_key="GET /x",
        path_parameters={},
        request_id="id",
        authorizer={"jwt": {"claims": {"sub": "1"}, "scopes": ["a"]}},
    )
    ctx = event["requestContext"]
    assert format_request_time(1583348638.390) == "04/Mar/2020:19:03:58 +0000"
    assert ctx["time"] == "04/Mar/2020:19:03:58 +0000"
    assert ctx["timeEpoch"] == 1583348638390
    assert ctx["authorizer"] == {"jwt": {"claims": {"sub": "1"}, "scopes": ["a"]}}
    assert ctx["domainName"] == "api.example.com"
    assert ctx["domainPrefix"] == "api"
