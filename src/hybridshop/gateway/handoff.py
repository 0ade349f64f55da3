"""Handed-off connections: an execution environment serving a keep-alive client directly.

The gateway answers the first request of a connection itself and may then pass the socket
(SCM_RIGHTS) to the environment that holds no other connection. That environment reads the
next requests off the socket and, for routes of its own function, does what the gateway
would: parse, build the 2.0 event, invoke (one invocation at a time, as always), map the
result, write the response. This saves the gateway process two wake-ups and its share of
the work per request. Anything else (another function's route, ``/_local``, bad input) is
handed back untouched, bytes included, and the gateway handles it as usual. Timeouts stay
the gateway's job: it watches the shared invocation record and kills a late environment,
answering the client on its own copy of the socket.
"""

from __future__ import annotations

import json
import pickle
import select
import socket
import time
from typing import Any

from hybridshop.gateway.events import (
    HttpRequest,
    build_event,
    format_request_time,
    new_request_id,
    new_uuid,
)
from hybridshop.gateway.http11 import HttpDate, HttpError, RequestParser, serialize_response
from hybridshop.gateway.responses import MappingError, gateway_message, map_result
from hybridshop.gateway.routes import RouteTable
from hybridshop.gateway.worker import KIND_FUNCTION, KIND_INTEGRATION, Control, Runtime

IDLE_TIMEOUT_S = 65.0
WRITE_TIMEOUT_S = 30.0


class _Client:
    __slots__ = ("conn_id", "ip", "last_active", "parser", "sock")

    def __init__(self, conn_id: int, sock: socket.socket, ip: str, max_body: int) -> None:
        self.conn_id = conn_id
        self.sock = sock
        self.ip = ip
        self.parser = RequestParser(max_body, keep_raw=True)
        self.last_active = time.monotonic()


class ConnectionServer:
    def __init__(self, control: Control, runtime: Runtime, setup: dict[str, Any]) -> None:
        self.control = control
        self.runtime = runtime
        self.name: str = setup["function_name"]
        self.routes: RouteTable[str] = RouteTable([(k, f) for k, f in setup["routes"]])
        self.port: int = setup["port"]
        self.account_id: str = setup["account_id"]
        self.integration_timeout_s = float(setup["integration_timeout_s"])
        self.access_log: bool = setup["access_log"]
        self.max_body: int = setup["max_body"]
        # poll directly (two or three descriptors): ``selectors`` costs a few microseconds
        # per wake-up, and poll exists wherever the gateway runs (epoll is Linux-only).
        self.poller = select.poll()
        self.clients: dict[int, _Client] = {}
        self.by_fd: dict[int, _Client] = {}
        self.date = HttpDate()
        control.sock.setblocking(True)
        self.control_fd = control.sock.fileno()
        self.poller.register(self.control_fd, select.POLLIN)

    def run(self) -> None:
        poll = self.poller.poll
        control_fd = self.control_fd
        by_fd = self.by_fd
        while True:
            for fd, _events in poll(5000):
                if fd == control_fd:
                    if not self._on_control():
                        return
                else:
                    client = by_fd.get(fd)
                    if client is not None:
                        self._on_client(client)
            self._sweep()

    # -- gateway ---------------------------------------------------------------------------

    def _on_control(self) -> bool:
        if not self.control.fill():
            return False  # the gateway went away: an environment never outlives its gateway
        while (frame := self.control.next_frame()) is not None:
            kind = frame[:1]
            if kind == b"j":
                self.control.send(self.runtime.run_job(frame[1:]))
            elif kind == b"h":
                conn_id, ip = pickle.loads(frame[1:])  # noqa: S301 - our gateway's frame
                fd = self.control.fds.popleft()
                sock = socket.socket(fileno=fd)
                # Non-blocking: reads only follow readiness, and a socket with a timeout
                # would cost a poll() before every recv and send.
                sock.setblocking(False)
                client = _Client(conn_id, sock, ip, self.max_body)
                self.clients[conn_id] = client
                self.by_fd[fd] = client
                self.poller.register(fd, select.POLLIN)
        return True

    def _sweep(self) -> None:
        limit = time.monotonic() - IDLE_TIMEOUT_S
        for client in [c for c in self.clients.values() if c.last_active < limit]:
            self._close(client)

    # -- clients ---------------------------------------------------------------------------

    def _forget(self, client: _Client) -> None:
        self.clients.pop(client.conn_id, None)
        fd = client.sock.fileno()
        self.by_fd.pop(fd, None)
        self.poller.unregister(fd)
        client.sock.close()  # the gateway still holds its own descriptor

    def _close(self, client: _Client) -> None:
        self._forget(client)
        self.control.send(b"c" + pickle.dumps(client.conn_id))

    def _hand_back(self, client: _Client, data: bytes) -> None:
        self._forget(client)
        self.control.send(b"b" + pickle.dumps((client.conn_id, data)))

    def _on_client(self, client: _Client) -> None:
        try:
            data = client.sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(client)
            return
        client.last_active = time.monotonic()
        parser = client.parser
        parser.feed(data)
        while True:
            try:
                request = parser.next()
            except HttpError:
                # Nothing of a refused request is consumed: the gateway re-reads and answers it.
                self._hand_back(client, bytes(parser.buffer))
                return
            if request is None:
                if parser.expects_continue:
                    parser.expects_continue = False
                    if not self._send(client, b"HTTP/1.1 100 Continue\r\n\r\n"):
                        return
                return
            path = request.target.partition("?")[0]
            match = None
            if request.target.startswith("/") and not (
                path.startswith("/_local/") or path == "/openapi.json"
            ):
                match = self.routes.match(request.method, path)
            if match is None or match[0].target != self.name:
                self._hand_back(client, parser.last_raw + bytes(parser.buffer))
                return
            route, params = match
            if not self._respond(client, request, route.key, params):
                return
            if not request.keep_alive:
                self._close(client)
                return
            if not parser.buffer:
                return

    def _send(self, client: _Client, data: bytes) -> bool:
        """Write it all (waiting for a slow reader up to WRITE_TIMEOUT_S); False if closed."""
        view = memoryview(data)
        deadline = time.monotonic() + WRITE_TIMEOUT_S
        try:
            while view:
                try:
                    view = view[client.sock.send(view) :]
                except BlockingIOError:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not select.select([], [client.sock], [], remaining)[1]:
                        raise TimeoutError from None
        except OSError:
            self._close(client)
            return False
        return True

    def _respond(
        self, client: _Client, request: Any, route_key: str, params: dict[str, str]
    ) -> bool:
        started = time.perf_counter()
        received_at = time.time()
        request_id = new_request_id()
        http_request = HttpRequest(
            method=request.method,
            target=request.target,
            headers=request.headers,
            body=request.body,
            source_ip=client.ip,
            protocol=request.version,
            received_at=received_at,
        )
        event = build_event(
            http_request,
            route_key=route_key,
            path_parameters=params,
            request_id=request_id,
            port=self.port,
            account_id=self.account_id,
        )
        rid = new_uuid()
        runtime = self.runtime
        now = time.monotonic()
        if runtime.timeout_s <= self.integration_timeout_s:
            deadline, kind = now + runtime.timeout_s, KIND_FUNCTION
        else:
            deadline, kind = now + self.integration_timeout_s, KIND_INTEGRATION
        invoked = time.perf_counter()
        reply = runtime.invoke(event, rid, deadline, kind, client.conn_id, -1)
        integration_ms = (time.perf_counter() - invoked) * 1000
        error = None
        if reply[:1] == b"o":
            try:
                response = map_result(reply[1:].decode("utf-8"))
            except MappingError as exc:
                error = f"malformed Lambda proxy response: {exc}"
                response = gateway_message(500, "Internal Server Error")
        else:
            payload = json.loads(reply[1:])
            error = f"{payload.get('errorType')}: {payload.get('errorMessage')}"
            response = gateway_message(500, "Internal Server Error")
        close = not request.keep_alive
        data = serialize_response(
            response.status,
            response.headers,
            response.body,
            request_id=request_id,
            date=self.date(),
            close=close,
            http10_keep_alive=request.version == "HTTP/1.0",
            head_only=request.method == "HEAD",
        )
        if not self._send(client, data):
            return False
        if self.access_log:
            entry: dict[str, Any] = {
                "requestId": request_id,
                "ip": client.ip,
                "requestTime": format_request_time(received_at),
                "httpMethod": request.method,
                "path": request.target.partition("?")[0],
                "routeKey": route_key,
                "status": response.status,
                "protocol": request.version,
                "responseLength": len(response.body),
                "responseLatency": round((time.perf_counter() - started) * 1000, 2),
                "functionName": self.name,
                "integrationLatency": round(integration_ms, 2),
                "awsRequestId": rid,
            }
            if error:
                entry["integrationErrorMessage"] = error
            self.control.send(b"L" + json.dumps(entry, separators=(",", ":")).encode())
        return True


def serve_with_connections(control: Control, runtime: Runtime, setup: dict[str, Any]) -> None:
    ConnectionServer(control, runtime, setup).run()
