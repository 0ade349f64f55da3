"""``LocalGateway``: the local stand-in for API Gateway (HTTP API, payload 2.0) + Lambda.

One asyncio event loop (uvloop when installed) in one thread serves every connection
(``transport``: httptools + the limits and timeouts a server needs) and talks to every
execution environment (``runtime``). The request pipeline lives in one place,
``ApiPipeline``: match ``METHOD /path`` against the function registry, run the JWT
authorizer when configured, build the 2.0 event, invoke the function in a warm
environment, map its result back (``responses``), write the access log line.
Gateway-generated errors use API Gateway's own shapes (``{"message": "Not Found"}`` ...),
so clients see the same thing locally and on AWS.

Also served on the API listener: ``/openapi.json`` and ``/_local/health``. The local OIDC
issuer and metadata endpoint (``local_issuer``), which mint tokens the authorizer accepts,
have a listener of their own, always on 127.0.0.1 whatever ``host`` the API listens on:
only processes on this machine can reach it, as only the instance itself reaches a cloud
metadata server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Coroutine
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
from hybridshop.gateway.local_issuer import METADATA_IDENTITY_PATH, LocalIssuer
from hybridshop.gateway.responses import (
    INTERNAL_ERROR,
    NOT_FOUND,
    SERVICE_UNAVAILABLE,
    TOO_MANY_REQUESTS,
    UNAUTHORIZED,
    HttpResponse,
    MappingError,
    gateway_message,
    map_result,
)
from hybridshop.gateway.routes import RouteTable
from hybridshop.gateway.runtime import (
    INTEGRATION_TIMEOUT_S,
    Admission,
    FunctionPool,
    InvocationResult,
)
from hybridshop.gateway.transport import HttpServer, Limits
from hybridshop.lambda_functions import FUNCTIONS, FunctionSpec

OPENAPI_PATH = Path(__file__).resolve().parent.parent / "lambda_functions" / "openapi.json"
ISSUER_HOST = "127.0.0.1"
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
    concurrency: int = settings.DEFAULT_CONCURRENCY  # execution environments per function
    # load shedding: requests that may wait per function once all its environments are busy,
    # and for how long at most; past either, 429 + Retry-After (API Gateway's throttling)
    max_queue: int = settings.DEFAULT_MAX_QUEUE
    max_wait_s: float = settings.DEFAULT_MAX_WAIT_S
    functions: tuple[FunctionSpec, ...] = FUNCTIONS
    authorizer: JwtAuthorizerConfig | None = None  # JwtAuthorizerConfig.local() with local_issuer
    local_issuer: bool = False  # serve the dev token issuer on its own loopback listener
    issuer_port: int = 0  # its port (0: any free one)
    state_dir: Path = field(default_factory=settings.state_dir)
    function_env: dict[str, dict[str, str]] = field(default_factory=dict)  # per function name
    region: str = "us-east-1"
    account_id: str = "000000000000"
    quiet: bool = False  # no access-log lines (function output and errors are still logged)
    log: Callable[[str], None] | None = None  # line sink; default: stderr
    integration_timeout_s: float = INTEGRATION_TIMEOUT_S
    max_body: int = 10 * 1024 * 1024  # HTTP API's request payload limit
    header_timeout_s: float = 10.0  # from a request's first byte to the end of its head
    body_timeout_s: float = 30.0
    idle_timeout_s: float = 65.0  # idle keep-alive connections are closed after this
    write_timeout_s: float = 30.0  # a client that stops reading its answers is dropped


@dataclass
class _Target:
    spec: FunctionSpec
    pool: FunctionPool


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # no uvloop on this platform: the standard loop works the same
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class ApiPipeline:
    """Everything between a parsed request and its response, for the API listener."""

    def __init__(self, gateway: LocalGateway) -> None:
        self.gateway = gateway
        self.config = gateway.config
        self.log = gateway.log
        self.routes: RouteTable[_Target] | None = None
        self.authorizer: JwtAuthorizer | None = None
        self.openapi: bytes | None = None

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        request_id = new_request_id()
        info: dict[str, Any] = {"routeKey": "-"}
        try:
            response = await self._respond(request, request_id, info)
        except Exception as exc:  # noqa: BLE001 - never a traceback to the client
            self.log(f"[gateway] internal error on {request.method} {request.target}: {exc!r}")
            response = gateway_message(*INTERNAL_ERROR)
        response.request_id = request_id
        self.access_log(request.method, request, response, started, info)
        return response

    def reject(self, status: int, message: str, ip: str) -> HttpResponse:
        """The answer to a request the transport refused (400, 408, 413, 431, 505 ...)."""
        response = gateway_message(status, message)
        response.request_id = new_request_id()
        self.access_log("-", None, response, time.perf_counter(), {"ip": ip, "routeKey": "-"})
        return response

    def access_log(
        self,
        method: str,
        request: HttpRequest | None,
        response: HttpResponse,
        started: float,
        info: dict[str, Any],
    ) -> None:
        if self.config.quiet:
            return
        entry = {
            "requestId": response.request_id,
            "ip": request.source_ip if request else info.pop("ip", "-"),
            "requestTime": format_request_time(request.received_at if request else time.time()),
            "httpMethod": method,
            "path": request.raw_path if request else "-",
            "routeKey": info.pop("routeKey", "-"),
            "status": response.status,
            "protocol": request.protocol if request else "-",
            "responseLength": len(response.body),
            "responseLatency": round((time.perf_counter() - started) * 1000, 2),
        }
        entry.update(info)
        self.log(json.dumps(entry, separators=(",", ":")))

    async def _respond(
        self, request: HttpRequest, request_id: str, info: dict[str, Any]
    ) -> HttpResponse:
        if not request.target.startswith("/"):
            parts = urlsplit(request.target)  # absolute-form request-target (proxies)
            request.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        path = request.raw_path
        if path == "/_local/health":
            return _json(200, self.gateway.health())
        if path == "/openapi.json" and request.method in ("GET", "HEAD") and self.openapi:
            return HttpResponse(200, [("content-type", "application/json")], self.openapi)
        assert self.routes is not None
        match = self.routes.match(request.method, path)
        if match is None:
            return gateway_message(*NOT_FOUND)
        route, params = match
        info["routeKey"] = route.key
        authorizer_block = None
        if self.authorizer is not None:
            header = next((v for k, v in request.headers if k.lower() == "authorization"), None)
            try:
                authorizer_block = await self.gateway.off_loop(self.authorizer.authorize, header)
            except Unauthorized as exc:
                info["authorizerError"] = str(exc)
                return gateway_message(*UNAUTHORIZED)
        event = build_event(
            request,
            route_key=route.key,
            path_parameters=params,
            request_id=request_id,
            authorizer=authorizer_block,
            port=self.gateway.port,
            account_id=self.config.account_id,
        )
        result = await route.target.pool.invoke(event, self.config.integration_timeout_s)
        return self._map(result, route.target.spec, info)

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
                self.log(f"[gateway] {spec.name}: malformed Lambda proxy response: {exc}")
                return gateway_message(*INTERNAL_ERROR)
        if result.kind == "integration_timeout":
            info["integrationErrorMessage"] = "integration timed out"
            return gateway_message(*SERVICE_UNAVAILABLE)
        if result.kind == "throttled":
            # refused before any environment saw it: the function never ran
            reason = (result.error or {}).get("errorMessage", "")
            info["integrationErrorMessage"] = f"throttled: every environment busy, {reason}"
            response = gateway_message(*TOO_MANY_REQUESTS)
            response.headers.append(("retry-after", str(result.retry_after_s)))
            return response
        error = result.error or {}
        info["integrationErrorMessage"] = f"{error.get('errorType')}: {error.get('errorMessage')}"
        if result.kind == "timeout" or error.get("errorType") in _RUNTIME_FAILURES:
            # The worker could not report these itself: say it for it, like Lambda's log.
            self.log(
                f"[{spec.name}] {result.aws_request_id} "
                f"{error.get('errorType')}: {error.get('errorMessage')}"
            )
        return gateway_message(*INTERNAL_ERROR)


class IssuerPipeline:
    """The local OIDC issuer and the subset of the GCE/Cloud Run metadata server the shop
    uses, for the issuer's own loopback listener."""

    def __init__(self, gateway: LocalGateway, issuer: LocalIssuer) -> None:
        self.gateway = gateway
        self.issuer = issuer

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        response = await self._respond(request)
        response.request_id = new_request_id()
        return response

    def reject(self, status: int, message: str, ip: str) -> HttpResponse:
        return gateway_message(status, message)

    async def _respond(self, request: HttpRequest) -> HttpResponse:
        path = request.raw_path
        if request.method not in ("GET", "HEAD"):
            return gateway_message(*NOT_FOUND)
        if path == "/.well-known/openid-configuration":
            return _json(200, self.issuer.openid_configuration())
        if path == "/jwks.json":
            return _json(200, self.issuer.jwks())
        if not path.startswith("/computeMetadata/"):
            return gateway_message(*NOT_FOUND)
        flavor = next((v for k, v in request.headers if k.lower() == "metadata-flavor"), None)
        if flavor != "Google":
            return _text(403, "Missing required header: Metadata-Flavor\n")
        if path == METADATA_IDENTITY_PATH:
            audience = parse_qs(request.raw_query).get("audience", [""])[0]
            if not audience:
                return _text(400, "non-empty audience parameter required\n")
            token = await self.gateway.off_loop(self.issuer.issue, audience)
            return _text(200, token)
        if path == "/computeMetadata/v1/instance/service-accounts/default/email":
            return _text(200, settings.LOCAL_SERVICE_ACCOUNT)
        return _text(404, "Not Found\n")


class LocalGateway:
    """The local API Gateway. ``start()`` serves in a background thread; ``stop()`` cleans up."""

    def __init__(self, config: GatewayConfig) -> None:
        if config.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.admission = Admission(max_queue=config.max_queue, max_wait_s=config.max_wait_s)
        if (
            config.authorizer
            and config.authorizer.issuer == LOCAL_ISSUER
            and not config.local_issuer
        ):
            raise ValueError("JwtAuthorizerConfig.local() needs GatewayConfig(local_issuer=True)")
        self.config = config
        self.log = config.log or stderr_log
        self.loop = _new_loop()
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._pools: list[FunctionPool] = []
        self._servers: list[HttpServer] = []
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="gateway-slow")
        self._port = config.port
        self._issuer_port = config.issuer_port
        self.pipeline = ApiPipeline(self)
        self.issuer: LocalIssuer | None = None
        self.authorizer: JwtAuthorizer | None = None
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            raise RuntimeError("gateway already started")
        self._started = True
        config = self.config
        api_sock = _listen(config.host, config.port)
        self._port = int(api_sock.getsockname()[1])
        issuer_sock = None
        if config.local_issuer:
            try:
                issuer_sock = _listen(ISSUER_HOST, config.issuer_port)
            except OSError:
                api_sock.close()
                raise
            self._issuer_port = int(issuer_sock.getsockname()[1])
            self.issuer = LocalIssuer(self.issuer_url, config.state_dir / "issuer")
        routes: list[tuple[str, _Target]] = []
        for spec in config.functions:
            env = {**config.env, **config.function_env.get(spec.name, {})}
            pool = FunctionPool(
                spec,
                env,
                size=config.concurrency,
                region=config.region,
                account_id=config.account_id,
                log=self.log,
                loop=self.loop,
                admission=self.admission,
            )
            self._pools.append(pool)
            routes.extend((key, _Target(spec, pool)) for key in spec.routes)
        self.pipeline.routes = RouteTable(routes)
        with contextlib.suppress(FileNotFoundError):
            self.pipeline.openapi = served_document(
                OPENAPI_PATH.read_bytes(), secured=config.authorizer is not None, url=self.url
            )
        if config.authorizer is not None:
            auth = config.authorizer
            if auth.issuer == LOCAL_ISSUER:
                assert self.issuer is not None
                auth = JwtAuthorizerConfig(
                    issuer=self.issuer.issuer_url,
                    audiences=auth.audiences,
                    jwks_url=auth.jwks_url,
                    leeway_s=auth.leeway_s,
                )
            self.authorizer = self.pipeline.authorizer = JwtAuthorizer(auth)
        limits = Limits(
            max_body=config.max_body,
            header_timeout_s=config.header_timeout_s,
            body_timeout_s=config.body_timeout_s,
            idle_timeout_s=config.idle_timeout_s,
            write_timeout_s=config.write_timeout_s,
        )
        api = HttpServer(self.loop, self.pipeline, self.pipeline.reject, limits, self.log)
        self._servers.append(api)
        listeners: list[tuple[HttpServer, socket.socket]] = [(api, api_sock)]
        if self.issuer is not None and issuer_sock is not None:
            issuer_app = IssuerPipeline(self, self.issuer)
            server = HttpServer(self.loop, issuer_app, issuer_app.reject, limits, self.log)
            self._servers.append(server)
            listeners.append((server, issuer_sock))
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            for server, sock in listeners:
                self.loop.run_until_complete(server.start(sock))
            ready.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, name="gateway", daemon=True)
        self._thread.start()
        ready.wait(10)

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
        """The local issuer's base URL (its ``iss``), on its own loopback listener."""
        return f"http://{ISSUER_HOST}:{self._issuer_port}"

    @property
    def metadata_url(self) -> str:
        """What the shop's METADATA_SERVER_URL should be locally (same listener)."""
        return self.issuer_url

    def off_loop(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Run blocking work (JWKS fetch, RS256, token signing) in the gateway's thread pool."""
        return self.loop.run_in_executor(self._executor, fn, *args)

    def serve_forever(self) -> None:
        """Serve in the foreground until Ctrl-C or SIGTERM, then stop cleanly."""
        if not self._started:
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
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def is_alive(self) -> bool:
        """True while the loop thread serves (for ``hybridshop up``'s supervisor)."""
        return self._thread is not None and self._thread.is_alive() and not self._stopped.is_set()

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._thread is not None and self.loop.is_running():
            self._run(self._shutdown()).result(timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        for pool in self._pools:
            pool.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        if not self.loop.is_running():
            with contextlib.suppress(RuntimeError):
                self.loop.close()

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def _shutdown(self) -> None:
        for server in self._servers:
            await server.close()

    def health(self) -> dict[str, Any]:
        routes = self.pipeline.routes
        return {
            "status": "ok",
            "functions": {pool.spec.name: pool.stats() for pool in self._pools},
            "routes": routes.keys if routes else [],
        }


def served_document(raw: bytes, *, secured: bool, url: str) -> bytes:
    """The OpenAPI document as this gateway behaves: the file describes the deployed API
    (JWT authorizer on); without an authorizer, no security requirement and no 401."""
    document = json.loads(raw)
    document["servers"] = [{"url": url, "description": "this local gateway"}]
    if not secured:
        document.pop("security", None)
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                operation.pop("security", None)
                operation.get("responses", {}).pop("401", None)
    return json.dumps(document, indent=2).encode()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # A burst of hundreds of new connections must not be refused: deep backlog.
    sock = socket.create_server((host, port), family=family, backlog=1024)
    sock.setblocking(False)
    return sock


def _json(status: int, value: Any) -> HttpResponse:
    body = json.dumps(value, separators=(",", ":")).encode()
    return HttpResponse(status=status, headers=[("content-type", "application/json")], body=body)


def _text(status: int, text: str) -> HttpResponse:
    return HttpResponse(
        status=status,
        headers=[("content-type", "text/plain; charset=utf-8"), ("metadata-flavor", "Google")],
        body=text.encode(),
    )


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
