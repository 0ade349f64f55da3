"""The simulator's HTTP/1.1 client against a real HTTP server on loopback (the standard
library's, in HTTP/1.1 mode): one kept connection for many requests, a new one when the server
closed it, ``Connection: close``, chunked bodies, timeouts and transport failures as short
reasons, never a traceback."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from hybridshop.simulate.client import HttpClient, SimulationAborted, StaticToken, TokenProvider


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *_: Any) -> None:  # quiet
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append(
            {
                "peer": self.client_address[1],
                "method": self.command,
                "path": self.path,
                "body": body,
                "authorization": self.headers.get("Authorization"),
                "key": self.headers.get("Idempotency-Key"),
            }
        )
        if self.path == "/slow":
            self.server.release.wait(10)
        payload = json.dumps({"path": self.path, "items": []}).encode()
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            for i in range(0, len(payload), 5):
                part = payload[i : i + 5]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_response(409 if self.path == "/conflict" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Idempotent-Replayed", "true")
        if self.path == "/close":
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)
        if self.path == "/drop-after":
            # the server forgets the connection after answering, without saying so
            self.close_connection = True

    do_GET = _answer
    do_POST = _answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[dict[str, Any]] = []
        self.release = threading.Event()


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.release.set()
        srv.shutdown()
        srv.server_close()


def _client(srv: _Server, **kw: Any) -> HttpClient:
    return HttpClient(f"http://127.0.0.1:{srv.server_address[1]}", TokenProvider(), **kw)


def test_one_connection_for_many_requests(server: _Server) -> None:
    client = _client(server)
    try:
        for i in range(20):
            answer = client.send("GET", "/products", query={"limit": "24", "n": str(i)})
            assert answer.status == 200 and answer.body["path"].startswith("/products?limit=24")
        answer = client.send(
            "POST",
            "/products/1/purchase",
            body={"channel": "web"},
            headers={"Idempotency-Key": "k"},
        )
        assert answer.status == 200 and answer.headers["idempotent-replayed"] == "true"
    finally:
        client.close()
    assert len({s["peer"] for s in server.seen}) == 1
    assert server.seen[-1]["body"] == b'{"channel":"web"}' and server.seen[-1]["key"] == "k"


def test_a_closed_connection_is_opened_again(server: _Server) -> None:
    client = _client(server)
    try:
        for path in ("/close", "/a", "/drop-after", "/b", "/chunked", "/c", "/conflict"):
            answer = client.send("GET", path)
            assert answer.status in (200, 409) and answer.error is None, (path, answer.error)
            assert answer.body == {"path": path, "items": []}
    finally:
        client.close()
    peers = [s["peer"] for s in server.seen]
    # a new connection after each close; the chunked answer kept its connection
    assert peers[0] != peers[1] and peers[2] != peers[3]
    assert peers[3] == peers[4] == peers[5] == peers[6]


def test_bearer_token_and_no_header_injection(server: _Server) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}"
    client = HttpClient(url, StaticToken("abc.def.ghi"))
    try:
        assert client.send("GET", "/x").status == 200
        assert server.seen[-1]["authorization"] == "Bearer abc.def.ghi"
        with pytest.raises(SimulationAborted, match="line break"):
            client.send("GET", "/x", headers={"Idempotency-Key": "a\r\nX-Evil: 1"})
    finally:
        client.close()


def test_transport_failures_are_short_reasons(server: _Server) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    refused = HttpClient(f"http://127.0.0.1:{closed_port}", TokenProvider()).send("GET", "/")
    assert (refused.status, refused.error) == (0, "connection refused")
    slow = _client(server, read_timeout_s=0.3)
    try:
        answer = slow.send("GET", "/slow")
        assert (answer.status, answer.error) == (0, "timeout")
    finally:
        server.release.set()
        slow.close()
    # a listener that closes without answering
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def hang_up() -> None:
            conn, _ = listener.accept()
            conn.recv(1024)
            conn.close()

        thread = threading.Thread(target=hang_up, daemon=True)
        thread.start()
        port = listener.getsockname()[1]
        answer = HttpClient(f"http://127.0.0.1:{port}", TokenProvider()).send("GET", "/")
        thread.join(5)
    assert (answer.status, answer.error) in ((0, "connection closed"), (0, "connection reset"))
