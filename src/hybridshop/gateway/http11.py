"""A lean, incremental HTTP/1.1 request parser for the gateway's event loop.

Why not ``http.server``: its header parsing goes through ``email.parser`` and it needs a
thread per connection; together they cost more CPU per request than the Lambda handler
itself. This parser reads only what the gateway needs (request line, headers, a
Content-Length or chunked body) from a per-connection buffer and is strict where leniency
would be dangerous: anything malformed is a 400, a body over the limit a 413, and after
either the connection is closed (the rest of the stream cannot be trusted).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

MAX_HEAD_BYTES = 64 * 1024  # request line + headers (http.server allows 64 KiB lines)
MAX_HEADERS = 100  # http.server's limit too
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}\Z")
_VERSIONS = {b"HTTP/1.1": "HTTP/1.1", b"HTTP/1.0": "HTTP/1.0"}


class HttpError(Exception):
    """A request the gateway refuses before routing (status + API Gateway-style message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


BAD_REQUEST = 400, "Bad Request"
TOO_LARGE = 413, "Request Entity Too Large"
HEAD_TOO_LARGE = 431, "Request Header Fields Too Large"


@dataclass(slots=True)
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]  # arrival order, original case
    body: bytes
    keep_alive: bool


class RequestParser:
    """Feed bytes with ``feed``; take complete requests with ``next``.

    ``next`` returns None while a request is incomplete and raises HttpError on bad input.
    ``expects_continue`` is set once when a head asked for ``Expect: 100-continue`` and its
    body has not arrived yet, so the server can send the interim response.
    """

    def __init__(self, max_body: int, *, keep_raw: bool = False) -> None:
        self.buffer = bytearray()
        self.keep_raw = keep_raw  # keep the bytes of the last request (to hand them on)
        self.last_raw = b""
        self.max_body = max_body
        self.expects_continue = False
        self._head: tuple[str, str, str, list[tuple[str, str]], bool, int, bool] | None = None
        self._head_end = 0
        self._continued = False

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def pending(self) -> bool:
        """Whether any part of a next request has been read."""
        return bool(self.buffer) or self._head is not None

    def next(self) -> Request | None:
        buf = self.buffer
        if self._head is None:
            # RFC 9112 2.2: ignore empty lines before a request line.
            start = 0
            while buf.startswith(b"\r\n", start):
                start += 2
            if start:
                del buf[:start]
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD_BYTES:
                    raise HttpError(*HEAD_TOO_LARGE)
                return None
            if end > MAX_HEAD_BYTES:
                raise HttpError(*HEAD_TOO_LARGE)
            self._head = _parse_head(bytes(buf[:end]), self.max_body)
            self._head_end = end + 4
            self._continued = False
        method, target, version, headers, keep_alive, length, chunked = self._head
        start = self._head_end
        if chunked:
            parsed = _parse_chunked(buf, start, self.max_body)
            if parsed is None:
                self._maybe_continue(headers)
                return None
            body, end = parsed
        else:
            end = start + length
            if len(buf) < end:
                self._maybe_continue(headers)
                return None
            body = bytes(buf[start:end])
        if self.keep_raw:
            self.last_raw = bytes(buf[:end])
        del buf[:end]
        self._head = None
        return Request(method, target, version, headers, body, keep_alive)

    def _maybe_continue(self, headers: list[tuple[str, str]]) -> None:
        if self._continued:
            return
        self._continued = True
        if any(k.lower() == "expect" and v.lower() == "100-continue" for k, v in headers):
            self.expects_continue = True


def _parse_head(
    head: bytes, max_body: int
) -> tuple[str, str, str, list[tuple[str, str]], bool, int, bool]:
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not _TOKEN.match(parts[0]) or not parts[1]:
        raise HttpError(*BAD_REQUEST)
    version = _VERSIONS.get(parts[2])
    if version is None:
        raise HttpError(505, "HTTP Version Not Supported")
    if len(lines) - 1 > MAX_HEADERS:
        raise HttpError(*HEAD_TOO_LARGE)
    headers: list[tuple[str, str]] = []
    length = -1
    chunked = False
    connection = ""
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.match(name):  # also refuses obs-fold and "name :"
            raise HttpError(*BAD_REQUEST)
        value = value.strip(b" \t")
        if b"\r" in value or b"\n" in value or b"\0" in value:
            raise HttpError(*BAD_REQUEST)
        key = name.lower()
        if key == b"content-length":
            if not value.isdigit() or len(value) > 18:
                raise HttpError(*BAD_REQUEST)
            n = int(value)
            if length not in (-1, n):
                raise HttpError(*BAD_REQUEST)  # differing lengths: a smuggling attempt
            length = n
        elif key == b"transfer-encoding":
            if value.lower() != b"chunked" or chunked:
                raise HttpError(501, "Not Implemented")
            chunked = True
        elif key == b"connection":
            connection = value.decode("latin-1").lower()
        headers.append((name.decode("latin-1"), value.decode("latin-1")))
    if chunked and length >= 0:
        raise HttpError(*BAD_REQUEST)  # both framings: refuse rather than guess
    if length > max_body:
        raise HttpError(*TOO_LARGE)
    tokens = {t.strip() for t in connection.split(",")}
    keep_alive = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
    method = parts[0].decode("ascii")
    target = parts[1].decode("latin-1")
    return method, target, version, headers, keep_alive, max(length, 0), chunked


def _parse_chunked(buf: bytearray, start: int, limit: int) -> tuple[bytes, int] | None:
    """The decoded body and the end offset, or None when more bytes are needed."""
    chunks: list[bytes] = []
    total = 0
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            if len(buf) - pos > 1024:
                raise HttpError(*BAD_REQUEST)
            return None
        size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip(b" \t")
        if not _HEX.match(size_text):
            raise HttpError(*BAD_REQUEST)
        size = int(size_text, 16)
        pos = eol + 2
        if size == 0:
            # Trailers (ignored, as API Gateway does) up to an empty line.
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if len(buf) - pos > MAX_HEAD_BYTES:
                        raise HttpError(*HEAD_TOO_LARGE)
                    return None
                if eol == pos:
                    return b"".join(chunks), eol + 2
                pos = eol + 2
        total += size
        if total > limit:
            raise HttpError(*TOO_LARGE)
        if len(buf) < pos + size + 2:
            return None
        if buf[pos + size : pos + size + 2] != b"\r\n":
            raise HttpError(*BAD_REQUEST)
        chunks.append(bytes(buf[pos : pos + size]))
        pos += size + 2


_PHRASES = {s.value: s.phrase for s in HTTPStatus}


class HttpDate:
    """The ``date`` header value, formatted once per second rather than per response."""

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def __call__(self) -> str:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True)
        return self._value


def serialize_response(
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    request_id: str,
    date: str,
    close: bool,
    http10_keep_alive: bool = False,
    head_only: bool = False,
) -> bytes:
    """Status line, headers (plus date, content-length, ``apigw-requestid``) and body."""
    lines = [f"HTTP/1.1 {status} {_PHRASES.get(status, '')}"]
    lines.extend(f"{k}: {v}" for k, v in headers if k.lower() != "content-length")
    lines.append(f"date: {date}")
    lines.append(f"content-length: {len(body)}")
    lines.append(f"apigw-requestid: {request_id}")
    if close:
        lines.append("connection: close")
    elif http10_keep_alive:
        lines.append("connection: keep-alive")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
    return head if head_only else head + body
