"""The gateway under hostile clients, over raw sockets on loopback, each bounded in time.

One test per defect an adversarial review reproduced against the hand-written HTTP layer:
slow readers holding execution environments, unbounded memory from pipelining clients that
never read, response header splitting and broken framing from handler results, quadratic
chunked parsing, loose request checks and missing header-read timeout, and the local token
issuer reachable on the API's own listener.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from urllib.parse import urlsplit

import pytest

from hybridshop.gateway.authorizer import JwtAuthorizerConfig

from .conftest import BEHAVIOURS, ECHO

PROBE_LIMIT_S = 2.0  # generous for a shared 2-core machine; `bench api` measures the real figure


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


@contextmanager
def _socket(url: str, *, rcvbuf: int | None = None, timeout: float = 10) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:  # a tiny receive window: the server's writes block quickly
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect(_address(url))
    try:
        yield sock
    finally:
        sock.close()


def _read_head_and_body(
    sock: socket.socket, *, head: bool = False
) -> tuple[int, dict[str, str], bytes, bytes]:
    """One response: status, headers (lowercased; repeated names joined by ', '), body, and
    whatever bytes followed it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a full head: {data!r}")
        data += chunk
    raw_head, _, rest = data.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    length = 0 if head or status in (204, 304) else int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:length], rest[length:]


def _closed_by_peer(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        while True:
            if sock.recv(65536) == b"":
                return True
    except TimeoutError:
        return False
    except OSError:
        return True  # reset


def _probe(url: str, path: str = "/echo/probe") -> float:
    """Seconds a fresh connection waits for a 200 answer."""
    started = time.monotonic()
    with _socket(url, timeout=PROBE_LIMIT_S + 5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        status, _, _, _ = _read_head_and_body(sock)
    assert status == 200
    return time.monotonic() - started


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


# -- slow readers and pipelining non-readers ---------------------------------------------------


def test_slow_readers_never_hold_an_execution_environment(make_gateway) -> None:
    """8 connections that pipeline 400 requests each and never read the answers, against 4
    environments: a new client is still answered at once (an environment is busy only while
    its handler runs, never while a response waits for a slow client)."""
    gateway, _ = make_gateway(functions=(BEHAVIOURS,), concurrency=4)
    attackers = []
    try:
        for _ in range(8):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(10)
            sock.connect(_address(gateway.url))
            sock.sendall(b"GET /b/shortcut HTTP/1.1\r\nHost: x\r\n\r\n")
            _read_head_and_body(sock)
            sock.setblocking(False)
            pipelined = b"GET /b/big HTTP/1.1\r\nHost: x\r\n\r\n" * 400
            with suppress(BlockingIOError):
                sock.send(pipelined)
            attackers.append(sock)
        time.sleep(1.0)  # let the gateway fill every attacker's window
        waits = [_probe(gateway.url, "/b/shortcut") for _ in range(3)]
    finally:
        for sock in attackers:
            sock.close()
    assert max(waits) < PROBE_LIMIT_S, waits


def test_pipelining_clients_that_never_read_use_bounded_memory(make_gateway) -> None:
    """10 connections each pipeline ~120 KB of requests for a 16 KB answer and never read:
    the gateway stops reading a connection while its answers are unsent and keeps at most a
    bounded output buffer, so its memory stays flat and other clients are served."""
    gateway, _ = make_gateway(functions=(BEHAVIOURS, ECHO), concurrency=4)
    _probe(gateway.url)
    before = _rss_mb()
    request = b"GET /b/big HTTP/1.1\r\nHost: x\r\n\r\n"
    attackers = []
    peak = before
    try:
        for _ in range(10):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(_address(gateway.url))
            sock.setblocking(False)
            attackers.append((sock, request * (120_000 // len(request))))
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            for i, (sock, pending) in enumerate(attackers):
                if pending:
                    try:
                        sent = sock.send(pending)
                    except BlockingIOError:
                        sent = 0
                    attackers[i] = (sock, pending[sent:])
            peak = max(peak, _rss_mb())
            time.sleep(0.05)
        wait = _probe(gateway.url)
        peak = max(peak, _rss_mb())
    finally:
        for sock, _ in attackers:
            sock.close()
    assert peak - before < 60, f"gateway memory grew from {before:.0f} MB to {peak:.0f} MB"
    assert wait < PROBE_LIMIT_S


# -- what handlers return cannot break HTTP framing --------------------------------------------


def _get(url: str, path: str, *, method: str = "GET") -> tuple[int, dict[str, str], bytes, bytes]:
    with _socket(url) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        return _read_head_and_body(sock, head=method == "HEAD")


def test_handler_header_with_crlf_is_never_a_second_header(shared_gateway) -> None:
    gateway, _ = shared_gateway
    status, headers, body, _ = _get(gateway.url, "/b/crlf")
    assert "x-injected" not in headers
    assert status == 500 and json.loads(body) == {"message": "Internal Server Error"}
    status, headers, _, _ = _get(gateway.url, "/b/badname")
    assert status == 500 and "bad name" not in headers


def test_handler_framing_headers_are_the_gateways_own(shared_gateway) -> None:
    """A handler's transfer-encoding / content-length / connection never reach the wire: the
    gateway frames every response itself, so keep-alive stays in sync."""
    gateway, _ = shared_gateway
    with _socket(gateway.url) as sock:
        sock.sendall(
            b"GET /b/framing HTTP/1.1\r\nHost: x\r\n\r\nGET /echo/2 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        status, headers, body, rest = _read_head_and_body(sock)
        assert status == 200 and body == b"framed"
        assert "transfer-encoding" not in headers
        assert headers["content-length"] == "6" and headers.get("connection") != "close"
        data = rest
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        assert data.startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("what", ["nocontent", "notmodified"])
def test_204_and_304_never_carry_a_body(shared_gateway, what: str) -> None:
    gateway, _ = shared_gateway
    with _socket(gateway.url) as sock:
        sock.sendall(f"GET /b/{what} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        sock.sendall(b"GET /echo/2 HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _, rest = _read_head_and_body(sock)
        assert status in (204, 304)
        assert "content-length" not in headers and "transfer-encoding" not in headers
        data = rest
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        # The next bytes on the connection are the next response, not the stray body.
        assert data.startswith(b"HTTP/1.1 200 "), data[:60]


def test_head_has_length_but_no_body_and_1xx_results_are_500(shared_gateway) -> None:
    gateway, _ = shared_gateway
    with _socket(gateway.url) as sock:
        sock.sendall(
            b"HEAD /b/big HTTP/1.1\r\nHost: x\r\n\r\nGET /b/shortcut HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        status, headers, _, rest = _read_head_and_body(sock, head=True)
        assert status == 200 and headers["content-length"] == str(16 * 1024)
        while b"\r\n\r\n" not in rest:
            rest += sock.recv(65536)
        assert rest.startswith(b"HTTP/1.1 200 ")
    status, _, body, _ = _get(gateway.url, "/b/informational")
    assert status == 500 and json.loads(body) == {"message": "Internal Server Error"}


# -- request parsing -------------------------------------------------------------------------


def test_chunked_body_of_one_byte_chunks_is_linear_and_stalls_nobody(shared_gateway) -> None:
    gateway, _ = shared_gateway
    chunks = b"1\r\na\r\n" * 400_000  # 2.4 MB on the wire
    result: dict[str, object] = {}

    def upload() -> None:
        started = time.monotonic()
        with _socket(gateway.url, timeout=30) as sock:
            sock.sendall(
                b"POST /echo/1 HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
            )
            status, _, body, _ = _read_head_and_body(sock)
        result["status"] = status
        result["length"] = len(json.loads(body)["event"]["body"])
        result["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=upload)
    thread.start()
    time.sleep(0.05)
    wait = _probe(gateway.url)
    thread.join(30)
    assert result["status"] == 200 and result["length"] == 400_000
    assert result["seconds"] < 5, result
    assert wait < PROBE_LIMIT_S


@pytest.mark.parametrize(
    "head",
    [
        b"GET /echo/1 HTTP/1.1\r\n\r\n",  # no Host
        b"GET /echo/1 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",  # two
        b"GET /echo/1 HTTP/1.1\r\nHost: a b/c\r\n\r\n",  # not a host
        b"GET /echo/1 HTTP/1.1\r\nHost: \r\n\r\n",
        b"GET /echo/1 HTTP/2.0\r\nHost: x\r\n\r\n",
        b"POST /echo/1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    ],
)
def test_requests_breaking_rfc_9112_are_refused_and_closed(shared_gateway, head: bytes) -> None:
    gateway, _ = shared_gateway
    with _socket(gateway.url) as sock:
        sock.sendall(head)
        status, headers, _, _ = _read_head_and_body(sock)
        assert status in (400, 501, 505)
        assert headers["connection"] == "close"
        assert _closed_by_peer(sock, 2.0)


def test_valid_hosts_and_http10_without_host_are_served(shared_gateway) -> None:
    gateway, _ = shared_gateway
    for host in ("x", "127.0.0.1:3000", "[::1]:80", "api.example.com"):
        with _socket(gateway.url) as sock:
            sock.sendall(f"GET /echo/1 HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            assert _read_head_and_body(sock)[0] == 200, host
    with _socket(gateway.url) as sock:
        sock.sendall(b"GET /echo/1 HTTP/1.0\r\n\r\n")
        assert _read_head_and_body(sock)[0] == 200


def test_bare_lf_request_is_answered_400_at_once(shared_gateway) -> None:
    gateway, _ = shared_gateway
    with _socket(gateway.url, timeout=3) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /echo/1 HTTP/1.1\nHost: x\n\n")
        status, headers, _, _ = _read_head_and_body(sock)
        assert status == 400 and headers["connection"] == "close"
        assert _closed_by_peer(sock, 2.0)
        assert time.monotonic() - started < 3


def test_header_read_timeout_even_for_a_trickling_client(make_gateway) -> None:
    gateway, _ = make_gateway(functions=(ECHO,), header_timeout_s=1.0)
    with _socket(gateway.url, timeout=6) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /echo/1 HTTP/1.1\r\nHost: x\r\n")
        for _ in range(12):  # one byte every 0.25 s keeps it "active", never complete
            try:
                sock.sendall(b"X")
            except OSError:
                break
            time.sleep(0.25)
        status, headers, _, _ = _read_head_and_body(sock)
        assert status == 408 and headers["connection"] == "close"
        assert time.monotonic() - started < 2.5
    with _socket(gateway.url, timeout=6) as sock:  # a silent connection is closed too
        assert _closed_by_peer(sock, 4.0)


def test_idle_keep_alive_connections_are_closed(make_gateway) -> None:
    gateway, _ = make_gateway(functions=(ECHO,), idle_timeout_s=1.0)
    with _socket(gateway.url) as sock:
        sock.sendall(b"GET /echo/1 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_head_and_body(sock)[0] == 200
        assert _closed_by_peer(sock, 3.0)


# -- the local token issuer is not part of the API ---------------------------------------------


def test_token_issuer_is_not_on_the_api_listener(make_gateway) -> None:
    gateway, _ = make_gateway(
        functions=(ECHO,), authorizer=JwtAuthorizerConfig.local(), local_issuer=True
    )
    identity = (
        "/_local/metadata/computeMetadata/v1/instance/service-accounts/default/identity"
        "?audience=hybridshop-api"
    )
    with _socket(gateway.url) as sock:
        sock.sendall(
            f"GET {identity} HTTP/1.1\r\nHost: x\r\nMetadata-Flavor: Google\r\n\r\n".encode()
        )
        status, _, body, _ = _read_head_and_body(sock)
    assert status == 404 and not re.search(rb"ey[A-Za-z0-9_-]+\.", body)
    # The issuer has a listener of its own, on loopback, on another port.
    assert gateway.issuer is not None
    issuer_host, issuer_port = _address(gateway.issuer.issuer_url)
    assert issuer_host == "127.0.0.1" and issuer_port != gateway.port
