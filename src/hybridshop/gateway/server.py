"""``LocalGateway``: the local stand-in for API Gateway (HTTP API, payload 2.0) + Lambda.

A threaded HTTP/1.1 server on loopback (keep-alive, one thread per connection) that matches
``METHOD /path`` against the function registry, runs the JWT authorizer when configured,
builds the 2.0 event, invokes the function in a warm worker process (``runtime``) and maps
the result back (``responses``). Gateway-generated errors use API Gateway's own shapes
(``{"message": "Not Found"}`` ...), so clients see the same thing locally and on AWS.

Also served: ``/openapi.json`` (the API document, when present), ``/_local/health`` and,
when enabled, the local OIDC issuer + metadata endpoint under ``/_local``.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hybridshop import settings
from hybridshop.gateway.authorizer import (
    LOCAL_ISSUER,
    JwtAuthorizer,
    JwtAuthorizerConfig,
    Unauthorized,
)
from hybridshop.gateway.events import HttpRequest, build_event, format_request_time, new_request_id
from hybridshop.gateway.local_issuer import METADATA_IDENTITY_PATH, SERVICE_ACCOUNT, LocalIssuer
from hybridshop.gateway.responses import (
    INTERNAL_ERROR,
    NOT_FOUND,
    SERVICE_UNAVAILABLE,
    TOO_LARGE,
    UNAUTHORIZED,
    HttpResponse,
    MappingError,
    gateway_message,
    map_result,
)
from hybridshop.gateway.routes import RouteTable
from hybridshop.gateway.runtime import INTEGRATION_TIMEOUT_S, FunctionPool
from hybridshop.lambda_functions import FUNCTIONS, FunctionSpec

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # HTTP API's request payload limit
OPENAPI_PATH = Path(__file__).resolve().parent.parent / "lambda_functions" / "openapi.json"
_RUNTIME_FAILURES = ("Runtime.ExitError", "Runtime.InitTimeout", "Runtime.StartError")
_stderr_lock = threading.Lock()


def stderr_log(line: str) -> None:
    with _stderr_lock:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


@dataclass
class GatewayConfig:
    host: str = settings.DEFAULT_HOST
    port: int = settings.DEFAULT_API_PORT  # 0: pick a free port
    env: dict[str, str] = field(default_factory=dict)  # environment of every function
    concurrency: int = 8  # execution environments per function
    functions: tuple[FunctionSpec, ...] = FUNCTIONS
    authorizer: JwtAuthorizerConfig | None = None  # JwtAuthorizerConfig.local() with local_issuer
    local_issuer: bool = False
    state_dir: Path = field(default_factory=settings.state_dir)
    function_env: dict[str, dict[str, str]] = field(default_factory=dict)  # per function name
    region: str = "us-east-1"
    account_id: str = "000000000000"
    quiet: bool = False  # no access-log lines (function output and errors are still logged)
    log: Callable[[str], None] | None = None  # line sink; default: stderr
    integration_timeout_s: float = INTEGRATION_TIMEOUT_S


@dataclass
class _Target:
    spec: FunctionSpec
    pool: FunctionPool


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # a burst of hundreds of new connections must not be refused
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], gateway: LocalGateway) -> None:
        self.gateway = gateway
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hybridshop-gateway"
    timeout = 65  # idle keep-alive connections are closed after this many seconds
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Responses go out in one write; without NODELAY, Nagle + delayed ACK add ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the gateway writes its own JSON access log

    def _dispatch(self) -> None:
        self.server.gateway._handle(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _dispatch


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _read_body(handler: BaseHTTPRequestHandler, limit: int) -> bytes:
    if handler.headers.get("transfer-encoding", "").lower() == "chunked":
        return _read_chunked(handler, limit)
    raw = handler.headers.get("content-length")
    if raw is None:
        return b""
    try:
        length = int(raw)
    except ValueError:
        raise BadRequest(400, "Bad Request") from None
    if length < 0:
        raise BadRequest(400, "Bad Request")
    if length > limit:
        raise BadRequest(TOO_LARGE[0], TOO_LARGE[1])
    return handler.rfile.read(length)


def _read_chunked(handler: BaseHTTPRequestHandler, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        line = handler.rfile.readline(1024)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadRequest(400, "Bad Request") from None
        if size == 0:
            while handler.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                pass  # trailers: ignored, as API Gateway does
            return b"".join(chunks)
        total += size
        if total > limit:
            raise BadRequest(TOO_LARGE[0], TOO_LARGE[1])
        chunks.append(handler.rfile.read(size))
        handler.rfile.readline(8)  # CRLF after each chunk


class LocalGateway:
    """The local API Gateway. ``start()`` serves in a background thread; ``stop()`` cleans up."""

    def __init__(self, config: GatewayConfig) -> None:
        if config.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if (
            config.authorizer
            and config.authorizer.issuer == LOCAL_ISSUER
            and not config.local_issuer
        ):
            raise ValueError("JwtAuthorizerConfig.local() needs GatewayConfig(local_issuer=True)")
        self.config = config
        self._log = config.log or stderr_log
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._pools: list[FunctionPool] = []
        self._routes: RouteTable[_Target] | None = None
        self.issuer: LocalIssuer | None = None
        self.authorizer: JwtAuthorizer | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("gateway already started")
        server = _Server((self.config.host, self.config.port), self)
        self._server = server
        routes: list[tuple[str, _Target]] = []
        for spec in self.config.functions:
            env = {**self.config.env, **self.config.function_env.get(spec.name, {})}
            pool = FunctionPool(
                spec,
                env,
                size=self.config.concurrency,
                region=self.config.region,
                account_id=self.config.account_id,
                log=self._log,
            )
            self._pools.append(pool)
            routes.extend((key, _Target(spec, pool)) for key in spec.routes)
        self._routes = RouteTable(routes)
        if self.config.local_issuer:
            self.issuer = LocalIssuer(self.issuer_url, self.config.state_dir / "issuer")
        if self.config.authorizer is not None:
            auth = self.config.authorizer
            if auth.issuer == LOCAL_ISSUER:
                assert self.issuer is not None
                auth = JwtAuthorizerConfig(
                    issuer=self.issuer.issuer_url,
                    audiences=auth.audiences,
                    jwks_url=auth.jwks_url,
                    leeway_s=auth.leeway_s,
                )
            self.authorizer = JwtAuthorizer(auth)
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="gateway", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        if self._server is None:
            return self.config.port
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def issuer_url(self) -> str:
        return self.url + "/_local"

    def serve_forever(self) -> None:
        """Serve in the foreground until Ctrl-C or SIGTERM, then stop cleanly."""
        if self._server is None:
            self.start()
        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            # SIGINT explicitly too: a shell starting us in the background ignores it.
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, _raise_keyboard_interrupt)
        try:
            while not self._stopped.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.stop()

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
        for pool in self._pools:
            pool.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LocalGateway:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "functions": {pool.spec.name: pool.stats() for pool in self._pools},
            "routes": self._routes.keys if self._routes else [],
        }

    # -- request handling ------------------------------------------------------------------

    def _handle(self, h: _Handler) -> None:
        started = time.perf_counter()
        received_at = time.time()
        request_id = new_request_id()
        info: dict[str, Any] = {"routeKey": "-"}
        try:
            body = _read_body(h, MAX_PAYLOAD_BYTES)
            target = h.path
            if not target.startswith("/"):
                parts = urlsplit(target)  # absolute-form request-target (proxies)
                target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            request = HttpRequest(
                method=h.command,
                target=target,
                headers=list(h.headers.items()),
                body=body,
                source_ip=h.client_address[0],
                protocol=h.request_version,
                received_at=received_at,
            )
            response = self._respond(request, request_id, info)
        except BadRequest as exc:
            response = gateway_message(exc.status, str(exc))
            h.close_connection = True  # the rest of the stream can't be trusted
        except Exception as exc:  # noqa: BLE001 - never a traceback to the client
            self._log(f"[gateway] internal error on {h.command} {h.path}: {exc!r}")
            response = gateway_message(*INTERNAL_ERROR)
        self._write(h, response, request_id)
        if not self.config.quiet:
            latency = (time.perf_counter() - started) * 1000
            entry = {
                "requestId": request_id,
                "ip": h.client_address[0],
                "requestTime": format_request_time(received_at),
                "httpMethod": h.command,
                "path": h.path.split("?", 1)[0],
                "routeKey": info["routeKey"],
                "status": response.status,
                "protocol": h.request_version,
                "responseLength": len(response.body),
                "responseLatency": round(latency, 2),
            }
            entry.update({k: v for k, v in info.items() if k != "routeKey"})
            self._log(json.dumps(entry, separators=(",", ":")))

    def _respond(self, request: HttpRequest, request_id: str, info: dict[str, Any]) -> HttpResponse:
        path = request.raw_path
        if path.startswith("/_local/"):
            return self._local(request)
        if path == "/openapi.json" and request.method in ("GET", "HEAD"):
            return _openapi()
        assert self._routes is not None
        match = self._routes.match(request.method, path)
        if match is None:
            return gateway_message(*NOT_FOUND)
        route, params = match
        info["routeKey"] = route.key
        authorizer_block = None
        if self.authorizer is not None:
            header = next((v for k, v in request.headers if k.lower() == "authorization"), None)
            try:
                authorizer_block = self.authorizer.authorize(header)
            except Unauthorized as exc:
                info["authorizerError"] = str(exc)
                return gateway_message(*UNAUTHORIZED)
        event = build_event(
            request,
            route_key=route.key,
            path_parameters=params,
            request_id=request_id,
            authorizer=authorizer_block,
            port=self.port,
            account_id=self.config.account_id,
        )
        result = route.target.pool.invoke(event, self.config.integration_timeout_s)
        info["functionName"] = route.target.spec.name
        info["integrationLatency"] = round(result.duration_ms, 2)
        if result.aws_request_id:
            info["awsRequestId"] = result.aws_request_id
        if result.init_ms is not None:
            info["initDuration"] = round(result.init_ms, 2)
        if result.kind == "ok":
            try:
                return map_result(result.payload)
            except MappingError as exc:
                info["integrationErrorMessage"] = f"malformed Lambda proxy response: {exc}"
                return gateway_message(*INTERNAL_ERROR)
        if result.kind == "integration_timeout":
            info["integrationErrorMessage"] = "integration timed out"
            return gateway_message(*SERVICE_UNAVAILABLE)
        error = result.error or {}
        info["integrationErrorMessage"] = f"{error.get('errorType')}: {error.get('errorMessage')}"
        if result.kind == "timeout" or error.get("errorType") in _RUNTIME_FAILURES:
            # The worker could not report these itself: say it for it, like Lambda's log.
            self._log(
                f"[{route.target.spec.name}] {result.aws_request_id} "
                f"{error.get('errorType')}: {error.get('errorMessage')}"
            )
        return gateway_message(*INTERNAL_ERROR)

    def _local(self, request: HttpRequest) -> HttpResponse:
        path = request.raw_path
        if path == "/_local/health":
            return _json(200, self.health())
        issuer = self.issuer
        if issuer is None or request.method not in ("GET", "HEAD"):
            return gateway_message(*NOT_FOUND)
        if path == "/_local/.well-known/openid-configuration":
            return _json(200, issuer.openid_configuration())
        if path == "/_local/jwks.json":
            return _json(200, issuer.jwks())
        if path.startswith("/_local/metadata/"):
            return self._metadata(request, issuer, path[len("/_local/metadata") :])
        return gateway_message(*NOT_FOUND)

    def _metadata(self, request: HttpRequest, issuer: LocalIssuer, path: str) -> HttpResponse:
        """The subset of the GCE/Cloud Run metadata server the shop uses."""
        flavor = next((v for k, v in request.headers if k.lower() == "metadata-flavor"), None)
        if flavor != "Google":
            return _text(403, "Missing required header: Metadata-Flavor\n")
        if path == METADATA_IDENTITY_PATH:
            audience = parse_qs(request.raw_query).get("audience", [""])[0]
            if not audience:
                return _text(400, "non-empty audience parameter required\n")
            return _text(200, issuer.issue(audience))
        if path == "/computeMetadata/v1/instance/service-accounts/default/email":
            return _text(200, SERVICE_ACCOUNT)
        return _text(404, "Not Found\n")

    def _write(self, h: _Handler, response: HttpResponse, request_id: str) -> None:
        try:
            phrase = HTTPStatus(response.status).phrase
        except ValueError:
            phrase = ""
        lines = [f"HTTP/1.1 {response.status} {phrase}"]
        lines.extend(f"{k}: {v}" for k, v in response.headers if k.lower() != "content-length")
        lines.append(f"date: {formatdate(usegmt=True)}")
        lines.append(f"content-length: {len(response.body)}")
        lines.append(f"apigw-requestid: {request_id}")
        if h.close_connection:
            lines.append("connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        payload = head if h.command == "HEAD" else head + response.body
        try:
            h.wfile.write(payload)
        except OSError:
            h.close_connection = True  # the client went away; nothing left to tell it


def _json(status: int, value: Any) -> HttpResponse:
    body = json.dumps(value, separators=(",", ":")).encode()
    return HttpResponse(status=status, headers=[("content-type", "application/json")], body=body)


def _text(status: int, text: str) -> HttpResponse:
    return HttpResponse(
        status=status,
        headers=[("content-type", "text/plain; charset=utf-8"), ("metadata-flavor", "Google")],
        body=text.encode(),
    )


def _openapi() -> HttpResponse:
    try:
        body = OPENAPI_PATH.read_bytes()
    except FileNotFoundError:
        return gateway_message(*NOT_FOUND)
    return HttpResponse(status=200, headers=[("content-type", "application/json")], body=body)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
