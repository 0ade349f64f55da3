"""The simulator's side of the public HTTP API: one keep-alive connection per worker,
bearer tokens from wherever the shop would get them, and the checks that turn a wrong URL, an
unreachable API or a refused token into one line that says what to do.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import select
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httptools
import requests

from hybridshop.settings import local_metadata_url
from hybridshop.web.tokens import IdTokenSource, TokenError

GOOGLE_METADATA_URL = "http://metadata.google.internal"
USER_AGENT = "hybridshop-simulate/1"


class SimulationAborted(RuntimeError):
    """The simulation cannot start or go on; the message is one line saying what to do."""


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TokenProvider:
    """Where the bearer token comes from; ``refresh`` says whether a new one may help."""

    description = "no token"

    def token(self) -> str | None:
        return None

    def refresh(self) -> bool:
        return False


class StaticToken(TokenProvider):
    description = "--token"

    def __init__(self, token: str) -> None:
        self._token = token.strip()

    def token(self) -> str | None:
        return self._token


class MetadataToken(TokenProvider):
    """Google's metadata server (on GCP) or the local gateway's stand-in for it."""

    def __init__(self, metadata_url: str, audience: str, description: str) -> None:
        self._source = IdTokenSource(metadata_url, audience)
        self.description = description

    def token(self) -> str | None:
        try:
            return self._source.token()
        except TokenError as exc:
            raise SimulationAborted(f"cannot get an identity token: {exc}") from None

    def refresh(self) -> bool:
        self._source.invalidate()
        return True


class GcloudToken(TokenProvider):
    """``gcloud auth print-identity-token`` (a developer's own Google identity)."""

    description = "gcloud auth print-identity-token"
    LIFETIME_S = 50 * 60  # Google ID tokens live an hour

    def __init__(self, audience: str | None) -> None:
        self._audience = audience
        self._lock = threading.Lock()
        self._token: str | None = None
        self._fetched = 0.0

    def _fetch(self) -> str:
        command = ["gcloud", "auth", "print-identity-token"]
        if self._audience:
            command.append(f"--audiences={self._audience}")
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        if result.returncode != 0 and self._audience:
            # user accounts cannot choose an audience; try the plain token
            result = subprocess.run(
                command[:3], capture_output=True, text=True, timeout=30, check=False
            )
        if result.returncode != 0 or not result.stdout.strip():
            message = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise SimulationAborted(f"gcloud auth print-identity-token failed: {message}")
        return result.stdout.strip()

    def token(self) -> str | None:
        with self._lock:
            if self._token is None or time.monotonic() - self._fetched > self.LIFETIME_S:
                self._token = self._fetch()
                self._fetched = time.monotonic()
            return self._token

    def refresh(self) -> bool:
        with self._lock:
            self._token = None
        return True


def _metadata_server_reachable(url: str) -> bool:
    try:
        resp = requests.get(url, headers={"Metadata-Flavor": "Google"}, timeout=0.5)
    except requests.RequestException:
        return False
    return resp.headers.get("Metadata-Flavor") == "Google"


def resolve_tokens(api_url: str, token: str | None, audience: str) -> TokenProvider:
    """The token source for ``api_url``: ``--token``; the local gateway's issuer for a local
    API (used only if the API asks for a token); Google's metadata server or gcloud otherwise."""
    if token:
        return StaticToken(token)
    if is_loopback_url(api_url):
        # the gateway's issuer has its own loopback listener (127.0.0.1:3001 by default)
        return MetadataToken(
            os.environ.get("METADATA_SERVER_URL") or local_metadata_url(),
            audience,
            "the local gateway's issuer",
        )
    metadata = os.environ.get("METADATA_SERVER_URL") or GOOGLE_METADATA_URL
    if _metadata_server_reachable(metadata):
        return MetadataToken(metadata, audience, "Google's metadata server")
    if shutil.which("gcloud"):
        return GcloudToken(audience)
    return TokenProvider()


@dataclass
class Answer:
    status: int  # 0: no answer (connection error or timeout)
    body: Any  # parsed JSON, or None
    headers: Mapping[str, str]
    ms: float
    error: str | None = None  # transport failure name when status == 0

    @property
    def code(self) -> str:
        """The API's error code ("already_sold"), "ok", or the transport failure."""
        if self.status == 0:
            return self.error or "no_answer"
        if self.status < 400:
            return "ok"
        err = self.body.get("error") if isinstance(self.body, dict) else None
        if isinstance(err, dict) and err.get("code"):
            return str(err["code"])
        return str(self.status)


class _Response:
    """httptools' callbacks for one response: status line, headers (names lowercased), body."""

    __slots__ = ("body", "complete", "headers", "headers_done", "keep_alive", "parser")

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.complete = False
        self.headers_done = False
        self.keep_alive = False
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.headers_done = True
        # asked here: once the message is complete the parser is reset for the next one
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


class ConnectionClosed(ConnectionError):
    """The API closed the connection before its answer was complete."""


class HttpClient:
    """One worker's keep-alive HTTP/1.1 connection to the API.

    A socket and httptools (Node's llhttp, the parser the gateway and uvicorn use) for the
    answers; TLS from the standard library for https. One request in flight, the connection
    kept between requests and opened again when the API closed it while idle. Measured against
    urllib3 on loopback this is a fraction of the client CPU per request (no header objects,
    no email-module header parsing), and the simulator must never be what limits the rate.
    """

    def __init__(
        self,
        base_url: str,
        tokens: TokenProvider,
        *,
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 15.0,
        use_token: bool = True,
    ) -> None:
        parts = urlsplit(base_url)
        self.base_url = base_url.rstrip("/")
        self.prefix = parts.path.rstrip("/")
        self.tokens = tokens
        self.use_token = use_token
        self.host = parts.hostname or ""
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        host = f"[{self.host}]" if ":" in self.host else self.host
        default_port = self.port == (443 if self.tls else 80)
        authority = host if default_port else f"{host}:{self.port}"
        self._head = (
            f"Host: {authority}\r\nUser-Agent: {USER_AGENT}\r\nAccept: application/json\r\n"
        )
        self._sock: socket.socket | None = None
        self._poll: select.poll | None = None
        self._tls_context = ssl.create_default_context() if self.tls else None

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout_s)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls_context is not None:
                sock = self._tls_context.wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(self.read_timeout_s)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)
        return sock

    def _idle_socket(self) -> socket.socket:
        """The kept connection, or a new one if there is none or the API closed it while idle."""
        sock = self._sock
        # readable while idle: closed by the other side, or (TLS) a record with no data for
        # us, such as a TLS 1.3 session ticket
        readable = sock is not None and self._poll is not None and bool(self._poll.poll(0))
        if sock is not None and readable and not self._still_open(sock):
            self.close()
            sock = None
        return sock if sock is not None else self._connect()

    def _still_open(self, sock: socket.socket) -> bool:
        sock.setblocking(False)
        try:
            sock.recv(1)  # EOF, or bytes nobody asked for: either way not reusable
            return False
        except (BlockingIOError, ssl.SSLWantReadError):
            return True
        except OSError:
            return False
        finally:
            with contextlib.suppress(OSError):
                sock.settimeout(self.read_timeout_s)

    def send(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        target = self.prefix + path + ("?" + urlencode(query) if query else "")
        head = [method, " ", target, " HTTP/1.1\r\n", self._head]
        if headers:
            for name, value in headers.items():
                head += (name, ": ", value, "\r\n")
        dynamic = [target, *headers.values()] if headers else [target]
        data = b""
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            head.append("Content-Type: application/json\r\n")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            head.append(f"Content-Length: {len(data)}\r\n")
        if self.use_token:
            token = self.tokens.token()
            if token:
                head += ("Authorization: Bearer ", token, "\r\n")
                dynamic.append(token)
        head.append("\r\n")
        if any("\r" in v or "\n" in v for v in dynamic):
            raise SimulationAborted("a header value holds a line break (is --token one line?)")
        request = "".join(head).encode("latin-1") + data
        started = time.perf_counter()
        try:
            sock = self._idle_socket()
            sock.sendall(request)
            response = _Response()
            parser = response.parser
            while not response.complete:
                chunk = sock.recv(65536)
                if not chunk:
                    if response.headers_done and "content-length" not in response.headers:
                        break  # a body that ends with the connection
                    raise ConnectionClosed("RemoteDisconnected: the API closed the connection")
                parser.feed_data(chunk)
            status = parser.get_status_code()
            if not response.complete or not response.keep_alive:
                self.close()
        except (OSError, httptools.HttpParserError, UnicodeError) as exc:
            self.close()
            return Answer(0, None, {}, (time.perf_counter() - started) * 1000, _reason(exc))
        ms = (time.perf_counter() - started) * 1000
        parsed: Any = None
        if response.body:
            try:
                parsed = json.loads(b"".join(response.body))
            except ValueError:
                parsed = None
        return Answer(status, parsed, response.headers, ms)

    def close(self) -> None:
        sock, self._sock, self._poll = self._sock, None, None
        if sock is not None:
            sock.close()


def _reason(exc: BaseException) -> str:
    """A short name for a transport failure: connection refused, unknown host, timeout..."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "TLS certificate not trusted"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, ConnectionClosed | BrokenPipeError):
        return "connection closed"
    if isinstance(exc, httptools.HttpParserError):
        return "not an HTTP answer"
    return type(exc).__name__


def describe_refusal(answer: Answer, tokens: TokenProvider) -> str:
    detail = ""
    if isinstance(answer.body, dict):
        err = answer.body.get("error")
        detail = (
            str(err.get("message"))
            if isinstance(err, dict)
            else str(answer.body.get("message", ""))
        )
    if answer.status == 401:
        return (
            f"the API refused the token from {tokens.description} (401 {detail or 'Unauthorized'}): "
            "it is expired, malformed or for another audience; pass a fresh --token "
            "(gcloud auth print-identity-token --audiences=AUDIENCE) or the right --audience"
        )
    return (
        f"the API accepted the token from {tokens.description} but refuses this caller "
        f"(403 {detail or 'Forbidden'}): the functions accept only ALLOWED_CALLERS; use the "
        "shop's identity"
    )


def check_api(base_url: str, tokens: TokenProvider) -> bool:
    """Probe ``GET /categories``; return whether requests must carry a token.

    Raises ``SimulationAborted`` with one line for: no answer, not the hybridshop API, token
    refused, server error.
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SimulationAborted(
            f"--api-url must be an http:// or https:// URL such as http://127.0.0.1:3000, "
            f"not {base_url!r}"
        )
    client = HttpClient(base_url, tokens, connect_timeout_s=3.0, read_timeout_s=10.0)
    has_source = type(tokens) is not TokenProvider
    try:
        # a local gateway is asked without a token first: it only wants one when run with --auth
        client.use_token = has_source and (
            isinstance(tokens, StaticToken) or not is_loopback_url(base_url)
        )
        answer = client.send("GET", "/categories")
        if answer.status == 401 and has_source and not client.use_token:
            client.use_token = True
            answer = client.send("GET", "/categories")
        elif answer.status == 401 and client.use_token and tokens.refresh():
            answer = client.send("GET", "/categories")
    finally:
        client.close()
    if answer.status == 0:
        hint = (
            "start it with `hybridshop up` (or `hybridshop api`)"
            if is_loopback_url(base_url)
            else "check --api-url and your network"
        )
        raise SimulationAborted(
            f"cannot reach the API at {base_url} ({answer.error}); {hint}, or pass --api-url"
        )
    if answer.status in (401, 403):
        if not has_source:
            raise SimulationAborted(
                f"the API at {base_url} wants a token ({answer.status}); pass --token, or run "
                "where Google's metadata server or gcloud can give one"
            )
        raise SimulationAborted(describe_refusal(answer, tokens))
    if answer.status >= 500:
        raise SimulationAborted(
            f"the API at {base_url} answered {answer.status} to GET /categories; check its logs "
            "(`hybridshop up` prints them) before simulating traffic"
        )
    body = answer.body
    if (
        answer.status != 200
        or not isinstance(body, dict)
        or not isinstance(body.get("items"), list)
    ):
        raise SimulationAborted(
            f"{base_url} does not look like the hybridshop API (GET /categories answered "
            f"{answer.status}); check --api-url (a deployed API's URL includes its stage, if any)"
        )
    return client.use_token
