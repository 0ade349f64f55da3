"""The gateway's own HTTP/1.1 handling over raw sockets: framing, keep-alive, bad input."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest


def _connect(gateway) -> socket.socket:  # type: ignore[no-untyped-def]
    url = urlsplit(gateway.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    return sock


def _read_response(reader) -> tuple[int, dict[str, str], bytes]:  # type: ignore[no-untyped-def]
    status_line = reader.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while True:
        line = reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = reader.read(int(headers.get("content-length", "0")))
    return status, headers, body


def test_keep_alive_and_pipelined_requests_answered_in_order(shared_gateway) -> None:
    gateway, _ = shared_gateway
    with _connect(gateway) as sock, sock.makefile("rb") as reader:
        sock.sendall(
            b"GET /echo/1 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /echo/2 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
            b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        first = _read_response(reader)
        second = _read_response(reader)
        third = _read_response(reader)
        # The connection is still usable afterwards.
        sock.sendall(b"GET /echo/4 HTTP/1.1\r\nHost: x\r\n\r\n")
        fourth = _read_response(reader)
    assert json.loads(first[2])["event"]["pathParameters"] == {"id": "1"}
    second_event = json.loads(second[2])["event"]
    assert second_event["pathParameters"] == {"id": "2"} and second_event["body"] == "hi"
    assert third[0] == 404 and json.loads(third[2]) == {"message": "Not Found"}
    assert json.loads(fourth[2])["event"]["pathParameters"] == {"id": "4"}


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /echo HTTP/1.1\r\nno-colon-here\r\n\r\n",
        b"GET /echo HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET /echo HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
    ],
)
def test_malformed_requests_are_400_and_close(shared_gateway, raw: bytes) -> None:
    gateway, _ = shared_gateway
    with _connect(gateway) as sock, sock.makefile("rb") as reader:
        sock.sendall(raw)
        status, headers, body = _read_response(reader)
        assert status == 400
        assert json.loads(body) == {"message": "Bad Request"}
        assert headers["connection"] == "close"
        assert reader.read() == b""  # closed: the rest of the stream can't be trusted


def test_too_large_body_is_413_without_reading_it(shared_gateway) -> None:
    gateway, _ = shared_gateway
    with _connect(gateway) as sock, sock.makefile("rb") as reader:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n")
        status, _, body = _read_response(reader)
    assert status == 413
    assert json.loads(body) == {"message": "Request Entity Too Large"}


def test_http10_closes_unless_keep_alive_and_expect_continue(shared_gateway) -> None:
    gateway, _ = shared_gateway
    with _connect(gateway) as sock, sock.makefile("rb") as reader:
        sock.sendall(b"GET /echo HTTP/1.0\r\n\r\n")
        status, headers, _ = _read_response(reader)
        assert status == 200 and headers["connection"] == "close"
        assert reader.read() == b""
    with _connect(gateway) as sock, sock.makefile("rb") as reader:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
        )
        assert reader.readline() == b"HTTP/1.1 100 Continue\r\n"
        assert reader.readline() == b"\r\n"
        sock.sendall(b"abc")
        status, _, body = _read_response(reader)
    assert status == 200 and json.loads(body)["event"]["body"] == "abc"


def test_requests_arriving_byte_by_byte(shared_gateway) -> None:
    gateway, _ = shared_gateway
    raw = (
        b"POST /echo/1?x=1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n"
        b"GET /echo/2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    )
    with _connect(gateway) as sock, sock.makefile("rb") as reader:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(raw)):
            sock.sendall(raw[i : i + 1])
        first = _read_response(reader)
        second = _read_response(reader)
        assert reader.read() == b""
    event = json.loads(first[2])["event"]
    assert event["body"] == "abcde" and event["rawQueryString"] == "x=1"
    assert event["headers"]["host"] == "h"
    assert second[1]["connection"] == "close"
    assert json.loads(second[2])["event"]["pathParameters"] == {"id": "2"}


def test_limits_on_body_and_head(make_gateway) -> None:
    gateway, _ = make_gateway(max_body=4)
    for raw, status in (
        (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n",
            413,
        ),
        (b"GET /echo HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (b"GET /echo HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ):
        with _connect(gateway) as sock, sock.makefile("rb") as reader:
            sock.sendall(raw)
            got, headers, _ = _read_response(reader)
            assert got == status and headers["connection"] == "close"
