"""Keep-alive connections handed to an execution environment (``gateway.handoff``): the same
answers, timeouts and logs as when the gateway process serves every request itself."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlsplit

import pytest
import requests

from .conftest import BEHAVIOURS, ECHO
from .test_http import _read_response

INTERNAL_ERROR = {"message": "Internal Server Error"}


def _connections(gateway, name: str, expected: int) -> int:  # type: ignore[no-untyped-def]
    """Connections served by ``name``'s environments, once it reaches ``expected`` (the
    hand-off happens just after the response is written, so give it a moment)."""
    deadline = time.monotonic() + 2
    while True:
        count = int(gateway.health()["functions"][name]["connections"])
        if count == expected or time.monotonic() > deadline:
            return count
        time.sleep(0.01)


def test_connection_follows_the_function_and_comes_back_for_other_routes(make_gateway) -> None:
    gateway, _ = make_gateway(functions=(ECHO, BEHAVIOURS))
    with requests.Session() as session:
        first = session.get(gateway.url + "/echo/1").json()
        assert _connections(gateway, "Echo", 1) == 1  # the Echo environment now reads it
        second = session.get(gateway.url + "/echo/2?x=1&x=2").json()
        assert second["pid"] == first["pid"] and second["calls"] == first["calls"] + 1
        event = second["event"]
        assert event["pathParameters"] == {"id": "2"}
        assert event["queryStringParameters"] == {"x": "1,2"}
        assert event["routeKey"] == "ANY /echo/{id}"
        assert event["requestContext"]["requestId"] != first["event"]["requestContext"]["requestId"]
        # Another function's route: handed back to the gateway, then on to that function.
        assert session.get(gateway.url + "/b/shortcut").json() == {"hello": "world", "n": [1, 2]}
        assert _connections(gateway, "Echo", 0) == 0
        assert _connections(gateway, "Behaviours", 1) == 1
        missing = session.get(gateway.url + "/nowhere")
        assert missing.status_code == 404 and missing.json() == {"message": "Not Found"}
        assert session.get(gateway.url + "/echo/3").json()["event"]["pathParameters"] == {"id": "3"}
        cookies = session.get(gateway.url + "/b/cookies")
        assert cookies.status_code == 201
        assert cookies.headers["x-custom"] == "1" and cookies.text == "made"


def test_pipelined_requests_across_functions_answered_in_order(make_gateway) -> None:
    gateway, _ = make_gateway(functions=(ECHO, BEHAVIOURS))
    url = urlsplit(gateway.url)
    with (
        socket.create_connection((url.hostname, url.port), timeout=10) as sock,
        sock.makefile("rb") as reader,
    ):
        sock.sendall(b"GET /echo/1 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(reader)[0] == 200
        assert _connections(gateway, "Echo", 1) == 1
        sock.sendall(
            b"GET /echo/2 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /b/shortcut HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /echo/3 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
            b"GET /echo/4 HTTP/1.1\r\nBad Header\r\n\r\n"
        )
        answers = [_read_response(reader) for _ in range(4)]
        assert reader.read() == b""  # closed after the 400
    assert json.loads(answers[0][2])["event"]["pathParameters"] == {"id": "2"}
    assert json.loads(answers[1][2]) == {"hello": "world", "n": [1, 2]}
    assert json.loads(answers[2][2])["event"]["body"] == "hi"
    assert answers[3][0] == 400


def test_access_log_lines_for_requests_served_by_the_environment(make_gateway) -> None:
    gateway, log = make_gateway(functions=(ECHO,))
    with requests.Session() as session:
        ids = [session.get(gateway.url + "/echo/9").headers["apigw-requestid"] for _ in range(3)]
    deadline = time.time() + 5
    entries: dict[str, dict[str, object]] = {}
    while time.time() < deadline and len(entries) < 3:
        for line in log.lines:
            if line.startswith("{"):
                entry = json.loads(line)
                if entry["requestId"] in ids:
                    entries[str(entry["requestId"])] = entry
        time.sleep(0.02)
    assert set(entries) == set(ids)
    for entry in entries.values():
        assert entry["routeKey"] == "ANY /echo/{id}" and entry["status"] == 200
        assert entry["functionName"] == "Echo" and len(str(entry["awsRequestId"])) == 36


@pytest.mark.parametrize("handoff", [True, False])
def test_timeout_on_a_kept_connection_is_500_and_environment_replaced(
    make_gateway, handoff: bool
) -> None:
    gateway, log = make_gateway(functions=(BEHAVIOURS,), handoff=handoff)
    with requests.Session() as session:
        first_pid = session.get(gateway.url + "/b/pid").text
        assert _connections(gateway, "Behaviours", (1 if handoff else 0)) == (1 if handoff else 0)
        started = time.monotonic()
        response = session.get(gateway.url + "/b/sleep?s=30")
        elapsed = time.monotonic() - started
        assert response.status_code == 500 and response.json() == INTERNAL_ERROR
        assert 1.9 < elapsed < 6
        assert "Task timed out after 2.00 seconds" in log.wait_for(
            "Task timed out after 2.00 seconds"
        )
        assert session.get(gateway.url + "/b/pid").text != first_pid
        assert session.get(gateway.url + "/b/shortcut").status_code == 200


@pytest.mark.parametrize("handoff", [True, False])
def test_integration_timeout_on_a_kept_connection_is_503(make_gateway, handoff: bool) -> None:
    gateway, _ = make_gateway(functions=(BEHAVIOURS,), integration_timeout_s=0.5, handoff=handoff)
    with requests.Session() as session:
        assert session.get(gateway.url + "/b/shortcut").status_code == 200
        response = session.get(gateway.url + "/b/sleep?s=5")
        assert response.status_code == 503
        assert response.json() == {"message": "Service Unavailable"}
        assert session.get(gateway.url + "/b/shortcut").status_code == 200


def test_crash_on_a_kept_connection_is_500_and_replaced(make_gateway) -> None:
    gateway, log = make_gateway(functions=(BEHAVIOURS,))
    with requests.Session() as session:
        assert session.get(gateway.url + "/b/shortcut").status_code == 200
        response = session.get(gateway.url + "/b/exit")
        assert response.status_code == 500 and response.json() == INTERNAL_ERROR
        assert "Runtime.ExitError" in log.wait_for("Runtime.ExitError")
        boom = session.get(gateway.url + "/b/boom")
        assert boom.status_code == 500 and "Traceback" not in boom.text
        assert session.get(gateway.url + "/b/shortcut").status_code == 200


def test_one_connection_per_environment_and_others_stay_with_the_gateway(make_gateway) -> None:
    gateway, _ = make_gateway(functions=(ECHO,), concurrency=1)
    with requests.Session() as one, requests.Session() as two:
        a = one.get(gateway.url + "/echo").json()
        b = two.get(gateway.url + "/echo").json()
        c = one.get(gateway.url + "/echo").json()
        d = two.get(gateway.url + "/echo").json()
    assert a["pid"] == b["pid"] == c["pid"] == d["pid"]  # still one environment
    assert [a["calls"], b["calls"], c["calls"], d["calls"]] == [1, 2, 3, 4]
