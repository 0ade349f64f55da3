"""``LocalGateway``: the local stand-in for API Gateway (HTTP API, payload 2.0) + Lambda.

An HTTP/1.1 server on loopback (keep-alive, pipelining) that matches ``METHOD /path``
against the function registry, runs the JWT authorizer when configured, builds the 2.0
event, invokes the function in a warm worker process (``runtime``) and maps the result back
(``responses``). One event-loop thread (``loop``) serves every connection and talks to
every worker: per request that is one read from the client, one write to and one read from
the worker, one write back, with no thread wake-ups in between. Work that may block (JWKS
fetch, RS256 checks, token signing) runs in a small thread pool and reports back.

Keep-alive connections go further (``handoff``): after answering a connection's request the
gateway passes the socket to an environment of that function that serves no other
connection, and that environment answers the next requests for its own routes itself, so a
purchase costs one process hop instead of two. The gateway keeps its own descriptor and
enforces timeouts through each environment's shared invocation record. Gateway-generated errors use API Gateway's own shapes
(``{"message": "Not Found"}`` ...), so clients see the same thing locally and on AWS.

Also served: ``/openapi.json`` (the API document, when present), ``/_local/health`` and,
when enabled, the local OIDC issuer + metadata endpoint under ``/_local``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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
from hybridshop.gateway.http11 import (
    HttpDate,
    HttpError,
    Request,
    RequestParser,
    serialize_response,
)
from hybridshop.gateway.local_issuer import METADATA_IDENTITY_PATH, LocalIssuer
from hybridshop.gateway.loop import Loop, SocketWriter
from hybridshop.gateway.responses import (
    INTERNAL_ERROR,
    NOT_FOUND,
    SERVICE_UNAVAILABLE,
    UNAUTHORIZED,
    HttpResponse,
    MappingError,
    gateway_message,
    map_result,
)
from hybridshop.gateway.routes import RouteTable
from hybridshop.gateway.runtime import (
    INTEGRATION_TIMEOUT_S,
    FunctionPool,
    Handoff,
    InvocationResult,
)
from hybridshop.lambda_functions import FUNCTIONS, FunctionSpec

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # HTTP API's request payload limit
IDLE_TIMEOUT_S = 65.0  # idle keep-alive connections are closed after this many seconds
OPENAPI_PATH = Path(__file__).resolve().parent.parent / "lambda_functions" / "openapi.json"
_RUNTIME_FAILURES = ("Runtime.ExitError", "Runtime.InitTimeout", "Runtime.StartError")
_stderr_lock = threading.Lock()
_conn_ids = itertools.count()


def stderr_log(line: str) -> None:
    with _stderr_lock:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


@dataclass
class GatewayConfig:
    host: str = settings.DEFAULT_HOST
    port: int = settings.DEFAULT_API_PORT  # 0: pick a free port
    env: dict[str, str] = field(default_factory=dict)  # environment of every function
    concurrency: int = settings.DEFAULT_CONCURRENCY  # execution environments per function
    functions: tuple[FunctionSpec, ...] = FUNCTIONS
    authorizer: JwtAuthorizerConfig | None = None  # JwtAuthorizerConfig.local() with local_issuer
    local_issuer: bool = False
    state_dir: Path = field(default_factory=settings.state_dir)
    function_env: dict[str, dict[str, str]] = field(default_factory=dict)  # per function name
    region: str = "us-east-1"
    account_id: str = "000000000000"
    quiet: bool = False  # no access-log lines (function output and errors are still logged)
    # After answering a keep-alive connection's request, pass the socket to an environment
    # of that function that serves no other connection: it then serves that function's
    # routes itself (see ``handoff``). Off when a JWT authorizer runs (it stays here).
    handoff: bool = True
    log: Callable[[str], None] | None = None  # line sink; default: stderr
    integration_timeout_s: float = INTEGRATION_TIMEOUT_S


@dataclass
class _Target:
    spec: FunctionSpec
    pool: FunctionPool


class _Conn:
    """One client connection: buffered input, one request in flight at a time, queued output."""

    __slots__ = (
        "busy",
        "close_after",
        "closed",
        "conn_id",
        "delegated",
        "fd",
        "gateway",
        "ip",
        "last_active",
        "parser",
        "peer_closed",
        "sock",
        "writer",
    )

    def __init__(self, gateway: LocalGateway, sock: socket.socket, ip: str) -> None:
        self.gateway = gateway
        self.sock = sock
        self.fd = sock.fileno()
        self.ip = ip
        self.parser = RequestParser(MAX_PAYLOAD_BYTES)
        self.writer = SocketWriter(
            gateway.loop, sock, on_error=self.close, on_drained=self._drained
        )
        self.busy = False
        self.close_after = False
        self.closed = False
        self.peer_closed = False
        self.last_active = time.monotonic()
        self.conn_id = next(_conn_ids)
        self.delegated = False  # an environment reads and answers it (see ``handoff``)

    def on_readable(self) -> None:
        try:
            data = self.sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.peer_closed = True
            if not self.busy:
                self.close()
            else:
                self.gateway.loop.remove_reader(self.fd)  # answer, then close
            return
        self.last_active = time.monotonic()
        self.parser.feed(data)
        if not self.busy:
            self.process()

    def process(self) -> None:
        """Start the next complete request in the buffer, if any."""
        while not self.busy and not self.closed and not self.close_after:
            try:
                request = self.parser.next()
            except HttpError as exc:
                # The rest of the stream can't be trusted: answer and close.
                self.busy = True
                self.close_after = True
                self.gateway._reject(self, exc)
                return
            if request is None:
                if self.parser.expects_continue:
                    self.parser.expects_continue = False
                    self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                return
            self.busy = True
            if not request.keep_alive:
                self.close_after = True
            self.gateway._dispatch(self, request)

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.writer.write(data)

    def _drained(self) -> None:
        if self.close_after or self.peer_closed:
            self.close()

    def finished(self) -> None:
        """The response is queued: close or go on with pipelined requests."""
        self.busy = False
        self.last_active = time.monotonic()
        if self.close_after or self.peer_closed:
            if not self.writer.pending:
                self.close()
            return
        if self.parser.buffer:
            self.process()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.gateway.loop.forget(self.fd)
        self.gateway._conns.pop(self.conn_id, None)
        with contextlib.suppress(OSError):
            self.sock.close()


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
        self.loop = Loop(on_error=self._loop_error)
        self._listener: socket.socket | None = None
        self._port = config.port
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._pools: list[FunctionPool] = []
        self._routes: RouteTable[_Target] | None = None
        self._conns: dict[int, _Conn] = {}
        self._executor: ThreadPoolExecutor | None = None
        # A second pool for the gateway's own endpoints (/_local issuer, /openapi.json): the
        # authorizer's threads may be waiting on this very gateway for the issuer's JWKS, so
        # serving those from the same pool could starve it (all threads waiting on each other).
        self._local_executor: ThreadPoolExecutor | None = None
        self._date = HttpDate()
        self.issuer: LocalIssuer | None = None
        self.authorizer: JwtAuthorizer | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._listener is not None:
            raise RuntimeError("gateway already started")
        host = self.config.host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # A burst of hundreds of new connections must not be refused: deep backlog.
        listener = socket.create_server((host, self.config.port), family=family, backlog=1024)
        listener.setblocking(False)
        self._listener = listener
        self._port = int(listener.getsockname()[1])
        routes: list[tuple[str, _Target]] = []
        handoff = None
        if self.config.handoff and self.config.authorizer is None:
            handoff = Handoff(
                host=self,
                routes=[(key, spec.name) for spec in self.config.functions for key in spec.routes],
                port=self._port,
                account_id=self.config.account_id,
                integration_timeout_s=self.config.integration_timeout_s,
                access_log=not self.config.quiet,
                max_body=MAX_PAYLOAD_BYTES,
            )
        for spec in self.config.functions:
            env = {**self.config.env, **self.config.function_env.get(spec.name, {})}
            pool = FunctionPool(
                spec,
                env,
                size=self.config.concurrency,
                region=self.config.region,
                account_id=self.config.account_id,
                log=self._log,
                loop=self.loop,
                handoff=handoff,
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
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="gateway-slow")
        self._local_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gateway-local")
        self.loop.add_reader(listener.fileno(), self._accept)
        self.loop.call_later(5.0, self._sweep_idle)
        self._thread = threading.Thread(target=self.loop.run, name="gateway", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._port

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
        if self._listener is None:
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

    def is_alive(self) -> bool:
        """True while the loop thread serves (for ``hybridshop up``'s supervisor)."""
        return self._thread is not None and self._thread.is_alive() and not self._stopped.is_set()

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._thread is not None:
            self.loop.stop()
            self._thread.join(timeout=10)
        # The loop thread is gone: everything below is ours alone.
        if self._listener is not None:
            self._listener.close()
        for conn in list(self._conns.values()):
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
            conn.close()
        for executor in (self._executor, self._local_executor):
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)
        for pool in self._pools:
            pool.close()
        self.loop.close()

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

    # -- connections -----------------------------------------------------------------------

    def _accept(self) -> None:
        assert self._listener is not None
        for _ in range(64):
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: log, keep serving the others
                self._log(f"[gateway] accept failed: {exc!r}")
                return
            sock.setblocking(False)
            # Responses go out in one write; without NODELAY, Nagle + delayed ACK add ~40 ms.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(self, sock, address[0])
            self._conns[conn.conn_id] = conn
            self.loop.add_reader(conn.fd, conn.on_readable)

    def _sweep_idle(self) -> None:
        limit = time.monotonic() - IDLE_TIMEOUT_S
        idle = [
            c
            for c in self._conns.values()
            if not c.busy and not c.delegated and c.last_active < limit
        ]
        for conn in idle:
            conn.close()
        self.loop.call_later(5.0, self._sweep_idle)

    def _loop_error(self, exc: BaseException) -> None:
        self._log(f"[gateway] internal error: {exc!r}")

    # -- request handling (loop thread) ----------------------------------------------------

    def _reject(self, conn: _Conn, exc: HttpError) -> None:
        request_id = new_request_id()
        response = gateway_message(exc.status, str(exc))
        self._finish(conn, None, response, request_id, time.perf_counter(), time.time(), {})

    def _dispatch(self, conn: _Conn, req: Request) -> None:
        started = time.perf_counter()
        received_at = time.time()
        request_id = new_request_id()
        info: dict[str, Any] = {"routeKey": "-"}
        try:
            target = req.target
            if not target.startswith("/"):
                parts = urlsplit(target)  # absolute-form request-target (proxies)
                target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            request = HttpRequest(
                method=req.method,
                target=target,
                headers=req.headers,
                body=req.body,
                source_ip=conn.ip,
                protocol=req.version,
                received_at=received_at,
            )

            def done(response: HttpResponse) -> None:
                pool = info.pop("_pool", None)
                self._finish(conn, req, response, request_id, started, received_at, info)
                if pool is not None:
                    self._try_handoff(conn, pool)

            self._respond(request, request_id, info, done)
        except Exception as exc:  # noqa: BLE001 - never a traceback to the client
            self._log(f"[gateway] internal error on {req.method} {req.target}: {exc!r}")
            response = gateway_message(*INTERNAL_ERROR)
            self._finish(conn, req, response, request_id, started, received_at, info)

    def _finish(
        self,
        conn: _Conn,
        req: Request | None,
        response: HttpResponse,
        request_id: str,
        started: float,
        received_at: float,
        info: dict[str, Any],
    ) -> None:
        if conn.closed:
            return
        conn.write(self._serialize(response, request_id, req, conn.close_after))
        conn.finished()
        if self.config.quiet:
            return
        latency = (time.perf_counter() - started) * 1000
        entry = {
            "requestId": request_id,
            "ip": conn.ip,
            "requestTime": format_request_time(received_at),
            "httpMethod": req.method if req else "-",
            "path": req.target.split("?", 1)[0] if req else "-",
            "routeKey": info.get("routeKey", "-"),
            "status": response.status,
            "protocol": req.version if req else "-",
            "responseLength": len(response.body),
            "responseLatency": round(latency, 2),
        }
        entry.update({k: v for k, v in info.items() if k != "routeKey"})
        self._log(json.dumps(entry, separators=(",", ":")))

    def _serialize(
        self, response: HttpResponse, request_id: str, req: Request | None, close: bool
    ) -> bytes:
        return serialize_response(
            response.status,
            response.headers,
            response.body,
            request_id=request_id,
            date=self._date(),
            close=close,
            http10_keep_alive=req is not None and req.version == "HTTP/1.0",
            head_only=req is not None and req.method == "HEAD",
        )

    def _off_loop(
        self, work: Callable[[], Any], then: Callable[[Any], None], *, local: bool = False
    ) -> None:
        """Run blocking ``work`` in a thread pool; ``then(result or exception)`` on the loop.

        ``local`` work (the gateway's own endpoints) has its own pool: see ``_local_executor``.
        """
        executor = self._local_executor if local else self._executor
        assert executor is not None

        def run() -> None:
            try:
                result: Any = work()
            except Exception as exc:  # noqa: BLE001 - handed to ``then``
                result = exc
            self.loop.call_soon_threadsafe(lambda: then(result))

        try:
            executor.submit(run)
        except RuntimeError:  # shutting down
            then(RuntimeError("gateway is stopping"))

    def _respond(
        self,
        request: HttpRequest,
        request_id: str,
        info: dict[str, Any],
        done: Callable[[HttpResponse], None],
    ) -> None:
        path = request.raw_path
        if path.startswith("/_local/"):
            if path == "/_local/health":
                done(_json(200, self.health()))
                return
            self._off_loop(
                lambda: self._local(request), lambda r: done(_checked(r, self._log)), local=True
            )
            return
        if path == "/openapi.json" and request.method in ("GET", "HEAD"):
            self._off_loop(_openapi, lambda r: done(_checked(r, self._log)), local=True)
            return
        assert self._routes is not None
        match = self._routes.match(request.method, path)
        if match is None:
            done(gateway_message(*NOT_FOUND))
            return
        route, params = match
        info["routeKey"] = route.key
        authorizer = self.authorizer
        if authorizer is None:
            self._invoke(request, request_id, info, route.target, params, None, done)
            return
        header = next((v for k, v in request.headers if k.lower() == "authorization"), None)

        def authorized(block: Any) -> None:
            if isinstance(block, Unauthorized):
                info["authorizerError"] = str(block)
                done(gateway_message(*UNAUTHORIZED))
            elif isinstance(block, Exception):
                self._log(f"[gateway] authorizer error: {block!r}")
                done(gateway_message(*INTERNAL_ERROR))
            else:
                self._invoke(request, request_id, info, route.target, params, block, done)

        self._off_loop(lambda: authorizer.authorize(header), authorized)

    def _invoke(
        self,
        request: HttpRequest,
        request_id: str,
        info: dict[str, Any],
        target: _Target,
        params: dict[str, str],
        authorizer_block: dict[str, Any] | None,
        done: Callable[[HttpResponse], None],
    ) -> None:
        event = build_event(
            request,
            route_key=info["routeKey"],
            path_parameters=params,
            request_id=request_id,
            authorizer=authorizer_block,
            port=self.port,
            account_id=self.config.account_id,
        )

        def finished(result: InvocationResult) -> None:
            try:
                response = self._map(result, target.spec, info)
                if result.kind == "ok":
                    info["_pool"] = target.pool
            except Exception as exc:  # noqa: BLE001 - never a traceback to the client
                self._log(f"[gateway] internal error mapping a result: {exc!r}")
                response = gateway_message(*INTERNAL_ERROR)
            done(response)

        target.pool.invoke(event, finished, self.config.integration_timeout_s)

    def _map(
        self, result: InvocationResult, spec: FunctionSpec, info: dict[str, Any]
    ) -> HttpResponse:
        info["functionName"] = spec.name
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
                f"[{spec.name}] {result.aws_request_id} "
                f"{error.get('errorType')}: {error.get('errorMessage')}"
            )
        return gateway_message(*INTERNAL_ERROR)

    # -- handed-off connections (``runtime.ConnectionHost``) ---------------------------------

    def _try_handoff(self, conn: _Conn, pool: FunctionPool) -> None:
        """Let an environment serve this connection's next requests, when nothing is pending."""
        if (
            conn.closed
            or conn.busy
            or conn.close_after
            or conn.peer_closed
            or conn.writer.pending
            or conn.parser.pending()
        ):
            return
        environment = pool.handoff_target()
        if environment is None:
            return
        self.loop.remove_reader(conn.fd)
        if environment.hand_off(conn.conn_id, conn.sock, conn.ip):
            conn.delegated = True
        else:
            self.loop.add_reader(conn.fd, conn.on_readable)

    def handback(self, conn_id: int, data: bytes) -> None:
        conn = self._conns.get(conn_id)
        if conn is None or conn.closed:
            return
        conn.delegated = False
        conn.last_active = time.monotonic()
        conn.parser.feed(data)
        self.loop.add_reader(conn.fd, conn.on_readable)
        conn.process()

    def conn_closed(self, conn_id: int) -> None:
        conn = self._conns.get(conn_id)
        if conn is not None:
            conn.close()

    def conn_failed(
        self, conn_id: int, result: InvocationResult | None, spec: FunctionSpec
    ) -> None:
        """The environment serving this connection died: answer its request (if one was
        running) on our own descriptor, then close, as what it had read is lost."""
        conn = self._conns.get(conn_id)
        if conn is None or conn.closed:
            return
        conn.delegated = False
        if result is None:
            conn.close()
            return
        info: dict[str, Any] = {"routeKey": "-"}
        try:
            response = self._map(result, spec, info)
        except Exception as exc:  # noqa: BLE001 - never a traceback to the client
            self._log(f"[gateway] internal error mapping a result: {exc!r}")
            response = gateway_message(*INTERNAL_ERROR)
        conn.busy = True
        conn.close_after = True
        self._finish(conn, None, response, new_request_id(), time.perf_counter(), time.time(), info)

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
            return _text(200, settings.LOCAL_SERVICE_ACCOUNT)
        return _text(404, "Not Found\n")


def _checked(result: Any, log: Callable[[str], None]) -> HttpResponse:
    """A response from the thread pool, or 500 if the work raised."""
    if isinstance(result, HttpResponse):
        return result
    log(f"[gateway] internal error: {result!r}")
    return gateway_message(*INTERNAL_ERROR)


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
