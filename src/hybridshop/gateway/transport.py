"""HTTP/1.1 for the gateway's listeners: httptools (Node's llhttp) parses, asyncio (uvloop
when installed) moves the bytes, and this module enforces what a server must on top.

llhttp is strict by default: bare LF, whitespace before a colon, duplicate Content-Length,
Content-Length with Transfer-Encoding, bad chunk sizes and invalid header characters are
parse errors (400 + close). Added here, because no parser can decide them alone:

- RFC 9112 checks: HTTP/1.0 or 1.1 only (505), exactly one valid ``Host`` for 1.1 (400),
  ``chunked`` as the only transfer coding (501), limits on the head (431) and body (413).
- Flow control: one request of a connection is served at a time; while it is, at most one
  slice of further input is parsed and reading stops, and reading also stops while the
  output buffer is above its high-water mark. A client that never reads holds a bounded
  buffer and nothing else: never an execution environment (``runtime``).
- Timeouts, checked by one sweep for all connections: idle keep-alive, header read (from
  the first byte of a request, so trickling bytes does not extend it), body read, and a
  write timeout for a client that stops reading.
- Response framing is the server's alone: ``serialize`` writes Content-Length itself, none
  for 1xx/204/304, a head without body for HEAD; ``responses`` has already refused header
  names/values that could split the head and dropped the handler's framing headers.

The application is an async callable ``HttpRequest -> HttpResponse`` that never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import cast

import httptools

from hybridshop.gateway.events import HttpRequest
from hybridshop.gateway.responses import HttpResponse

MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 100
FEED_SLICE = 16 * 1024  # input parsed per step while a request is being served
HIGH_WATER = 16 * 1024  # output buffered per connection before we stop producing more
SEND_BUFFER = 16 * 1024  # kernel send buffer per client connection (the kernel doubles it)

App = Callable[[HttpRequest], Awaitable[HttpResponse]]
Reject = Callable[[int, str, str], HttpResponse]  # status, message, client ip -> response

# RFC 3986 host: reg-name, IPv4 or an IP-literal, then an optional port (RFC 9110 7.2).
_HOST = re.compile(
    r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]{0,5})?\Z", re.ASCII
)
_REASONS = {s.value: s.phrase for s in HTTPStatus}


@dataclass
class Limits:
    max_body: int = 10 * 1024 * 1024  # HTTP API's request payload limit
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    idle_timeout_s: float = 65.0
    write_timeout_s: float = 30.0


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


_IDLE, _HEAD, _BODY, _BUSY, _WRITE = range(5)


class _Connection(asyncio.Protocol):
    """One client connection (loop thread only)."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.ip = "-"
        self.queue: deque[tuple[HttpRequest, bool]] = deque()
        self.backlog = b""  # read but not parsed yet (flow control)
        self.busy = False
        self.closing = False
        self.write_paused = False
        self.read_paused = False
        self.phase = _IDLE
        self.deadline = 0.0
        self.in_message = False  # part of a request has been parsed
        self.in_body = False
        self._reset_message()

    def _reset_message(self) -> None:
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.head_size = 0
        self.body: list[bytes] = []
        self.body_size = 0

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport = transport
        transport.set_write_buffer_limits(high=HIGH_WATER)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                # A fixed kernel send buffer: a client that stops reading stalls after
                # ~SEND_BUFFER + HIGH_WATER bytes instead of the megabytes TCP autotuning
                # would let it queue (each answer it never reads is handler work done).
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        peer = transport.get_extra_info("peername")
        self.ip = str(peer[0]) if isinstance(peer, tuple) and peer else "-"
        self._set_phase(_HEAD)  # a new connection gets the header timeout for its first request
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.server.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        if self.backlog:
            self.backlog += data
        else:
            self.backlog = data
        self._feed()

    def pause_writing(self) -> None:
        self.write_paused = True
        self._set_phase(_WRITE)

    def resume_writing(self) -> None:
        self.write_paused = False
        if not self.busy:
            self._set_phase(_BODY if self.in_body else _HEAD if self.in_message else _IDLE)
        self._advance()

    # -- parsing -----------------------------------------------------------------------------

    def _feed(self) -> None:
        """Parse the backlog; stop (and stop reading) as soon as a request waits its turn."""
        while self.backlog and not self.closing:
            if self.queue or self.write_paused:
                break
            chunk, self.backlog = self.backlog[:FEED_SLICE], self.backlog[FEED_SLICE:]
            try:
                self.parser.feed_data(chunk)
            except httptools.HttpParserUpgrade:
                self._refuse(400, "Bad Request")  # no Upgrade / CONNECT on an HTTP API
                return
            except httptools.HttpParserError as exc:
                refused = exc.__context__
                if isinstance(refused, _Refused):
                    self._refuse(refused.status, str(refused))
                else:
                    self._refuse(400, "Bad Request")
                return
        self._update_reading()
        self._advance()

    def _update_reading(self) -> None:
        transport = self.transport
        if transport is None or self.closing:
            return
        want = not self.backlog and not self.queue and not self.write_paused
        if want and self.read_paused:
            self.read_paused = False
            transport.resume_reading()
        elif not want and not self.read_paused:
            self.read_paused = True
            transport.pause_reading()

    # httptools callbacks (raise _Refused to refuse the request)

    def on_message_begin(self) -> None:
        self._reset_message()
        self.in_message = True
        if not self.busy:
            self._set_phase(_HEAD)

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_size += len(url)
        if self.head_size > MAX_HEAD_BYTES:
            raise _Refused(414, "Request-URI Too Long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value) + 4
        if self.head_size > MAX_HEAD_BYTES or len(self.headers) >= MAX_HEADERS:
            raise _Refused(431, "Request Header Fields Too Large")
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        version = self.parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise _Refused(505, "HTTP Version Not Supported")
        hosts = [v for k, v in self.headers if k.lower() == "host"]
        if version == "1.1" and len(hosts) != 1:
            raise _Refused(400, "Bad Request")
        if hosts and (len(hosts) > 1 or not hosts[0] or not _HOST.match(hosts[0])):
            raise _Refused(400, "Bad Request")
        expect_continue = False
        for name, value in self.headers:
            lname = name.lower()
            if lname == "transfer-encoding" and value.strip().lower() != "chunked":
                raise _Refused(501, "Not Implemented")
            if lname == "content-length" and int(value) > self.server.limits.max_body:
                raise _Refused(413, "Request Entity Too Large")
            if lname == "expect" and value.strip().lower() == "100-continue":
                expect_continue = True
        self.in_body = True
        if not self.busy:
            self._set_phase(_BODY)
            if expect_continue and self.transport is not None and not self.queue:
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > self.server.limits.max_body:
            raise _Refused(413, "Request Entity Too Large")
        self.body.append(body)

    def on_message_complete(self) -> None:
        parser = self.parser
        request = HttpRequest(
            method=parser.get_method().decode("ascii"),
            target=self.url.decode("latin-1"),
            headers=self.headers,
            body=b"".join(self.body),
            source_ip=self.ip,
            protocol=f"HTTP/{parser.get_http_version()}",
            received_at=time.time(),
        )
        self.queue.append((request, parser.should_keep_alive()))
        self.in_message = self.in_body = False
        self._reset_message()

    # -- serving -----------------------------------------------------------------------------

    def _advance(self) -> None:
        """Start the next queued request when the previous answer is out of the way."""
        if self.busy or self.closing or self.write_paused:
            return
        if not self.queue:
            if self.backlog:
                self._feed()
            return
        request, keep_alive = self.queue.popleft()
        self.busy = True
        self._set_phase(_BUSY)
        self.loop.create_task(self._serve(request, keep_alive))

    async def _serve(self, request: HttpRequest, keep_alive: bool) -> None:
        try:
            await self._answer(request, keep_alive)
        except Exception as exc:  # noqa: BLE001 - a connection never hangs on our own bug
            self.server.log(f"[gateway] internal error answering a request: {exc!r}")
            self.closing = True
            if self.transport is not None:
                self.transport.abort()

    async def _answer(self, request: HttpRequest, keep_alive: bool) -> None:
        response = await self.server.app(request)
        self.busy = False
        if self.closing or self.transport is None:
            return
        if response.header("connection") == "close":
            keep_alive = False
        data = serialize(
            response,
            date=self.server.date(),
            keep_alive=keep_alive,
            http10=request.protocol == "HTTP/1.0",
            head=request.method == "HEAD",
        )
        self.transport.write(data)
        if not keep_alive:
            self.closing = True
            self.transport.close()  # after the buffered answer is written
            return
        if not self.write_paused:
            self._set_phase(_BODY if self.in_body else _HEAD if self.in_message else _IDLE)
        if self.backlog or self.queue:
            self._feed()
        else:
            self._update_reading()

    def _refuse(self, status: int, message: str) -> None:
        """Answer a request we will not serve and close: the rest of the stream is untrusted."""
        self.backlog = b""
        self.queue.clear()
        if self.transport is None or self.closing:
            return
        self.closing = True
        if self.busy:  # a pipelined request broke the stream: finish nothing more, just close
            self.transport.close()
            return
        response = self.server.reject(status, message, self.ip)
        self.transport.write(
            serialize(response, date=self.server.date(), keep_alive=False, http10=False, head=False)
        )
        self.transport.close()

    # -- timeouts ----------------------------------------------------------------------------

    def _set_phase(self, phase: int) -> None:
        limits = self.server.limits
        self.phase = phase
        if phase == _IDLE:
            self.deadline = time.monotonic() + limits.idle_timeout_s
        elif phase == _HEAD:
            self.deadline = time.monotonic() + limits.header_timeout_s
        elif phase == _BODY:
            self.deadline = time.monotonic() + limits.body_timeout_s
        elif phase == _WRITE:
            self.deadline = time.monotonic() + limits.write_timeout_s
        else:
            self.deadline = float("inf")  # a handler runs: the integration timeout bounds it

    def check_timeout(self, now: float) -> None:
        if now < self.deadline or self.closing or self.transport is None:
            return
        if self.phase in (_HEAD, _BODY) and self.in_message:
            self._refuse(408, "Request Timeout")
        elif self.phase == _WRITE:
            self.closing = True
            self.transport.abort()  # the client stopped reading: drop what it never took
        else:
            self.closing = True
            self.transport.close()


class HttpServer:
    """One listening socket served by ``app`` on ``loop``."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        app: App,
        reject: Reject,
        limits: Limits,
        log: Callable[[str], None],
    ) -> None:
        self.loop = loop
        self.log = log
        self.app = app
        self.reject = reject
        self.limits = limits
        self.connections: set[_Connection] = set()
        self.date = HttpDate()
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    async def start(self, sock: socket.socket) -> None:
        self._server = await self.loop.create_server(
            lambda: _Connection(self), sock=sock, backlog=1024
        )
        self._sweep()

    def _sweep(self) -> None:
        now = time.monotonic()
        for connection in list(self.connections):
            connection.check_timeout(now)
        limits = self.limits
        shortest = min(limits.header_timeout_s, limits.idle_timeout_s, limits.write_timeout_s)
        self._sweeper = self.loop.call_later(min(1.0, max(0.05, shortest / 8)), self._sweep)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
        self.connections.clear()


class HttpDate:
    """The ``Date`` header value, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def __call__(self) -> str:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True)
        return self._value


def serialize(
    response: HttpResponse, *, date: str, keep_alive: bool, http10: bool, head: bool
) -> bytes:
    """Status line, the (already validated) headers, our own framing, then the body."""
    status = response.status
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, '')}"]
    lines.extend(f"{k}: {v}" for k, v in response.headers)
    lines.append(f"date: {date}")
    if response.request_id:
        lines.append(f"apigw-requestid: {response.request_id}")
    bodiless = status in (204, 304) or status < 200
    if not bodiless:
        lines.append(f"content-length: {len(response.body)}")
    if not keep_alive:
        lines.append("connection: close")
    elif http10:
        lines.append("connection: keep-alive")
    head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    if bodiless or head:
        return head_bytes
    return head_bytes + response.body
